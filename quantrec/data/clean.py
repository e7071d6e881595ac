"""Cleaning rules, applied in a fixed order, each counting the rows it removes (per day too).

Every rule is point-in-time: whether a row is kept depends only on rows of the same
day and of earlier days, so history features of day X (built from days < X) never
see information from day X or later through cleaning.

Rules (order matters for the counts; ``RULES`` lists them):
1. exact_duplicates: identical lines (all canonical columns equal) kept once.
2. same_day_reversals: a purchase line cancelled in full on the same day (same user,
   item and quantity) is removed with its cancellation: it never happened. This is
   how the extreme one-off bulk orders of the default data disappear (74,215 units of
   23166 on 2011-01-18 were cancelled at once). Counts the purchase side; the
   cancellation side is counted by ``cancellations``.
3. cancellations: cancellation lines (order id prefix or negative quantity) removed.
4. non_product_items: postage, fees, adjustments, vouchers (spec codes and patterns).
5. zero_quantity: lines with quantity 0 (or no quantity). Some tables log them with
   a null unit price every day: dirt that is removed and counted here, not a bad
   price (the validation gate bounds its share, see ``validation.contract``).
6. null_users: guest lines without a user id (no history to learn from).
7. non_positive_prices: zero, negative or missing unit prices (bad-debt adjustments,
   samples, free items).
8. below_min_label: interaction tables with a ``label`` column (e.g. a rating): rows
   whose label is below ``cleaning.min_label``, or missing, are not positive
   interactions. Removes nothing when the spec maps no label. (An interaction table's
   unit price is 1, so rule 7 removes nothing there either.)
9. outlier_quantity: purchase lines whose quantity is above the ``outlier_quantile``
   quantile of the purchase quantities of strictly earlier days (the lines left by
   rules 1-8). The quantile needs history: it is applied only once earlier days hold
   at least ``OUTLIER_MIN_LINES_ABOVE / (1 - outlier_quantile)`` lines (100,000 for
   0.9999, about four months of the default data), so at least 10 earlier lines lie
   above it. ``outlier_quantile: null`` in the spec switches the rule off.
Bulk purchases below that bound stay: models clip their training labels (see the
codebook / model configs), the data keeps the truth.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from quantrec.data import schema
from quantrec.data.spec import CleaningRules

RULES: tuple[str, ...] = ("exact_duplicates", "same_day_reversals", "cancellations", "non_product_items",
                          "zero_quantity", "null_users", "non_positive_prices", "below_min_label",
                          "outlier_quantity")
ROWS_IN = "rows_in"  # column of ``CleaningReport.by_day``: rows of the day before cleaning
OUTLIER_MIN_LINES_ABOVE = 10


@dataclass
class CleaningReport:
    """What cleaning removed: totals per rule and, in ``by_day``, counts per day and rule.

    ``by_day``: one row per day of the input (index ``day``, datetime64), columns
    ``rows_in`` and one per rule of ``RULES`` (int64 row counts). ``removed_by``: per
    input row (in input order), 0 if kept, else 1 + the index in ``RULES`` of the rule
    that removed it. Both are for the validation gate and reports; ``to_dict``
    (artifact metadata) holds the totals only.
    """

    rows_in: int
    removed: dict[str, int] = field(default_factory=dict)
    rows_out: int = 0
    by_day: pd.DataFrame | None = None
    removed_by: np.ndarray | None = field(default=None, repr=False)

    def to_dict(self) -> dict:
        return {"rows_in": self.rows_in, "removed": dict(self.removed), "rows_out": self.rows_out}

    def daily_shares(self) -> pd.DataFrame:
        """``by_day`` rule counts divided by the day's ``rows_in`` (shares in [0, 1])."""
        if self.by_day is None:
            raise ValueError("this cleaning report has no per-day counts")
        counts = self.by_day[list(RULES)]
        return counts.div(self.by_day[ROWS_IN].where(self.by_day[ROWS_IN] > 0), axis=0).fillna(0.0)


    def removed_mask(self, rule: str) -> np.ndarray:
        """Boolean mask over the input rows (input order): removed by ``rule``."""
        if self.removed_by is None:
            raise ValueError("this cleaning report has no per-row record")
        if rule not in RULES:
            raise ValueError(f"unknown cleaning rule {rule!r}; rules: {list(RULES)}")
        return self.removed_by == RULES.index(rule) + 1


def non_product_of(uniques: pd.Series | pd.Index | np.ndarray, rules: CleaningRules) -> np.ndarray:
    """Boolean per distinct item id: a non-product code (exact list or regex patterns)."""
    uniq = pd.Series(uniques, dtype="string")
    mask = uniq.isin(list(rules.non_product_codes))
    if rules.non_product_patterns:
        pattern = "|".join(f"(?:{p})" for p in rules.non_product_patterns)
        re.compile(pattern)  # fail early with re.error on a bad spec pattern
        mask |= uniq.fillna("").str.contains(pattern, regex=True)
    return mask.fillna(False).to_numpy(dtype=bool)


