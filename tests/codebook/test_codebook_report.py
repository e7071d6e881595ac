"""Reconstruction report: numbers equal a per-line brute force; files are written."""

from __future__ import annotations

import json

import numpy as np
import pytest

from quantrec.codebook import fit_codebook, reconstruction_report, write_reconstruction_report


@pytest.fixture(scope="module")
def setup():
    rng = np.random.default_rng(2)
    y = np.round(np.concatenate([rng.choice([1.25, 2.95, 9.9, 15.0], 3000), rng.lognormal(2.5, 1.2, 2000)]), 2)
    cbs = {"rq_L3": fit_codebook(y, "rq", layers=3, size=8),
           "rq_kmedians_L3": fit_codebook(y, "rq", layers=3, size=8, first_layer="kmedians"),
           "kmeans_24": fit_codebook(y, "kmeans", layers=3, size=8),
           "dynamic_quantile": fit_codebook(y, "dynamic_quantile")}
    return y, cbs, reconstruction_report(y, cbs)


def test_report_matches_per_line_computation(setup):
    y, cbs, rep = setup
    assert rep["n"] == len(y) and set(rep["methods"]) == set(cbs)
    for name, cb in cbs.items():
        err = np.abs(y - cb.decode(cb.encode(y)))
        m = rep["methods"][name]
        assert m["overall"]["mae"] == pytest.approx(err.mean(), rel=1e-9, abs=1e-12)
        assert m["overall"]["mre"] == pytest.approx(np.mean(err / y), rel=1e-9, abs=1e-12)
        assert m["overall"]["max_abs"] == pytest.approx(err.max(), abs=1e-12)
        assert m["per_layer"][-1]["mae"] == pytest.approx(m["overall"]["mae"], rel=1e-9, abs=1e-12)
        assert sum(b["n"] for b in m["per_bucket"]) == len(y)
        tail = m["per_bucket"][-1]
        assert "long tail" in tail["bucket"]
        in_tail = y >= tail["lo"]
        assert tail["n"] == int(in_tail.sum())
        assert tail["mae"] == pytest.approx(err[in_tail].mean(), rel=1e-9, abs=1e-12)


def test_rq_per_layer_error_decreases(setup):
    _, _, rep = setup
    maes = [r["mae"] for r in rep["methods"]["rq_L3"]["per_layer"]]
    assert maes[0] > maes[1] > maes[2]
    assert rep["methods"]["rq_L3"]["overall"]["mae"] < rep["methods"]["kmeans_24"]["overall"]["mae"]
    assert rep["methods"]["dynamic_quantile"]["sequence_length"]["mean"] >= 1


def test_write_json_and_html(tmp_path, setup):
    y, cbs, rep = setup
    j, h = write_reconstruction_report(rep, str(tmp_path / "r.json"), str(tmp_path / "r.html"), y, cbs)
    assert json.loads(open(j).read())["methods"]["rq_L3"]["overall"]["mae"] == rep["methods"]["rq_L3"]["overall"]["mae"]
    html = open(h).read()
    assert "<img" in html and "data:image/png;base64," in html
    for name in cbs:
        assert name in html
    assert "long tail" in html


def test_report_needs_codebooks():
    with pytest.raises(ValueError, match="no codebooks"):
        reconstruction_report(np.array([1.0]), {})
