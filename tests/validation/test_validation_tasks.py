"""Task-table suites on tables built by the real producer (quantrec.data.tasks) from synthetic lines."""

from __future__ import annotations

import pandas as pd
import pytest

from quantrec.data.clean import clean_transactions
from quantrec.data.load import to_canonical
from quantrec.data.spec import load_spec
from quantrec.data.tasks import TaskConfig, build_task_tables
from quantrec.data.windows import compute_windows
from validation.tasks import TASK_NAMES, expected_columns, validate_task_table, validate_task_tables


@pytest.fixture(scope="module")
def tables(raw, run_date):
    """The producer's tables and windows; tests copy a table before changing it."""
    spec = load_spec()
    canon = to_canonical(raw, spec)
    windows = compute_windows(canon["day"], run_date)
    lines, _ = clean_transactions(canon, spec.cleaning)
    # Short LTV periods so the 7-week synthetic store has LTV customers.
    tt = build_task_tables(lines, windows, TaskConfig(ltv_first_period_days=7, ltv_horizon_days=14))
    assert all(len(tt.tables[n]) for n in TASK_NAMES)
    return tt.tables, windows


def _failed(checks):
    return {(c.expectation, c.column) for c in checks if not c.success}


def test_producer_tables_pass(tables):
    tabs, windows = tables
    checks = validate_task_tables(tabs, windows)
    assert checks and _failed(checks) == set()
    assert {c.suite for c in checks} == {f"task.{n}" for n in TASK_NAMES}  # events is not a task table
    # every declared column of every table was checked for presence
    for name in TASK_NAMES:
        exist = {c.column for c in checks if c.suite == f"task.{name}" and c.expectation == "expect_column_to_exist"}
        assert exist == set(expected_columns(name))


def test_negative_gmv_label(tables):
    tabs, windows = tables
    gmv = tabs["gmv"].copy()
    gmv.loc[gmv.index[:2], "gmv"] = -3.0
    checks = validate_task_table("gmv", gmv, windows)
    assert _failed(checks) == {("expect_column_values_to_be_between", "gmv")}
    [c] = [c for c in checks if not c.success]
    assert [r["gmv"] for r in c.examples] == [-3.0, -3.0]


def test_purchase_label_not_binary_and_null_user(tables):
    tabs, windows = tables
    p = tabs["purchase"].copy()
    p.loc[p.index[0], "label"] = 2
    p.loc[p.index[1], "user_id"] = pd.NA
    assert _failed(validate_task_table("purchase", p, windows)) >= {
        ("expect_column_values_to_be_in_set", "label"), ("expect_column_values_to_not_be_null", "user_id")}


def test_missing_column_and_wrong_dtype(tables):
    tabs, windows = tables
    ltv = tabs["ltv"].drop(columns=["fp_spend"]).assign(ltv=lambda d: d["ltv"].astype(str))
    failed = _failed(validate_task_table("ltv", ltv, windows))
    assert failed == {("expect_column_to_exist", "fp_spend"),
                      ("expect_column_values_to_be_in_type_list", "ltv"),
                      # a string label cannot be compared with 0: reported, not raised
                      ("expect_column_values_to_be_between", "ltv")}


def test_leakage_duplicates_and_split_in_replay(tables):
    tabs, windows = tables
    rep = tabs["replay"].copy()
    rep = pd.concat([rep, rep.iloc[:1]], ignore_index=True)  # a duplicated candidate
    rep.loc[rep.index[1], "day"] = windows.run_date  # a row from the run date itself
    rep.loc[rep.index[2], "split"] = "train"
    failed = _failed(validate_task_table("replay", rep, windows))
    assert failed == {("expect_compound_columns_to_be_unique", None),
                      ("expect_column_values_to_be_between", "day"),
                      ("expect_column_values_to_be_in_set", "split")}


def test_empty_tables(tables):
    tabs, windows = tables
    assert _failed(validate_task_table("ltv", tabs["ltv"].iloc[:0], windows)) == set()  # early backtests
    assert ("expect_table_row_count_to_be_between", None) in _failed(
        validate_task_table("gmv", tabs["gmv"].iloc[:0], windows))


def test_unknown_table_name(tables):
    with pytest.raises(ValueError, match="unknown task table 'events'"):
        validate_task_table("events", tables[0]["events"])
