"""The real default data (Online Retail II) passes the gate with its real dirt, and fails when stale."""

from __future__ import annotations

import pytest

from validation.runner import run_validation

pytestmark = pytest.mark.real_data


def test_real_data_passes_for_the_day_after_the_last_day(tmp_path):
    res = run_validation("2011-12-10")
    assert res.passed, res.message()
    assert res.rows_loaded == 1_044_847
    assert res.windows["eval_start"] == "2011-12-09"
    by = {(c.suite, c.column, c.expectation): c for c in res.checks}
    # The real dirt was seen, and tolerated within the spec's thresholds.
    guests = by[("transactions.recent", "user_id", "expect_column_values_to_not_be_null")]
    assert 20 < guests.observed["unexpected_percent"] < 50
    cancels = by[("transactions.eval_window", "is_cancellation", "expect_column_values_to_be_in_set")]
    assert cancels.observed["unexpected_count"] > 0
    fresh = by[("transactions.freshness", "days_since_newest", "expect_column_values_to_be_between")]
    assert fresh.observed == {"newest_day": "2011-12-09 00:00:00", "days_since_newest": 1}
    res.write(str(tmp_path / "v.json"), str(tmp_path / "v.html"))
    assert (tmp_path / "v.html").stat().st_size < 200_000


def test_real_data_stale_run_date_fails_on_freshness_only():
    res = run_validation("2012-03-01")
    assert [(c.suite, c.column) for c in res.failed] == [("transactions.freshness", "days_since_newest")]
    assert "newest data at most 14 days before run_date" in res.message()
