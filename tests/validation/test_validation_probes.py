"""Issue 7 probes on the synthetic store: the gate judges every row the run reads.

Each test is a probe of the issue (section in its name) that passed the old gate,
which looked only at the eval window: bad rows elsewhere in the read window, absurd
values, dirt mistaken for a broken contract, rows from the future, empty windows and
inputs that made ``run_validation`` raise.
"""

from __future__ import annotations

import json
import logging

import numpy as np
import pandas as pd
import pytest
import yaml

from quantrec.data.spec import default_spec_path
from quantrec.data.windows import WindowConfig
from quantrec.data.windows import parse_run_date
from validation.runner import run_validation

MID_DAY = pd.Timestamp("2011-02-01")  # a Tuesday in the train window, 25 trading days in


def _failed(res, *fragments: str) -> None:
    assert not res.passed and res.summary()["verdict"] == "FAILED"
    msg = res.message()
    assert "Traceback" not in msg
    for frag in fragments:
        assert frag in msg, f"{frag!r} not in message: {msg}"


def _on(raw: pd.DataFrame, day: pd.Timestamp) -> pd.Series:
    return raw["InvoiceDate"].dt.normalize() == day


def _spec(tmp_path, **validation) -> str:
    spec = yaml.safe_load(open(default_spec_path()))
    spec["validation"].update(validation)
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(spec))
    return str(path)


# ---- §4: the whole read window, not only the eval window ---------------------------------

def test_s4_negative_prices_in_the_train_window_fail_price_and_cleaning_drift(raw, write, run_date):
    bad = raw.copy()
    bad.loc[_on(bad, MID_DAY), "UnitPrice"] = -3.0  # the whole day: 24 known-user lines
    res = run_validation(run_date, data=write(bad))
    _failed(res, "unit price >= 0 on product purchase lines", "[column unit_price]",
            "cleaning rule non_positive_prices", "2011-02-01")
    failed = {(c.suite, c.column) for c in res.failed}
    assert failed == {("transactions.purchases", "unit_price"),
                      ("transactions.cleaning", "non_positive_prices")}
    [drift] = [c for c in res.failed if c.suite == "transactions.cleaning"]
    [worst] = drift.observed["failing_days"]
    assert worst["day"] == "2011-02-01" and worst["removed"] == 24 and worst[("rows_in")] == 30
    assert worst["share"] == 0.8 and worst["limit"] == 0.05
    # example rows are rows the rule removed on that day
    assert drift.examples and all(r["unit_price"] == -3.0 and r["ts"].startswith("2011-02-01")
                                  for r in drift.examples)


def test_s4_zero_prices_on_one_day_fail_only_the_cleaning_drift(raw, write, run_date):
    # A price of 0 is not a broken contract (free samples exist): only its sudden share is.
    bad = raw.copy()
    bad.loc[_on(bad, MID_DAY), "UnitPrice"] = 0.0
    res = run_validation(run_date, data=write(bad))
    assert [(c.suite, c.column) for c in res.failed] == [("transactions.cleaning", "non_positive_prices")]


def test_s4_a_few_zero_prices_do_not_trip_the_drift(raw, write, run_date):
    bad = raw.copy()
    bad.loc[bad.index[_on(bad, MID_DAY)][:5], "UnitPrice"] = 0.0  # below min_count 20
    assert run_validation(run_date, data=write(bad)).passed


# ---- §5: non-finite and absurd values -----------------------------------------------------

def test_s5_an_infinite_price_in_the_train_window_fails_the_contract(raw, write, run_date):
    bad = raw.copy()
    row = bad.index[_on(bad, MID_DAY)][2]
    bad.loc[row, "UnitPrice"] = np.inf
    res = run_validation(run_date, data=write(bad))
    failed = {(c.suite, c.column) for c in res.failed}
    assert ("transactions.contract", "unit_price") in failed and ("transactions.contract", "gmv") in failed
    [price] = [c for c in res.failed if c.column == "unit_price"]
    assert "finite" in price.description and price.observed["unexpected_count"] == 1
    assert price.examples[0]["unit_price"] == "inf"  # JSON has no inf: the example still says it
    assert price.examples[0]["order_id"] == str(bad.loc[row, "InvoiceNo"])


def test_s5_absurd_quantities_fail_the_learned_plausibility_bound(raw, write, run_date, last_day):
    bad = raw.copy()
    rows = bad.index[_on(bad, last_day) & (bad["StockCode"] != "B")][:3]
    bad.loc[rows, "Quantity"] = 1e12
    res = run_validation(run_date, data=write(bad))
    failed = {(c.suite, c.column) for c in res.failed}
    assert failed == {("transactions.plausibility", "quantity"), ("transactions.plausibility", "gmv")}
    [q] = [c for c in res.failed if c.column == "quantity"]
    assert q.observed["unexpected_count"] == 3 and [r["quantity"] for r in q.examples] == [1e12] * 3
    # the bound is named: 200 x the learned quantile of |quantity| (synthetic quantities are 1..11)
    assert q.details["max_value"] == 2200.0 and "= 2200" in q.description


