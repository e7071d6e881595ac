"""Expectations on the canonical raw transactions of a run (``load.load_transactions``).

The frame judged is everything the run reads: every row before the run date.
Suites (all GX 1.x; aggregates are computed in pandas into a small derived frame and
judged by a GX expectation on it, so every verdict comes out of GX the same way):
- ``transactions.schema``     the whole loaded frame: columns and dtypes of the contract.
- ``transactions.contract``, ``transactions.purchases`` (price >= 0 on every product
  purchase line), ``transactions.plausibility``: every row read, see ``contract.py``.
- ``transactions.cleaning``   each cleaning rule's daily drop share against its own
                              history, over the run's windows: see ``cleaning_drift.py``.
- ``transactions.windows``    train, val and eval windows each have rows, and no gap
                              between consecutive trading days inside them exceeds
                              ``max_gap_days`` (rows shifted a year ahead leave a
                              13-month hole in the val window: that fails here).
- ``transactions.eval_window`` rows of the eval window (the newest data): there are
                              some, at least one known user, share of cancellations bounded.
- ``transactions.recent``     rows of the reference days + eval window: shares of null
                              users (guest lines) and of exact duplicates bounded. A
                              single day is too noisy for these shares on real data
                              (Online Retail II: the null-user share of one day reaches
                              0.87, 28 of 604 days exceed 0.5; over 29 trading days it
                              never exceeds 0.43); a fully broken user column on the
                              newest day is caught by the eval-window check instead.
- ``transactions.purchases``   the eval window has product purchase lines. Real dirt
                              must pass the price check: cancellations, guest lines and
                              "Adjust bad debt" lines (code B, negative price) are not
                              product purchases.
- ``transactions.freshness``  run_date - newest day <= freshness_days (the store does
                              not trade every day, so "yesterday" is not required).
- ``transactions.row_counts`` rows per eval-window day vs the median of the
                              ``row_count_reference_days`` trading days before it.
"""

from __future__ import annotations

import pandas as pd

from quantrec.data import schema as S
from quantrec.data.clean import CleaningReport, clean_transactions, non_product_mask
from quantrec.data.spec import CleaningRules, ValidationThresholds
from quantrec.data.windows import Windows
from validation.checks import (BOOL_TYPES, DATETIME_TYPES, NUMERIC_TYPES, STRING_TYPES, Check,
                               Expect, run_expectations)
from validation.cleaning_drift import validate_cleaning_drift
from validation.contract import product_purchase_mask, validate_contract, validate_plausibility

DUPLICATE = "is_exact_duplicate"  # derived flag: a repeat of an earlier identical line
EXAMPLE_COLUMNS = [S.ORDER, S.USER, S.ITEM, S.TS, S.QUANTITY, S.UNIT_PRICE, S.COUNTRY, S.IS_CANCELLATION]

# The canonical frame's contract (see ``load.to_canonical``), by dtype family.
CANONICAL_TYPES: dict[str, list[str]] = {
    S.ORDER: STRING_TYPES, S.USER: STRING_TYPES, S.ITEM: STRING_TYPES, S.COUNTRY: STRING_TYPES,
    S.TS: DATETIME_TYPES, S.DAY: DATETIME_TYPES,
    S.QUANTITY: NUMERIC_TYPES, S.UNIT_PRICE: NUMERIC_TYPES, S.VALUE: NUMERIC_TYPES,
    S.IS_CANCELLATION: BOOL_TYPES,
}


def _gxe():
    import great_expectations.expectations as gxe  # lazy: see checks._batch_definition
    return gxe


def daily_row_counts(raw: pd.DataFrame, windows: Windows, reference_days: int) -> pd.DataFrame:
    """Rows per trading day for the reference days and the eval window.

    Columns: day, rows, role ('reference' | 'eval'); the reference days are the last
    ``reference_days`` trading days before ``windows.eval_start``.
    """
    counts = raw.groupby(S.DAY, sort=True).size().rename("rows").reset_index()
    ref = counts[counts[S.DAY] < windows.eval_start].tail(reference_days).assign(role="reference")
    ev = counts[(counts[S.DAY] >= windows.eval_start) & (counts[S.DAY] < windows.end)].assign(role="eval")
    return pd.concat([ref, ev], ignore_index=True)


def _schema_expects(raw: pd.DataFrame) -> list[Expect]:
    gxe = _gxe()
    out = [Expect(gxe.ExpectTableRowCountToBeBetween(min_value=1), "the loaded table has rows")]
    for col, types in CANONICAL_TYPES.items():
        out.append(Expect(gxe.ExpectColumnToExist(column=col), f"column {col} exists"))
        if col in raw.columns:  # a type check on a missing column only repeats the miss
            out.append(Expect(gxe.ExpectColumnValuesToBeInTypeList(column=col, type_list=types),
                              f"column {col} has a {types[0]}-like dtype"))
    return out