def non_product_mask(items: pd.Series, rules: CleaningRules,
                     factorized: tuple[np.ndarray, object] | None = None) -> pd.Series:
    """True where the item id is a non-product code (exact list or regex patterns).

    Evaluated once per distinct item id (a few thousand) and mapped back to the rows:
    the regex over a million strings would cost about half a second. ``factorized``:
    ``pd.factorize(items)`` if the caller has it already.
    """
    codes, uniques = factorized if factorized is not None else pd.factorize(items, use_na_sentinel=True)
    mask_u = non_product_of(uniques, rules)
    out = np.zeros(len(items), dtype=bool)
    known = codes >= 0  # null item ids are not non-product codes
    out[known] = mask_u[codes[known]]
    return pd.Series(out, index=items.index)


def _exact_duplicates(df: pd.DataFrame, item: np.ndarray) -> np.ndarray:
    """Repeats of an earlier identical line (all canonical columns equal), as a bool array.

    ``item``: integer codes of ``df``'s item ids. Identical lines share (ts, item,
    quantity, price); comparing every string column only where those repeat (a few
    percent of the rows) is 3x faster than ``df.duplicated`` on all of them.
    """
    key = pd.DataFrame({"t": df[schema.TS].to_numpy(), "i": item, "q": df[schema.QUANTITY].to_numpy(),
                        "p": df[schema.UNIT_PRICE].to_numpy()})
    cand = key.duplicated(keep=False).to_numpy()
    out = np.zeros(len(df), dtype=bool)
    out[cand] = df.loc[cand, schema.TRANSACTION_COLUMNS].duplicated(keep="first").to_numpy()
    return out


def _same_day_reversed(df: pd.DataFrame, item: np.ndarray | None = None) -> pd.Series:
    """Purchases and the cancellations that reverse them in full on the same day.

    Pairs are matched one-to-one on (user, item, day, |quantity|) by occurrence order.
    Returns a boolean mask over ``df`` marking both sides of each pair. ``item``:
    integer codes of ``df``'s item ids if the caller has them.
    """
    mask = pd.Series(False, index=df.index)
    is_cancel = df[schema.IS_CANCELLATION].to_numpy(dtype=bool)
    if not is_cancel.any():
        return mask
    # Only lines sharing (day, item, |quantity|) with some cancellation can pair: about 3%
    # of the default data. Matching on those alone is 3x faster than on every line.
    item = pd.factorize(df[schema.ITEM])[0] if item is None else item
    absq = df[schema.QUANTITY].abs().to_numpy()
    key = pd.MultiIndex.from_arrays([df[schema.DAY].to_numpy(), item, absq])
    cand = np.asarray(key.isin(key[is_cancel]))
    sub = df[cand]
    keys = ["_u", "_i", "_d", "_absq"]
    work = pd.DataFrame({"_u": pd.factorize(sub[schema.USER])[0], "_i": item[cand],
                         "_d": sub[schema.DAY].to_numpy(), "_absq": absq[cand],
                         "_c": is_cancel[cand], "_buy": (sub[schema.QUANTITY] > 0).to_numpy()}, index=sub.index)
    work = work[work["_u"] >= 0]  # guest lines cannot be paired: no user to match on
    buys = work[~work["_c"] & work["_buy"]]
    cancels = work[work["_c"]]
    buys = buys.assign(_occ=buys.groupby(keys, sort=False).cumcount())
    cancels = cancels.assign(_occ=cancels.groupby(keys, sort=False).cumcount())
    pairs = buys.reset_index().merge(cancels.reset_index(), on=keys + ["_occ"],
                                     suffixes=("_buy", "_cancel"))
    mask.loc[pairs["index_buy"].to_numpy()] = True
    mask.loc[pairs["index_cancel"].to_numpy()] = True
    return mask


