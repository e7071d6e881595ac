"""Run a pipeline locally with KFP's SubprocessRunner (no cluster, no Docker).

Each task runs as a subprocess of this interpreter, importing the installed project.
Every run gets its own folder ``<pipeline_root>/runs/<run id>/`` (KFP writes its
``<pipeline>-<timestamp>/<task>/<output>`` tree inside it), so two runs sharing a
pipeline root never mistake each other's outputs for their own. The run's verdict is
read from its own tasks' outputs (``executor_output.json``), never inferred from which
folders exist.

Quiet by default: KFP's full log (every task's output, redacted) goes to
``<run folder>/run.log``; the terminal shows one progress line per task (name, status,
seconds, the task's own one-line summary) unless ``verbose``.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import re
import shutil
import sys
import tempfile
import time
import uuid
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, TextIO

from kfp import local

from quantrec.data.spec import repo_root
from quantrec.redact import redact

DEFAULT_ROOT = repo_root() / "pipeline_root"
SCRATCH_PREFIX = "quantrec-local-run-"
LOG_NAME = "run.log"
SAY_PREFIX = "quantrec: "  # components' one-line summaries (components._meta.say)
_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_EXECUTING = re.compile(r"Executing task '([^']+)'")
_FINISHED = re.compile(r"Task '([^']+)' finished with status (\w+)")


@dataclass
class TaskRecord:
    """One task of a local run, as its log and outputs tell it."""

    name: str
    status: str = "RUNNING"     # SUCCESS | FAILURE | RUNNING (never finished)
    seconds: float = 0.0
    said: list[str] = field(default_factory=list)   # the component's own summary lines
    tail: list[str] = field(default_factory=list)   # last log lines (the error of a failure)


@dataclass
class LocalRun:
    run_dir: Path | None            # the KFP run folder (<root>/runs/<id>/<pipeline>-<ts>)
    outputs: dict[str, Any]
    tasks: dict[str, TaskRecord] = field(default_factory=dict)
    log_path: Path | None = None
    error: str | None = None        # set when a task failed (the run raised)

    @property
    def failed_task(self) -> TaskRecord | None:
        return next((t for t in self.tasks.values() if t.status != "SUCCESS"), None)

    def task_output(self, task: str) -> dict[str, Any] | None:
        """The ``executor_output.json`` of a task of this run (None if it did not run)."""
        path = self.run_dir / task / "executor_output.json" if self.run_dir else None
        if path is None or not path.exists():
            return None
        return json.loads(path.read_text())

    def parameter(self, task: str, name: str = "Output") -> Any:
        out = self.task_output(task)
        return None if out is None else out.get("parameterValues", {}).get(name)

    def artifact_metadata(self, task: str, output: str) -> dict[str, Any]:
        out = self.task_output(task) or {}
        arts = out.get("artifacts", {}).get(output, {}).get("artifacts", [])
        return arts[0].get("metadata", {}) if arts else {}

    def artifacts(self, suffix: str = "") -> list[Path]:
        """Artifact files of the run (e.g. suffix='.html' for the reports)."""
        if self.run_dir is None:
            return []
        return sorted(p for p in self.run_dir.rglob("*") if p.is_file() and p.name.endswith(suffix)
                      and p.name != "executor_output.json")

    def reports(self) -> list[Path]:
        """The HTML reports of the run (KFP names artifact files after the output, without
        an extension, so they are recognised by their content)."""
        out = []
        for p in self.artifacts():
            with open(p, "rb") as f:
                head = f.read(64).lstrip().lower()
            if head.startswith(b"<!doctype html") or head.startswith(b"<html"):
                out.append(p)
        return out

    def task_dirs(self) -> list[str]:
        return sorted(p.name for p in self.run_dir.iterdir() if p.is_dir()) if self.run_dir else []


class _LogTee:
    """A stdout replacement: every line (redacted) to the log file; task progress from
    KFP's own log lines to ``on_line``; everything to ``echo`` when verbose."""

    def __init__(self, log: TextIO, on_line: Callable[[str], None], echo: TextIO | None) -> None:
        self.log, self.on_line, self.echo, self._buf = log, on_line, echo, ""

    def write(self, text: str) -> int:
        self._buf += text
        while "\n" in self._buf:
            line, self._buf = self._buf.split("\n", 1)
            self._emit(line)
        return len(text)

    def _emit(self, line: str) -> None:
        clean = redact(line)
        self.log.write(clean + "\n")
        if self.echo is not None:
            self.echo.write(clean + "\n")
        self.on_line(_ANSI.sub("", clean))

    def flush(self) -> None:
        self.log.flush()
        if self.echo is not None:
            self.echo.flush()

    def close(self) -> None:
        if self._buf:
            self._emit(self._buf)
            self._buf = ""
        self.flush()

    def isatty(self) -> bool:
        return False


