"""`quantrec backfill`: resume logic on small registries (fast), and three consecutive days
on a slice of the real data, killed (SIGKILL) once the first day is published and re-run:
no duplicate versions, every day done, summary CSV + HTML."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from pipelines import backfill as B
from quantrec.config import RunConfig
from quantrec.registry import Registry
from slice_config import SLICE_CONFIG

# the slice run with the two GMV models named explicitly: the test does not follow the
# default model list (which grows), and stays short
CONFIG = {**SLICE_CONFIG, "models": {**SLICE_CONFIG["models"], "daily": ["rqreg", "wlr"]}}

CFG = RunConfig.from_dict({}).to_dict()


def _publish(reg: Registry, tmp_path: Path, day: str, blessed: bool | None, champion_at_start: str | None,
             config: dict | None = None, salt: str = ""):
    d = tmp_path / f"art-{day}-{salt}"
    d.mkdir()
    (d / "w.bin").write_bytes(f"{day}{salt}".encode())
    decision = None if blessed is None else {"blessed": blessed, "verdict": "blessed" if blessed else "not blessed"}
    meta = {"config": CFG if config is None else config, "champion_at_start": champion_at_start,
            "decision": decision, "codebook_source": "fitted",
            "metrics": {"gmv/RQ-Reg/MAE": 10.0, "gmv/RQ-Reg/top10%/MAE": 40.0, "gmv/WLR/XAUC": 0.8,
                        "purchase/DMQN/AUC": 0.7, "purchase/DMQN/logloss": 0.5}}
    return reg.publish({"models/x": str(d)}, day, meta)[0]


def test_date_range_and_key_metrics():
    assert B.date_range("2011-04-26", "2011-04-28") == ["2011-04-26", "2011-04-27", "2011-04-28"]
    with pytest.raises(B.BackfillError, match="before --from"):
        B.date_range("2011-04-28", "2011-04-26")
    with pytest.raises(ValueError, match="run_date"):
        B.date_range("", "2011-04-26")
    assert B.key_metrics({"gmv/RQ-Reg/MAE": 1, "gmv/RQ-Reg/top10%/MAE": 2, "gmv/WLR/XAUC": 0.8,
                          "gmv/WLR/Spearman": 0.5, "purchase/DMQN/AUC": 0.7, "purchase/DMQN/logloss": 0.4}) == {
        "gmv/RQ-Reg/MAE": 1.0, "gmv/WLR/XAUC": 0.8, "purchase/DMQN/AUC": 0.7}


def test_a_day_is_done_only_with_the_same_config(tmp_path):
    reg = Registry(str(tmp_path / "reg"), create=True)
    v = _publish(reg, tmp_path, "2011-04-26", False, None)
    assert B.find_complete_version(reg, "2011-04-26", CFG).name == v.name
    assert B.find_complete_version(reg, "2011-04-27", CFG) is None
    other = RunConfig.from_dict({"models": {"max_train_rows": 123}}).to_dict()
    assert B.find_complete_version(reg, "2011-04-26", other) is None
    w = _publish(reg, tmp_path, "2011-04-26", False, None, config=other, salt="b")
    assert B.find_complete_version(reg, "2011-04-26", other).name == w.name
    # KFP hands the config over as a protobuf Struct: the manifest's free-form override
    # dicts hold 16.0 where the user wrote 16; that is still the same config
    mine = RunConfig.from_dict({"models": {"models": {"rqreg": {"d_model": 16}}}}).to_dict()
    via_kfp = RunConfig.from_dict({"models": {"models": {"rqreg": {"d_model": 16.0}}}}).to_dict()
    x = _publish(reg, tmp_path, "2011-04-27", False, None, config=via_kfp)
    assert B.find_complete_version(reg, "2011-04-27", mine).name == x.name
    assert B.find_complete_version(reg, "2011-04-27", RunConfig.from_dict(
        {"models": {"models": {"rqreg": {"d_model": 17}}}}).to_dict()) is None


def test_resume_finishes_a_promotion_interrupted_between_publish_and_promote(tmp_path):
    reg = Registry(str(tmp_path / "reg"), create=True)
    a = _publish(reg, tmp_path, "2011-04-26", True, None)
    reg.promote(a.name, expected_current=None)
    b = _publish(reg, tmp_path, "2011-04-27", True, a.name)   # killed before its promote ran
    assert reg.champion_name() == a.name
    assert "finished the interrupted promotion" in B.finish_promotion(reg, b)
    assert reg.champion_name() == b.name
    assert B.finish_promotion(reg, b) == ""                      # complete now: nothing more to do
    assert B.finish_promotion(reg, a) == ""                      # promoted long ago
    c = _publish(reg, tmp_path, "2011-04-28", False, b.name)
    assert B.finish_promotion(reg, c) == "" and reg.champion_name() == b.name  # not blessed: nothing due
    # blessed but the champion moved on since the day started: never promoted over it
    d = _publish(reg, tmp_path, "2011-04-29", True, a.name)
    assert "champion moved on" in B.finish_promotion(reg, d) and reg.champion_name() == b.name
    assert [B.champion_after(reg, day) for day in ("2011-04-25", "2011-04-26", "2011-04-27", "2011-04-28")] == [
        "", a.name, b.name, b.name]


def test_report_has_table_and_plot(tmp_path):
    rows = [B.DayResult("2011-04-26", "skipped", "PASSED", "v1", True, "v1", "fitted",
                        metrics={"gmv/RQ-Reg/MAE": 10.0, "gmv/WLR/MAE": 12.0}),
            B.DayResult("2011-04-27", "ran", "PASSED", "v2", False, "v1", "reused",
                        metrics={"gmv/RQ-Reg/MAE": 9.0, "gmv/WLR/MAE": 12.5}),
            B.DayResult("2011-04-28", "failed", "FAILED: data validation did not pass")]
    html = Path(B.write_report(rows, tmp_path / "r.html")).read_text()
    assert "data:image/png;base64" in html and "2011-04-27" in html
    assert "3 days: 1 ran, 1 skipped (already published), 1 failed; 1 blessed; codebook fitted on 1 days" in html


# ---- the real thing, killed and resumed ------------------------------------------------------
DAYS = ["2011-04-26", "2011-04-27", "2011-04-28"]


def _backfill(root: Path, data: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "pipelines.backfill", "--from", DAYS[0], "--to", DAYS[-1], "--data", data,
         "--config", json.dumps(CONFIG), "--pipeline-root", str(root)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
        env={**os.environ, "DO_NOT_TRACK": "1"})


def _manifests(registry: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(registry.glob("versions/*/manifest.json"))]


@pytest.fixture(scope="module")
def killed_and_resumed(tmp_path_factory, ops_slice):
    root = tmp_path_factory.mktemp("backfill")
    registry = root / "registry"
    first = _backfill(root, ops_slice)
    deadline = time.monotonic() + 900
    try:
        while not _manifests(registry):      # the first day is published ...
            assert first.poll() is None, first.stdout.read()
            assert time.monotonic() < deadline, "the first day was not published in time"
            time.sleep(0.5)
    finally:
        os.killpg(first.pid, signal.SIGKILL)  # ... kill the backfill and every task process it started
        first.wait()
    killed_with = _manifests(registry)
    second = _backfill(root, ops_slice)
    out, _ = second.communicate(timeout=1800)
    summary_dir = root / "backfills" / f"{DAYS[0]}_{DAYS[-1]}"
    summary = pd.read_csv(summary_dir / B.SUMMARY_CSV) if (summary_dir / B.SUMMARY_CSV).exists() else None
    html = (summary_dir / B.SUMMARY_HTML).read_text() if (summary_dir / B.SUMMARY_HTML).exists() else ""
    third = _backfill(root, ops_slice)       # everything done: all skipped, nothing runs
    out3, _ = third.communicate(timeout=300)
    return {"root": root, "registry": registry, "killed_with": killed_with, "second": (second.returncode, out),
            "summary": summary, "html": html, "third": (third.returncode, out3),
            "third_summary": pd.read_csv(summary_dir / B.SUMMARY_CSV)}


def test_killed_backfill_resumes_without_duplicate_versions(killed_and_resumed):
    code, out = killed_and_resumed["second"]
    assert code == 0, out[-4000:]
    manifests = _manifests(killed_and_resumed["registry"])
    assert sorted(m["run_date"] for m in manifests) == DAYS          # one version per day, none twice
    assert [m["run_date"] for m in killed_and_resumed["killed_with"]] == [DAYS[0]]
    first_version = killed_and_resumed["killed_with"][0]["version"]
    assert first_version in {m["version"] for m in manifests}
    summary = killed_and_resumed["summary"]
    assert list(summary["run_date"]) == DAYS
    assert list(summary["status"]) == ["skipped", "ran", "ran"]
    assert summary.loc[0, "version"] == first_version
    assert {"gmv/RQ-Reg/MAE", "gmv/RQ-Reg/XAUC", "gmv/WLR/MAE", "gmv/WLR/XAUC"} <= set(summary.columns)
    assert summary["gmv/RQ-Reg/MAE"].notna().all()
    # each day started from the champion the earlier days left (warm starts through the registry)
    by_day = {m["run_date"]: m for m in manifests}
    after = {r.run_date: (r.champion_after if isinstance(r.champion_after, str) else None)
             for r in summary.itertuples()}
    for prev, day in zip(DAYS, DAYS[1:]):
        assert by_day[day]["champion_at_start"] == after[prev]
    # a blessed version is the champion or was promoted (the resume finished an interrupted promotion)
    reg = Registry(str(killed_and_resumed["registry"]))
    promoted = {e["version"] for e in reg.history() if e["action"] == "promote"}
    assert {m["version"] for m in manifests if (m.get("decision") or {}).get("blessed")} <= promoted
    assert "data:image/png;base64" in killed_and_resumed["html"]


def test_a_finished_backfill_rerun_skips_every_day(killed_and_resumed):
    code, out = killed_and_resumed["third"]
    assert code == 0, out[-3000:]
    assert out.count("skipped: version") == 3
    assert len(_manifests(killed_and_resumed["registry"])) == 3
    third = killed_and_resumed["third_summary"]
    assert list(third["status"]) == ["skipped"] * 3
    assert list(third["version"]) == list(killed_and_resumed["summary"]["version"])
