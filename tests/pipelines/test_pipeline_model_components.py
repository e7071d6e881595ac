"""resolve_champion -> fit_codebook -> train -> evaluate_offline -> publish through
python_func, on real-slice tables, without and with a champion in a registry."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from kfp.dsl import HTML, Artifact, Dataset, Metrics, Model

from components.build_tasks import build_tasks
from components.evaluate_offline import evaluate_offline
from components.fit_codebook import fit_codebook
from components.promote import promote
from components.publish import publish
from components.resolve_champion import resolve_champion
from components.shadow_compare import shadow_compare
from components.train import train
from components.validate_data import validate_data
from quantrec.codebook import load_codebook
from quantrec.codebook.target import TargetCodebook
from quantrec.registry import Registry
from slice_config import SLICE_CONFIG, SLICE_RUN_DATE


@pytest.fixture(scope="module")
def tables(tmp_path_factory, real_slice) -> dict:
    d = tmp_path_factory.mktemp("tables")
    snap = Dataset(uri=str(d / "snapshot"))
    assert validate_data.python_func(run_date=SLICE_RUN_DATE, data=real_slice, spec="", config=SLICE_CONFIG,
                                     report=HTML(uri=str(d / "v.html")), result=Artifact(uri=str(d / "v.json")),
                                     snapshot=snap)
    outs = {n: Dataset(uri=str(d / n)) for n in ("gmv", "purchase", "replay", "ltv", "events")}
    assert build_tasks.python_func(snapshot=snap, run_date=SLICE_RUN_DATE, spec="", config=SLICE_CONFIG,
                                   cleaning=Metrics(uri=str(d / "c")), table_report=HTML(uri=str(d / "t.html")),
                                   table_checks=Artifact(uri=str(d / "t.json")), **outs)
    return {"snapshot": snap, **outs}


def _day(tmp, tables, registry="", rebuild="auto", config=SLICE_CONFIG):
    """One run's model stages; returns every artifact by name."""
    tmp.mkdir(exist_ok=True)
    a = {"champion": Artifact(uri=str(tmp / "champion.json")), "codebook": Artifact(uri=str(tmp / "codebook")),
         "cb_report": HTML(uri=str(tmp / "cb.html")), "reconstruction": Artifact(uri=str(tmp / "cb.json")),
         "gmv_models": Model(uri=str(tmp / "gmv_models")), "purchase_models": Model(uri=str(tmp / "purchase_models")),
         "report": HTML(uri=str(tmp / "ev.html")), "metrics": Metrics(uri=str(tmp / "evm")),
         "evaluation": Artifact(uri=str(tmp / "ev.json")), "shadow_report": HTML(uri=str(tmp / "sh.html")),
         "decision": Artifact(uri=str(tmp / "decision.json"))}
    a["version"] = resolve_champion.python_func(registry=registry, run_date=SLICE_RUN_DATE,
                                                rebuild_codebook=rebuild, champion=a["champion"])
    a["reused"] = fit_codebook.python_func(gmv=tables["gmv"], champion=a["champion"], config=config,
                                           codebook=a["codebook"], report=a["cb_report"],
                                           reconstruction=a["reconstruction"])
    common = dict(run_date=SLICE_RUN_DATE, snapshot=tables["snapshot"], champion=a["champion"], config=config,
                  checkpoints="", events=tables["events"])
    train.python_func(task="gmv", table=tables["gmv"], models=a["gmv_models"],
                      training=Metrics(uri=str(tmp / "tm1")), codebook=a["codebook"],
                      codebook_reused=a["reused"], **common)
    train.python_func(task="purchase", table=tables["purchase"], models=a["purchase_models"],
                      training=Metrics(uri=str(tmp / "tm2")), **common)
    evaluate_offline.python_func(gmv=tables["gmv"], purchase=tables["purchase"], events=tables["events"],
                                 gmv_models=a["gmv_models"], purchase_models=a["purchase_models"],
                                 report=a["report"], metrics=a["metrics"], evaluation=a["evaluation"])
    a["blessed"] = shadow_compare.python_func(replay=tables["replay"], purchase=tables["purchase"],
                                              events=tables["events"], gmv_models=a["gmv_models"],
                                              purchase_models=a["purchase_models"], champion=a["champion"],
                                              config=config, report=a["shadow_report"], decision=a["decision"])
    a["published"] = publish.python_func(registry=registry, run_date=SLICE_RUN_DATE, config=config,
                                         champion=a["champion"], snapshot=tables["snapshot"], codebook=a["codebook"],
                                         gmv_models=a["gmv_models"], purchase_models=a["purchase_models"],
                                         evaluation=a["evaluation"], metrics=a["metrics"], decision=a["decision"])
    return a