def test_s5_plausibility_ignores_fee_and_adjustment_lines(raw, write, run_date):
    # The fixture's bad-debt line (code B, -1234.5 against prices of 0.85..4.95) is
    # real dirt of any amount: non-product codes are not judged by the product bounds.
    res = run_validation(run_date, data=write(raw))
    assert res.passed
    price = [c for c in res.checks if c.suite == "transactions.plausibility" and c.column == "unit_price"]
    assert price and price[0].success and price[0].details["max_value"] == pytest.approx(990.0)


# ---- §6: dirt that cleaning removes is not a broken contract -------------------------------

def _with_zero_quantity_lines(raw: pd.DataFrame, per_day: int = 3) -> pd.DataFrame:
    """Quantity-0 lines without a unit price on every trading day (seen in real tables)."""
    extra = []
    for _, day_rows in raw.groupby(raw["InvoiceDate"].dt.normalize()):
        for k in range(per_day):
            r = day_rows.iloc[k].to_dict()
            extra.append({**r, "InvoiceNo": f"Z{r['InvoiceNo']}", "Quantity": 0, "UnitPrice": np.nan})
    return pd.concat([raw, pd.DataFrame(extra)], ignore_index=True)


def test_s6_zero_quantity_lines_without_price_on_every_day_pass_and_are_counted(raw, write, run_date):
    res = run_validation(run_date, data=write(_with_zero_quantity_lines(raw)))
    assert res.passed, res.message()
    assert res.cleaning["removed"]["zero_quantity"] == 3 * 43
    assert res.cleaning["removed"]["non_positive_prices"] == 0  # not counted as bad prices
    share = [c for c in res.checks if c.column == "zero_quantity_share"]
    assert share and share[0].success


def test_s6_the_spec_can_forbid_missing_prices_on_zero_quantity_lines(raw, write, run_date, tmp_path):
    spec = _spec(tmp_path, allow_null_price_on_zero_quantity=False)
    res = run_validation(run_date, data=write(_with_zero_quantity_lines(raw)), spec_path=spec)
    _failed(res, "unit_price present on every line", "allow_null_price_on_zero_quantity: false")


def test_s6_the_zero_quantity_share_is_bounded(raw, write, run_date, tmp_path):
    spec = _spec(tmp_path, max_zero_quantity_share=0.05)  # 3 of 33 rows a day = 0.09
    res = run_validation(run_date, data=write(_with_zero_quantity_lines(raw)), spec_path=spec)
    [check] = res.failed
    assert check.column == "zero_quantity_share" and check.observed["failing_days"][0]["share"] == 0.0909
    assert all(r["quantity"] == 0 for r in check.examples)


def test_s6_a_missing_price_on_a_purchase_line_is_a_broken_contract(raw, write, run_date):
    bad = raw.copy()
    bad.loc[bad.index[_on(bad, MID_DAY)][1], "UnitPrice"] = np.nan
    res = run_validation(run_date, data=write(bad))
    assert {(c.suite, c.column) for c in res.failed} == {("transactions.contract", "unit_price"),
                                                         ("transactions.contract", "gmv")}


# ---- §7: rows from the future, windows without data ---------------------------------------

def test_s7_rows_after_the_wall_clock_are_an_error_naming_them(raw, write):
    bad = raw.copy()
    future = pd.Timestamp.now().normalize() + pd.Timedelta(days=30)
    rows = bad.index[-5:]
    bad.loc[rows, "InvoiceDate"] = future + pd.Timedelta(hours=9)
    res = run_validation("2011-02-22", data=write(bad))
    _failed(res, "5 row(s) are dated in the future", "column 'InvoiceDate'",
            f"order_id={bad.loc[rows[0], 'InvoiceNo']}")


def test_s7_rows_shifted_a_year_ahead_leave_a_gap_in_the_val_window(raw, write, last_day):
    bad = raw.copy()
    shifted = bad["InvoiceDate"].dt.normalize() >= last_day - pd.Timedelta(days=1)  # the last 2 days
    bad.loc[shifted, "InvoiceDate"] += pd.Timedelta(days=400)
    run = str((last_day + pd.Timedelta(days=401)).date())
    res = run_validation(run, data=write(bad))
    [check] = res.failed
    assert check.suite == "transactions.windows" and check.column == "largest_gap_days"
    # Sun 2011-02-20 + 400 days follows Fri 2011-02-18: a 402-day hole inside the val window
    assert [r["window"] for r in check.examples] == ["val"] and check.examples[0]["largest_gap_days"] == 402
    assert '"val": 402' in res.message()


