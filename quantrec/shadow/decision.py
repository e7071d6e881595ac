"""The blessing decision: explicit thresholds with TFX Evaluator semantics, on CI bounds.

A rule (``ThresholdRule``, built from the run config's ``shadow.thresholds`` list):

    {"metric": "GMV@10", "slice": "all", "kind": "change", "relative": true,
     "against": "baseline", "direction": "auto", "bound": "conservative",
     "epsilon": 0.0, "required": true}

- kind "change": the challenger minus the reference arm ("baseline" = production WLR,
  or "champion" = the model serving now), absolute or ``relative`` (divided by the
  reference's value). Higher-is-better passes iff the tested statistic > -epsilon;
  lower-is-better iff it < +epsilon. Strict: a zero change never passes epsilon 0, so
  epsilon 0 asks for a significant improvement, epsilon > 0 for non-inferiority
  within a margin, epsilon < 0 for an improvement of at least -epsilon.
- kind "value": the challenger's own metric; higher passes iff statistic >= threshold,
  lower iff statistic <= threshold.
- bound: the statistic tested. "conservative" (default) = the unfavourable end of the
  bootstrap CI (ci_low when higher is better, ci_high when lower is better); or
  explicitly "ci_low", "ci_high", "point". Blessing on a CI bound, not the point
  estimate, is what keeps noise from promoting a model.
- direction: "auto" = the metric's own (GMV@k, NDCG, AUC, GAUC, XAUC higher; MAE lower).

Decision (``decide``), TFX semantics:
- no rule configured -> not blessed;
- a rule whose metric is missing (slice empty, metric undefined, CI undefined) fails;
- any failing required rule -> not blessed (optional rules only warn);
- a change rule against the champion is skipped when there is no champion, and a
  model is blessed only if at least one required change rule that applies passed:
  the first run is blessed only by beating the baseline, never rubber-stamped.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Callable

from quantrec.shadow.bootstrap import Estimate
from quantrec.shadow.replay import metric_direction

__all__ = ["ThresholdRule", "RuleCheck", "Decision", "decide", "default_rules", "RULE_KINDS", "BOUNDS",
           "REFERENCES", "DEFAULT_EPSILON"]

RULE_KINDS = ("change", "value")
DIRECTIONS = ("auto", "higher", "lower")
BOUNDS = ("conservative", "ci_low", "ci_high", "point")
REFERENCES = ("baseline", "champion")

# Non-inferiority margins of the default rules (how they were chosen: DEFAULT_RULES_NOTE).
DEFAULT_EPSILON = {"GMV@10 relative": 0.05, "AUC": 0.005}
DEFAULT_RULES_NOTE = (
    "Default rules: against the production baseline the challenger must raise GMV@10 "
    "significantly (CI-low of the relative change > 0) and must not lose more than 0.005 "
    "AUC (CI-low of the AUC change > -0.005); against the champion it must not lose more "
    "than 5% GMV@10 (CI-low > -5%) nor 0.005 AUC. The margins are twice the 95% CI "
    "half-widths measured for a near-equivalent pair of arms on a 14-day Online Retail II "
    "replay window (2.4% and 0.0025; benchmarks/RESULTS.md, shadow_bootstrap), so an "
    "equivalent retrained model passes with high probability there while a loss larger "
    "than the margin passes with at most 2.5%. On the 1-day default eval window the "
    "half-widths are about 4.7% and 0.008 (34 requests): an equivalent model then passes "
    "only about half of the days; promotion decisions need a window of about a week or more.")

@dataclass
class ThresholdRule:
    """One threshold of the blessing decision (see the module docstring)."""

    metric: str
    slice: str = "all"
    kind: str = "change"
    direction: str = "auto"
    bound: str = "conservative"
    epsilon: float = 0.0
    threshold: float | None = None
    relative: bool = False
    against: str = "baseline"
    required: bool = True

    def validate(self, metrics: list[str], slices: list[str], where: str = "threshold") -> None:
        """Raise ValueError naming ``where`` and the field for an invalid rule."""
        if self.metric not in metrics:
            raise ValueError(f"{where}: unknown metric {self.metric!r}; known: {metrics}")
        if self.slice not in slices:
            raise ValueError(f"{where}: unknown slice {self.slice!r}; known: {slices}")
        for name, value, allowed in (("kind", self.kind, RULE_KINDS), ("direction", self.direction, DIRECTIONS),
                                     ("bound", self.bound, BOUNDS), ("against", self.against, REFERENCES)):
            if value not in allowed:
                raise ValueError(f"{where}: {name} must be one of {list(allowed)}, got {value!r}")
        if not math.isfinite(self.epsilon):
            raise ValueError(f"{where}: epsilon must be finite")
        if self.kind == "value":
            if self.threshold is None or not math.isfinite(self.threshold):
                raise ValueError(f"{where}: a value rule needs a finite 'threshold'")
            if self.epsilon != 0.0 or self.relative or self.against != "baseline":
                raise ValueError(f"{where}: a value rule tests the challenger's own metric: "
                                 "'epsilon', 'relative' and 'against' do not apply (use 'threshold')")
        elif self.threshold is not None:
            raise ValueError(f"{where}: a change rule uses 'epsilon' (the margin), not 'threshold'")

    @property
    def better(self) -> str:
        """"higher" or "lower"."""
        return metric_direction(self.metric) if self.direction == "auto" else self.direction

    @property
    def statistic(self) -> str:
        """"ci_low", "ci_high" or "point": what is compared with the limit."""
        if self.bound == "conservative":
            return "ci_low" if self.better == "higher" else "ci_high"
        return self.bound

    @property
    def limit(self) -> float:
        if self.kind == "value":
            return float(self.threshold)
        return 0.0 - self.epsilon if self.better == "higher" else self.epsilon + 0.0  # no -0.0

    def passes(self, tested: float) -> bool:
        if self.kind == "value":
            return tested >= self.limit if self.better == "higher" else tested <= self.limit
        return tested > self.limit if self.better == "higher" else tested < self.limit

    def describe(self) -> str:
        """e.g. 'GMV@10 [all] relative change vs baseline: CI-low > 0'."""
        stat = {"ci_low": "CI-low", "ci_high": "CI-high", "point": "point"}[self.statistic]
        if self.kind == "value":
            op = ">=" if self.better == "higher" else "<="
            return f"{self.metric} [{self.slice}] value: {stat} {op} {_num(self.limit)}"
        op = ">" if self.better == "higher" else "<"
        what = "relative change" if self.relative else "change"
        limit = _pct(self.limit) if self.relative else _num(self.limit)
        return f"{self.metric} [{self.slice}] {what} vs {self.against}: {stat} {op} {limit}"

    def to_dict(self) -> dict:
        return asdict(self)


def _num(v: float) -> str:
    return "nan" if not math.isfinite(v) else f"{v:+.4g}" if v != 0 else "0"


def _pct(v: float) -> str:
    return "nan" if not math.isfinite(v) else f"{100 * v:+.2f}%" if v != 0 else "0"


def default_rules() -> list[ThresholdRule]:
    """The daily run's rule set (DEFAULT_RULES_NOTE says how the margins were chosen)."""
    gmv_eps, auc_eps = DEFAULT_EPSILON["GMV@10 relative"], DEFAULT_EPSILON["AUC"]
    return [
        ThresholdRule("GMV@10", "all", "change", relative=True, against="baseline", epsilon=0.0),
        ThresholdRule("AUC", "all", "change", against="baseline", epsilon=auc_eps),
        ThresholdRule("GMV@10", "all", "change", relative=True, against="champion", epsilon=gmv_eps),
        ThresholdRule("AUC", "all", "change", against="champion", epsilon=auc_eps),
    ]


