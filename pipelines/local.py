"""Run a pipeline locally with KFP's SubprocessRunner (no cluster, no Docker).

Each task runs as a subprocess of this interpreter, importing the installed project.
Artifacts land under ``pipeline_root/<pipeline>-<timestamp>/<task>/<output>``.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from kfp import local

from quantrec.data.spec import repo_root

DEFAULT_ROOT = repo_root() / "pipeline_root"


@dataclass
class LocalRun:
    run_dir: Path | None
    outputs: dict[str, Any]

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


def run_pipeline_locally(pipeline: Callable, arguments: dict[str, Any],
                         pipeline_root: str | Path = DEFAULT_ROOT) -> LocalRun:
    """Run ``pipeline(**arguments)`` with SubprocessRunner; raise if a task fails.

    A validation that fails does not raise: the gate returns False and the gated
    stages are skipped, which is a successful run that published nothing.
    """
    root = Path(pipeline_root).resolve()
    root.mkdir(parents=True, exist_ok=True)
    before = {p.name for p in root.iterdir()}
    # KFP leaves its workspace and every task's `mktemp -d` component folder in the temp
    # dir: point the tasks' TMPDIR (mktemp and tempfile honour it) at a folder we remove.
    scratch = tempfile.mkdtemp(prefix="quantrec-local-run-")
    old_tmpdir = os.environ.get("TMPDIR")
    os.environ["TMPDIR"] = scratch
    try:
        local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(root),
                   workspace_root=os.path.join(scratch, "workspace"), raise_on_error=True)
        task = pipeline(**arguments)
        outputs = dict(getattr(task, "outputs", {}) or {})
    finally:
        if old_tmpdir is None:
            os.environ.pop("TMPDIR", None)
        else:
            os.environ["TMPDIR"] = old_tmpdir
        shutil.rmtree(scratch, ignore_errors=True)
    new = [p for p in root.iterdir() if p.is_dir() and p.name not in before]
    run_dir = max(new, key=lambda p: p.stat().st_mtime) if new else None
    return LocalRun(run_dir=run_dir, outputs=outputs)