def test_cold_start_fits_codebook_trains_evaluates_and_publishes_nothing_without_registry(tmp_path, tables):
    a = _day(tmp_path / "cold", tables)
    assert a["version"] == "" and a["reused"] is False and a["published"] == ""
    assert a["cb_report"].metadata["source"] == "fitted"
    assert isinstance(load_codebook(a["codebook"].path), TargetCodebook)
    methods = json.loads(open(a["reconstruction"].path).read())["methods"]
    assert len(methods) == 1  # the comparison codebooks are fitted only on request
    assert 0 < a["cb_report"].metadata["mae"] < a["cb_report"].metadata["tail_mae"]
    gm = a["gmv_models"].metadata["models"]
    assert set(gm) == {"rqreg", "wlr"} and gm["rqreg"]["warm_start_from"] is None and gm["rqreg"]["epochs"] == 1
    assert gm["rqreg"]["metric"] == "mae" and gm["wlr"]["warm_start_skipped"] == "no champion"
    assert {"gmv/RQ-Reg/MAE", "gmv/WLR/MAE", "gmv/RQ-Reg/XAUC", "gmv/WLR/Norm-Gini"} <= set(a["metrics"].metadata)
    pm = a["purchase_models"].metadata["models"]
    assert set(pm) == {"dmqn"} and pm["dmqn"]["metric"] == "logloss" and pm["dmqn"]["task"] == "purchase"
    assert {"purchase/DMQN/AUC", "purchase/DMQN/logloss"} <= set(a["metrics"].metadata)
    assert a["report"].metadata["n_eval/gmv"] > 100


def test_publish_then_champion_codebook_reused_and_weights_copied(tmp_path, tables):
    reg = Registry(str(tmp_path / "registry"), create=True)
    first = _day(tmp_path / "first", tables, registry=reg.root)
    v1 = first["published"]
    manifest = reg.get(v1).manifest
    assert manifest["data_fingerprint"] == tables["snapshot"].metadata["digest"]
    assert manifest["codebook_source"] == "fitted" and manifest["codebook_fitted_on"] == SLICE_RUN_DATE
    assert manifest["roles"] == {"baseline": "wlr", "gmv": ["rqreg"], "purchase": ["dmqn"]}
    assert "models/dmqn" in manifest["artifacts"] and manifest["metrics"]["purchase/DMQN/AUC"] > 0.5
    assert manifest["metrics"]["gmv/RQ-Reg/MAE"] > 0 and manifest["training"]["wlr"]["epochs"] == 1
    # a retried publish of the same content is the same version, not an error
    again = publish.python_func(registry=reg.root, run_date=SLICE_RUN_DATE, config=SLICE_CONFIG,
                                champion=first["champion"], snapshot=tables["snapshot"], codebook=first["codebook"],
                                gmv_models=first["gmv_models"], purchase_models=first["purchase_models"],
                                evaluation=first["evaluation"], metrics=first["metrics"], decision=first["decision"])
    assert again == v1 and reg.versions() == [v1]
    # the shadow decision is data in the manifest, blessed or not
    assert manifest["decision"]["verdict"] in ("blessed", "not blessed") and manifest["decision"]["reasons"]
    assert manifest["decision"]["baseline"]["name"].startswith("WLR")
    assert promote.python_func(registry=reg.root, version=v1, champion=first["champion"]) == v1
    assert promote.python_func(registry=reg.root, version=v1, champion=first["champion"]) == v1  # idempotent
    assert [e["version"] for e in reg.history()] == [v1]

    second = _day(tmp_path / "second", tables, registry=reg.root, rebuild="false")
    assert second["version"] == v1 and second["reused"] is True
    assert open(second["codebook"].path).read() == open(first["codebook"].path).read()
    # a run that resolved "no champion" must not overwrite the promotion made since
    from quantrec.registry import PromotionConflict
    with pytest.raises(PromotionConflict, match="not the expected None"):
        promote.python_func(registry=reg.root, version=second["published"], champion=first["champion"])
    gm = second["gmv_models"].metadata["models"]
    assert second["purchase_models"].metadata["models"]["dmqn"]["warm_start_from"] == v1
    for name in ("rqreg", "wlr"):
        assert gm[name]["warm_start_from"] == v1
        assert gm[name]["warm_start_copied"] > 3 and gm[name]["warm_start_embedding_rows"] > 100

    # a rebuild (asked, or recommended by monitoring): new codebook, RQ-Reg cold, WLR still warm
    # advice about another codebook does not apply; advice about the champion's does
    reg.record_recommendation("2011-04-27", {"action": "rebuild", "codebook_id": "f" * 64})
    assert resolve_champion.python_func(registry=reg.root, run_date=SLICE_RUN_DATE, rebuild_codebook="auto",
                                        champion=Artifact(uri=str(tmp_path / "c.json"))) == v1
    assert json.loads((tmp_path / "c.json").read_text())["rebuild_codebook"] is False
    from monitoring.recommend import Recommendation
    advice = Recommendation("rebuild", ["rebuild gain 6% > 3%"],
                            context={"run_date": SLICE_RUN_DATE, "codebook_id": manifest["codebook_id"]})
    reg.record_recommendation(SLICE_RUN_DATE, advice.to_dict())
    third = _day(tmp_path / "third", tables, registry=reg.root, rebuild="auto")
    assert third["reused"] is False and "recommended a rebuild (rebuild gain 6% > 3%)" in third["cb_report"].metadata["reason"]
    gm3 = third["gmv_models"].metadata["models"]
    assert gm3["rqreg"]["warm_start_from"] is None and gm3["rqreg"]["warm_start_skipped"] == "the codebook was rebuilt"
    assert gm3["wlr"]["warm_start_from"] == v1 and gm3["wlr"]["warm_start_copied"] > 3


