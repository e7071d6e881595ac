"""The JSON result and HTML report name every failed expectation, its column and example rows."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

from validation.runner import run_validation


def _negative_prices(raw: pd.DataFrame, last_day: pd.Timestamp) -> pd.DataFrame:
    bad = raw.copy()
    rows = bad.index[(bad["InvoiceDate"].dt.normalize() == last_day) & (bad["StockCode"] != "B")
                     & (bad["Quantity"] > 0)][:3]
    bad.loc[rows, "UnitPrice"] = -7.25
    bad.loc[bad.index % 10 < 6, "CustomerID"] = np.nan  # and too many guest lines
    return bad


def test_failed_report_names_expectations_columns_and_examples(raw, write, run_date, last_day, tmp_path):
    res = run_validation(run_date, data=write(_negative_prices(raw, last_day)))
    assert {(c.suite, c.column) for c in res.failed} == {("transactions.purchases", "unit_price"),
                                                         ("transactions.recent", "user_id")}
    jpath, hpath = res.write(str(tmp_path / "out" / "v.json"), f"file://{tmp_path}/out/v.html")

    doc = json.load(open(jpath))
    assert doc["verdict"] == "FAILED" and doc["passed"] is False
    assert doc["checks_failed"] == 2 and doc["checks_total"] == len(doc["checks"]) == len(res.checks)
    assert "transactions.purchases: expect_column_values_to_be_between (unit_price)" in doc["failed_expectations"]
    assert "transactions.recent: expect_column_values_to_not_be_null (user_id)" in doc["failed_expectations"]
    [price] = [c for c in doc["checks"] if c["column"] == "unit_price" and not c["success"]]
    assert [r["unit_price"] for r in price["examples"]] == [-7.25] * 3
    assert price["details"]["min_value"] == 0
    assert doc["windows"]["eval_start"] == str(last_day.date())
    assert doc["daily_rows"][-1] == {"day": str(last_day), "rows": doc["daily_rows"][-1]["rows"], "role": "eval"}
    assert doc["message"] == res.message()

    page = open(tmp_path / "out" / "v.html", encoding="utf-8").read()
    assert "FAILED" in page and "Failed expectations" in page
    assert "expect_column_values_to_be_between" in page and "<code>unit_price</code>" in page
    assert "expect_column_values_to_not_be_null" in page and "<code>user_id</code>" in page
    assert "-7.25" in page  # the example rows
    assert "data:image/png;base64," in page  # the daily row-count plot
    assert len(page) < 200_000  # small enough for the KFP UI viewer


def test_passed_report(raw, write, run_date, tmp_path):
    res = run_validation(run_date, data=write(raw))
    res.write(str(tmp_path / "v.json"), str(tmp_path / "v.html"))
    doc = json.load(open(tmp_path / "v.json"))
    assert doc["verdict"] == "PASSED" and doc["checks_failed"] == 0 and doc["failed_expectations"] == []
    assert all(c["success"] and c["examples"] == [] for c in doc["checks"])
    page = open(tmp_path / "v.html", encoding="utf-8").read()
    assert "PASSED" in page and "Failed expectations" not in page
    # the compact table lists every check
    assert page.count("<td>pass</td>") == len(res.checks)


def test_error_result_still_writes_a_report(run_date, tmp_path):
    res = run_validation(run_date, data=str(tmp_path / "missing.parquet"))
    res.write(str(tmp_path / "v.json"), str(tmp_path / "v.html"))
    doc = json.load(open(tmp_path / "v.json"))
    assert doc["verdict"] == "FAILED" and "data file not found" in doc["error"]
    assert doc["failed_expectations"] == ["load: data_is_usable"]
    page = open(tmp_path / "v.html", encoding="utf-8").read()
    assert "data file not found" in page and "data_is_usable" in page
