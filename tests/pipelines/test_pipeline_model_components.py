"""fit_codebook -> train -> evaluate_offline through python_func, on real-slice tables,
with and without a champion in a registry."""

from __future__ import annotations

import json

import pytest
from kfp.dsl import HTML, Artifact, Dataset, Metrics, Model

from components.build_tasks import build_tasks
from components.evaluate_offline import evaluate_offline
from components.fit_codebook import fit_codebook
from components.train import train
from quantrec.codebook import load_codebook
from quantrec.codebook.target import TargetCodebook
from quantrec.registry import Registry
from slice_config import SLICE_CONFIG, SLICE_RUN_DATE


@pytest.fixture(scope="module")
def gmv_table(tmp_path_factory, real_slice) -> Dataset:
    d = tmp_path_factory.mktemp("tables")
    outs = {n: Dataset(uri=str(d / n)) for n in ("gmv", "purchase", "replay", "ltv", "events")}
    assert build_tasks.python_func(run_date=SLICE_RUN_DATE, data=real_slice, spec="", config=SLICE_CONFIG,
                                   cleaning=Metrics(uri=str(d / "c")), table_report=HTML(uri=str(d / "t.html")),
                                   table_checks=Artifact(uri=str(d / "t.json")), **outs)
    return outs["gmv"]


def _fit_codebook(tmp, gmv, registry="", rebuild=False):
    cb, rep, rec = Artifact(uri=str(tmp / "codebook")), HTML(uri=str(tmp / "cb.html")), Artifact(uri=str(tmp / "cb.json"))
    reused = fit_codebook.python_func(gmv=gmv, config=SLICE_CONFIG, registry=registry, rebuild_codebook=rebuild,
                                      codebook=cb, report=rep, reconstruction=rec)
    return reused, cb, rep, rec


def _train(tmp, gmv, cb, reused, registry=""):
    rq, wl, m = Model(uri=str(tmp / "rqreg")), Model(uri=str(tmp / "wlr")), Metrics(uri=str(tmp / "m"))
    train.python_func(gmv=gmv, codebook=cb, codebook_reused=reused, config=SLICE_CONFIG, registry=registry,
                      rqreg=rq, wlr=wl, training=m)
    return rq, wl, m


def test_cold_start_fits_codebook_trains_and_evaluates(tmp_path, gmv_table):
    reused, cb, rep, rec = _fit_codebook(tmp_path, gmv_table)
    assert reused is False and rep.metadata["source"] == "fitted"
    assert isinstance(load_codebook(cb.path), TargetCodebook)
    methods = json.loads(open(rec.path).read())["methods"]
    assert len(methods) == 3  # ours + flat K-means + dynamic quantile, same target space
    assert 0 < rep.metadata["mae"] < rep.metadata["tail_mae"]
    assert "<img" in open(rep.path).read()
    rq, wl, m = _train(tmp_path, gmv_table, cb, reused)
    assert rq.metadata["warm_start_from"] is None and m.metadata["rqreg/epochs"] == 1
    ev_report, ev_metrics, ev_json = HTML(uri=str(tmp_path / "ev.html")), Metrics(uri=str(tmp_path / "evm")), Artifact(uri=str(tmp_path / "ev.json"))
    evaluate_offline.python_func(gmv=gmv_table, rqreg=rq, wlr=wl, report=ev_report, metrics=ev_metrics,
                                 evaluation=ev_json)
    assert {"RQ-Reg/MAE", "WLR/MAE", "RQ-Reg/XAUC", "WLR/Norm-Gini"} <= set(ev_metrics.metadata)
    assert ev_report.metadata["n_eval"] > 100


def test_champion_codebook_is_reused_and_models_warm_start(tmp_path, gmv_table):
    first = tmp_path / "first"
    first.mkdir()
    _, cb, _, _ = _fit_codebook(first, gmv_table)
    rq, wl, _ = _train(first, gmv_table, cb, False)
    reg = Registry(str(tmp_path / "registry"))
    reg.publish("v1", {"codebook.json": cb.path, "rqreg": rq.path, "wlr": wl.path})
    reg.promote("v1")

    second = tmp_path / "second"
    second.mkdir()
    reused, cb2, rep2, _ = _fit_codebook(second, gmv_table, registry=reg.root)
    assert reused is True and rep2.metadata["source"] == "reused" and rep2.metadata["champion"] == "v1"
    assert open(cb2.path).read() == open(cb.path).read()
    rq2, wl2, _ = _train(second, gmv_table, cb2, reused, registry=reg.root)
    assert rq2.metadata["warm_start_from"] == "v1" and rq2.metadata["warm_started"] is True

    # monitoring asked for a rebuild: fit a new codebook, train cold
    third = tmp_path / "third"
    third.mkdir()
    reused3, cb3, rep3, _ = _fit_codebook(third, gmv_table, registry=reg.root, rebuild=True)
    assert reused3 is False and rep3.metadata["source"] == "fitted"
    rq3, _, _ = _train(third, gmv_table, cb3, reused3, registry=reg.root)
    assert rq3.metadata["warm_start_from"] is None
