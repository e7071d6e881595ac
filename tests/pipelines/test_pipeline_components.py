"""Components through python_func with real artifacts on a slice of the real data."""

from __future__ import annotations

import json

import pandas as pd
from kfp.dsl import HTML, Artifact, Dataset, Metrics

from components.build_tasks import build_tasks
from components.validate_data import validate_data
from slice_config import SLICE_CONFIG, SLICE_RUN_DATE
from quantrec.data.tasks import TABLE_SCHEMAS, read_table


def test_validate_data_component_writes_report_and_returns_verdict(tmp_path, real_slice):
    report, result = HTML(uri=str(tmp_path / "report.html")), Artifact(uri=str(tmp_path / "result.json"))
    ok = validate_data.python_func(run_date=SLICE_RUN_DATE, data=real_slice, spec="",
                                   config=SLICE_CONFIG, report=report, result=result)
    assert ok is True
    assert json.loads((tmp_path / "result.json").read_text())["passed"] is True
    assert result.metadata["passed"] is True
    # stale: the slice ends 2011-04-29, a run in August sees nothing fresh
    report2, result2 = HTML(uri=str(tmp_path / "r2.html")), Artifact(uri=str(tmp_path / "r2.json"))
    assert validate_data.python_func(run_date="2011-08-01", data=real_slice, spec="", config=SLICE_CONFIG,
                                     report=report2, result=result2) is False
    assert "fresh" in (tmp_path / "r2.html").read_text().lower()


def test_build_tasks_component_writes_every_table(tmp_path, real_slice):
    outs = {n: Dataset(uri=str(tmp_path / f"{n}.parquet")) for n in ("gmv", "purchase", "replay", "ltv", "events")}
    cleaning = Metrics(uri=str(tmp_path / "cleaning.json"))
    report, checks = HTML(uri=str(tmp_path / "tables.html")), Artifact(uri=str(tmp_path / "tables.json"))
    ok = build_tasks.python_func(run_date=SLICE_RUN_DATE, data=real_slice, spec="", config=SLICE_CONFIG,
                                 cleaning=cleaning, table_report=report, table_checks=checks, **outs)
    assert ok is True and checks.metadata["passed"] is True and checks.metadata["checks_total"] > 20
    assert "gmv" in (tmp_path / "tables.html").read_text()
    for name, art in outs.items():
        df = read_table(art.path)
        assert list(df.columns) == TABLE_SCHEMAS[name].names
        assert art.metadata["rows"]["all"] == len(df)
        assert art.metadata["windows"]["run_date"] == SLICE_RUN_DATE
    gmv = read_table(outs["gmv"].path)
    assert set(gmv["split"]) == {"train", "val", "eval"}
    assert gmv["day"].max() < pd.Timestamp(SLICE_RUN_DATE)
    assert cleaning.metadata["removed/null_users"] > 0
