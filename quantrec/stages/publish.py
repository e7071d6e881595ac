"""Stage ``publish``: record the run's models as one registry version with its lineage.

Every trained run is published (blessed or not: the shadow decision, when there is one,
is part of the manifest); publishing is idempotent, so a retried task or a resumed
backfill returns the version it published before instead of failing.
"""

from __future__ import annotations

import json
from typing import Any

from quantrec.config import RunConfig
from quantrec.data.snapshot import file_digest
from quantrec.registry import Registry
from quantrec.stages.champion import CODEBOOK, ChampionInfo, model_key
from quantrec.stages.train import read_trained
from quantrec.training import checkpoints as ck

EVALUATION = "evaluation.json"


def decision_record(decision_path: str) -> dict[str, Any]:
    """The compact shadow decision (for the manifest) from the decision artifact's JSON."""
    from quantrec.shadow.compare import compact_decision
    return compact_decision(ck.load_json(decision_path))


def trained_roles(config: RunConfig, trained: dict[str, Any]) -> dict[str, Any]:
    """``config.models.roles()`` restricted to the models in ``trained`` (name -> summary):
    a version names only the models it holds. An interaction table's run trains no GMV
    model, so its roles hold no "gmv" and no "baseline" (serving then says so by name)."""
    out: dict[str, Any] = {}
    for role, names in config.models.roles().items():
        if isinstance(names, list):
            kept = [n for n in names if n in trained]
            if kept:
                out[role] = kept
        elif names in trained:
            out[role] = names
    return out


def publish_stage(registry: str, run_date: str, config: RunConfig, champion: ChampionInfo,
                  data_digest: str, codebook_path: str, codebook_summary: dict[str, Any],
                  trained_dirs: list[str], evaluation_path: str, metrics: dict[str, Any],
                  decision: dict[str, Any] | None = None) -> dict[str, Any]:
    """Publish codebook + every trained model + the evaluation as one version of
    ``registry``. Returns {"version", "created", "path"} (version "" without a registry).

    Manifest lineage: run_date, data fingerprint (the snapshot digest), codebook id and
    the day it was fitted, the run config, metrics, roles, per-model training summaries,
    the champion the run started from, and the shadow decision (None before there is one).
    """
    if not registry:
        return {"version": "", "created": False, "path": "", "reason": "no registry: nothing published"}
    artifacts: dict[str, str] = {EVALUATION: evaluation_path}
    training: dict[str, Any] = {}
    for out_dir in trained_dirs:
        info = read_trained(out_dir)
        for name, summary in info["models"].items():
            artifacts[model_key(name)] = ck.join(out_dir, name)
            training[name] = summary
    if not training:
        raise ValueError("publish: no trained model to publish")
    codebook_id = None
    if codebook_summary.get("source") != "skipped":
        artifacts[CODEBOOK] = codebook_path
        codebook_id = file_digest(codebook_path)
    fitted_on = run_date if codebook_summary.get("source") == "fitted" else champion.codebook_fitted_on
    metadata = {
        "data_fingerprint": data_digest,
        "codebook_id": codebook_id,
        "codebook_source": codebook_summary.get("source"),
        "codebook_fitted_on": fitted_on or None,
        "config": config.to_dict(),
        "metrics": metrics,
        "roles": trained_roles(config, training),
        "training": training,
        "champion_at_start": champion.version or None,
        "decision": decision,
    }
    reg = Registry(registry)
    version, created = reg.publish(artifacts, run_date, json.loads(json.dumps(metadata, default=str)))
    return {"version": version.name, "created": created, "path": version.path}
