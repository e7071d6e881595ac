"""Stage ``train``: every daily model of one task table, warm-started per model.

The pipeline runs this stage once per task table (GMV, purchase); a model joins the
stage whose table its config's ``task`` names, so adding a model touches no stage.
Warm start, per model: from the champion's model of the same name when the class
supports it, except that a model built on the GMV codebook warm-starts only when the
codebook was reused (its output layer means nothing under another codebook); WLR
(and the purchase model) keep their warm start when only the codebook was rebuilt.

Output folder: ``<out_dir>/<model name>/`` (the saved model) and
``<out_dir>/models.json`` (what was trained, how, and its val metric).
"""

from __future__ import annotations

import json
import tempfile
import time
from typing import Any

import fsspec

from quantrec.config import RunConfig
from quantrec.data.tasks import read_table
from quantrec.stages.champion import ChampionInfo
from quantrec.stages.common import train_val_frames
from quantrec.training import checkpoints as ck

MODELS_JSON = "models.json"


def task_models(config: RunConfig, task: str) -> list[str]:
    """The daily models that train on task table ``task``."""
    return [n for n in config.models.daily if config.models.model_config(n).task == task]


def train_stage(task: str, table_path: str, config: RunConfig, out_dir: str, champion: ChampionInfo,
                codebook_path: str | None = None, codebook_reused: bool = False,
                events_path: str | None = None, checkpoint_dir: str | None = None,
                skipped: str | None = None) -> dict[str, dict[str, Any]]:
    """Train the daily models of ``task`` on the table at ``table_path``; save each under
    ``out_dir``. ``checkpoint_dir``: a stable folder for this run's checkpoints (a re-run
    of the same run resumes from it); None = a temporary folder. A diverging model raises
    ``TrainingDiverged`` (naming epoch and step) unless its config says to stop.
    Returns per model: task, output, metric and its best val value, epochs, rows, seconds,
    warm start (from which version, how many tensors and embedding rows were copied).
    ``skipped``: why the task table is empty on purpose (``TaskTables.skipped``, e.g. an
    interaction table has no GMV): nothing trains, ``models.json`` records the reason and
    the models that would have trained, and the summary is empty.
    """
    from quantrec.codebook import load_codebook
    from quantrec.models import ModelInputs, load_model
    from quantrec.models.base import label_column

    names = task_models(config, task)
    summary: dict[str, dict[str, Any]] = {}
    record: dict[str, Any] = {"task": task, "models": summary}
    if skipped:
        record.update(skipped=skipped, skipped_models=names)
    elif names:
        classes = {n: config.models.model_class(n) for n in names}
        needs = set().union(*(c.needs for c in classes.values()))
        if "codebook" in needs and not codebook_path:
            raise ValueError(f"models {sorted(n for n, c in classes.items() if 'codebook' in c.needs)} "
                             "need the GMV codebook and none was given")
        if "events" in needs and not events_path:
            raise ValueError(f"models {sorted(n for n, c in classes.items() if 'events' in c.needs)} "
                             "need the events table and none was given")
        inputs = ModelInputs(codebook=load_codebook(codebook_path) if "codebook" in needs else None,
                             events=read_table(events_path) if "events" in needs else None)
        # a purchase-table row is one candidate of a request: cutting "the most recent N rows"
        # would split candidate lists, so that table is capped per request by its model
        # (DMQNConfig.max_train_requests), not by models.max_train_rows
        row_cap = 0 if task == "purchase" else config.models.max_train_rows
        tr, va = train_val_frames(table_path, row_cap, label_column(task))
        for name in names:
            summary[name] = _train_one(name, classes[name], config, tr, va, inputs, out_dir, champion,
                                       codebook_reused, checkpoint_dir)
    fs, path = fsspec.core.url_to_fs(out_dir)
    fs.makedirs(path, exist_ok=True)
    with fsspec.open(ck.join(out_dir, MODELS_JSON), "w") as f:
        json.dump(record, f, indent=2, sort_keys=True)
    return summary


def _train_one(name: str, cls: type, config: RunConfig, tr, va, inputs, out_dir: str, champion: ChampionInfo,
               codebook_reused: bool, checkpoint_dir: str | None) -> dict[str, Any]:
    from quantrec.models import load_model
    from quantrec.models.base import metric_name

    cfg = config.models.model_config(name)
    model = cls(cfg)
    warm_from, why_not = None, None
    if name not in champion.models:
        why_not = "no champion model" if champion.version else "no champion"
    elif not cls.warm_starts:
        why_not = f"{name} does not warm start"
    elif "codebook" in cls.needs and not codebook_reused:
        why_not = "the codebook was rebuilt"
    else:
        warm_from = champion.version
    init_from = load_model(champion.models[name]) if warm_from else None
    if init_from is not None and type(init_from) is not cls:
        raise ValueError(f"champion {champion.version}'s {name!r} is a {type(init_from).__name__}, not {cls.__name__}")
    t0 = time.perf_counter()
    if checkpoint_dir:
        result = model.fit(tr, va, inputs, out_dir=ck.join(checkpoint_dir, name), init_from=init_from)
    else:
        with tempfile.TemporaryDirectory(prefix=f"quantrec-{name}-ckpt-") as tmp:
            result = model.fit(tr, va, inputs, out_dir=tmp, init_from=init_from)
    seconds = time.perf_counter() - t0
    model.save(ck.join(out_dir, name))
    report = getattr(model, "warm_start_report", None) or {}
    return {"task": cfg.task, "output": cls.output, "metric": metric_name(cls.output),
            "val_metric": float(result.best_metric), "epochs": int(result.epochs_run),
            "diverged": bool(result.diverged), "train_rows": int(len(tr)), "val_rows": int(len(va)),
            "seconds": round(seconds, 2), "warm_start_from": warm_from, "warm_start_skipped": why_not,
            "warm_start_copied": len(report.get("copied", [])),
            "warm_start_embedding_rows": int(sum(report.get("embedding_rows", {}).values()))}


def read_trained(out_dir: str) -> dict[str, Any]:
    """The ``models.json`` of a train stage output: {"task", "models": {name: summary}}
    and, when the stage skipped its table, "skipped" (why) and "skipped_models"."""
    return ck.load_json(ck.join(out_dir, MODELS_JSON))
