"""A small synthetic shop for the monitoring tests: cleaned purchase lines whose GMV
sits on price points (quantity x list price), optionally re-priced from a given day on.

The re-pricing (every list price x 1.37 + 0.03: a new price list) is the drift a codebook
rebuild is for: the layer-1 centroids sit on the old price points.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from quantrec.codebook.provenance import build_provenance, dataset_fingerprint
from quantrec.codebook.target import TargetCodebook
from quantrec.data import schema as S
from quantrec.data.spec import DatasetSpec

FIRST_DAY = pd.Timestamp("2011-01-03")   # a Monday
# 60 list prices, log-uniform in [0.3, 20]: with 9 quantities, ~540 distinct GMV values,
# more than a 2 x 8 codebook can hit exactly (like real GMV), so its error is smooth
OLD_PRICES = np.unique(np.round(np.exp(np.random.default_rng(42).uniform(np.log(0.3), np.log(20), 60)), 2))
NEW_PRICES = np.round(OLD_PRICES * 1.37 + 0.03, 2)
QUANTITIES = np.array([1, 2, 3, 4, 6, 8, 12, 24, 48])
SPEC = DatasetSpec.from_dict({"name": "synthetic_shop", "columns": {
    "user_id": "CustomerID", "item_id": "StockCode", "ts": "InvoiceDate", "quantity": "Quantity",
    "unit_price": "UnitPrice"}})


def make_lines(n_days: int = 200, per_day: int = 120, shift_day: int | None = None, seed: int = 0) -> pd.DataFrame:
    """Cleaned canonical purchase lines for days FIRST_DAY + [0, n_days), no Saturdays.

    shift_day: from this day index on, list prices are NEW_PRICES (else OLD_PRICES).
    """
    rng = np.random.default_rng(seed)
    frames = []
    for i in range(n_days):
        day = FIRST_DAY + pd.Timedelta(days=i)
        if day.dayofweek == 5:
            continue
        prices = NEW_PRICES if shift_day is not None and i >= shift_day else OLD_PRICES
        n = int(rng.poisson(per_day))
        p = rng.choice(prices, n, p=np.linspace(2, 1, len(prices)) / np.linspace(2, 1, len(prices)).sum())
        q = rng.choice(QUANTITIES, n, p=np.linspace(3, 1, len(QUANTITIES)) / np.linspace(3, 1, len(QUANTITIES)).sum())
        ts = day + pd.to_timedelta(np.sort(rng.integers(8 * 3600, 18 * 3600, n)), unit="s")
        frames.append(pd.DataFrame({
            S.ORDER: [f"{i}-{k // 5}" for k in range(n)], S.USER: rng.integers(1, 300, n).astype(str),
            S.ITEM: rng.integers(1, 500, n).astype(str), S.TS: ts, S.DAY: ts.normalize(),
            S.QUANTITY: q.astype(float), S.UNIT_PRICE: p, S.VALUE: q * p, S.COUNTRY: "UK"}))
    out = pd.concat(frames, ignore_index=True)
    for c in (S.ORDER, S.USER, S.ITEM, S.COUNTRY):
        out[c] = out[c].astype("string")
    return out


def fit_codebook(lines: pd.DataFrame, start: str, end: str, spec: DatasetSpec = SPEC) -> TargetCodebook:
    """The test codebook (L=2, K=8) fitted on lines of [start, end), with provenance."""
    m = (lines[S.DAY] >= start) & (lines[S.DAY] < end)
    tr = lines[m]
    y = tr[S.VALUE].to_numpy(np.float64)
    book = TargetCodebook.fit(y, layers=2, size=8, finish_below=5e-3)
    prov = build_provenance(y, book, (start, end), dataset_fingerprint(spec, lines),
                            unit_price=tr[S.UNIT_PRICE].to_numpy(np.float64),
                            quantity=tr[S.QUANTITY].to_numpy(np.float64))
    return book.with_provenance(prov)


def day(i: int) -> str:
    return str((FIRST_DAY + pd.Timedelta(days=i)).date())


