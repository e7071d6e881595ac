"""Components through python_func with real artifacts on a slice of the real data."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from kfp.dsl import HTML, Artifact, Dataset, Metrics

from components.build_tasks import build_tasks
from components.validate_data import validate_data
from slice_config import SLICE_CONFIG, SLICE_RUN_DATE
from quantrec.data.snapshot import SnapshotError, read_snapshot
from quantrec.data.tasks import TABLE_SCHEMAS, read_table


def _validate(tmp_path, data, run_date=SLICE_RUN_DATE):
    arts = {"report": HTML(uri=str(tmp_path / "report.html")), "result": Artifact(uri=str(tmp_path / "result.json")),
            "snapshot": Dataset(uri=str(tmp_path / "snapshot.parquet"))}
    ok = validate_data.python_func(run_date=run_date, data=data, spec="", config=SLICE_CONFIG, **arts)
    return ok, arts


def test_validate_data_component_writes_report_snapshot_and_returns_verdict(tmp_path, real_slice):
    (tmp_path / "ok").mkdir()
    ok, arts = _validate(tmp_path / "ok", real_slice)
    assert ok is True
    assert json.loads((tmp_path / "ok" / "result.json").read_text())["passed"] is True
    assert arts["result"].metadata["passed"] is True
    # the snapshot is exactly the validated rows: everything before run_date, with a digest
    snap = read_snapshot(arts["snapshot"].path, arts["snapshot"].metadata["digest"])
    assert len(snap) == arts["result"].metadata["rows_loaded"] == arts["snapshot"].metadata["rows"]
    assert snap["day"].max() < pd.Timestamp(SLICE_RUN_DATE)
    # stale: the slice ends 2011-04-29, a run in August sees nothing fresh; no snapshot rows
    (tmp_path / "stale").mkdir()
    ok2, arts2 = _validate(tmp_path / "stale", real_slice, "2011-08-01")
    assert ok2 is False and "fresh" in (tmp_path / "stale" / "report.html").read_text().lower()
    assert arts2["snapshot"].metadata["rows"] == 0


def test_build_tasks_component_reads_the_snapshot_and_writes_every_table(tmp_path, real_slice):
    (tmp_path / "v").mkdir()
    _, gate = _validate(tmp_path / "v", real_slice)
    outs = {n: Dataset(uri=str(tmp_path / f"{n}.parquet")) for n in ("gmv", "purchase", "replay", "ltv", "events")}
    cleaning = Metrics(uri=str(tmp_path / "cleaning.json"))
    report, checks = HTML(uri=str(tmp_path / "tables.html")), Artifact(uri=str(tmp_path / "tables.json"))
    ok = build_tasks.python_func(snapshot=gate["snapshot"], run_date=SLICE_RUN_DATE, spec="", config=SLICE_CONFIG,
                                 cleaning=cleaning, table_report=report, table_checks=checks, **outs)
    assert ok is True and checks.metadata["passed"] is True and checks.metadata["checks_total"] > 20
    assert "gmv" in (tmp_path / "tables.html").read_text()
    for name, art in outs.items():
        df = read_table(art.path)
        assert list(df.columns) == TABLE_SCHEMAS[name].names
        assert art.metadata["rows"]["all"] == len(df)
        assert art.metadata["windows"]["run_date"] == SLICE_RUN_DATE
        assert art.metadata["snapshot"] == gate["snapshot"].metadata["digest"]
    gmv = read_table(outs["gmv"].path)
    assert set(gmv["split"]) == {"train", "val", "eval"}
    assert gmv["day"].max() < pd.Timestamp(SLICE_RUN_DATE)
    assert cleaning.metadata["removed/null_users"] > 0


def test_build_tasks_refuses_a_snapshot_changed_after_validation(tmp_path, real_slice):
    (tmp_path / "v").mkdir()
    _, gate = _validate(tmp_path / "v", real_slice)
    snap = read_snapshot(gate["snapshot"].path)
    snap.iloc[:-5].to_parquet(gate["snapshot"].path)  # rows removed after the gate judged them
    outs = {n: Dataset(uri=str(tmp_path / f"{n}.parquet")) for n in ("gmv", "purchase", "replay", "ltv", "events")}
    with pytest.raises(SnapshotError, match="changed since validation"):
        build_tasks.python_func(snapshot=gate["snapshot"], run_date=SLICE_RUN_DATE, spec="", config=SLICE_CONFIG,
                                cleaning=Metrics(uri=str(tmp_path / "c")), table_report=HTML(uri=str(tmp_path / "t")),
                                table_checks=Artifact(uri=str(tmp_path / "j")), **outs)
