"""Cleaning rules, applied in a fixed order, each counting the rows it removes.

Every rule is point-in-time: whether a row is kept depends only on rows of the same
day, so history features of day X (built from days < X) never see information from
day X or later through cleaning.

Rules (order matters for the counts):
1. exact_duplicates: identical lines (all canonical columns equal) kept once.
2. cancellations: cancellation lines (order id prefix or negative quantity) removed.
3. same_day_reversals: a purchase line cancelled in full on the same day (same user,
   item and quantity) is removed with its cancellation: it never happened. This is
   how the extreme one-off bulk orders of the default data disappear (74,215 units of
   23166 on 2011-01-18 were cancelled at once).
4. non_product_items: postage, fees, adjustments, vouchers (spec codes and patterns).
5. null_users: guest lines without a user id (no history to learn from).
6. non_positive_prices: zero or negative unit prices (bad-debt adjustments, samples).
7. non_positive_quantity: zero quantities left after the rules above.
Extreme values that survive (real bulk purchases) are kept: models clip their
training labels (see the codebook / model configs), the data keeps the truth.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import pandas as pd

from quantrec.data import schema
from quantrec.data.spec import CleaningRules


@dataclass
class CleaningReport:
    rows_in: int
    removed: dict[str, int] = field(default_factory=dict)
    rows_out: int = 0

    def to_dict(self) -> dict:
        return {"rows_in": self.rows_in, "removed": dict(self.removed), "rows_out": self.rows_out}


def non_product_mask(items: pd.Series, rules: CleaningRules) -> pd.Series:
    """True where the item id is a non-product code (exact list or regex patterns)."""
    mask = items.isin(list(rules.non_product_codes))
    if rules.non_product_patterns:
        pattern = "|".join(f"(?:{p})" for p in rules.non_product_patterns)
        re.compile(pattern)  # fail early with re.error on a bad spec pattern
        mask |= items.fillna("").str.contains(pattern, regex=True)
    return mask.fillna(False).astype(bool)


def _same_day_reversed(df: pd.DataFrame) -> pd.Series:
    """Purchases and the cancellations that reverse them in full on the same day.

    Pairs are matched one-to-one on (user, item, day, |quantity|) by occurrence order.
    Returns a boolean mask over ``df`` marking both sides of each pair.
    """
    keys = [schema.USER, schema.ITEM, schema.DAY, "_absq"]
    work = df[[schema.USER, schema.ITEM, schema.DAY, schema.IS_CANCELLATION]].copy()
    work["_absq"] = df[schema.QUANTITY].abs()
    work = work[work[schema.USER].notna()]
    buys = work[~work[schema.IS_CANCELLATION] & (df.loc[work.index, schema.QUANTITY] > 0)]
    cancels = work[work[schema.IS_CANCELLATION]]
    buys = buys.assign(_occ=buys.groupby(keys, sort=False).cumcount())
    cancels = cancels.assign(_occ=cancels.groupby(keys, sort=False).cumcount())
    pairs = buys.reset_index().merge(cancels.reset_index(), on=keys + ["_occ"],
                                     suffixes=("_buy", "_cancel"))
    mask = pd.Series(False, index=df.index)
    mask.loc[pairs["index_buy"].to_numpy()] = True
    mask.loc[pairs["index_cancel"].to_numpy()] = True
    return mask


def clean_transactions(df: pd.DataFrame, rules: CleaningRules) -> tuple[pd.DataFrame, CleaningReport]:
    """Apply the rules above to canonical transactions; returns purchase lines + counts.

    The output has only purchase lines of products by known users with positive
    quantity and price; ``gmv`` = quantity x unit_price (or the value column).
    """
    report = CleaningReport(rows_in=len(df))

    def drop(name: str, mask: pd.Series) -> None:
        nonlocal df
        report.removed[name] = int(mask.sum())
        df = df[~mask]

    if rules.drop_duplicates:
        drop("exact_duplicates", df.duplicated(subset=schema.TRANSACTION_COLUMNS, keep="first"))
    else:
        report.removed["exact_duplicates"] = 0
    reversed_mask = _same_day_reversed(df)
    # Count reversed purchases separately from the cancellation lines themselves.
    report.removed["same_day_reversals"] = int((reversed_mask & ~df[schema.IS_CANCELLATION]).sum())
    df = df[~(reversed_mask & ~df[schema.IS_CANCELLATION])]
    drop("cancellations", df[schema.IS_CANCELLATION])
    drop("non_product_items", non_product_mask(df[schema.ITEM], rules))
    drop("null_users", df[schema.USER].isna())
    drop("non_positive_prices", ~(df[schema.UNIT_PRICE] > 0))
    drop("non_positive_quantity", ~(df[schema.QUANTITY] > 0))
    df = df.drop(columns=[schema.IS_CANCELLATION]).reset_index(drop=True)
    report.rows_out = len(df)
    return df, report
