"""The daily pipeline run locally (KFP SubprocessRunner) on a slice of the real data."""

from __future__ import annotations

import json

import pytest

from slice_config import SLICE_CONFIG, SLICE_RUN_DATE
from pipelines.daily import daily_pipeline
from pipelines.local import run_pipeline_locally


@pytest.fixture(scope="module")
def passing_run(tmp_path_factory, real_slice):
    root = tmp_path_factory.mktemp("root")
    return run_pipeline_locally(daily_pipeline, {"run_date": SLICE_RUN_DATE, "data": real_slice,
                                                 "spec": "", "config": SLICE_CONFIG}, pipeline_root=root)


def test_passing_validation_runs_every_stage(passing_run):
    assert passing_run.task_dirs() == ["build-tasks", "evaluate-offline", "fit-codebook", "train",
                                       "validate-data"]
    names = {p.name for p in passing_run.artifacts()}
    assert {"gmv", "purchase", "replay", "ltv", "events", "codebook"} <= names
    assert {"model.safetensors", "config.json", "features.json"} <= names
    reports = {p.parent.name for p in passing_run.reports()}
    assert reports == {"validate-data", "build-tasks", "fit-codebook", "evaluate-offline"}


def test_offline_report_compares_rqreg_with_wlr(passing_run):
    (report,) = [p for p in passing_run.reports() if p.parent.name == "evaluate-offline"]
    html = report.read_text()
    assert "RQ-Reg" in html and "WLR" in html and "<img" in html
    metrics = json.loads((report.parent / "executor_output.json").read_text())
    logged = metrics["artifacts"]["metrics"]["artifacts"][0]["metadata"]
    assert 0.0 < logged["RQ-Reg/XAUC"] <= 1.0 and logged["WLR/MAE"] > 0


def test_failing_validation_publishes_nothing(tmp_path, real_slice):
    import glob
    import tempfile
    before = set(glob.glob(f"{tempfile.gettempdir()}/tmp.*"))
    run = run_pipeline_locally(daily_pipeline, {"run_date": "2011-08-01", "data": real_slice,
                                                "spec": "", "config": SLICE_CONFIG}, pipeline_root=tmp_path)
    assert run.task_dirs() == ["validate-data"]
    result = json.loads(next(p for p in run.artifacts() if p.parent.name == "validate-data"
                             and p.name == "result").read_text())
    assert result["passed"] is False
    reports = run.reports()
    assert len(reports) == 1 and reports[0].parent.name == "validate-data"
    assert "fresh" in reports[0].read_text().lower()
    # the run leaves no component / workspace folders in the system temp dir
    assert set(glob.glob(f"{tempfile.gettempdir()}/tmp.*")) <= before
