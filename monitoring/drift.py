"""Evidently 0.7 drift check of the GMV label, log GMV, unit price and quantity.

Reference: the codebook's provenance sketch as a frame of quantile points
(``ReferenceSketch.reference_frame``: n_quantiles equally weighted points per column,
whose empirical distribution is the training labels' to 0.1% resolution). Current:
the lines of the monitoring window.

Every column gets an explicit ``ValueDrift(method, threshold)`` from the config:
Evidently's default would pick K-S p-values for a reference of <= 1,000 rows and a
distance above it (values that read in opposite directions), and flags nearly any
shift of a large sample. A column's verdict is Evidently's own test status (FAIL =
drifted), which knows whether the method is a distance or a p-value.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd

from monitoring.config import DRIFT_COLUMNS, DriftConfig
from quantrec.data import schema as S


@dataclass(frozen=True)
class ColumnDrift:
    """One column's Evidently result: the statistic, its threshold and the verdict."""

    column: str
    method: str
    threshold: float
    value: float
    drifted: bool
    description: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def current_frame(lines: pd.DataFrame) -> pd.DataFrame:
    """The drift columns of cleaned purchase lines: gmv, log_gmv, unit_price, quantity."""
    missing = [c for c in (S.VALUE, S.UNIT_PRICE, S.QUANTITY) if c not in lines.columns]
    if missing:
        raise ValueError(f"current lines lack the column(s) {missing}")
    gmv = lines[S.VALUE].to_numpy(np.float64)
    return pd.DataFrame({"gmv": gmv, "log_gmv": np.log1p(np.clip(gmv, 0, None)),
                         "unit_price": lines[S.UNIT_PRICE].to_numpy(np.float64),
                         "quantity": lines[S.QUANTITY].to_numpy(np.float64)})


def _check_methods(tests: dict[str, Any]) -> None:
    """A method Evidently does not know for numerical columns -> ValueError naming the key."""
    from evidently.legacy.calculations.stattests.registry import get_registered_stattest
    from evidently.legacy.core import ColumnType
    for col, t in tests.items():
        try:
            get_registered_stattest(t.method, ColumnType.Numerical)
        except ValueError as exc:
            raise ValueError(f"monitoring config drift.{col}.method={t.method!r}: {exc}") from None


def run_drift(reference: pd.DataFrame, current: pd.DataFrame, config: DriftConfig = DriftConfig(),
              ) -> tuple[list[ColumnDrift], Any]:
    """Evidently report over the drift columns present in both frames.

    reference / current: frames with (some of) ``DRIFT_COLUMNS``. Returns the per-column
    results (in ``DRIFT_COLUMNS`` order) and the Evidently snapshot (``save_html`` /
    ``dict``). A column missing from the reference (a sketch built without unit price
    or quantity) is skipped, not invented.
    """
    os.environ.setdefault("DO_NOT_TRACK", "1")  # Evidently telemetry off
    from evidently import DataDefinition, Dataset, Report
    from evidently.metrics import ValueDrift

    tests = {c: t for c, t in config.tests().items() if c in reference.columns and c in current.columns}
    if not tests:
        raise ValueError(f"no drift column is in both frames (reference has {list(reference.columns)}, "
                         f"current {list(current.columns)}); expected some of {DRIFT_COLUMNS}")
    _check_methods(tests)
    cols = list(tests)
    definition = DataDefinition(numerical_columns=cols)
    report = Report([ValueDrift(column=c, method=t.method, threshold=float(t.threshold)) for c, t in tests.items()],
                    include_tests=True)
    # Evidently 0.7: current FIRST, then reference.
    snapshot = report.run(Dataset.from_pandas(current[cols].reset_index(drop=True), data_definition=definition),
                          Dataset.from_pandas(reference[cols].reset_index(drop=True), data_definition=definition))
    d = snapshot.dict()
    values = {m["config"]["column"]: float(m["value"]) for m in d["metrics"]}
    tests_out = {t["metric_config"]["params"]["column"]: t for t in d["tests"]}
    results = []
    for c, t in tests.items():
        if c not in values or c not in tests_out:
            raise RuntimeError(f"Evidently returned no drift result for column {c!r}")
        status = getattr(tests_out[c]["status"], "value", tests_out[c]["status"])  # TestStatus enum or str
        results.append(ColumnDrift(column=c, method=t.method, threshold=float(t.threshold), value=values[c],
                                   drifted=status == "FAIL", description=str(tests_out[c].get("description", ""))))
    return results, snapshot