def window_coverage(raw: pd.DataFrame, windows: Windows) -> pd.DataFrame:
    """One row per window (train, val, eval): start, end, rows, trading days, largest gap.

    ``largest_gap_days``: the most calendar days between a trading day of the window
    and the trading day before it (from train_start on); NaN for an empty window.
    """
    days = pd.Series(raw[S.DAY].unique()).sort_values(ignore_index=True)
    days = days[(days >= windows.train_start) & (days < windows.end)].reset_index(drop=True)
    gaps = days.diff().dt.days
    rows_per_day = raw[S.DAY].value_counts()
    out = []
    for name, start, end in (("train", windows.train_start, windows.val_start),
                             ("val", windows.val_start, windows.eval_start),
                             ("eval", windows.eval_start, windows.end)):
        inside = (days >= start) & (days < end)
        out.append({"window": name, "start": start, "end": end,
                    "rows": int(rows_per_day.reindex(days[inside]).sum()),
                    "trading_days": int(inside.sum()),
                    "largest_gap_days": float(gaps[inside].max()) if inside.any() else float("nan")})
    return pd.DataFrame(out)


def _window_expects(t: ValidationThresholds, cover: pd.DataFrame) -> list[Expect]:
    """Rows per window and the largest gap inside each; observed names the windows."""
    gxe = _gxe()
    rows = {r["window"]: int(r["rows"]) for r in cover.to_dict("records")}
    gaps = {r["window"]: (None if pd.isna(r["largest_gap_days"]) else int(r["largest_gap_days"]))
            for r in cover.to_dict("records")}
    return [
        Expect(gxe.ExpectColumnValuesToBeBetween(column="rows", min_value=1),
               "the train, val and eval windows each have rows", observed={"rows": rows}),
        Expect(gxe.ExpectColumnValuesToBeBetween(column="largest_gap_days", max_value=t.max_gap_days),
               f"no gap of more than {t.max_gap_days} days between trading days inside the run's windows",
               observed={"largest_gap_days": gaps}),
    ]


def _eval_expects(t: ValidationThresholds) -> list[Expect]:
    gxe = _gxe()
    out = [Expect(gxe.ExpectTableRowCountToBeBetween(min_value=1), "the eval window has rows")]
    out.append(Expect(gxe.ExpectColumnUniqueValueCountToBeBetween(column=S.USER, min_value=1),
                      "the eval window has lines of known users (user ids not all null)"))
    out.append(Expect(
        gxe.ExpectColumnValuesToBeInSet(column=S.IS_CANCELLATION, value_set=[False],
                                        mostly=1.0 - t.max_cancellation_share),
        f"share of cancellation lines <= {t.max_cancellation_share}"))
    return out


def _recent_expects(t: ValidationThresholds, recent: pd.DataFrame) -> list[Expect]:
    gxe = _gxe()
    return [
        Expect(gxe.ExpectColumnValuesToNotBeNull(column=S.USER, mostly=1.0 - t.max_null_user_share),
               f"share of lines without a user id (guest lines) <= {t.max_null_user_share}"),
        Expect(gxe.ExpectColumnValuesToBeInSet(column=DUPLICATE, value_set=[False],
                                               mostly=1.0 - t.max_duplicate_share),
               f"share of exact duplicate lines <= {t.max_duplicate_share}",
               # show both copies of the first duplicated lines, not only the repeats
               examples=recent[recent.duplicated(subset=S.TRANSACTION_COLUMNS, keep=False)]),
    ]


def validate_transactions(raw: pd.DataFrame, windows: Windows, thresholds: ValidationThresholds,
                          rules: CleaningRules | None = None, cleaning: CleaningReport | None = None,
                          has_order: bool = True, has_prices: bool = True) -> list[Check]:
    """Run every raw-transaction suite; ``rules`` say which item ids are non-products.

    ``raw`` is the canonical frame of ``load.load_transactions`` (strictly before the
    run date): every row the run reads. ``cleaning``: ``clean_transactions(raw, rules)``'s
    report if the caller has it (else it is computed here). ``has_order``: the spec maps
    an order id column; ``has_prices`` False: an interaction table (no price checks).
    Without ``rules`` every item counts as a product.
    """
    return validate_transactions_with_drift(raw, windows, thresholds, rules, cleaning, has_order, has_prices)[0]


