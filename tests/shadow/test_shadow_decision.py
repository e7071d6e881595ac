"""Decision rules with TFX semantics, on hand-made estimates."""

from __future__ import annotations

import math

import pytest

from quantrec.shadow.bootstrap import Estimate
from quantrec.shadow.decision import ThresholdRule, decide, default_rules
from quantrec.shadow.replay import metric_names, slice_names

METRICS, SLICES = metric_names((1, 5, 10)), slice_names((20, 100))


def est(point, lo, hi):
    return Estimate(point, lo, hi, 0.1, 1000)


def lookup_from(table):
    def lookup(rule):
        key = (rule.kind, rule.against if rule.kind == "change" else None, rule.metric, rule.slice)
        return table.get(key)
    return lookup


GOOD = {("change", "baseline", "GMV@10", "all"): est(0.10, 0.02, 0.20),
        ("change", "baseline", "AUC", "all"): est(0.01, -0.002, 0.02),
        ("change", "champion", "GMV@10", "all"): est(0.0, -0.03, 0.03),
        ("change", "champion", "AUC", "all"): est(0.0, -0.001, 0.001)}


def test_default_rules_bless_a_clear_improvement_and_say_why():
    d = decide(default_rules(), lookup_from(GOOD), has_champion=True, names={"baseline": "WLR"})
    assert d.blessed
    assert len(d.reasons) == 4 and all(r.startswith("PASS") for r in d.reasons)
    assert "(WLR)" in d.reasons[0] and "CI-low" in d.reasons[0]


def test_no_thresholds_never_bless():
    d = decide([], lookup_from(GOOD), has_champion=True)
    assert not d.blessed and "no thresholds configured" in d.reasons[0]


def test_zero_change_fails_a_zero_epsilon_rule_strictly():
    rule = [ThresholdRule("GMV@10", relative=True)]
    at_zero = decide(rule, lookup_from({("change", "baseline", "GMV@10", "all"): est(0.05, 0.0, 0.1)}), True)
    assert not at_zero.blessed
    assert at_zero.reasons[0].startswith("FAIL GMV@10 [all] relative change vs baseline: CI-low > 0")
    above = decide(rule, lookup_from({("change", "baseline", "GMV@10", "all"): est(0.05, 1e-9, 0.1)}), True)
    assert above.blessed


def test_the_ci_bound_decides_not_the_point():
    table = {("change", "baseline", "GMV@10", "all"): est(0.08, -0.01, 0.17)}  # good point, CI crosses 0
    assert not decide([ThresholdRule("GMV@10")], lookup_from(table), True).blessed
    assert decide([ThresholdRule("GMV@10", bound="point")], lookup_from(table), True).blessed


def test_lower_is_better_uses_the_upper_bound():
    rule = ThresholdRule("MAE", epsilon=0.5)
    assert rule.better == "lower" and rule.statistic == "ci_high" and rule.limit == 0.5
    ok = {("change", "baseline", "MAE", "all"): est(-1.0, -2.0, 0.4)}
    bad = {("change", "baseline", "MAE", "all"): est(-1.0, -2.0, 0.6)}
    assert decide([rule], lookup_from(ok), True).blessed
    assert not decide([rule], lookup_from(bad), True).blessed


def test_a_missing_metric_fails_and_is_named():
    rules = [ThresholdRule("GMV@10"), ThresholdRule("GAUC", slice="new_users")]
    table = {("change", "baseline", "GMV@10", "all"): est(0.1, 0.05, 0.2),
             ("change", "baseline", "GAUC", "new_users"): est(math.nan, math.nan, math.nan)}
    d = decide(rules, lookup_from(table), True)
    assert not d.blessed
    assert d.reasons == [d.checks[1].message] and "MISSING GAUC [new_users]" in d.reasons[0]
    d2 = decide([ThresholdRule("GMV@10"), ThresholdRule("AUC", slice="long_tail")], lookup_from(table), True)
    assert not d2.blessed and "MISSING AUC [long_tail]" in d2.reasons[0]


def test_failing_required_slice_blocks_and_optional_only_warns():
    table = dict(GOOD)
    table[("change", "baseline", "GMV@10", "long_tail")] = est(-0.2, -0.4, -0.1)
    required = [ThresholdRule("GMV@10", relative=True), ThresholdRule("GMV@10", slice="long_tail", epsilon=0.05)]
    d = decide(required, lookup_from(table), True)
    assert not d.blessed and "GMV@10 [long_tail]" in d.reasons[0]
    optional = [required[0], ThresholdRule("GMV@10", slice="long_tail", epsilon=0.05, required=False)]
    d = decide(optional, lookup_from(table), True)
    assert d.blessed and any("GMV@10 [long_tail]" in w for w in d.warnings)


def test_first_run_is_judged_against_the_baseline_only_never_rubber_stamped():
    d = decide(default_rules(), lookup_from(GOOD), has_champion=False)
    assert d.blessed
    assert [c.status for c in d.checks] == ["pass", "pass", "skipped", "skipped"]
    assert any("no champion" in w for w in d.warnings)
    only_champion = [r for r in default_rules() if r.against == "champion"]
    d = decide(only_champion, lookup_from(GOOD), has_champion=False)
    assert not d.blessed and "no required change threshold" in d.reasons[-1]
    values_only = [ThresholdRule("AUC", kind="value", threshold=0.5)]
    table = {("value", None, "AUC", "all"): est(0.7, 0.65, 0.75)}
    d = decide(values_only, lookup_from(table), has_champion=False)
    assert not d.blessed and "rubber stamp" in d.reasons[-1]
    assert d.checks[0].status == "pass"


def test_value_rule_thresholds_the_challenger_metric():
    table = {("value", None, "AUC", "all"): est(0.7, 0.58, 0.75), **GOOD}
    rules = [ThresholdRule("GMV@10"), ThresholdRule("AUC", kind="value", threshold=0.6)]
    d = decide(rules, lookup_from(table), True)
    assert not d.blessed and "AUC [all] value: CI-low >= +0.6" in d.reasons[0]
    rules[1] = ThresholdRule("AUC", kind="value", threshold=0.55)
    assert decide(rules, lookup_from(table), True).blessed


@pytest.mark.parametrize("kwargs, match", [
    ({"metric": "GMV@20"}, "unknown metric"),
    ({"metric": "AUC", "slice": "vip"}, "unknown slice"),
    ({"metric": "AUC", "kind": "delta"}, "kind must be one of"),
    ({"metric": "AUC", "direction": "up"}, "direction must be one of"),
    ({"metric": "AUC", "bound": "mean"}, "bound must be one of"),
    ({"metric": "AUC", "against": "prod"}, "against must be one of"),
    ({"metric": "AUC", "kind": "value"}, "needs a finite 'threshold'"),
    ({"metric": "AUC", "kind": "value", "threshold": 0.6, "relative": True}, "do not apply"),
    ({"metric": "AUC", "threshold": 0.6}, "uses 'epsilon'"),
])
def test_rule_validation_names_the_problem(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ThresholdRule(**kwargs).validate(METRICS, SLICES, where="shadow.thresholds[0]")
