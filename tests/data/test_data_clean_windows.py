from __future__ import annotations

import pandas as pd
import pytest

from raw_frames import make_raw
from quantrec.data import schema as S
from quantrec.data.clean import clean_transactions, non_product_mask
from quantrec.data.load import to_canonical
from quantrec.data.windows import WindowConfig, WindowError, compute_windows


def test_each_rule_counts_what_it_removes(default_spec):
    t = pd.Timestamp("2011-01-03 10:00")
    raw = make_raw([
        {"InvoiceNo": "1", "Quantity": 2},                       # kept
        {"InvoiceNo": "1", "Quantity": 2},                       # exact duplicate
        {"InvoiceNo": "2", "StockCode": "23166", "Quantity": 74215},  # reversed same day
        {"InvoiceNo": "C3", "StockCode": "23166", "Quantity": -74215, "InvoiceDate": t + pd.Timedelta(minutes=5)},
        {"InvoiceNo": "C4", "StockCode": "22000", "Quantity": -1},    # unmatched cancellation
        {"InvoiceNo": "5", "StockCode": "POST"},                 # non-product
        {"InvoiceNo": "6", "StockCode": "DCGS0058"},             # non-product pattern
        {"InvoiceNo": "7", "StockCode": "SP1002"},               # a real product (an easel)
        {"InvoiceNo": "8", "CustomerID": None},                  # guest line
        {"InvoiceNo": "9", "UnitPrice": 0.0},                    # non-positive price
        {"InvoiceNo": "10", "Quantity": 0, "UnitPrice": None},   # quantity 0, no price: not a bad price
    ])
    canon = to_canonical(raw, default_spec)
    lines, report = clean_transactions(canon, default_spec.cleaning)
    assert report.removed == {"exact_duplicates": 1, "same_day_reversals": 1, "cancellations": 2,
                              "non_product_items": 2, "zero_quantity": 1, "null_users": 1,
                              "non_positive_prices": 1, "below_min_label": 0, "outlier_quantity": 0}
    assert report.rows_in == 11 and report.rows_out == len(lines) == 2
    # The same counts per day (one day here), and which rows each rule removed.
    assert report.by_day.loc[pd.Timestamp("2011-01-03")].to_dict() == {"rows_in": 11, **report.removed}
    assert canon.loc[report.removed_mask("zero_quantity"), S.ORDER].tolist() == ["10"]
    assert canon.loc[report.removed_mask("cancellations"), S.ORDER].tolist() == ["C4", "C3"]
    assert sorted(lines[S.ITEM]) == ["85123A", "SP1002"]


def test_reversal_on_a_later_day_is_not_netted(default_spec):
    # Point-in-time: a cancellation on day X+1 must not change day X's data.
    raw = make_raw([{"InvoiceNo": "2", "Quantity": 5},
                    {"InvoiceNo": "C3", "Quantity": -5, "InvoiceDate": pd.Timestamp("2011-01-04 10:00")}])
    lines, report = clean_transactions(to_canonical(raw, default_spec), default_spec.cleaning)
    assert report.removed["same_day_reversals"] == 0 and len(lines) == 1


def test_non_product_rules(default_spec):
    items = pd.Series(["POST", "gift_0001_20", "SP1002", "85123A", "BANK CHARGES", "TEST001"], dtype="string")
    assert non_product_mask(items, default_spec.cleaning).tolist() == [True, True, False, False, True, True]


def test_real_data_cleaning_counts(real_raw, default_spec):
    lines, report = clean_transactions(real_raw, default_spec.cleaning)
    # Figures of SOURCE.md: 1,044,847 rows, 5,878 customers / 4,631 items before cleaning.
    assert report.rows_in == 1_044_847
    assert 760_000 < report.rows_out < 791_044  # SOURCE: 791,044 lines pass the bare filters
    assert report.removed["null_users"] > 200_000
    assert report.removed["exact_duplicates"] > 11_000
    assert (lines[S.VALUE] > 0).all() and lines[S.USER].notna().all()
    assert not lines[S.ITEM].isin(["POST", "DOT", "M", "AMAZONFEE"]).any()


def test_windows_follow_the_trading_calendar():
    # Mon..Fri, Sun trading; no Saturdays (like the default store)
    days = [d for d in pd.date_range("2011-01-01", "2011-03-31") if d.weekday() != 5]
    w = compute_windows(pd.Series(days), "2011-03-28", WindowConfig(eval_days=2, val_days=3, train_days=30))
    assert w.eval_start == pd.Timestamp("2011-03-25")  # Fri 25 and Sun 27 (Sat skipped)
    assert w.val_start == pd.Timestamp("2011-03-22")   # Tue, Wed, Thu before that
    assert w.train_start == pd.Timestamp("2011-02-20")
    split = w.split_of(pd.Series(pd.to_datetime(["2011-02-19", "2011-02-20", "2011-03-22", "2011-03-27", "2011-03-28"])))
    assert split.tolist() == [None, "train", "val", "eval", None]


@pytest.mark.parametrize("run_date", ["2010-12-31", "2011-01-03", "not-a-date"])
def test_run_date_outside_the_data_is_refused(run_date):
    days = pd.Series(pd.date_range("2011-01-01", "2011-03-31"))
    with pytest.raises(WindowError, match="outside the data|not a date"):
        compute_windows(days, run_date, WindowConfig(eval_days=1, val_days=7))
