"""Invariants on every row a run reads, and plausibility bounds learned from those rows.

The run reads every row before its run date (``load.load_transactions``): training
rows, the history behind their features, the eval window. A bad row anywhere there
reaches a model, so these suites judge the whole read window, not only the newest day:

- ``transactions.contract``   every row: quantity present and finite; unit price and
                              gmv finite where present, and present on every line
                              with a non-zero quantity. A quantity-0 line without a
                              price is dirt, not a broken contract, when the spec
                              allows it (``validation.allow_null_price_on_zero_quantity``,
                              default true): cleaning removes it as ``zero_quantity``
                              and ``validation.cleaning_drift`` bounds its share. Item
                              ids present (not null, not blank); order ids too when
                              the spec maps them.
- ``transactions.purchases``  every product purchase line (quantity > 0, not a
                              cancellation, not a non-product code): unit price >= 0.
- ``transactions.plausibility`` on every line of a product (not a non-product code:
                              those are fees and adjustments of any amount, which
                              cleaning removes): |quantity|, |unit_price|, |gmv| <=
                              factor x a high quantile of the same column over those
                              lines (see ``plausibility_bounds``): 1e12 units on three
                              lines fail.

GX hashes every column of the frame it validates, so the suites run on slim frames
of the few columns they judge (about 0.1 s per million rows, against about 1 s for
the full frame); their example rows are quoted from the full rows.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass

import numpy as np
import pandas as pd

from quantrec.data import schema as S
from quantrec.data.clean import non_product_mask
from quantrec.data.spec import CleaningRules, Plausibility, ValidationThresholds
from validation.checks import Check, Expect, run_expectations

# Rows above the plausibility quantile, at least: a few absurd rows cannot set their own bound.
MIN_ROWS_ABOVE = 20
_MAX = sys.float_info.max  # a value outside [-max, max] is infinite
NUMBERS = (S.QUANTITY, S.UNIT_PRICE, S.VALUE)


def _gxe():
    import great_expectations.expectations as gxe  # lazy: see checks._batch_definition
    return gxe


def _present_ids(ids: pd.Series, factorized: tuple[np.ndarray, object] | None = None) -> pd.Categorical:
    """Ids as a categorical (cheap for GX to hash) with blank strings as missing."""
    codes, uniques = factorized if factorized is not None else pd.factorize(ids, use_na_sentinel=True)
    blank = pd.Series(uniques, dtype="string").str.strip().eq("").fillna(True).to_numpy()
    codes = np.where((codes >= 0) & ~blank[np.maximum(codes, 0)], codes, -1)
    return pd.Categorical.from_codes(codes, categories=pd.Index(uniques.astype(str)), validate=False)


def product_purchase_mask(raw: pd.DataFrame, rules: CleaningRules,
                          non_product: pd.Series | None = None) -> pd.Series:
    """Lines that buy a product: quantity > 0, not a cancellation, not a non-product code.

    ``non_product``: ``non_product_mask(raw[item_id], rules)`` if the caller has it.
    """
    if non_product is None:
        non_product = non_product_mask(raw[S.ITEM], rules)
    return ((raw[S.QUANTITY] > 0) & ~raw[S.IS_CANCELLATION] & ~non_product).astype(bool)


def validate_contract(raw: pd.DataFrame, thresholds: ValidationThresholds, rules: CleaningRules,
                      has_order: bool = True, example_columns: list[str] | None = None,
                      non_product: pd.Series | None = None, has_prices: bool = True) -> list[Check]:
    """``transactions.contract`` and the whole-window price check of ``transactions.purchases``.

    ``raw``: the canonical read window; ``has_order``: the spec maps an order id column;
    ``non_product``: the non-product mask of ``raw`` if the caller has it; ``has_prices``
    False (an interaction table): the price checks are left out (no price column).
    """
    gxe = _gxe()
    slim = pd.DataFrame({c: raw[c].to_numpy(dtype="float64") for c in NUMBERS}, index=raw.index)
    items = pd.factorize(raw[S.ITEM], use_na_sentinel=True)  # shared by the two uses below
    slim[S.ITEM] = _present_ids(raw[S.ITEM], items)
    if non_product is None:
        non_product = non_product_mask(raw[S.ITEM], rules, items)
    ex = [Expect(gxe.ExpectColumnValuesToNotBeNull(column=S.QUANTITY), "quantity present on every row"),
          *[Expect(gxe.ExpectColumnValuesToBeBetween(column=c, min_value=-_MAX, max_value=_MAX),
                   f"{c} is a finite number wherever present (no inf)") for c in NUMBERS],
          Expect(gxe.ExpectColumnValuesToNotBeNull(column=S.ITEM), "item id present (not null or blank) on every row")]
    if has_order:
        slim[S.ORDER] = _present_ids(raw[S.ORDER])
        ex.append(Expect(gxe.ExpectColumnValuesToNotBeNull(column=S.ORDER),
                         "order id present (not null or blank) on every row"))
    checks = run_expectations("transactions.contract", slim, ex, example_columns, rows=raw)
    if not has_prices:
        return checks

    # Where a line needs a price: every line, or with the spec's default every line
    # whose quantity is not 0 (a missing quantity needs one too: it fails above).
    if thresholds.allow_null_price_on_zero_quantity:
        needs = ~(raw[S.QUANTITY] == 0)
        where = "with a non-zero quantity (quantity-0 lines without one are dirt: cleaning rule zero_quantity)"
    else:
        needs = pd.Series(True, index=raw.index)
        where = "(the spec sets allow_null_price_on_zero_quantity: false)"
    priced = slim.loc[needs.to_numpy(), [S.UNIT_PRICE, S.VALUE]]
    checks += run_expectations("transactions.contract", priced, [
        Expect(gxe.ExpectColumnValuesToNotBeNull(column=c), f"{c} present on every line {where}")
        for c in (S.UNIT_PRICE, S.VALUE)], example_columns, rows=raw)

    buys = slim.loc[product_purchase_mask(raw, rules, non_product).to_numpy(), [S.UNIT_PRICE]]
    checks += run_expectations("transactions.purchases", buys, [
        Expect(gxe.ExpectColumnValuesToBeBetween(column=S.UNIT_PRICE, min_value=0),
               "unit price >= 0 on product purchase lines (quantity > 0, not cancelled, "
               "not a non-product code), on every row read")], example_columns, rows=raw)
    return checks


@dataclass(frozen=True)
class Bound:
    """A plausibility bound of one column: ``factor`` x its ``level`` quantile of |values|."""

    column: str
    level: float      # the quantile level used (the spec's, or lower on a small table)
    reference: float  # that quantile of the column's absolute finite values
    bound: float      # factor x reference: |value| above it is implausible
    rows: int         # finite values the quantile was taken over

    def to_dict(self) -> dict:
        return {"column": self.column, "quantile": round(self.level, 6), "reference": self.reference,
                "bound": self.bound, "rows": self.rows}


def plausibility_bounds(raw: pd.DataFrame, settings: Plausibility,
                        columns: tuple[str, ...] = NUMBERS) -> list[Bound]:
    """One ``Bound`` per numeric column that has a scale to learn.

    level = min(``settings.quantile``, 1 - MIN_ROWS_ABOVE / n): at least 20 rows lie
    above the reference quantile, so up to 19 absurd rows cannot inflate their own
    bound. A column with at most MIN_ROWS_ABOVE finite values, or whose reference is 0,
    gets no bound (there is no scale to judge against).
    """
    out = []
    for col in columns:
        a = np.abs(raw[col].to_numpy(dtype="float64"))
        a = a[np.isfinite(a)]
        if len(a) <= MIN_ROWS_ABOVE:
            continue
        level = min(settings.quantile, 1.0 - MIN_ROWS_ABOVE / len(a))
        ref = float(np.quantile(a, level, method="lower"))
        if ref > 0:
            out.append(Bound(col, level, ref, settings.factor * ref, len(a)))
    return out


def validate_plausibility(raw: pd.DataFrame, settings: Plausibility, rules: CleaningRules,
                          example_columns: list[str] | None = None,
                          non_product: pd.Series | None = None,
                          columns: tuple[str, ...] | None = None) -> list[Check]:
    """``transactions.plausibility``: every finite |value| of a product line within its bound.

    ``columns``: the columns judged (default ``NUMBERS``: quantity, unit price, gmv).

    Bounds are learned from, and judged on, the lines of products (purchases and
    cancellations; non-product codes excluded). Non-finite values are left to the
    contract suite (reported once, there).
    """
    gxe = _gxe()
    if non_product is None:
        non_product = non_product_mask(raw[S.ITEM], rules)
    # Only the numeric columns: a boolean cut of the whole frame copies a million string ids.
    columns = tuple(columns or NUMBERS)
    products = raw.loc[~non_product.to_numpy(), list(columns)]
    bounds = plausibility_bounds(products, settings, columns)
    if not bounds:
        return []
    slim = pd.DataFrame({b.column: products[b.column].to_numpy(dtype="float64") for b in bounds},
                        index=products.index)
    slim = slim.where(np.isfinite(slim))
    ex = [Expect(gxe.ExpectColumnValuesToBeBetween(column=b.column, min_value=-b.bound, max_value=b.bound),
                 f"|{b.column}| <= {settings.factor:g} x its {b.level:.6g} quantile over the "
                 f"{b.rows:,} product lines read ({b.reference:.6g}) = {b.bound:.6g}") for b in bounds]
    return run_expectations("transactions.plausibility", slim, ex, example_columns, rows=raw)