@dataclass
class RuleCheck:
    """The outcome of one rule against one reference.

    status: "pass", "fail", "missing" (the metric or its CI is undefined: counts as a
    failure) or "skipped" (a champion rule with no champion).
    """

    rule: ThresholdRule
    status: str
    message: str
    reference: str | None = None
    tested: float | None = None
    estimate: Estimate | None = None

    @property
    def failed(self) -> bool:
        return self.status in ("fail", "missing")

    def to_dict(self) -> dict:
        return {"rule": self.rule.to_dict(), "description": self.rule.describe(), "status": self.status,
                "reference": self.reference, "statistic": self.rule.statistic,
                "tested": self.tested if self.tested is not None and math.isfinite(self.tested) else None,
                "limit": self.rule.limit, "estimate": self.estimate.to_dict() if self.estimate else None,
                "message": self.message}


@dataclass
class Decision:
    """blessed + why. reasons: for a rejection the failing required checks and other
    blocking causes; for a blessing the checks that passed. warnings: failing optional
    rules and skipped ones."""

    blessed: bool
    reasons: list[str]
    warnings: list[str] = field(default_factory=list)
    checks: list[RuleCheck] = field(default_factory=list)


Lookup = Callable[[ThresholdRule], "Estimate | None"]


def _format_estimate(rule: ThresholdRule, est: Estimate, ci_level: float) -> str:
    fmt = _pct if rule.kind == "change" and rule.relative else _num
    return f"point {fmt(est.point)}, {round(100 * ci_level)}% CI [{fmt(est.ci_low)}, {fmt(est.ci_high)}]"


