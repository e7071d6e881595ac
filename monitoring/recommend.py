"""The keep | rebuild recommendation, its JSON, the alert file, and how training reads it.

Rules: every health statistic, the rebuild gain and every Evidently column verdict
becomes a ``RuleResult`` (value, threshold, fired). Only the rules named in
``config.vote`` count; the codebook should be rebuilt when at least ``config.min_votes``
of them fire. The others are shown on the review page as context. The default vote is
the rebuild gain alone: on the weekly history it was the statistic that predicted
whether a rebuild lowers the following week's reconstruction error, while the
distribution-shift statistics (Evidently, occupancy, price points) mostly flag seasonal
shifts that a codebook refitted on a year of labels does not fit any better
(benchmarks/RESULTS.md, drift_history). The vote list and count are configurable.

Outcome, exit code (for ``quantrec monitor`` and schedulers) and alert:

    action    exit  alert  meaning
    keep      0     no     the codebook still fits the current labels
    rebuild   3     yes    rebuild recommended (reasons say which rules fired)
    error     1     yes    no verdict: bad input (empty / too small / stale window,
                           missing reference, codebook from another dataset, unreadable
                           data); ``error.type`` / ``error.message`` say what

``rebuild_decision(recommendation, mode)`` is what the training pipeline's
``rebuild_codebook: auto|true|false`` calls with the latest recommendation.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from typing import Any

import fsspec

from monitoring.config import MonitorConfig
from quantrec.redact import redact, redact_obj

SCHEMA = "quantrec.monitoring.recommendation/v1"
ACTIONS = ("keep", "rebuild", "error")
EXIT_KEEP, EXIT_ERROR, EXIT_REBUILD = 0, 1, 3
EXIT_CODES = {"keep": EXIT_KEEP, "rebuild": EXIT_REBUILD, "error": EXIT_ERROR}
REBUILD_MODES = ("auto", "true", "false")


def json_safe(obj: Any) -> Any:
    """A JSON-like tree with NaN / inf floats as None (strict JSON has no NaN) and numpy
    scalars as Python numbers."""
    if isinstance(obj, dict):
        return {str(k): json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    if hasattr(obj, "item") and not isinstance(obj, (str, bytes)):
        obj = obj.item()  # numpy scalar
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


@dataclass(frozen=True)
class RuleResult:
    """One rule: the statistic, its threshold, whether it fired and whether it votes."""

    rule: str
    value: float
    threshold: float
    fired: bool
    votes: bool
    message: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# (rule, HealthResult.metrics key, config threshold attr, comparison, message template)
_HEALTH_RULES = (
    ("rebuild_gain", "rebuild_gain", ">",
     "a rebuild would lower the current labels' reconstruction error by {v:.1%} (threshold {t:.1%})"),
    ("occupancy_js", "occupancy_js", ">", "layer-1 code occupancy shift: Jensen-Shannon distance {v:.3f} "
                                          "(threshold {t:g})"),
    ("occupancy_psi", "occupancy_psi", ">", "layer-1 code occupancy shift: PSI {v:.3f} (threshold {t:g})"),
    ("recon_ratio", "recon_ratio", ">",
     "reconstruction error of labels within the clip is {v:.2f}x its fit-time value (threshold {t:g}x)"),
    ("recon_mae_ratio", "recon_mae_ratio", ">",
     "reconstruction error of all labels is {v:.2f}x its fit-time value (threshold {t:g}x)"),
    ("above_clip_ratio", "above_clip_ratio", ">",
     "{v:.2f}x the fit-time share of labels above the clip (threshold {t:g}x)"),
    ("beyond_last_centroid_ratio", "beyond_last_centroid_ratio", ">",
     "{v:.2f}x the fit-time share of labels beyond the largest layer-1 centroid (threshold {t:g}x)"),
    ("dead_codes", "dead_codes", ">=", "{v:.0f} layer-1 code(s) went dead (threshold {t:g})"),
    ("overloaded_codes", "overloaded_codes", ">=", "{v:.0f} layer-1 code(s) overloaded (threshold {t:g})"),
    ("top_price_point_tv", "top_price_point_tv", ">",
     "shift of the mass at the top price points: total variation {v:.3f} (threshold {t:g})"),
)


def evaluate_rules(health_metrics: dict[str, float], drift: list[Any], config: MonitorConfig,
                   notes: dict[str, str] | None = None) -> list[RuleResult]:
    """Every rule's result. health_metrics: ``HealthResult.metrics()`` plus
    "rebuild_gain" (``CandidateResult.gain``); drift: the ``ColumnDrift`` list of
    ``drift.run_drift`` (Evidently's verdicts). notes: rule -> why it was not measured
    (a NaN value never fires; the note becomes its message)."""
    votes = set(config.vote)
    notes = notes or {}
    out = []
    for rule, key, op, msg in _HEALTH_RULES:
        v, t = float(health_metrics.get(key, float("nan"))), float(getattr(config.health, rule))
        if math.isnan(v):
            out.append(RuleResult(rule, v, t, False, rule in votes, f"{rule}: {notes.get(rule, 'not measured')}"))
            continue
        fired = v >= t if op == ">=" else v > t
        if rule == "rebuild_gain" and v < 0:  # "lower by -43%" reads badly
            text = f"a rebuild would raise the current labels' reconstruction error by {-v:.1%} (threshold: lower it by {t:.1%})"
        else:
            text = msg.format(v=v, t=t)
        out.append(RuleResult(rule, v, t, bool(fired), rule in votes, text))
    for d in drift:
        rule = f"drift:{d.column}"
        out.append(RuleResult(rule, float(d.value), float(d.threshold), bool(d.drifted), rule in votes,
                              f"Evidently: {d.column} {'drifted' if d.drifted else 'stable'} ({d.method} "
                              f"{d.value:.3f}, threshold {d.threshold:g})"))
    missing = votes - {r.rule for r in out}
    if missing:  # a voting drift column absent from the sketch: say so instead of silently not voting
        for rule in sorted(missing):
            out.append(RuleResult(rule, float("nan"), float("nan"), False, True,
                                  f"{rule}: not measured (the codebook's sketch lacks this column)"))
    return out


@dataclass
class Recommendation:
    """The JSON recommendation {action: keep|rebuild|error, reasons, metrics, ...}.

    reasons: human-readable sentences (the fired voting rules, or the error).
    rules: every rule's result. metrics: flat scalar statistics (health + drift).
    context: run_date, codebook_id (sha256 of the monitored codebook file's bytes, the
        registry's ``codebook_id``; None when an object was passed), codebook provenance
        summary, current window, data fingerprint, the rebuild candidate. ``to_dict`` puts
        run_date and codebook_id at the top level too (what the registry matches on).
    error: None, or {"type", "message", "suggested_action"} when action == "error".
    """

    action: str
    reasons: list[str]
    metrics: dict[str, float] = field(default_factory=dict)
    rules: list[RuleResult] = field(default_factory=list)
    context: dict[str, Any] = field(default_factory=dict)
    error: dict[str, str] | None = None
    config: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.action not in ACTIONS:
            raise ValueError(f"recommendation action must be one of {ACTIONS}, got {self.action!r}")

    @property
    def exit_code(self) -> int:
        return EXIT_CODES[self.action]

    @property
    def alert(self) -> bool:
        return self.action != "keep"

    @property
    def summary(self) -> str:
        """One line for logs, alert files and the page title."""
        if self.action == "error":
            return f"ERROR ({self.error['type']}): {self.error['message']}" if self.error else "ERROR"
        if self.action == "rebuild":
            return "REBUILD the codebook: " + "; ".join(self.reasons)
        return "KEEP the codebook: " + "; ".join(self.reasons)

    def to_dict(self) -> dict[str, Any]:
        return json_safe(redact_obj({
            "schema": SCHEMA, "run_date": self.context.get("run_date"), "codebook_id": self.context.get("codebook_id"),
            "action": self.action, "alert": self.alert, "exit_code": self.exit_code, "summary": self.summary,
            "reasons": list(self.reasons), "metrics": dict(self.metrics), "rules": [r.to_dict() for r in self.rules],
            "context": dict(self.context), "error": self.error, "config": dict(self.config)}))

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Recommendation":
        if not isinstance(d, dict) or d.get("schema") != SCHEMA:
            raise ValueError(f"not a monitoring recommendation (schema {d.get('schema') if isinstance(d, dict) else None!r},"
                             f" expected {SCHEMA!r})")
        return cls(action=d["action"], reasons=list(d.get("reasons", [])), metrics=dict(d.get("metrics", {})),
                   rules=[RuleResult(**{**r, "value": _num(r["value"]), "threshold": _num(r["threshold"])})
                          for r in d.get("rules", [])], context=dict(d.get("context", {})),
                   error=d.get("error"), config=dict(d.get("config", {})))

    def save(self, path: str) -> str:
        with fsspec.open(path, "w", encoding="utf-8") as f:
            json.dump(self.to_dict(), f, indent=1, allow_nan=False)
        return path

    @classmethod
    def load(cls, path: str) -> "Recommendation":
        with fsspec.open(path, "r", encoding="utf-8") as f:
            return cls.from_dict(json.load(f))


def _num(v: Any) -> float:
    return float("nan") if v is None else float(v)


def recommend(rules: list[RuleResult], config: MonitorConfig, metrics: dict[str, float] | None = None,
              context: dict[str, Any] | None = None) -> Recommendation:
    """keep | rebuild from the rule results: rebuild iff >= config.min_votes voting rules fired."""
    fired = [r for r in rules if r.votes and r.fired]
    n_vote = sum(r.votes for r in rules)
    if len(fired) >= config.min_votes:
        action, reasons = "rebuild", [r.message for r in fired]
    else:
        others = [r.rule for r in rules if r.fired and not r.votes]
        reasons = [f"{len(fired)} of {n_vote} voting rule(s) fired (a rebuild needs {config.min_votes})"
                   + (f": {', '.join(r.rule for r in fired)}" if fired else "")]
        reasons += [r.message for r in rules if r.votes and not r.fired]
        if others:
            reasons.append(f"non-voting rules that fired (context only): {', '.join(others)}")
        action = "keep"
    return Recommendation(action=action, reasons=reasons, metrics=dict(metrics or {}), rules=list(rules),
                          context=dict(context or {}), config=config.to_dict())


def error_recommendation(exc: BaseException, config: MonitorConfig | None = None,
                         context: dict[str, Any] | None = None) -> Recommendation:
    """The recommendation of a run that could not judge: action "error", the exception's
    type and (redacted) message, and what training's ``auto`` mode should do."""
    from monitoring.errors import MonitorError
    action = exc.suggested_action if isinstance(exc, MonitorError) else "keep"
    err = {"type": type(exc).__name__, "message": redact(str(exc)), "suggested_action": action}
    return Recommendation(action="error", reasons=[f"{err['type']}: {err['message']}"], context=dict(context or {}),
                          error=err, config=config.to_dict() if config else {})


def write_alert(rec: Recommendation, path: str, report: str | None = None) -> str:
    """The scheduler's alert file (always written, so a stale one is never read):
    {"alert": bool, "level": "ok"|"rebuild"|"error", "exit_code", "action", "summary",
    "run_date", "report"}."""
    level = {"keep": "ok", "rebuild": "rebuild", "error": "error"}[rec.action]
    body = {"alert": rec.alert, "level": level, "exit_code": rec.exit_code, "action": rec.action,
            "summary": rec.summary, "run_date": rec.context.get("run_date"), "report": report}
    with fsspec.open(path, "w", encoding="utf-8") as f:
        json.dump(json_safe(redact_obj(body)), f, indent=1, allow_nan=False)
    return path


def rebuild_decision(recommendation: Recommendation | dict[str, Any] | None, mode: str = "auto") -> tuple[bool, str]:
    """Whether the training pipeline should rebuild the codebook, and why.

    mode "true" / "false": forced. mode "auto": follow the latest monitoring
    recommendation (a ``Recommendation`` or its JSON dict): rebuild on "rebuild"; on
    "error" do what the error suggests (rebuild for a codebook from another dataset or
    one without provenance, keep otherwise); with no recommendation at all keep (there
    is nothing to act on; the caller reuses the champion's codebook when it has one).
    """
    mode = str(mode).lower()
    if mode not in REBUILD_MODES:
        raise ValueError(f"rebuild_codebook must be one of {REBUILD_MODES}, got {mode!r}")
    if mode != "auto":
        return mode == "true", f"rebuild_codebook={mode}"
    if recommendation is None:
        return False, "auto: no monitoring recommendation yet, keeping the current codebook"
    rec = recommendation if isinstance(recommendation, Recommendation) else Recommendation.from_dict(recommendation)
    when = rec.context.get("run_date", "?")
    if rec.action == "rebuild":
        return True, f"auto: monitoring on {when} recommended a rebuild ({'; '.join(rec.reasons)})"
    if rec.action == "error":
        err = rec.error or {}
        rebuild = err.get("suggested_action") == "rebuild"
        return rebuild, (f"auto: monitoring on {when} failed ({err.get('type')}: {err.get('message')}); "
                         + ("rebuilding" if rebuild else "keeping the current codebook"))
    return False, f"auto: monitoring on {when} recommended keeping the codebook"
