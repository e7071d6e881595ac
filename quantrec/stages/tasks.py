"""Stage ``build_tasks``: task tables from the validated snapshot, and their GX suites."""

from __future__ import annotations

from typing import Any

from quantrec.codebook.provenance import dataset_fingerprint
from quantrec.config import RunConfig
from quantrec.data.snapshot import read_snapshot
from quantrec.data.spec import load_spec
from quantrec.data.tasks import TABLE_NAMES, tables_from_raw, write_table


def build_tasks_stage(snapshot_path: str, snapshot_digest: str | None, run_date: str, spec: str | None,
                      config: RunConfig, table_paths: dict[str, str], checks_path: str,
                      report_path: str) -> tuple[bool, dict[str, Any]]:
    """Clean -> windows -> every task table of ``TABLE_NAMES`` written to ``table_paths``;
    then the tables' suites (JSON + HTML). Returns (passed, summary) where the summary
    holds rows per table and split, the windows, the cleaning counts, the tables left empty
    on purpose and why (``skipped``: gmv and ltv of an interaction table), the check verdict and
    the dataset fingerprint (``codebook.provenance.dataset_fingerprint``: which dataset
    this is, stable across run dates; codebooks carry it).
    ``snapshot_digest``: the digest the gate recorded; a changed snapshot is refused."""
    from validation.runner import run_task_table_validation

    missing = set(TABLE_NAMES) - set(table_paths)
    if missing:
        raise ValueError(f"build_tasks_stage needs an output path for every table; missing {sorted(missing)}")
    raw = read_snapshot(snapshot_path, snapshot_digest)
    spec_obj = load_spec(spec)
    tt = tables_from_raw(raw, run_date, spec_obj, config.tasks)
    for name in TABLE_NAMES:
        write_table(tt.tables[name], table_paths[name], name)
    checks = run_task_table_validation(tt.tables, tt.windows, run_date, skipped=tt.skipped)
    checks.write(checks_path, report_path)
    summary = {"rows": tt.sizes(), "windows": tt.windows.to_dict(), "cleaning": tt.cleaning.to_dict(),
               "skipped": dict(tt.skipped),
               "checks": checks.summary(), "message": checks.message(),
               "dataset_fingerprint": dataset_fingerprint(spec_obj, tt.tables["events"])}
    return checks.passed, summary
