"""run_shadow end to end on a real replay slice (Online Retail II, 2 eval days, ~110
requests of 107 users): the baseline itself is not blessed, a broken challenger is
rejected with reasons naming the metrics, a clearly better one is blessed, a missing
configured metric fails; the artifacts are written and the config is typed."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from quantrec.shadow.compare import Arm, ShadowConfig, run_shadow
from quantrec.shadow.decision import ThresholdRule
from shadow_data import make_requests, signal_arm, weak_arm

FAST = {"resamples": 300}


def arm(name, frame, val, kind, **kw):
    p, v = (signal_arm if kind == "signal" else weak_arm)(frame)
    _, v_val = (signal_arm if kind == "signal" else weak_arm)(val)
    return Arm(name, p, v, calibration_value=v_val, **kw)


def test_the_baseline_itself_is_not_blessed(real_replay):
    replay, val = real_replay
    base = arm("WLR+DMQN", replay, val, "signal")
    same = Arm("challenger=baseline", base.p_purchase, base.value, calibration_value=base.calibration_value)
    res = run_shadow(replay, same, base, config=ShadowConfig(**FAST), calibration_frame=val, progress=False)
    assert not res.blessed
    assert res.reasons[0].startswith("FAIL GMV@10 [all] relative change vs baseline")
    d = res.deltas[res.deltas["reference"] == "baseline"]
    assert (d["point"].abs() < 1e-12).all() and (d["ci_low"] <= 0).all() and (d["ci_high"] >= 0).all()


def test_an_equivalent_challenger_has_its_deltas_inside_the_cis(real_replay):
    replay, val = real_replay
    base = arm("WLR+DMQN", replay, val, "signal")
    rng = np.random.default_rng(0)
    jitter = Arm("baseline+noise", base.p_purchase, base.value * np.exp(rng.normal(0, 0.02, len(replay))),
                 calibration_value=base.calibration_value)
    res = run_shadow(replay, jitter, base, config=ShadowConfig(**FAST), calibration_frame=val, progress=False)
    assert not res.blessed
    for metric in ("GMV@10", "AUC", "NDCG"):
        e = res.estimate("deltas", reference="baseline", slice="all", metric=metric, change="absolute")
        assert e.ci_low <= 0 <= e.ci_high, (metric, e)


def test_a_shuffled_challenger_is_rejected_with_reasons_naming_the_metrics(real_replay):
    replay, val = real_replay
    good = arm("WLR+DMQN", replay, val, "signal")
    perm = np.random.default_rng(1).permutation(len(replay))
    broken = Arm("shuffled", good.p_purchase[perm], good.value[perm], calibration_value=good.calibration_value)
    res = run_shadow(replay, broken, good, config=ShadowConfig(**FAST), calibration_frame=val, progress=False)
    assert not res.blessed
    text = " | ".join(res.reasons)
    assert "FAIL GMV@10 [all]" in text and "FAIL AUC [all]" in text
    e = res.estimate("deltas", reference="baseline", slice="all", metric="AUC", change="absolute")
    assert e.ci_high < 0                                   # significantly worse, not just noise


def test_a_clearly_better_challenger_is_blessed_against_the_baseline(real_replay):
    replay, val = real_replay
    res = run_shadow(replay, arm("signal", replay, val, "signal", model_ids={"gmv": "items@1"}),
                     arm("weak", replay, val, "weak"), champion=None, config=ShadowConfig(),
                     calibration_frame=val, progress=False)
    assert res.blessed, res.reasons
    assert [c["status"] for c in res.checks] == ["pass", "pass", "skipped", "skipped"]
    assert all(r.startswith("PASS") for r in res.reasons)
    assert any("no champion" in w for w in res.warnings)
    gmv = res.estimate("deltas", reference="baseline", slice="all", metric="GMV@10", change="relative")
    assert gmv.ci_low > 0 and gmv.n_valid == 1000
    assert set(res.metrics["slice"]) >= {"all", "long_tail", "new_users", "returning_users", "hist_100+"}


def test_champion_rules_apply_when_there_is_a_champion(real_replay):
    replay, val = real_replay
    good = arm("signal", replay, val, "signal")
    perm = np.random.default_rng(2).permutation(len(replay))
    # better than the weak baseline on nothing, and much worse than the champion
    broken = Arm("shuffled", good.p_purchase[perm], good.value[perm], calibration_value=good.calibration_value)
    res = run_shadow(replay, broken, arm("weak", replay, val, "weak"), champion=good,
                     config=ShadowConfig(**FAST), calibration_frame=val, progress=False)
    assert not res.blessed
    statuses = {(c["reference"], c["rule"]["metric"]): c["status"] for c in res.checks}
    assert statuses[("champion", "GMV@10")] == "fail" and statuses[("champion", "AUC")] == "fail"
    assert res.arms["champion"]["name"] == "signal"
    assert set(res.deltas["reference"]) == {"baseline", "champion"}


def test_a_missing_configured_metric_fails(real_replay):
    replay, val = real_replay
    returning = replay[~replay["is_new_user"]].reset_index(drop=True)
    cfg = ShadowConfig(resamples=300, thresholds=[
        {"metric": "GMV@10", "relative": True},
        {"metric": "GMV@10", "slice": "new_users", "relative": True, "epsilon": 0.5}])
    res = run_shadow(returning, arm("signal", returning, val, "signal"), arm("weak", returning, val, "weak"),
                     config=cfg, calibration_frame=val, progress=False)
    assert not res.blessed
    assert res.checks[0]["status"] == "pass" and res.checks[1]["status"] == "missing"
    assert res.reasons == [res.checks[1]["message"]] and "MISSING GMV@10 [new_users]" in res.reasons[0]


def test_artifacts_json_html_and_summary(real_replay, tmp_path):
    replay, val = real_replay
    res = run_shadow(replay, arm("signal", replay, val, "signal", model_ids={"gmv": "g@1", "purchase": "p@1"}),
                     arm("weak", replay, val, "weak"), champion=arm("champ", replay, val, "weak"),
                     config=ShadowConfig(**FAST), calibration_frame=val, progress=False)
    html, js = tmp_path / "report.html", tmp_path / "decision.json"
    res.write(str(html), str(js))
    decision = json.loads(js.read_text(), parse_constant=lambda c: pytest.fail(f"non-JSON constant {c}"))
    for key in ("blessed", "reasons", "thresholds", "deltas", "challenger", "baseline", "champion"):
        assert key in decision
    assert decision["blessed"] is res.blessed
    assert decision["challenger"]["model_ids"] == {"gmv": "g@1", "purchase": "p@1"}
    assert decision["challenger"]["calibration"]["method"] == "isotonic (centred)"
    assert {"reference", "metric", "slice", "change", "point", "ci_low", "ci_high"} <= set(decision["deltas"][0])
    text = html.read_text()
    verdict = "NOT BLESSED" if not res.blessed else "BLESSED"
    assert text.index(verdict) < text.index("Reasons") < text.index("Thresholds") < text.index("Forest plot")
    assert text.count("data:image/png;base64") >= 3          # two forest plots + calibration
    assert "not on the point estimate" in text
    record = res.decision_record()
    json.dumps(record, allow_nan=False)
    assert record["blessed"] is res.blessed and record["thresholds"] == decision["thresholds"]
    assert {d["slice"] for d in record["deltas"]} == {"all"} and record["bootstrap"]["resamples"] == 300
    summary = res.summary()
    assert summary["verdict"] in ("blessed", "not blessed")
    assert all(isinstance(v, str) or (isinstance(v, float) and math.isfinite(v)) for v in summary.values())
    assert "baseline/GMV@10/rel_delta_ci_low" in summary and "challenger/AUC" in summary


def test_calibration_lifts_the_mean_and_is_reported(real_replay):
    replay, val = real_replay
    p, v = signal_arm(replay)
    _, v_val = signal_arm(val)
    low = Arm("median-like", p, v * 0.5, calibration_value=v_val * 0.5)   # under-estimates GMV
    res = run_shadow(replay, low, arm("weak", replay, val, "weak"), config=ShadowConfig(**FAST),
                     calibration_frame=val, progress=False)
    info = res.arms["challenger"]["calibration"]
    assert info["eval_mean_ratio_raw"] > 1.5
    assert abs(info["eval_mean_ratio_calibrated"] - 1.0) < abs(info["eval_mean_ratio_raw"] - 1.0)
    assert set(res.calibration["stage"]) == {"raw", "calibrated"}
    # ranking is unchanged by a monotone calibration of a scaled copy
    same = run_shadow(replay, Arm("x", p, v, calibration_value=v_val), arm("weak", replay, val, "weak"),
                      config=ShadowConfig(**FAST), calibration_frame=val, progress=False)
    a = res.estimate("metrics", role="challenger", slice="all", metric="GMV@10")
    b = same.estimate("metrics", role="challenger", slice="all", metric="GMV@10")
    assert a.point == pytest.approx(b.point)


def test_results_are_seeded():
    df = make_requests(n_users=20, seed=5)
    val = make_requests(n_users=20, seed=6)
    args = (arm("a", df, val, "signal"), arm("b", df, val, "weak"))
    r1 = run_shadow(df, *args, config=ShadowConfig(resamples=200, seed=1), calibration_frame=val, progress=False)
    r2 = run_shadow(df, *args, config=ShadowConfig(resamples=200, seed=1), calibration_frame=val, progress=False)
    r3 = run_shadow(df, *args, config=ShadowConfig(resamples=200, seed=2), calibration_frame=val, progress=False)
    pd.testing.assert_frame_equal(r1.deltas, r2.deltas)
    assert not np.allclose(r1.deltas["ci_low"].fillna(0), r3.deltas["ci_low"].fillna(0))
    np.testing.assert_allclose(r1.deltas["point"].fillna(0), r3.deltas["point"].fillna(0))


def test_config_from_run_config_dicts():
    cfg = ShadowConfig.from_dict({"resamples": 500.0, "ks": [1.0, 3.0], "calibration": "none",
                                  "thresholds": [{"metric": "GMV@3", "relative": True, "epsilon": 0.0},
                                                 {"metric": "AUC", "kind": "value", "threshold": 0.55}]})
    assert cfg.resamples == 500 and cfg.ks == (1, 3)
    assert isinstance(cfg.thresholds[1], ThresholdRule) and cfg.thresholds[1].threshold == 0.55
    assert ShadowConfig.from_dict(cfg.to_dict()).to_dict() == cfg.to_dict()
    assert [r.against for r in ShadowConfig().thresholds] == ["baseline", "baseline", "champion", "champion"]
    assert ShadowConfig.from_dict({"thresholds": []}).thresholds == []
    with pytest.raises(ValueError, match="shadow.bogus|bogus"):
        ShadowConfig.from_dict({"bogus": 1})
    with pytest.raises(ValueError, match=r"shadow.thresholds\[0\]: unknown metric 'GMV@10'"):
        ShadowConfig.from_dict({"ks": [1, 5], "thresholds": [{"metric": "GMV@10"}]})
    with pytest.raises(ValueError, match=r"thresholds.*colour"):
        ShadowConfig.from_dict({"thresholds": [{"metric": "AUC", "colour": "red"}]})
    with pytest.raises(ValueError, match="calibration must be one of"):
        ShadowConfig.from_dict({"calibration": "platt"})
    with pytest.raises(ValueError, match="resamples"):
        ShadowConfig.from_dict({"resamples": 10})


def test_bad_inputs_are_named_errors():
    df = make_requests(n_users=6, seed=0)
    val = make_requests(n_users=6, seed=1)
    good, weak = arm("a", df, val, "signal"), arm("b", df, val, "weak")
    cfg = ShadowConfig(resamples=100)
    with pytest.raises(ValueError, match="needs calibration_frame"):
        run_shadow(df, good, weak, config=cfg, progress=False)
    with pytest.raises(ValueError, match="arm 'a': calibration 'isotonic' needs calibration_value"):
        run_shadow(df, Arm("a", good.p_purchase, good.value), weak, config=cfg, calibration_frame=val,
                   progress=False)
    with pytest.raises(ValueError, match=r"arm 'a': p_purchase must have shape"):
        run_shadow(df, Arm("a", good.p_purchase[:-1], good.value, calibration_value=good.calibration_value),
                   weak, config=cfg, calibration_frame=val, progress=False)
    with pytest.raises(ValueError, match="probabilities"):
        run_shadow(df, Arm("a", good.p_purchase * 5, good.value, calibration_value=good.calibration_value),
                   weak, config=cfg, calibration_frame=val, progress=False)
    with pytest.raises(ValueError, match="names must differ"):
        run_shadow(df, good, Arm("a", weak.p_purchase, weak.value), config=cfg, calibration_frame=val,
                   progress=False)
    with pytest.raises(ValueError, match="negative GMV"):
        run_shadow(df, Arm("a", good.p_purchase, good.value - 1e6), weak,
                   config=ShadowConfig(resamples=100, calibration="none"), progress=False)


def test_no_item_prices_leave_the_long_tail_empty_and_its_rules_missing():
    df = make_requests(n_users=15, seed=8).assign(i_price_last=np.nan)
    val = make_requests(n_users=15, seed=9)
    cfg = ShadowConfig(resamples=200, thresholds=[{"metric": "GMV@10", "relative": True, "bound": "point"},
                                                  {"metric": "AUC", "slice": "long_tail", "epsilon": 0.1}])
    res = run_shadow(df, arm("a", df, val, "signal"), arm("b", df, val, "weak"), config=cfg,
                     calibration_frame=val, progress=False)
    assert not res.blessed and "MISSING AUC [long_tail]" in res.reasons[0]
    assert math.isnan(res.data["long_tail_threshold"])
    decision = res.to_json()
    assert decision["data"]["long_tail_threshold"] is None
    json.dumps(decision, allow_nan=False)
    json.dumps(res.decision_record(), allow_nan=False)
