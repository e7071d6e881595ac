"""Stage ``validate_data``: the Great Expectations gate, its report, and the snapshot.

The gate judges the rows a run reads; when they pass, exactly those canonical rows are
written as the run's snapshot, which task building reads (what trains is what was
validated). A failed gate writes its report and no snapshot rows.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from quantrec.config import RunConfig
from quantrec.data.snapshot import write_snapshot
from quantrec.redact import redact_obj


def validate_stage(run_date: str, data: str | None, spec: str | None, config: RunConfig,
                   result_path: str, report_path: str, snapshot_path: str) -> tuple[bool, dict[str, Any]]:
    """Validate the data before ``run_date``; write the JSON result, the HTML report and
    the snapshot (an empty table when the gate fails). Returns (passed, summary); the
    summary is redacted and flat enough for KFP artifact metadata."""
    from validation.runner import run_validation

    res = run_validation(run_date, data=data, spec_path=spec, window_config=config.tasks.windows)
    res.write(result_path, report_path)
    frame = res.frame if res.passed and res.frame is not None else pd.DataFrame()
    snap = write_snapshot(frame, snapshot_path)
    summary = {**res.summary(), "snapshot": snap, "message": res.message()}
    return res.passed, redact_obj(summary)
