"""Drift monitoring of the GMV price clustering: is the codebook still right for the data?

Public API (no kfp import here: components and the CLI call these)::

    run_monitor(run_date, codebook, data=..., spec=..., config=..., out_dir=...) -> MonitorResult
        .exit_code (0 keep, 3 rebuild recommended, 1 error / bad input), .action,
        .recommendation (keep | rebuild | error, reasons, metrics), .paths
    MonitorConfig.from_dict({...})                 # thresholds, window, votes
    rebuild_decision(recommendation, "auto"|"true"|"false") -> (bool, reason)
    Recommendation.load(path) / .save(path)

Modules: config (MonitorConfig), drift (Evidently column checks), health (codebook
occupancy / price points / reconstruction), recommend (rules -> keep | rebuild, JSON,
alert file), report (the HTML review page), run (the entry point), errors.
The codebook's provenance (reference sketch) lives in quantrec.codebook.provenance.
"""

from monitoring.config import MonitorConfig
from monitoring.errors import (CodebookMismatch, EmptyWindow, InsufficientData, MissingReference, MonitorError,
                               StaleData)
from monitoring.recommend import (EXIT_ERROR, EXIT_KEEP, EXIT_REBUILD, Recommendation, rebuild_decision)
from monitoring.run import MonitorResult, run_monitor

__all__ = ["MonitorConfig", "MonitorResult", "run_monitor", "Recommendation", "rebuild_decision",
           "EXIT_KEEP", "EXIT_REBUILD", "EXIT_ERROR", "MonitorError", "EmptyWindow", "InsufficientData",
           "StaleData", "MissingReference", "CodebookMismatch"]
