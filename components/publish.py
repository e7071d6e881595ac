from kfp import dsl
from kfp.dsl import Artifact, Dataset, Input, Metrics, Model

from components._image import IMAGE


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def publish(registry: str, run_date: str, config: dict, champion: Input[Artifact], snapshot: Input[Dataset],
            codebook: Input[Artifact], gmv_models: Input[Model], purchase_models: Input[Model],
            evaluation: Input[Artifact], metrics: Input[Metrics], decision: Input[Artifact]) -> str:
    """Record the run's codebook, models and evaluation as one registry version with its
    lineage; idempotent (a retry returns the version published before). Returns its name.

    Args:
        registry: URL of the model registry ("" = none: nothing is published).
        run_date: YYYY-MM-DD of the run.
        config: the run configuration (saved in the manifest).
        champion: the champion this run started from.
        snapshot: the validated data (its digest is the data fingerprint).
        codebook: the run's codebook.
        gmv_models: the GMV train stage's models.
        purchase_models: the purchase train stage's models.
        evaluation: the offline evaluation (JSON).
        metrics: the offline metrics.
        decision: the shadow comparison's decision (kept in the manifest, blessed or not).
    """
    import json

    from components._meta import say
    from quantrec.config import RunConfig
    from quantrec.stages.champion import ChampionInfo
    from quantrec.stages.publish import publish_stage

    from quantrec.stages.publish import decision_record

    with open(champion.path) as f:
        info = ChampionInfo.from_dict(json.load(f))
    out = publish_stage(registry, run_date, RunConfig.from_dict(config), info, snapshot.metadata["digest"],
                        codebook.path, dict(codebook.metadata), [gmv_models.path, purchase_models.path],
                        evaluation.path, dict(metrics.metadata), decision=decision_record(decision.path))
    say(f"published version {out['version']}" + ("" if out["created"] else " (already published: unchanged)")
        if out["version"] else out["reason"])
    return out["version"]
