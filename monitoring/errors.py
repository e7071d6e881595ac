"""Why a monitoring run could not give a verdict, and what the training pipeline should do.

Every error is a ValueError subclass whose message names the file / window / key at
fault. ``suggested_action`` is what ``recommend.rebuild_decision(..., "auto")`` does
with a recommendation that carries the error:

- "rebuild": the codebook itself is unusable for this data (fitted on another
  dataset, or it has no provenance and so can never be monitored): a rebuild both
  fixes the problem and gives a codebook that can be monitored.
- "keep": nothing is known about the codebook (no or too little current data, stale
  data, unreadable data): keep what serves, but the run still alerts (exit code 1).
"""

from __future__ import annotations


class MonitorError(ValueError):
    """A monitoring run could not produce a keep / rebuild verdict."""

    suggested_action = "keep"


class EmptyWindow(MonitorError):
    """No purchase lines in the current window."""


class InsufficientData(MonitorError):
    """Too few lines in the current window for a verdict (``min_current_lines``)."""


class StaleData(MonitorError):
    """The newest line is older than ``max_staleness_days`` before run_date."""


class MissingReference(MonitorError):
    """The codebook file is absent, or it carries no provenance (reference sketch)."""

    suggested_action = "rebuild"


class CodebookMismatch(MonitorError):
    """The codebook was fitted on another dataset (fingerprint) or is not monitorable."""

    suggested_action = "rebuild"


class NoPrices(MonitorError):
    """The dataset is an interaction table (its spec maps no price): it has no GMV codebook."""
