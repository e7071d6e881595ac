"""The cleaning rules issue 7 added or changed: zero_quantity, outlier_quantity, per-day counts."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest

from raw_frames import make_raw
from quantrec.data import schema as S
from quantrec.data.clean import RULES, clean_transactions, outlier_quantity_mask
from quantrec.data.load import to_canonical


def _lines(quantities_by_day: dict[str, list[float]]) -> pd.DataFrame:
    rows = [{"day": pd.Timestamp(d), S.QUANTITY: float(q)} for d, qs in quantities_by_day.items() for q in qs]
    return pd.DataFrame(rows)


def test_outlier_quantity_is_point_in_time():
    # q = 0.9: the bound needs 10 / (1 - 0.9) = 100 earlier lines
    hist = {f"2011-01-{d:02d}": [1.0 + (k % 10) for k in range(50)] for d in (3, 4)}  # 100 lines, max 10
    lines = _lines({**hist, "2011-01-05": [10.0, 11.0, 500.0], "2011-01-06": [10.0, 11.0]})
    mask = outlier_quantity_mask(lines, 0.9)
    flagged = lines[mask]
    # bound of 01-05 = the "higher" 0.9 quantile of the 100 earlier lines = 10: 11 and 500 go
    assert flagged[S.QUANTITY].tolist() == [11.0, 500.0, 11.0]
    # the first days have no history to judge against: nothing flagged there
    assert not mask[lines["day"] < pd.Timestamp("2011-01-05")].any()
    # a later day never changes an earlier day's verdict
    later = pd.concat([lines, _lines({"2011-01-07": [1e6] * 50})], ignore_index=True)
    assert outlier_quantity_mask(later, 0.9)[: len(lines)].equals(mask)


def test_outlier_quantity_matches_numpy_quantile_of_the_history():
    rng = np.random.default_rng(0)
    days = pd.date_range("2011-01-01", periods=40)
    lines = pd.DataFrame({"day": np.repeat(days, 60), S.QUANTITY: rng.lognormal(2, 1.5, 40 * 60)})
    mask = outlier_quantity_mask(lines, 0.99)
    expected = np.zeros(len(lines), dtype=bool)
    for d in days:
        hist = lines.loc[lines["day"] < d, S.QUANTITY].to_numpy()
        if len(hist) >= 1000:  # 10 / (1 - 0.99)
            today = (lines["day"] == d).to_numpy()
            expected[today] = lines.loc[today, S.QUANTITY].to_numpy() > np.quantile(hist, 0.99, method="higher")
    assert mask.to_numpy().tolist() == expected.tolist() and expected.sum() > 5


def test_outlier_rule_is_counted_and_can_be_switched_off(default_spec):
    rows = [{"InvoiceNo": str(i), "Quantity": 1 + i % 5,
             "InvoiceDate": pd.Timestamp("2011-01-03 10:00") + pd.Timedelta(days=i // 100)} for i in range(1200)]
    rows.append({"InvoiceNo": "big", "Quantity": 5000, "InvoiceDate": pd.Timestamp("2011-01-20 10:00")})
    canon = to_canonical(make_raw(rows), default_spec)
    q999 = dataclasses.replace(default_spec.cleaning, outlier_quantile=0.99)
    lines, report = clean_transactions(canon, q999)
    assert report.removed["outlier_quantity"] == 1 and "big" not in set(lines[S.ORDER])
    assert report.by_day.loc[pd.Timestamp("2011-01-20"), "outlier_quantity"] == 1
    off = dataclasses.replace(default_spec.cleaning, outlier_quantile=None)
    assert clean_transactions(canon, off)[1].removed["outlier_quantity"] == 0


def test_zero_quantity_lines_without_price_are_counted_as_such(default_spec):
    raw = make_raw([{"InvoiceNo": "1"}, {"InvoiceNo": "2", "Quantity": 0, "UnitPrice": None},
                    {"InvoiceNo": "3", "Quantity": 0, "UnitPrice": 2.0},
                    {"InvoiceNo": "4", "UnitPrice": None}])  # a real purchase without a price
    _, report = clean_transactions(to_canonical(raw, default_spec), default_spec.cleaning)
    assert report.removed["zero_quantity"] == 2 and report.removed["non_positive_prices"] == 1


def test_per_day_counts_add_up_to_the_totals(real_raw, default_spec):
    _, report = clean_transactions(real_raw, default_spec.cleaning)
    assert list(report.by_day.columns) == ["rows_in", *RULES]
    assert report.by_day["rows_in"].sum() == report.rows_in == len(real_raw)
    assert report.by_day[list(RULES)].sum().to_dict() == report.removed
    assert report.rows_in - sum(report.removed.values()) == report.rows_out
    # Figures of the default data (README / SOURCE.md): 60 lines at a price <= 0, none at quantity 0
    assert report.removed["non_positive_prices"] == 60 and report.removed["zero_quantity"] == 0
    assert report.removed["outlier_quantity"] == 13
    shares = report.daily_shares()
    assert shares.max().max() <= 1.0 and shares["null_users"].max() == pytest.approx(0.8683, abs=1e-4)
