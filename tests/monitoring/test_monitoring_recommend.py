"""Rules -> keep | rebuild, the recommendation JSON, the alert file, training's auto mode."""

from __future__ import annotations

import json
import math

import pytest

from monitoring.config import MonitorConfig
from monitoring.drift import ColumnDrift
from monitoring.errors import CodebookMismatch, EmptyWindow, MissingReference
from monitoring.recommend import (EXIT_ERROR, EXIT_KEEP, EXIT_REBUILD, Recommendation, error_recommendation,
                                  evaluate_rules, rebuild_decision, recommend, write_alert)

QUIET = {"rebuild_gain": 0.0, "occupancy_js": 0.01, "occupancy_psi": 0.01, "recon_ratio": 1.0,
         "recon_mae_ratio": 1.0, "above_clip_ratio": 1.0, "beyond_last_centroid_ratio": 1.0, "dead_codes": 0,
         "overloaded_codes": 0, "top_price_point_tv": 0.01}
DRIFT = [ColumnDrift("log_gmv", "wasserstein", 0.14, 0.05, False, ""),
         ColumnDrift("unit_price", "wasserstein", 0.16, 0.50, True, "")]


def rules_for(**changes):
    return evaluate_rules({**QUIET, **changes}, DRIFT, MonitorConfig())


def test_default_votes_on_the_rebuild_gain_only():
    cfg = MonitorConfig()
    keep = recommend(rules_for(), cfg)
    assert keep.action == "keep" and keep.exit_code == EXIT_KEEP and not keep.alert
    # a drifted column alone is context, not a rebuild
    assert any(r.rule == "drift:unit_price" and r.fired and not r.votes for r in keep.rules)
    assert "drift:unit_price" in " ".join(keep.reasons)
    rebuild = recommend(rules_for(rebuild_gain=0.2), cfg)
    assert rebuild.action == "rebuild" and rebuild.exit_code == EXIT_REBUILD and rebuild.alert
    assert rebuild.reasons == ["a rebuild would lower the current labels' reconstruction error by 20.0% "
                               "(threshold 3.0%)"]
    worse = recommend(rules_for(rebuild_gain=-0.4), cfg)
    assert worse.action == "keep" and any("would raise" in r and "40.0%" in r for r in worse.reasons)


def test_votes_and_min_votes_are_configurable():
    cfg = MonitorConfig(vote=("occupancy_js", "drift:unit_price", "dead_codes"), min_votes=2)
    assert recommend(evaluate_rules({**QUIET, "dead_codes": 0}, DRIFT, cfg), cfg).action == "keep"
    assert recommend(evaluate_rules({**QUIET, "dead_codes": 1}, DRIFT, cfg), cfg).action == "rebuild"


def test_count_rules_fire_at_the_threshold_ratios_above_it():
    cfg = MonitorConfig()
    by = {r.rule: r for r in evaluate_rules({**QUIET, "dead_codes": 1, "recon_ratio": cfg.health.recon_ratio},
                                            [], cfg)}
    assert by["dead_codes"].fired and not by["recon_ratio"].fired


def test_not_measured_gain_never_fires_and_says_why():
    rules = evaluate_rules({**QUIET, "rebuild_gain": float("nan")}, DRIFT, MonitorConfig(),
                           notes={"rebuild_gain": "not measured: 12 candidate training lines"})
    rec = recommend(rules, MonitorConfig())
    assert rec.action == "keep"
    assert any("12 candidate training lines" in r for r in rec.reasons)


def test_a_voting_rule_without_data_is_listed_not_silently_dropped():
    cfg = MonitorConfig(vote=("drift:quantity",), min_votes=1)
    rules = evaluate_rules(QUIET, DRIFT, cfg)          # no quantity column was checked
    q = [r for r in rules if r.rule == "drift:quantity"]
    assert q and q[0].votes and not q[0].fired and "not measured" in q[0].message


def test_recommendation_json_round_trip_is_strict_json(tmp_path):
    rec = recommend(rules_for(rebuild_gain=float("nan")), MonitorConfig(),
                    metrics={"rebuild_gain": float("nan"), "occupancy_js": 0.01}, context={"run_date": "2011-06-01"})
    path = str(tmp_path / "rec.json")
    rec.save(path)
    raw = open(path).read()
    assert "NaN" not in raw
    d = json.loads(raw)
    assert d["schema"] == "quantrec.monitoring.recommendation/v1" and d["action"] == "keep"
    assert d["metrics"]["rebuild_gain"] is None and d["exit_code"] == 0
    back = Recommendation.load(path)
    assert back.action == rec.action and back.reasons == rec.reasons
    assert math.isnan(back.rules[0].value) and back.rules[0].rule == "rebuild_gain"
    with pytest.raises(ValueError, match="not a monitoring recommendation"):
        Recommendation.from_dict({"action": "keep"})
    with pytest.raises(ValueError, match="action"):
        Recommendation(action="maybe", reasons=[])


