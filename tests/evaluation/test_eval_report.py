"""The per-run report: HTML with every model and the figures, JSON that round-trips,
a flat summary for the KFP Metrics artifact, and all three tasks."""

from __future__ import annotations

import json
import math
import re

import fsspec
import numpy as np
import pandas as pd
import pytest

from quantrec.evaluation.metrics import classification_metrics, regression_metrics
from quantrec.evaluation.report import EvaluationResult, evaluate_models


@pytest.fixture(scope="module")
def gmv_data():
    rng = np.random.default_rng(0)
    n = 3000
    y = rng.lognormal(2, 1.2, n).round(2)
    preds = {"RQ-Reg": y * rng.lognormal(0, 0.4, n), "WLR": y * rng.lognormal(0, 1.0, n),
             "LightGBM": np.full(n, float(np.median(y)))}
    new = rng.random(n) < 0.3
    return y, preds, new


@pytest.fixture(scope="module")
def gmv_result(gmv_data):
    y, preds, new = gmv_data
    return evaluate_models(y, preds, is_new_user=new, task="gmv")


def images(html: str) -> list[str]:
    return re.findall(r'<img alt="[^"]*" src="data:image/png;base64,[A-Za-z0-9+/=]+"', html)


def test_gmv_tables_match_metrics(gmv_data, gmv_result):
    y, preds, _ = gmv_data
    r = gmv_result
    assert r.models == list(preds) and r.n == len(y)
    assert list(r.overall["model"]) == list(preds)
    for row in r.overall.to_dict(orient="records"):
        want = regression_metrics(y, preds[row["model"]])
        for k, v in want.items():
            assert (math.isnan(v) and math.isnan(row[k])) or row[k] == pytest.approx(v)
    # the better model ranks better
    xa = r.overall.set_index("model")["XAUC"]
    assert xa["RQ-Reg"] > xa["WLR"] > 0.5 and xa["LightGBM"] == 0.5
    # buckets: 10 deciles per model, counts add to n, MAE consistent with the overall MAE
    b = r.buckets[r.buckets["model"] == "WLR"]
    assert len(b) == 10 and b["n"].sum() == len(y)
    assert (b["MAE"] * b["n"]).sum() / len(y) == pytest.approx(r.overall.set_index("model").loc["WLR", "MAE"])
    # calibration: equal-count bins, weighted means give the overall means
    c = r.calibration[r.calibration["model"] == "RQ-Reg"]
    assert len(c) == 10 and c["n"].sum() == len(y)
    assert (c["mean_label"] * c["n"]).sum() / len(y) == pytest.approx(y.mean())
    assert c["mean_pred"].is_monotonic_increasing
    # histograms hold every positive value of each series
    d = r.distributions
    assert d[d["series"] == "label"]["count"].sum() == (y > 0).sum()


def test_summary_is_flat_and_finite(gmv_result):
    s = gmv_result.summary()
    assert s["RQ-Reg/MAE"] == pytest.approx(gmv_result.overall.loc[0, "MAE"])
    assert "WLR/top10%/XAUC" in s and "RQ-Reg/new users/Norm-Gini" in s
    assert all(isinstance(v, float) and math.isfinite(v) for v in s.values())
    assert "LightGBM/Spearman" not in s          # constant prediction: NaN is left out
    assert all(k.split("/")[0] in gmv_result.models for k in s)


def test_write_html_and_json_round_trip(tmp_path, gmv_result):
    html_path, json_path = tmp_path / "report.html", tmp_path / "metrics.json"
    gmv_result.write(str(html_path), str(json_path))
    html = html_path.read_text(encoding="utf-8")
    for model in gmv_result.models:
        assert model in html
    for heading in ["Metrics per model", "Metrics per slice", "Prediction vs ground-truth distributions",
                    "MAE by value bucket", "Calibration", "top10%", "new users"]:
        assert heading in html
    assert len(images(html)) == 3                 # distributions, MAE by bucket, calibration

    raw = json.loads(json_path.read_text(encoding="utf-8"))    # strict JSON (no NaN tokens)
    assert raw["task"] == "gmv" and raw["summary"] == gmv_result.summary()
    back = EvaluationResult.read_json(str(json_path))
    for name in EvaluationResult._TABLES:
        pd.testing.assert_frame_equal(getattr(back, name), getattr(gmv_result, name), check_dtype=False)
    assert back.summary() == gmv_result.summary() and back.models == gmv_result.models