def clean_stale_scratch(max_age_s: float = 6 * 3600) -> list[str]:
    """Remove scratch folders of earlier local runs that were killed before cleaning up
    (their process is gone, or they are older than ``max_age_s``). Returns what went."""
    removed = []
    for path in Path(tempfile.gettempdir()).glob(f"{SCRATCH_PREFIX}*"):
        pid_file = path / "pid"
        try:
            pid = int(pid_file.read_text()) if pid_file.exists() else None
            alive = pid is not None and _alive(pid)
            old = time.time() - path.stat().st_mtime > max_age_s
        except (OSError, ValueError):
            alive, old = False, True
        if not alive or old:
            shutil.rmtree(path, ignore_errors=True)
            removed.append(str(path))
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def new_run_root(pipeline_root: str | Path, label: str) -> Path:
    """``<pipeline_root>/runs/<label>-<utc time>-<random>``, created; a clear error when
    the pipeline root cannot be written."""
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%S")
    root = Path(pipeline_root).resolve() / "runs" / f"{label}-{stamp}-{uuid.uuid4().hex[:6]}"
    try:
        root.mkdir(parents=True)
        probe = root / ".write-test"
        probe.write_text("ok")
        probe.unlink()
    except OSError as exc:
        raise OSError(f"cannot write the pipeline root {pipeline_root}: {exc.strerror or exc}") from None
    return root


def run_pipeline_locally(pipeline: Callable, arguments: dict[str, Any], pipeline_root: str | Path = DEFAULT_ROOT,
                         label: str = "run", verbose: bool = False,
                         progress: Callable[[TaskRecord], None] | None = None) -> LocalRun:
    """Run ``pipeline(**arguments)`` with SubprocessRunner in a folder of its own.

    A failing task does not raise here: the returned LocalRun carries ``error`` and the
    failed task (status, log tail). A validation that fails is not a failing task: the
    gate returns False and the gated stages are skipped. ``progress`` is called with each
    task when it finishes.
    """
    clean_stale_scratch()
    run_root = new_run_root(pipeline_root, label)
    log_path = run_root / LOG_NAME
    # KFP leaves its workspace and every task's `mktemp -d` component folder in the temp
    # dir: point the tasks' TMPDIR (mktemp and tempfile honour it) at a folder we remove.
    scratch = tempfile.mkdtemp(prefix=SCRATCH_PREFIX)
    Path(scratch, "pid").write_text(str(os.getpid()))
    terminal = sys.stdout
    tasks: dict[str, TaskRecord] = {}
    current: list[TaskRecord] = []
    started: dict[str, float] = {}

    def on_line(line: str) -> None:
        m = _EXECUTING.search(line)
        if m:
            rec = TaskRecord(m.group(1))
            tasks[rec.name] = rec
            current[:] = [rec]
            started[rec.name] = time.perf_counter()
            return
        m = _FINISHED.search(line)
        if m and m.group(1) in tasks:
            rec = tasks[m.group(1)]
            rec.status = m.group(2)
            rec.seconds = time.perf_counter() - started[rec.name]
            if progress:
                with contextlib.redirect_stdout(terminal):  # not into the log tee
                    progress(rec)
            return
        if current:
            text = line.strip()
            if text.startswith(SAY_PREFIX):
                current[0].said.append(text[len(SAY_PREFIX):])
            elif text:
                current[0].tail = (current[0].tail + [text])[-30:]

    old_tmpdir = os.environ.get("TMPDIR")
    os.environ["TMPDIR"] = scratch
    outputs: dict[str, Any] = {}
    error = None
    with open(log_path, "w", encoding="utf-8") as log:
        tee = _LogTee(log, on_line, terminal if verbose else None)
        try:
            with contextlib.redirect_stdout(tee), warnings.catch_warnings():
                # kfp.local warns on every task that display names and the base image are
                # ignored locally: true, expected, and noise in a terminal
                warnings.filterwarnings("ignore", module=r"kfp\.local\..*")
                local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(run_root),
                           workspace_root=os.path.join(scratch, "workspace"), raise_on_error=True)
                task = pipeline(**arguments)
                outputs = dict(getattr(task, "outputs", {}) or {})
        except RuntimeError as exc:  # kfp: "Pipeline ... finished with status FAILURE ..."
            error = redact(_ANSI.sub("", str(exc)))
        finally:
            tee.close()
            if old_tmpdir is None:
                os.environ.pop("TMPDIR", None)
            else:
                os.environ["TMPDIR"] = old_tmpdir
            shutil.rmtree(scratch, ignore_errors=True)
    kfp_dirs = [p for p in run_root.iterdir() if p.is_dir()]
    run_dir = kfp_dirs[0] if len(kfp_dirs) == 1 else None
    if run_dir is not None:
        shutil.move(str(log_path), run_dir / LOG_NAME)
        log_path = run_dir / LOG_NAME
    return LocalRun(run_dir=run_dir, outputs=outputs, tasks=tasks, log_path=log_path, error=error)
