"""`quantrec run` fails early with one clear line, and its verdict comes from its tasks'
outputs (issue 7 §2 §9 §10 §11)."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from pipelines.cli import main
from pipelines.local import SCRATCH_PREFIX, LocalRun, TaskRecord, clean_stale_scratch
from pipelines.verdict import daily_verdict


def _err(capsys) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    return err


@pytest.mark.parametrize("config, message", [
    ('{"models": {"models": {"wlr": {"trian": {"epochs": 2}}}}}', "models.models.wlr.trian: unknown key"),
    ('{"models": {"models": {"wlr": {"train": {"epochs": 0}}}}}', "models.models.wlr.train.epochs: must be at least 1"),
    ('{"models": ', "--config is not valid JSON"),
    ("/no/such/config.yaml", "config file not found: /no/such/config.yaml"),
])
def test_bad_config_fails_before_any_stage(tmp_path, capsys, config, message):
    t0 = time.perf_counter()
    code = main(["run", "--date", "2011-12-10", "--config", config, "--pipeline-root", str(tmp_path)])
    assert code == 2 and message in _err(capsys)
    assert time.perf_counter() - t0 < 20 and not (tmp_path / "runs").exists()  # nothing ran


def test_malformed_config_file_names_the_file(tmp_path, capsys):
    bad = tmp_path / "cfg.yaml"
    bad.write_text("models: [unclosed\n")
    assert main(["run", "--date", "2011-12-10", "--config", str(bad), "--pipeline-root", str(tmp_path)]) == 2
    assert f"config file {bad} is not valid JSON/YAML" in _err(capsys)


def test_a_registry_that_does_not_exist_is_an_error_unless_created(tmp_path, capsys):
    typo = tmp_path / "regsitry"
    code = main(["run", "--date", "2011-12-10", "--registry", str(typo), "--pipeline-root", str(tmp_path)])
    assert code == 2 and "there is no quantrec registry at" in _err(capsys) and not typo.exists()
    assert main(["registry", "init", "--url", str(typo)]) == 0
    assert (typo / "registry.json").exists()


def test_an_unwritable_pipeline_root_is_one_clear_line(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    code = main(["run", "--date", "2011-12-10", "--no-registry", "--pipeline-root", str(blocker / "root")])
    assert code == 2 and "cannot write the pipeline root" in _err(capsys)


def test_missing_workbook_for_import_is_one_line(tmp_path, capsys):
    assert main(["import-uci", str(tmp_path / "nope.xlsx"), str(tmp_path / "out.parquet")]) == 2
    assert "nope.xlsx" in _err(capsys)


def test_stale_scratch_of_killed_runs_is_removed(tmp_path):
    import tempfile
    dead = Path(tempfile.mkdtemp(prefix=SCRATCH_PREFIX))
    (dead / "pid").write_text("999999999")          # a process that does not exist
    live = Path(tempfile.mkdtemp(prefix=SCRATCH_PREFIX))
    (live / "pid").write_text(str(os.getpid()))     # a run in progress: kept
    try:
        removed = clean_stale_scratch()
        assert str(dead) in removed and not dead.exists() and live.exists()
    finally:
        import shutil
        shutil.rmtree(live, ignore_errors=True)


def _fake_run(tmp_path: Path, outputs: dict[str, dict], failed: str | None = None) -> LocalRun:
    """A run folder laid out as KFP's local runner writes it."""
    run_dir = tmp_path / "quantrec-daily-x"
    for task, out in outputs.items():
        (run_dir / task).mkdir(parents=True)
        (run_dir / task / "executor_output.json").write_text(json.dumps(out))
    tasks = {t: TaskRecord(t, status="SUCCESS") for t in outputs}
    if failed:
        tasks[failed] = TaskRecord(failed, status="FAILURE", tail=["Traceback (most recent call last):",
                                                                    "OSError: [Errno 28] No space left on device"])
    return LocalRun(run_dir=run_dir, outputs={}, tasks=tasks, error="Pipeline failed" if failed else None)


def _gate(passed: bool, output: str, failed: list[str] | None = None) -> dict:
    return {"parameterValues": {"Output": passed},
            "artifacts": {output: {"artifacts": [{"metadata": {"failed_expectations": failed or []}}]}}}


def test_verdict_fails_when_the_table_suites_fail_although_validation_passed(tmp_path):
    run = _fake_run(tmp_path, {"validate-data": _gate(True, "result"),
                               "build-tasks": _gate(False, "table_checks", ["tables.gmv: gmv is positive (gmv)"])})
    code, lines = daily_verdict(run)
    assert code == 1
    assert "verdict: FAILED: task-table checks did not pass: tables.gmv: gmv is positive (gmv)" in lines


def test_verdict_names_the_failed_task_and_its_error(tmp_path):
    run = _fake_run(tmp_path, {"validate-data": _gate(True, "result"), "build-tasks": _gate(True, "table_checks"),
                               "train": {}}, failed="train")
    code, lines = daily_verdict(run)
    assert code == 1 and any("task train failed" in x and "No space left on device" in x for x in lines)


def test_verdict_passes_only_with_the_gates_own_outputs(tmp_path):
    ok = _fake_run(tmp_path / "a", {"validate-data": _gate(True, "result"), "build-tasks": _gate(True, "table_checks"),
                                    "publish": {"parameterValues": {"Output": "2011-12-10-abc"}}})
    code, lines = daily_verdict(ok)
    assert code == 0 and "published: 2011-12-10-abc" in lines and "verdict: PASSED" in lines
    nothing = _fake_run(tmp_path / "b", {})
    assert daily_verdict(nothing)[0] == 1  # no validation output: never "passed"