def test_a_champion_codebook_of_another_shape_is_rebuilt_saying_why(tmp_path, tables):
    reg = Registry(str(tmp_path / "registry"), create=True)
    first = _day(tmp_path / "first", tables, registry=reg.root)
    reg.promote(first["published"])
    wider = json.loads(json.dumps(SLICE_CONFIG))
    wider["models"]["models"]["rqreg"]["codebook_size"] = 24
    second = _day(tmp_path / "second", tables, registry=reg.root, rebuild="false", config=wider)
    assert second["reused"] is False
    assert "differs from the configured" in second["cb_report"].metadata["reason"]
    assert load_codebook(second["codebook"].path).size == 24


# ---- a model the library has never heard of: a class and a config entry, no stage edit ----
from dataclasses import dataclass  # noqa: E402

import numpy as np  # noqa: E402


@dataclass
class ItemMedianConfig:
    task: str = "gmv"
    shrink: float = 5.0          # pseudo-count towards the global median

    @classmethod
    def small(cls, **kw):
        return cls(**kw)

    @classmethod
    def paper(cls, **kw):
        return cls(**kw)


class ItemMedianModel:
    """Predicts an item's training median GMV, shrunk to the global median."""

    name, display_name, config_cls = "item_median", "ItemMedian", ItemMedianConfig
    output, needs, warm_starts = "value", frozenset(), False

    def __init__(self, config=None):
        self.config = config or ItemMedianConfig()
        self.table, self.global_median = {}, 0.0

    @property
    def metric(self):
        return "mae"

    def fit(self, train, val, inputs=None, out_dir=None, init_from=None):
        from quantrec.training.trainer import TrainResult
        self.global_median = float(train["gmv"].median())
        g = train.groupby("item_id")["gmv"].agg(["median", "size"])
        w = g["size"] / (g["size"] + self.config.shrink)
        self.table = (w * g["median"] + (1 - w) * self.global_median).to_dict()
        mae = float(np.abs(self.predict(val) - val["gmv"]).mean())
        return TrainResult("", "", [], 0, mae, epochs_run=1)

    def predict(self, frame, inputs=None):
        return frame["item_id"].map(self.table).fillna(self.global_median).to_numpy(np.float64)

    def save(self, path):
        from quantrec.training import checkpoints as ck
        ck.save_json(ck.join(path, "config.json"), {"model": self.name, "config": {"task": self.config.task,
                     "shrink": self.config.shrink}, "table": self.table, "global_median": self.global_median})

    @classmethod
    def load(cls, path):
        from quantrec.training import checkpoints as ck
        meta = ck.load_json(ck.join(path, "config.json"))
        m = cls(ItemMedianConfig(**meta["config"]))
        m.table, m.global_median = meta["table"], meta["global_median"]
        return m


