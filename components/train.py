from kfp import dsl
from kfp.dsl import Artifact, Dataset, Input, Metrics, Model, Output

from components._image import IMAGE


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def train(task: str, run_date: str, table: Input[Dataset], snapshot: Input[Dataset], champion: Input[Artifact],
          config: dict, checkpoints: str, models: Output[Model], training: Output[Metrics],
          events: Input[Dataset] = None, codebook: Input[Artifact] = None, codebook_reused: bool = False):
    """Train every daily model of one task table; warm start per model from the champion.

    Args:
        task: the task table the models train on ("gmv" | "purchase").
        run_date: YYYY-MM-DD of the run.
        table: that task table.
        snapshot: the validated snapshot (its digest keys the resumable checkpoints).
        champion: the champion resolved for this run (warm-start weights).
        config: the run configuration ("models": which models, size, overrides).
        checkpoints: URL root for resumable checkpoints ("" = temporary: only a retry in
            place resumes); a re-run of the same day, data and config resumes there.
        events: the events table (models that read whole behaviour histories).
        codebook: the run's GMV codebook (models that need it).
        codebook_reused: True when the codebook is the champion's (codebook models warm start).
    """
    import json

    from components._meta import attach, say
    from quantrec.config import RunConfig
    from quantrec.stages.champion import ChampionInfo
    from quantrec.stages.common import run_key
    from quantrec.stages.train import task_models, train_stage

    cfg = RunConfig.from_dict(config)
    with open(champion.path) as f:
        info = ChampionInfo.from_dict(json.load(f))
    key = run_key(run_date, snapshot.metadata["digest"], cfg.to_dict())
    ckpt = f"{checkpoints.rstrip('/')}/{key}/{task}" if checkpoints else None
    summary = train_stage(task, table.path, cfg, models.path, info,
                          codebook_path=codebook.path if codebook is not None else None,
                          codebook_reused=codebook_reused, events_path=events.path if events is not None else None,
                          checkpoint_dir=ckpt, skipped=table.metadata.get("skipped"))
    attach(models, {"task": task, "models": summary, "config": cfg.to_dict(),
                    **({"skipped": table.metadata["skipped"]} if table.metadata.get("skipped") else {})})
    if table.metadata.get("skipped"):
        say(f"{task}: skipped ({', '.join(task_models(cfg, task)) or 'no models'}): {table.metadata['skipped']}")
    elif not summary:
        say(f"no daily model trains on the {task} table (models.daily = {list(cfg.models.daily)})")
    for name, s in summary.items():
        for key in ("val_metric", "epochs", "train_rows", "seconds", "warm_start_copied"):
            training.log_metric(f"{name}/{key}", s[key])
        # the task leads: the local runner shows KFP's task names ("train", "train-2")
        say(f"{task} {name}: val {s['metric']} {s['val_metric']:.4g}, {s['epochs']} epochs, {s['seconds']:.0f} s, "
            f"warm start: {s['warm_start_from'] or s['warm_start_skipped']}")
