"""The daily pipeline run locally (KFP SubprocessRunner) through the CLI on a slice of the
real data: two runs sharing a pipeline root at once each report their own verdict."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from slice_config import SLICE_CONFIG, SLICE_RUN_DATE


def _cli(args: list[str], env: dict | None = None) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "pipelines.cli", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env={**os.environ, **(env or {})})


def _finish(proc: subprocess.Popen, timeout: int = 900) -> tuple[int, str, str]:
    out, err = proc.communicate(timeout=timeout)
    return proc.returncode, out, err


def _run_folder(out: str) -> Path:
    return Path(re.search(r"run folder: (\S+)", out).group(1))


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory, real_slice):
    """A passing run and a failing run started together on the same pipeline root."""
    root = tmp_path_factory.mktemp("root")
    common = ["--data", real_slice, "--config", json.dumps(SLICE_CONFIG), "--pipeline-root", str(root)]
    good = _cli(["run", "--date", SLICE_RUN_DATE, *common])
    bad = _cli(["run", "--date", "2011-08-01", "--no-registry", *common])  # stale: nothing fresh
    return {"root": root, "good": _finish(good), "bad": _finish(bad)}


def test_each_concurrent_run_reports_its_own_verdict(two_runs):
    code, out, err = two_runs["good"]
    assert code == 0, out + err
    bad_code, bad_out, _ = two_runs["bad"]
    assert bad_code == 1
    assert _run_folder(out) != _run_folder(bad_out)
    assert "verdict: PASSED" in out
    assert "verdict: FAILED: data validation did not pass" in bad_out and "freshness" in bad_out
    assert "nothing was trained or published" in bad_out


def test_passing_run_shows_one_line_per_stage_and_publishes(two_runs):
    code, out, _ = two_runs["good"]
    run_dir = _run_folder(out)
    blessed = "shadow decision: blessed" in out
    assert blessed or "shadow decision: not blessed" in out
    stages = ["build-tasks", "evaluate-offline", "fit-codebook", "publish", "resolve-champion",
              "resolve-run-date", "shadow-compare", "train", "train-2", "validate-data"]
    stages += ["promote", "refresh-cache"] if blessed else []
    assert sorted(p.name for p in run_dir.iterdir() if p.is_dir()) == sorted(stages)
    stage_lines = [line for line in out.splitlines() if line.startswith("  [")]
    assert len(stage_lines) == len(stages) and all(line.startswith("  [ok  ]") for line in stage_lines)
    assert len(out.splitlines()) < 40  # quiet: KFP's log goes to run.log
    log = (run_dir / "run.log").read_text()
    assert "Executing task" in log and len(log.splitlines()) > 100
    version = re.search(r"published: (\S+)", out).group(1)
    registry = two_runs["root"] / "registry"
    manifest = json.loads((registry / "versions" / version / "manifest.json").read_text())
    assert manifest["run_date"] == SLICE_RUN_DATE and manifest["roles"]["baseline"] == "wlr"
    assert manifest["decision"]["verdict"] == ("blessed" if blessed else "not blessed")
    reports = {Path(p).parent.name for p in re.findall(r"^  (/\S+)$", out, flags=re.M)}
    assert reports == {"validate-data", "build-tasks", "fit-codebook", "evaluate-offline", "shadow-compare"}


def test_failing_run_leaves_no_temp_folders(two_runs):
    """No scratch folder of a finished run is left. Scratch folders of runs still going on
    this machine (their pid file names a live process other than the test's runs) are not
    the test's business: checking the global temp dir blindly fails whenever anyone runs."""
    import glob
    import tempfile

    from pipelines.local import _alive
    left = []
    for path in glob.glob(f"{tempfile.gettempdir()}/quantrec-local-run-*"):
        pid_file = Path(path) / "pid"
        pid = int(pid_file.read_text()) if pid_file.exists() else None
        if pid is None or not _alive(pid) or pid == os.getpid():
            left.append(path)
    assert not left


def test_no_secret_reaches_any_output_of_a_run(tmp_path):
    token, password = "ya29.sEcReT-token-4242", "hunter2-pw-99"
    url = f"https://alice:{password}@no-such-host.invalid/data/retail.parquet"
    proc = _cli(["run", "--date", SLICE_RUN_DATE, "--data", url, "--no-registry", "--pipeline-root", str(tmp_path)],
                env={"QUANTREC_GCS_TOKEN": token})
    code, out, err = _finish(proc)
    assert code == 1, out + err
    assert "alice:***@no-such-host.invalid" in out + err
    # and without --date (the default run date reads the data first): one line, no traceback
    code2, out2, err2 = _finish(_cli(["run", "--data", url, "--no-registry", "--pipeline-root", str(tmp_path)],
                                     env={"QUANTREC_GCS_TOKEN": token}))
    assert code2 == 2 and "Traceback" not in err2 and len(err2.strip().splitlines()) == 1
    texts = [out, err, out2, err2] + [p.read_text(errors="replace") for p in tmp_path.rglob("*") if p.is_file()]
    assert len(texts) > 6  # the run wrote its reports, metadata and log
    for text in texts:
        assert password not in text and token not in text