def validate_transactions_with_drift(
        raw: pd.DataFrame, windows: Windows, thresholds: ValidationThresholds,
        rules: CleaningRules | None = None, cleaning: CleaningReport | None = None,
        has_order: bool = True, has_prices: bool = True) -> tuple[list[Check], pd.DataFrame | None]:
    """``validate_transactions`` plus the cleaning drift table (for the report's plot).

    The drift table is None when the schema suite failed (nothing else runs then).
    ``has_prices`` False (an interaction table, ``DatasetSpec.has_prices``): the price
    checks of the contract are not run and plausibility judges the quantity alone
    (unit price and gmv are filled in by the loader, there is nothing to check).
    """
    gxe = _gxe()
    rules = rules or CleaningRules()
    t = thresholds
    checks = run_expectations("transactions.schema", raw, _schema_expects(raw), EXAMPLE_COLUMNS)
    if not all(c.success for c in checks):
        # The other suites read these columns; on a broken contract they would only
        # add confusing follow-up failures.
        return checks, None

    non_product = non_product_mask(raw[S.ITEM], rules)  # once: two suites need it
    checks += validate_contract(raw, t, rules, has_order, EXAMPLE_COLUMNS, non_product, has_prices)
    checks += validate_plausibility(raw, t.plausibility, rules, EXAMPLE_COLUMNS, non_product,
                                    columns=None if has_prices else (S.QUANTITY,))
    if cleaning is None:
        cleaning = clean_transactions(raw, rules)[1]
    drift_checks, drift = validate_cleaning_drift(raw, cleaning, t, windows.train_start, windows.end,
                                                  EXAMPLE_COLUMNS)
    checks += drift_checks

    cover = window_coverage(raw, windows)
    checks += run_expectations("transactions.windows", cover, _window_expects(t, cover))

    daily = daily_row_counts(raw, windows, t.row_count_reference_days)
    in_eval = (raw[S.DAY] >= windows.eval_start) & (raw[S.DAY] < windows.end)
    ev = raw[in_eval].reset_index(drop=True)
    checks += run_expectations("transactions.eval_window", ev, _eval_expects(t), EXAMPLE_COLUMNS)

    recent = raw[(raw[S.DAY] >= daily[S.DAY].min()) & (raw[S.DAY] < windows.end)].reset_index(drop=True)
    recent[DUPLICATE] = recent.duplicated(subset=S.TRANSACTION_COLUMNS, keep="first")
    checks += run_expectations("transactions.recent", recent, _recent_expects(t, recent), EXAMPLE_COLUMNS)

    # Product purchase lines of the eval window: the newest day must sell something.
    # (Their prices are checked on every row of the read window by the contract.)
    buys = ev[product_purchase_mask(ev, rules).to_numpy()]
    checks += run_expectations("transactions.purchases", buys, [
        Expect(gxe.ExpectTableRowCountToBeBetween(min_value=1),
               "the eval window has product purchase lines",
               examples=ev),  # nothing to show from an empty frame: show what the window has
    ], EXAMPLE_COLUMNS)

    newest = raw[S.DAY].max()
    fresh = pd.DataFrame({"run_date": [windows.run_date], "newest_day": [newest],
                          "days_since_newest": [int((windows.run_date - newest).days)]})
    checks += run_expectations("transactions.freshness", fresh, [
        Expect(gxe.ExpectColumnValuesToBeBetween(column="days_since_newest", min_value=1,
                                                 max_value=t.freshness_days),
               f"newest data at most {t.freshness_days} days before run_date",
               observed={"newest_day": newest, "days_since_newest": int(fresh.iloc[0, 2])}),
    ])

    ref = daily[daily["role"] == "reference"]
    median = float(ref["rows"].median()) if len(ref) else float("nan")
    rc = daily[daily["role"] == "eval"].drop(columns="role").reset_index(drop=True)
    rc["reference_median"] = median
    rc["reference_days"] = len(ref)
    rc["ratio"] = rc["rows"] / median if median > 0 else float("nan")
    lo, hi = t.row_count_ratio
    checks += run_expectations("transactions.row_counts", rc, [
        Expect(gxe.ExpectColumnValuesToNotBeNull(column="ratio"),
               "a reference row count exists for the eval days"),
        Expect(gxe.ExpectColumnValuesToBeBetween(column="ratio", min_value=lo, max_value=hi),
               f"rows per eval day / median of the {t.row_count_reference_days} trading days "
               f"before the eval window within [{lo}, {hi}]",
               observed={"ratio": [round(float(x), 4) for x in rc["ratio"]], "rows": rc["rows"].tolist(),
                         "reference_median": median}),
    ])
    return checks, drift