def test_s7_a_window_without_rows_fails(raw, write):
    # No trading on Saturdays: with train_days=1 before a Sunday val window, train is empty.
    res = run_validation("2011-02-22", data=write(raw), window_config=WindowConfig(eval_days=1, val_days=7,
                                                                                   train_days=1))
    assert res.windows["train_start"] == "2011-02-12"  # a Saturday
    [check] = res.failed
    assert check.suite == "transactions.windows" and check.column == "rows"
    assert check.examples[0]["window"] == "train" and check.examples[0]["rows"] == 0
    assert check.observed["rows"]["train"] == 0 and '"train": 0' in res.message()


# ---- §8: run_validation never raises ----------------------------------------------------

def test_s8_ragged_csv(raw, tmp_path, run_date):
    spec = yaml.safe_load(open(default_spec_path()))
    spec["format"] = "csv"
    (tmp_path / "spec.yaml").write_text(yaml.safe_dump(spec))
    path = tmp_path / "t.csv"
    text = raw.head(20).to_csv(index=False).splitlines()
    text[7] += ",extra,fields"
    path.write_text("\n".join(text) + "\n")
    res = run_validation(run_date, data=str(path), spec_path=str(tmp_path / "spec.yaml"))
    _failed(res, f"{path} is not a readable CSV file", "line 8")


def test_s8_etc_passwd_as_csv(tmp_path, run_date):
    spec = yaml.safe_load(open(default_spec_path()))
    spec["format"] = "csv"
    (tmp_path / "spec.yaml").write_text(yaml.safe_dump(spec))
    res = run_validation(run_date, data="/etc/passwd", spec_path=str(tmp_path / "spec.yaml"))
    _failed(res, "/etc/passwd")
    assert res.error and ("lacks the column(s)" in res.error or "not a readable CSV" in res.error)


@pytest.mark.parametrize("value, fragment", [
    ("", "run_date is empty"),
    ("   ", "run_date is empty"),
    ("2011-02-22T00:00:00+05:00", "carries the UTC offset +0500"),
    (None, "run_date is empty"),
])
def test_s8_bad_run_dates(raw, write, value, fragment):
    res = run_validation(value, data=write(raw))
    _failed(res, fragment)
    assert res.checks[0].expectation == "data_is_usable"


def test_s8_a_utc_run_date_is_its_utc_day(raw, write):
    assert parse_run_date("2011-02-22T00:00:00Z") == pd.Timestamp("2011-02-22")
    assert parse_run_date("2011-02-22T23:30:00+00:00") == pd.Timestamp("2011-02-22")
    res = run_validation("2011-02-22T00:00:00Z", data=write(raw))
    assert res.passed and res.run_date == "2011-02-22"


@pytest.mark.parametrize("override, fragment", [
    ({"freshness_days": "two"}, "key validation.freshness_days: expected an integer, got 'two'"),
    ({"max_null_user_share": 1.5}, "key validation.max_null_user_share: must be a share in [0, 1]"),
    ({"cleaning_drift": {"ratio": "high"}}, "key validation.cleaning_drift.ratio: expected a number"),
    ({"row_count_ratio": [5.0, 0.1]}, "key validation.row_count_ratio"),
])
def test_s8_wrongly_typed_spec_thresholds_name_the_key(raw, write, run_date, tmp_path, override, fragment):
    res = run_validation(run_date, data=write(raw), spec_path=_spec(tmp_path, **override))
    _failed(res, fragment, "spec.yaml")


def test_s8_an_unexpected_exception_is_a_failed_report_not_a_traceback(raw, write, run_date, monkeypatch,
                                                                      caplog, tmp_path):
    import validation.runner as runner

    def boom(*args, **kwargs):
        raise KeyError("surprise from https://alice:hunter22@db.example/x")

    monkeypatch.setattr(runner, "validate_transactions_with_drift", boom)
    with caplog.at_level(logging.ERROR, logger="validation.runner"):
        res = run_validation(run_date, data=write(raw))
    _failed(res, "validation could not complete: KeyError", "surprise from https://alice:***@db.example/x")
    assert "hunter22" not in res.message()
    res.write(str(tmp_path / "v.json"), str(tmp_path / "v.html"))  # the report still gets written
    assert "KeyError" in (tmp_path / "v.html").read_text()
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "Traceback" in logged and "boom" in logged and "hunter22" not in logged


def test_the_result_carries_the_validated_frame(raw, write, run_date, tmp_path):
    res = run_validation(run_date, data=write(raw))
    assert res.frame is not None and len(res.frame) == res.rows_loaded == len(raw)
    assert res.frame["ts"].max() < pd.Timestamp(run_date)
    res.write(str(tmp_path / "v.json"), str(tmp_path / "v.html"))
    doc = json.load(open(tmp_path / "v.json"))
    assert "frame" not in doc and doc["rows_loaded"] == len(raw)  # the rows are never serialised
