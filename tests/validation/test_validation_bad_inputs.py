"""Every bad input gets a FAILED result with a clear message, no exception, no file changed."""

from __future__ import annotations

import os
import time

import numpy as np
import pandas as pd
import pytest
import yaml

from quantrec.data.spec import default_spec_path
from validation.runner import run_validation


def _failed(res, *fragments: str) -> None:
    assert not res.passed and res.summary()["verdict"] == "FAILED"
    msg = res.message()
    assert "Traceback" not in msg
    for frag in fragments:
        assert frag in msg, f"{frag!r} not in message: {msg}"


def test_synthetic_store_with_real_dirt_passes(raw, write, run_date, unchanged):
    # Baseline for every test below: guest lines, a cancellation, a duplicate and a
    # negative-price bad-debt line (code B) are dirt the gate lets through.
    path = write(raw)
    res = unchanged(lambda: run_validation(run_date, data=path))
    assert res.passed, res.message()
    assert res.message() == "passed"
    assert res.error is None and len(res.checks) > 20
    suites = {c.suite for c in res.checks}
    assert {"transactions.schema", "transactions.eval_window", "transactions.recent",
            "transactions.purchases", "transactions.freshness", "transactions.row_counts"} <= suites


def test_missing_column(raw, write, run_date, unchanged):
    path = write(raw.drop(columns=["StockCode"]))
    res = unchanged(lambda: run_validation(run_date, data=path))
    _failed(res, "lacks the column(s) ['StockCode']", "the data cannot be used")
    assert res.error and res.checks[0].expectation == "data_is_usable"


@pytest.mark.parametrize("mutate, fragment", [
    (lambda r: r.assign(Quantity=r["Quantity"].astype(str).where(r.index % 7 != 0, "twelve")),
     "'Quantity' (role quantity) has non-numeric values"),
    (lambda r: r.assign(Quantity=pd.Timestamp("2011-01-01")), "'Quantity' (role quantity) has dtype datetime64"),
    (lambda r: r.assign(InvoiceDate=r["InvoiceDate"].astype(str).str.replace("2011", "year ")),
     "'InvoiceDate' (role ts) has dtype"),
])
@pytest.mark.filterwarnings("ignore:Could not infer format")  # pandas, on the unparseable dates
def test_wrong_dtype(raw, write, run_date, unchanged, mutate, fragment):
    path = write(mutate(raw))
    res = unchanged(lambda: run_validation(run_date, data=path))
    _failed(res, fragment)


def test_empty_parquet_file(raw, write, run_date, unchanged):
    path = write(raw.iloc[:0])
    res = unchanged(lambda: run_validation(run_date, data=path))
    _failed(res, "has no rows")


def test_zero_byte_file(write, run_date, unchanged, tmp_path):
    path = tmp_path / "data" / "empty.parquet"
    write(pd.DataFrame({"x": [1]}), "other.parquet")  # creates the folder
    path.write_bytes(b"")
    res = unchanged(lambda: run_validation(run_date, data=str(path)))
    _failed(res, "is not a readable parquet file")


def test_corrupted_non_parquet_file(raw, write, run_date, unchanged):
    path = write(raw)
    with open(path, "r+b") as f:  # valid header, garbage body and footer
        f.seek(16)
        f.write(np.random.default_rng(1).bytes(4096))
        f.seek(-64, os.SEEK_END)
        f.write(b"\x00" * 64)
    res = unchanged(lambda: run_validation(run_date, data=path))
    _failed(res, "is not a readable parquet file")


def test_csv_text_named_parquet(write, run_date, unchanged, tmp_path):
    write(pd.DataFrame({"x": [1]}), "other.parquet")
    path = tmp_path / "data" / "t.parquet"
    path.write_text("InvoiceNo,StockCode\n1,85123A\n")
    res = unchanged(lambda: run_validation(run_date, data=str(path)))
    _failed(res, "is not a readable parquet file")


def test_run_date_before_the_data(raw, write, unchanged):
    path = write(raw)
    res = unchanged(lambda: run_validation("2010-06-01", data=path))
    _failed(res, "no rows before 2010-06-01", "2011-01-03 .. 2011-02-21")


def test_run_date_too_early_for_the_windows(raw, write, unchanged):
    path = write(raw)  # 3 trading days before 2011-01-06: eval 1 + val 7 + 1 needs 9
    res = unchanged(lambda: run_validation("2011-01-06", data=path))
    _failed(res, "run_date 2011-01-06 is outside the data", "the data has 3")


def test_run_date_not_a_date(raw, write, unchanged):
    path = write(raw)
    res = unchanged(lambda: run_validation("2011-13-45", data=path))
    _failed(res, "is not a date (expected YYYY-MM-DD)")


def test_stale_data_fails_freshness(raw, write, last_day, unchanged):
    path = write(raw)
    run = last_day + pd.Timedelta(days=40)
    res = unchanged(lambda: run_validation(str(run.date()), data=path))
    _failed(res, "newest data at most 14 days before run_date", "days_since_newest")
    [fresh] = [c for c in res.checks if c.suite == "transactions.freshness"]
    assert not fresh.success and fresh.column == "days_since_newest"
    assert fresh.observed == {"newest_day": str(last_day), "days_since_newest": 40}
    assert fresh.examples and fresh.examples[0]["days_since_newest"] == 40
    # Only freshness fails: the rest of the data is fine.
    assert [c.suite for c in res.failed] == ["transactions.freshness"]


