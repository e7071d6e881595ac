"""A real registry version to serve: tiny RQ-Reg / WLR / DMQN trained on a slice of the real
data through the pipeline's own stages (codebook, train, shadow, publish), then promoted.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

SLICE_START, SLICE_END, RUN_DATE = "2011-01-04", "2011-03-01", "2011-02-25"
CONFIG = {
    "tasks": {"windows": {"eval_days": 2, "val_days": 3, "train_days": 40}, "purchase_train_days": 7},
    "models": {"daily": ["rqreg", "wlr", "dmqn"], "max_train_rows": 2000, "models": {
        "rqreg": {"d_model": 16, "code_emb_dim": 8, "feat_emb_dim": 4, "layers": 2, "codebook_size": 16,
                  "train": {"epochs": 1, "batch_size": 256, "progress": False}},
        "wlr": {"d_model": 16, "emb_dim": 4, "train": {"epochs": 1, "batch_size": 256, "progress": False}},
        "dmqn": {"item_dim": 8, "d_model": 8, "codebooks": 2, "codewords": 4, "code_dim": 4, "hstu_blocks": 1,
                 "hstu_heads": 1, "hstu_attn_dim": 4, "hstu_linear_dim": 4, "ctam_heads": 1, "mlp_hidden": 8,
                 "max_train_requests": 200, "train": {"epochs": 1, "batch_size": 32, "progress": False}}}},
}


def build_version(root: Path, config: dict | None = None, start: str = SLICE_START, end: str = SLICE_END,
                  run_date: str = RUN_DATE) -> dict:
    """Tables, models, shadow decision and a promoted registry version under ``root``
    (``config``: the run config, default ``CONFIG``: tiny models; the serving benchmark
    passes the daily model sizes)."""
    from quantrec.config import RunConfig
    from quantrec.data.load import load_transactions
    from quantrec.data.spec import load_spec, resolve_data_url
    from quantrec.data.tasks import tables_from_raw, write_table
    from quantrec.registry import Registry
    from quantrec.stages.champion import ChampionInfo
    from quantrec.stages.codebook import fit_codebook_stage
    from quantrec.stages.publish import decision_record, publish_stage
    from quantrec.stages.shadow import shadow_stage
    from quantrec.stages.train import train_stage

    config = config or CONFIG
    root.mkdir(parents=True, exist_ok=True)
    spec = load_spec()
    src = pd.read_parquet(resolve_data_url(spec))
    src = src[(src["InvoiceDate"] >= start) & (src["InvoiceDate"] < end)]
    src.to_parquet(root / "slice.parquet", index=False)
    raw = load_transactions(str(root / "slice.parquet"), spec)
    cfg = RunConfig.from_dict(config)
    tables = tables_from_raw(raw, run_date, spec, cfg.tasks).tables
    paths = {}
    for name, frame in tables.items():
        paths[name] = str(root / f"{name}.parquet")
        write_table(frame, paths[name], name)
    champion = ChampionInfo()
    cb = fit_codebook_stage(paths["gmv"], cfg, champion, str(root / "codebook.json"), str(root / "cb.html"),
                            str(root / "cb.json"), "fixture")
    gmv_dir, purchase_dir = str(root / "gmv_models"), str(root / "purchase_models")
    train_stage("gmv", paths["gmv"], cfg, gmv_dir, champion, codebook_path=str(root / "codebook.json"),
                events_path=paths["events"])
    train_stage("purchase", paths["purchase"], cfg, purchase_dir, champion, events_path=paths["events"])
    shadow_stage(paths["replay"], paths["purchase"], [gmv_dir, purchase_dir], champion, cfg,
                 str(root / "shadow.html"), str(root / "decision.json"), events_path=paths["events"])
    (root / "evaluation.json").write_text(json.dumps({"note": "not evaluated: a serving-test fixture"}))
    reg = Registry(str(root / "registry"), create=True)
    out = publish_stage(reg.root, run_date, cfg, champion, "serving-fixture", str(root / "codebook.json"), cb,
                        [gmv_dir, purchase_dir], str(root / "evaluation.json"), {},
                        decision=decision_record(str(root / "decision.json")))
    reg.promote(out["version"])
    return {"root": root, "registry": reg.root, "version": out["version"], "paths": paths, "run_date": run_date,
            "config": config}


def write_values(client, values, prefix: str = "quantrec", version: str | None = None, **store_kwargs):
    """Refresh the cache of ``client`` with precomputed ``values`` (as another version name
    when ``version`` is given: the values are re-encoded with that version's tag)."""
    import dataclasses

    from quantrec.serving.cache import CacheStore
    if version is not None:
        values = dataclasses.replace(values, version=version)
    store = CacheStore(client, prefix=prefix, progress=False, **store_kwargs)
    return store.refresh(values.version, values.users(), values.items(), user_schema=values.user_schema,
                         item_schema=values.item_schema, pairs=values.pairs(), pair_schema=values.pair_schema,
                         meta=values.meta())