def test_error_recommendation_alerts_and_redacts(tmp_path, monkeypatch):
    monkeypatch.setenv("QUANTREC_GCS_TOKEN", "s3cr3t-token-value")
    exc = EmptyWindow("no lines in redis://:hunter2@cache:6379/0 and token s3cr3t-token-value")
    rec = error_recommendation(exc, MonitorConfig(), {"run_date": "2011-06-01"})
    assert rec.action == "error" and rec.exit_code == EXIT_ERROR and rec.alert
    assert rec.error["type"] == "EmptyWindow" and rec.error["suggested_action"] == "keep"
    path = str(tmp_path / "alert.json")
    write_alert(rec, path, report="gs://bucket/review.html")
    text = open(path).read() + json.dumps(rec.to_dict())
    assert "hunter2" not in text and "s3cr3t-token-value" not in text
    alert = json.loads(open(path).read())
    assert alert == {"alert": True, "level": "error", "exit_code": 1, "action": "error", "summary": alert["summary"],
                     "run_date": "2011-06-01", "report": "gs://bucket/review.html"}
    assert alert["summary"].startswith("ERROR (EmptyWindow)")


def test_keep_writes_an_alert_file_saying_no_alert(tmp_path):
    rec = recommend(rules_for(), MonitorConfig(), context={"run_date": "2011-06-01"})
    write_alert(rec, str(tmp_path / "a.json"))
    a = json.loads((tmp_path / "a.json").read_text())
    assert a["alert"] is False and a["level"] == "ok" and a["exit_code"] == 0


def test_rebuild_decision_modes():
    keep = recommend(rules_for(), MonitorConfig(), context={"run_date": "2011-06-01"})
    rebuild = recommend(rules_for(rebuild_gain=0.5), MonitorConfig(), context={"run_date": "2011-06-01"})
    assert rebuild_decision(rebuild, "false") == (False, "rebuild_codebook=false")
    assert rebuild_decision(keep, "true")[0] is True
    assert rebuild_decision(keep, "auto")[0] is False
    ok, why = rebuild_decision(rebuild.to_dict(), "AUTO")         # the JSON dict from the registry works too
    assert ok and "2011-06-01" in why
    assert rebuild_decision(None, "auto")[0] is False
    # errors: a codebook that cannot be monitored is rebuilt; missing data keeps the codebook
    assert rebuild_decision(error_recommendation(CodebookMismatch("other dataset")), "auto")[0] is True
    assert rebuild_decision(error_recommendation(MissingReference("no provenance")), "auto")[0] is True
    assert rebuild_decision(error_recommendation(EmptyWindow("no lines")), "auto")[0] is False
    with pytest.raises(ValueError, match="auto"):
        rebuild_decision(keep, "sometimes")


def test_config_from_dict_and_named_errors():
    cfg = MonitorConfig.from_dict({"current_days": 14.0, "drift": {"gmv": {"threshold": 0.3}},
                                   "health": {"rebuild_gain": 0.1}, "vote": ["rebuild_gain", "drift:gmv"],
                                   "min_votes": 2})
    assert cfg.current_days == 14 and cfg.drift.gmv.threshold == 0.3 and cfg.drift.gmv.method == "wasserstein"
    assert cfg.health.rebuild_gain == 0.1 and cfg.vote == ("rebuild_gain", "drift:gmv")
    assert MonitorConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValueError, match="health.rebuild_gian"):
        MonitorConfig.from_dict({"health": {"rebuild_gian": 0.1}})
    with pytest.raises(ValueError, match="unknown rule"):
        MonitorConfig.from_dict({"vote": ["drift:price"]})
    with pytest.raises(ValueError, match="min_votes"):
        MonitorConfig.from_dict({"min_votes": 3, "vote": ["rebuild_gain"]})
    with pytest.raises(ValueError, match=r"drift.gmv.threshold"):
        MonitorConfig.from_dict({"drift": {"gmv": {"threshold": 0}}})
    with pytest.raises(ValueError, match="current_days"):
        MonitorConfig.from_dict({"current_days": 0})