def test_freshness_tolerates_non_trading_gap(raw, write, last_day):
    # 12 days without trading (a Christmas break) is within the 14-day limit.
    res = run_validation(str((last_day + pd.Timedelta(days=13)).date()), data=write(raw))
    assert res.passed, res.message()


def test_all_null_user_ids(raw, write, run_date, unchanged):
    path = write(raw.assign(CustomerID=np.nan))
    res = unchanged(lambda: run_validation(run_date, data=path))
    _failed(res, "every value of the user id column 'CustomerID' is null")


def test_all_null_user_ids_on_the_newest_day(raw, write, run_date, last_day, unchanged):
    # A feed that breaks on the newest day only: the eval window has no known user.
    bad = raw.copy()
    bad.loc[bad["InvoiceDate"].dt.normalize() == last_day, "CustomerID"] = np.nan
    path = write(bad)
    res = unchanged(lambda: run_validation(run_date, data=path))
    _failed(res, "user ids not all null", "[column user_id]")


def test_too_many_guest_lines(raw, write, run_date):
    bad = raw.copy()
    bad.loc[bad.index % 10 < 6, "CustomerID"] = np.nan  # 60% > max_null_user_share 0.5
    res = run_validation(run_date, data=write(bad))
    [check] = res.failed
    assert check.suite == "transactions.recent" and check.column == "user_id"
    assert check.observed["unexpected_percent"] > 50
    assert check.examples and all(r["user_id"] is None for r in check.examples)


def test_negative_prices_on_purchases(raw, write, run_date, last_day, unchanged):
    bad = raw.copy()
    rows = bad.index[(bad["InvoiceDate"].dt.normalize() == last_day) & (bad["StockCode"] != "B")
                     & (bad["Quantity"] > 0)][:2]
    bad.loc[rows, "UnitPrice"] = -2.5
    path = write(bad)
    res = unchanged(lambda: run_validation(run_date, data=path))
    _failed(res, "unit price >= 0 on product purchase lines", "[column unit_price]")
    [check] = res.failed
    assert check.suite == "transactions.purchases" and check.column == "unit_price"
    assert check.observed["unexpected_count"] == 2
    assert [r["unit_price"] for r in check.examples] == [-2.5, -2.5]
    assert {r["item_id"] for r in check.examples} == set(bad.loc[rows, "StockCode"])


def test_too_many_cancellations_on_the_newest_day(raw, write, run_date, last_day):
    bad = raw.copy()
    last = bad.index[bad["InvoiceDate"].dt.normalize() == last_day][:10]
    bad.loc[last, "InvoiceNo"] = "C" + bad.loc[last, "InvoiceNo"]
    bad.loc[last, "Quantity"] = -bad.loc[last, "Quantity"]
    res = run_validation(run_date, data=write(bad))
    [check] = res.failed
    assert check.column == "is_cancellation" and check.suite == "transactions.eval_window"
    assert all(r["is_cancellation"] for r in check.examples)


def test_row_count_collapse_on_the_newest_day(raw, write, run_date, last_day):
    keep = (raw["InvoiceDate"].dt.normalize() != last_day) | (raw.index % 30 == 1)
    left = int((raw[keep]["InvoiceDate"].dt.normalize() == last_day).sum())
    assert 0 < left <= 3
    res = run_validation(run_date, data=write(raw[keep]))
    [check] = res.failed
    assert check.suite == "transactions.row_counts" and check.column == "ratio"
    assert check.observed["rows"] == [left] and check.observed["reference_median"] == 30
    assert check.observed["ratio"] == [round(left / 30, 4)]
    assert check.examples[0]["rows"] == left and check.examples[0]["day"] == str(last_day)


def test_gs_url_without_credentials_is_fast_and_clear(run_date, monkeypatch, tmp_path):
    monkeypatch.delenv("GOOGLE_APPLICATION_CREDENTIALS", raising=False)
    monkeypatch.setenv("CLOUDSDK_CONFIG", str(tmp_path / "gcloud"))  # no user ADC file
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)  # load.py then skips the GCE probe
    t0 = time.perf_counter()
    res = run_validation(run_date, data="gs://some-bucket/x.parquet")
    assert time.perf_counter() - t0 < 10
    _failed(res, "cannot read gs://some-bucket/x.parquet: no Google Cloud credentials found")


def test_spec_naming_columns_that_do_not_exist(raw, write, run_date, tmp_path, unchanged):
    spec = yaml.safe_load(open(default_spec_path()))
    spec["columns"]["user_id"] = "ClientNumber"
    spec_path = tmp_path / "spec.yaml"
    spec_path.write_text(yaml.safe_dump(spec))
    path = write(raw)
    res = unchanged(lambda: run_validation(run_date, data=path, spec_path=str(spec_path)))
    _failed(res, "lacks the column(s) ['ClientNumber']", "online_retail_ii")
    assert res.spec_name == "online_retail_ii"


def test_malformed_spec(raw, write, run_date, tmp_path):
    spec_path = tmp_path / "spec.yaml"
    spec_path.write_text("name: x\ncolumns: {user_id: CustomerID}\n")
    res = run_validation(run_date, data=write(raw), spec_path=str(spec_path))
    _failed(res, "does not map the required roles")


def test_missing_data_file(run_date, tmp_path):
    res = run_validation(run_date, data=str(tmp_path / "nope.parquet"))
    _failed(res, "data file not found")