def test_write_through_fsspec_url(gmv_result):
    gmv_result.write("memory://evq/report.html", "memory://evq/metrics.json")
    with fsspec.open("memory://evq/report.html", "r") as f:
        assert "RQ-Reg" in f.read()
    with fsspec.open("memory://evq/metrics.json", "r") as f:
        assert json.load(f)["n"] == gmv_result.n


def test_purchase_task(tmp_path):
    rng = np.random.default_rng(1)
    n = 2000
    y = (rng.random(n) < 0.2).astype(float)
    preds = {"DMQN": np.clip(0.15 + 0.4 * y + 0.2 * rng.standard_normal(n), 0, 1),
             "WLR": rng.random(n)}
    r = evaluate_models(y, preds, is_new_user=rng.random(n) < 0.5, task="purchase")
    assert list(r.overall.columns) == ["model", "AUC", "logloss", "Brier", "mean p", "positive rate"]
    assert r.overall.loc[0, "AUC"] == pytest.approx(classification_metrics(y, preds["DMQN"])["AUC"])
    assert set(r.slices["slice"]) == {"all", "new users", "returning users"}
    assert r.buckets.empty
    assert set(r.distributions["series"]) == {"DMQN | y=1", "DMQN | y=0", "WLR | y=1", "WLR | y=0"}
    r.write(str(tmp_path / "p.html"), str(tmp_path / "p.json"))
    html = (tmp_path / "p.html").read_text(encoding="utf-8")
    assert "DMQN" in html and "purchase probability" in html and len(images(html)) == 2
    back = EvaluationResult.read_json(str(tmp_path / "p.json"))
    pd.testing.assert_frame_equal(back.overall, r.overall, check_dtype=False)


def test_ltv_task_zero_inflated(tmp_path):
    rng = np.random.default_rng(2)
    n = 2000
    y = np.where(rng.random(n) < 0.6, 0.0, rng.lognormal(3, 1, n))
    r = evaluate_models(y, {"ZILN": 0.5 * y + rng.random(n), "MLP": rng.random(n)}, task="ltv")
    row = r.overall.set_index("model").loc["ZILN"]
    assert row["Norm-Gini"] > 0.9 and row["Spearman(+)"] > 0.9
    slice_n = r.slices[r.slices["model"] == "ZILN"].set_index("slice")["n"]
    assert slice_n[[s for s in slice_n.index if s.startswith("decile")]].sum() == n
    r.write(str(tmp_path / "l.html"), str(tmp_path / "l.json"))
    assert len(images((tmp_path / "l.html").read_text(encoding="utf-8"))) == 3
    assert math.isnan(EvaluationResult.read_json(str(tmp_path / "l.json")).slices
                      .set_index(["model", "slice"]).loc[("ZILN", "decile 01"), "Spearman"])


def test_evaluate_models_validation():
    y = np.array([1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="task"):
        evaluate_models(y, {"a": y}, task="revenue")
    with pytest.raises(ValueError, match="empty"):
        evaluate_models(y, {})
    with pytest.raises(ValueError, match="length mismatch"):
        evaluate_models(y, {"a": y[:2]})
    with pytest.raises(ValueError, match="NaN"):
        evaluate_models(y, {"a": np.array([1.0, np.nan, 2.0])})
    with pytest.raises(ValueError, match="only 0 and 1"):
        evaluate_models(y, {"a": np.array([0.1, 0.2, 0.3])}, task="purchase")
