"""The first stage of every pipeline: which day is this run for?"""

from __future__ import annotations

from quantrec.data.windows import parse_run_date


def resolve_run_date(run_date: str, schedule_time: str) -> tuple[str, str]:
    """(YYYY-MM-DD, how it was decided). An explicit ``run_date`` wins; else the UTC day
    of ``schedule_time`` (KFP's pipeline-job schedule time, e.g. "2026-12-02T02:00:00Z");
    neither is an error naming both."""
    if run_date and run_date.strip():
        return str(parse_run_date(run_date).date()), "given"
    if schedule_time and schedule_time.strip() and "{{" not in schedule_time:
        return str(parse_run_date(schedule_time).date()), f"schedule time {schedule_time}"
    raise ValueError(f"no run date: run_date is empty and the schedule time is {schedule_time!r}; "
                     "pass run_date (YYYY-MM-DD) or start the run from a schedule")