def outlier_quantity_mask(df: pd.DataFrame, quantile: float | None) -> pd.Series:
    """True on lines whose quantity exceeds the ``quantile`` of strictly earlier days' quantities.

    ``df``: purchase lines (positive quantities) with ``day``. The bound of day d is the
    ``quantile`` (numpy "higher" method) of the quantities of all lines of days < d; days
    whose history holds fewer than ``OUTLIER_MIN_LINES_ABOVE / (1 - quantile)`` lines are
    not judged. Exact and vectorised per day: only the top ``(1 - quantile)`` share of
    the history can hold the bound, so a running top-K array is all that is kept.
    """
    out = pd.Series(False, index=df.index)
    if quantile is None or len(df) == 0:
        return out
    if not 0.0 < quantile < 1.0:
        raise ValueError(f"cleaning.outlier_quantile must be in (0, 1) or null, got {quantile}")
    # round: 10 / (1 - 0.9999) is 100000.00000000001 in floating point, not 100001 lines
    min_history = math.ceil(round(OUTLIER_MIN_LINES_ABOVE / (1.0 - quantile), 6))
    if len(df) <= min_history:
        return out
    order = np.argsort(df[schema.DAY].to_numpy(), kind="stable")
    q = df[schema.QUANTITY].to_numpy(dtype="float64")[order]
    day = df[schema.DAY].to_numpy()[order]
    starts = np.flatnonzero(np.r_[True, day[1:] != day[:-1]])
    ends = np.r_[starts[1:], len(day)]
    # The "higher" quantile of n sorted values sits at position ceil((n-1)q): the
    # (j+1)-th largest with j = (n-1) - ceil((n-1)q) <= (n-1)(1-q).
    k_max = math.ceil((len(q) - 1) * (1.0 - quantile)) + 2
    top = np.empty(0)  # the k_max largest quantities of the days seen so far
    seen = 0
    flagged = np.zeros(len(q), dtype=bool)
    for s, e in zip(starts, ends):
        if seen >= min_history:
            j = (seen - 1) - math.ceil((seen - 1) * quantile)
            bound = np.sort(top)[::-1][j]
            flagged[s:e] = q[s:e] > bound
        merged = np.concatenate([top, q[s:e]])
        top = merged if len(merged) <= k_max else np.partition(merged, len(merged) - k_max)[-k_max:]
        seen += e - s
    out.iloc[order[flagged]] = True
    return out


def clean_transactions(df: pd.DataFrame, rules: CleaningRules) -> tuple[pd.DataFrame, CleaningReport]:
    """Apply the rules above to canonical transactions; returns purchase lines + counts.

    The output has only purchase lines of products by known users with positive
    quantity and price; ``gmv`` = quantity x unit_price (or the value column). The
    report counts every rule in total and per day (``CleaningReport.by_day``).
    """
    df = df.reset_index(drop=True)
    removed_by = np.zeros(len(df), dtype=np.int8)  # 0 = kept, i + 1 = removed by RULES[i]
    alive = np.ones(len(df), dtype=bool)

    def drop(name: str, mask: pd.Series | np.ndarray) -> None:
        hit = alive & np.asarray(mask, dtype=bool)
        removed_by[hit] = RULES.index(name) + 1
        alive[hit] = False

    items = pd.factorize(df[schema.ITEM], use_na_sentinel=True)  # once for three rules
    if rules.drop_duplicates:
        drop("exact_duplicates", _exact_duplicates(df, items[0]))
    live = df[alive]
    reversed_mask = (_same_day_reversed(live, items[0][alive]).to_numpy()
                     & ~live[schema.IS_CANCELLATION].to_numpy())
    rev = np.zeros(len(df), dtype=bool)
    rev[np.flatnonzero(alive)[reversed_mask]] = True
    drop("same_day_reversals", rev)
    drop("cancellations", df[schema.IS_CANCELLATION].to_numpy())
    drop("non_product_items", non_product_mask(df[schema.ITEM], rules, items).to_numpy())
    drop("zero_quantity", ~(df[schema.QUANTITY] > 0).to_numpy())
    drop("null_users", df[schema.USER].isna().to_numpy())
    drop("non_positive_prices", ~(df[schema.UNIT_PRICE] > 0).to_numpy())
    if rules.min_label is not None:
        if schema.LABEL_VALUE not in df.columns:
            raise ValueError(f"cleaning.min_label is {rules.min_label} but the rows have no "
                             f"{schema.LABEL_VALUE!r} column (the spec maps no 'label')")
        drop("below_min_label", ~(df[schema.LABEL_VALUE] >= rules.min_label).to_numpy())
    live = df[alive]
    outliers = np.zeros(len(df), dtype=bool)
    outliers[np.flatnonzero(alive)] = outlier_quantity_mask(live, rules.outlier_quantile).to_numpy()
    drop("outlier_quantity", outliers)

    by_day = (pd.crosstab(df[schema.DAY], removed_by).reindex(columns=range(len(RULES) + 1), fill_value=0)
              if len(df) else pd.DataFrame(0, index=pd.DatetimeIndex([], name=schema.DAY),
                                           columns=range(len(RULES) + 1)))
    rows_in = by_day.sum(axis=1)
    by_day = by_day.drop(columns=0).set_axis(list(RULES), axis=1).astype("int64")
    by_day.insert(0, ROWS_IN, rows_in.astype("int64"))
    by_day.index.name = schema.DAY
    by_day.columns.name = None
    report = CleaningReport(rows_in=len(df), removed={r: int(by_day[r].sum()) for r in RULES},
                            by_day=by_day, removed_by=removed_by)
    out = df[alive].drop(columns=[schema.IS_CANCELLATION]).reset_index(drop=True)
    report.rows_out = len(out)
    return out, report
