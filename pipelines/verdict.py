"""A local run's verdict and what the terminal shows, read from the run's own outputs.

The exit status comes from each gate's output parameter and from the tasks' statuses,
never from which folders exist: a run whose task-table suites failed, or whose
training crashed, is a failed run even though validation passed.
"""

from __future__ import annotations

from typing import Any

from pipelines.local import LocalRun, TaskRecord

EXIT_OK, EXIT_FAILED = 0, 1
GATES = (("validate-data", "result", "data validation"), ("build-tasks", "table_checks", "task-table checks"))


def print_progress(rec: TaskRecord) -> None:
    """One line per finished task: status, name, seconds, the task's own summary."""
    mark = "ok  " if rec.status == "SUCCESS" else "FAIL"
    said = " | ".join(rec.said)
    print(f"  [{mark}] {rec.name:<18} {rec.seconds:6.1f} s  {said}", flush=True)


def _failed_checks(meta: dict[str, Any]) -> str:
    names = meta.get("failed_expectations") or []
    return "; ".join(map(str, names[:8])) + (f" (+{len(names) - 8} more)" if len(names) > 8 else "")


def daily_verdict(run: LocalRun) -> tuple[int, list[str]]:
    """(exit code, summary lines) of a daily-pipeline run."""
    lines = [f"run folder: {run.run_dir}"]
    code, verdict = EXIT_OK, "PASSED"
    for task, output, label in GATES:
        passed = run.parameter(task)
        if passed is False:
            meta = run.artifact_metadata(task, output)
            verdict = f"FAILED: {label} did not pass: {_failed_checks(meta) or meta.get('error') or 'see the report'}"
            code = EXIT_FAILED
            lines.append("nothing was trained or published: the gate stopped the run")
            break
    failed = run.failed_task
    if code == EXIT_OK and (run.error or failed is not None):
        code = EXIT_FAILED
        if failed is not None:
            tail = [t for t in failed.tail if "Traceback" not in t][-3:]
            verdict = f"FAILED: task {failed.name} failed: " + (" | ".join(tail) or run.error or "")
        else:
            verdict = f"FAILED: {run.error}"
    if code == EXIT_OK and run.parameter("validate-data") is None:
        code, verdict = EXIT_FAILED, "FAILED: the validation task did not run"
    version = run.parameter("publish")
    if code == EXIT_OK:
        lines.append(f"published: {version}" if version else "published: nothing (no registry)")
        blessed = run.parameter("shadow-compare")
        if blessed is not None:
            reasons = run.artifact_metadata("shadow-compare", "decision").get("reasons", "")
            lines.append(f"shadow decision: {'blessed' if blessed else 'not blessed'}"
                         + (f" ({reasons})" if reasons else ""))
        champion = run.parameter("promote")
        if champion is not None:
            lines.append(f"champion: {champion}")
        cache = run.parameter("refresh-cache")
        if cache is not None:
            meta = run.artifact_metadata("refresh-cache", "report")
            lines.append(f"serving cache: {cache}" + (f" ({meta.get('reason')})" if meta.get("reason") else ""))
    lines.append(f"verdict: {verdict}")
    reports = run.reports()
    if reports:
        lines.append("reports (HTML, open in a browser):")
        lines += [f"  {p}" for p in reports]
    if run.log_path:
        lines.append(f"full log: {run.log_path}")
    return code, lines


MONITOR_EXIT = {"keep": 0, "rebuild": 3, "error": 1}


def monitoring_verdict(run: LocalRun) -> tuple[int, list[str]]:
    """(exit code, summary lines) of a monitoring-pipeline run: 0 keep, 3 rebuild
    recommended (alert), 1 error or a failed run (alert)."""
    lines = [f"run folder: {run.run_dir}"]
    action = run.parameter("monitor")
    if action is None:
        failed = run.failed_task
        tail = " | ".join(t for t in (failed.tail if failed else []) if "Traceback" not in t)[-300:]
        return 1, lines + [f"verdict: FAILED: the monitoring task did not finish: {tail or run.error}"]
    meta = run.artifact_metadata("monitor", "recommendation")
    lines.append(f"recommendation: {meta.get('summary', action)}")
    lines.append(f"review page: {run.run_dir / 'monitor' / 'review'}")
    lines.append(f"alert file: {run.run_dir / 'monitor' / 'alert'}")
    if run.log_path:
        lines.append(f"full log: {run.log_path}")
    return MONITOR_EXIT.get(action, 1), lines