def test_a_new_model_needs_only_a_class_and_a_config_entry(tmp_path, tables):
    from quantrec.models import MODELS, register_model
    register_model(ItemMedianModel)
    try:
        config = json.loads(json.dumps(SLICE_CONFIG))
        config["models"]["daily"] = ["rqreg", "wlr", "item_median"]
        config["models"]["models"]["item_median"] = {"shrink": 2.0}
        reg = Registry(str(tmp_path / "registry"), create=True)
        a = _day(tmp_path / "run", tables, registry=reg.root, config=config)
        trained = a["gmv_models"].metadata["models"]
        assert set(trained) == {"rqreg", "wlr", "item_median"} and trained["item_median"]["metric"] == "mae"
        assert "gmv/ItemMedian/MAE" in a["metrics"].metadata
        manifest = reg.get(a["published"]).manifest
        assert "models/item_median" in manifest["artifacts"]
        assert manifest["roles"] == {"baseline": "wlr", "gmv": ["rqreg", "item_median"]}
    finally:
        MODELS.pop("item_median", None)


def test_a_fitted_codebook_carries_provenance_and_another_dataset_never_reuses_it(tmp_path, tables):
    reg = Registry(str(tmp_path / "registry"), create=True)
    first = _day(tmp_path / "first", tables, registry=reg.root)
    book = load_codebook(first["codebook"].path)
    fingerprint = tables["gmv"].metadata["dataset_fingerprint"]
    assert book.provenance is not None and book.provenance.data_fingerprint == fingerprint
    assert book.provenance.fit_window[1] <= SLICE_RUN_DATE and book.provenance.sketch.n > 1000
    reg.promote(first["published"])
    other = Dataset(uri=tables["gmv"].uri, metadata={**tables["gmv"].metadata,
                                                      "dataset_fingerprint": "another_shop:0123456789abcdef"})
    champ = Artifact(uri=str(tmp_path / "champion.json"))
    resolve_champion.python_func(registry=reg.root, run_date=SLICE_RUN_DATE, rebuild_codebook="false", champion=champ)
    report = HTML(uri=str(tmp_path / "cb.html"))
    reused = fit_codebook.python_func(gmv=other, champion=champ, config=SLICE_CONFIG,
                                      codebook=Artifact(uri=str(tmp_path / "cb")), report=report,
                                      reconstruction=Artifact(uri=str(tmp_path / "cb.json")))
    assert reused is False and "was fitted on dataset" in report.metadata["reason"]


def test_monitoring_pipeline_judges_the_champion_codebook_and_records_its_advice(tmp_path, tables, real_slice, capsys):
    """`quantrec monitor` (the monitoring pipeline, run locally) on the real slice: a
    verdict with its review page, the advice recorded in the registry; a registry without
    a champion is an alert (exit 1), never a silent keep."""
    from pipelines.cli import main
    reg = Registry(str(tmp_path / "registry"), create=True)
    args = ["monitor", "--date", SLICE_RUN_DATE, "--data", real_slice, "--registry", reg.root,
            "--pipeline-root", str(tmp_path / "root")]
    assert main(args) == 1
    out = capsys.readouterr().out
    assert "recommendation: ERROR" in out and "no champion codebook" in out
    first = _day(tmp_path / "first", tables, registry=reg.root)
    reg.promote(first["published"])
    code = main(args)
    out = capsys.readouterr().out
    assert code in (0, 3), out
    assert ("recommendation: KEEP" if code == 0 else "recommendation: REBUILD") in out
    review = Path(re.search(r"review page: (\S+)", out).group(1))
    assert review.read_text().lower().startswith("<!doctype html") and ("KEEP" in review.read_text() or "REBUILD" in review.read_text())
    advice = reg.latest_recommendation()
    assert advice["action"] in ("keep", "rebuild") and advice["champion"] == first["published"]
    assert advice["codebook_id"] == reg.get(first["published"]).manifest["codebook_id"]