def check_rule(rule: ThresholdRule, lookup: Lookup, has_champion: bool, names: dict[str, str],
               ci_level: float) -> RuleCheck:
    """Evaluate one rule; ``lookup(rule)`` returns the estimate it tests (the delta vs its
    reference for a change rule, the challenger's metric for a value rule) or None."""
    reference = rule.against if rule.kind == "change" else None
    label = rule.describe()
    if reference == "champion" and not has_champion:
        return RuleCheck(rule, "skipped", f"SKIPPED {label}: no champion yet", reference)
    if reference is not None:
        label += f" ({names.get(reference, reference)})"
    est = lookup(rule)
    tested = est.get(rule.statistic) if est is not None else math.nan
    if est is None or not math.isfinite(tested):
        why = "no such slice or metric" if est is None else (
            "metric undefined" if not math.isfinite(est.point) else "confidence interval undefined")
        return RuleCheck(rule, "missing", f"MISSING {label}: {why} (a missing metric fails)",
                         reference, None, est)
    fmt = _pct if rule.kind == "change" and rule.relative else _num
    ok = rule.passes(tested)
    detail = f"tested {fmt(tested)}; {_format_estimate(rule, est, ci_level)}; {rule.better} is better"
    return RuleCheck(rule, "pass" if ok else "fail", f"{'PASS' if ok else 'FAIL'} {label}: {detail}",
                     reference, tested, est)


def decide(rules: list[ThresholdRule], lookup: Lookup, has_champion: bool,
           names: dict[str, str] | None = None, ci_level: float = 0.95) -> Decision:
    """Apply ``rules`` (see the module docstring). names: reference -> arm name, for messages."""
    names = names or {}
    if not rules:
        return Decision(False, ["no thresholds configured: a model is never blessed without explicit thresholds"])
    checks = [check_rule(r, lookup, has_champion, names, ci_level) for r in rules]
    applied = [c for c in checks if c.status != "skipped"]
    required = [c for c in applied if c.rule.required]
    blocking = [c.message for c in required if c.failed]
    warnings = [c.message for c in applied if not c.rule.required and c.failed]
    skipped = [c for c in checks if c.status == "skipped"]
    if skipped:
        warnings.append(f"no champion: {len(skipped)} champion rule(s) skipped; "
                        "this run is judged against the baseline only")
    if not any(c.rule.kind == "change" for c in required):
        blocking.append("no required change threshold applies to this run: a model is blessed only by "
                        "beating its references, never on its own values (rubber stamp)")
    if blocking:
        return Decision(False, blocking, warnings, checks)
    return Decision(True, [c.message for c in required], warnings, checks)
