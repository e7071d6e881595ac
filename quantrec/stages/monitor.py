"""Stage ``monitor`` of the monitoring pipeline: drift of the GMV price clustering
against the serving codebook, and the keep / rebuild recommendation.

The codebook judged is the registry champion's (or an explicit file); the
recommendation is recorded in the registry, where the training pipeline's
``rebuild_codebook=auto`` reads it (``stages.champion``).
"""

from __future__ import annotations

from typing import Any

from quantrec.registry import Registry
from quantrec.stages.champion import CODEBOOK


def monitor_stage(run_date: str, data: str | None, spec: str | None, registry: str, codebook: str,
                  config: dict[str, Any] | None, html_path: str, recommendation_path: str,
                  alert_path: str) -> Any:
    """Monitor the champion's codebook (or ``codebook``, a file URL, when given) on the
    data before ``run_date``; write the review page, the recommendation and the alert;
    record the recommendation in the registry. Returns ``monitoring.run.MonitorResult``
    (``.action`` keep | rebuild | error, ``.exit_code`` 0 | 3 | 1). Never raises for a
    missing champion: that is an "error" recommendation (nothing to monitor), alerted."""
    from monitoring.run import run_monitor

    reg = Registry(registry) if registry else None
    source, version = codebook, ""
    if not source and reg is not None:
        champ = reg.champion()
        if champ is not None and champ.has(CODEBOOK):
            source, version = champ.artifact(CODEBOOK), champ.name
    if not source:
        source = "(no champion codebook: run the daily pipeline with a registry first, or pass a codebook)"
    result = run_monitor(run_date, source, data=data, spec=spec, config=config, html_path=html_path,
                         recommendation_path=recommendation_path, alert_path=alert_path)
    if reg is not None:
        record = result.recommendation.to_dict()
        record["champion"] = version or None
        reg.record_recommendation(str(record.get("run_date") or run_date), record)
    return result
