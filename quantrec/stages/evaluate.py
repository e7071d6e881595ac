"""Stage ``evaluate_offline``: every trained model scored on its task table's eval split.

One report for the run: a section per task (GMV regression: MAE, XAUC, Norm-Gini,
Spearman by value decile, long tail, new vs returning users; purchase probability: AUC,
logloss, calibration), and one JSON with every number.
"""

from __future__ import annotations

import json
from typing import Any, Mapping

import fsspec
import numpy as np

from quantrec.data import schema as S
from quantrec.data.tasks import read_table
from quantrec.evaluation.report import EvaluationResult, build_html, evaluate_models
from quantrec.reports import HtmlReport
from quantrec.stages.train import read_trained
from quantrec.training import checkpoints as ck

TASK_ORDER = ("gmv", "purchase", "ltv")


def evaluate_stage(tables: Mapping[str, str], trained_dirs: list[str], html_path: str, json_path: str,
                   events_path: str | None = None, split: str = "eval") -> dict[str, EvaluationResult]:
    """Score the models of every train-stage output in ``trained_dirs`` on ``split`` rows
    of their task table (``tables``: task -> table path). Returns task -> result and
    writes one HTML report and one JSON ({task: result}). A task with no trained model
    is left out; no model at all is an error."""
    from quantrec.models import ModelInputs, load_model

    by_task: dict[str, dict[str, str]] = {}
    for out_dir in trained_dirs:
        info = read_trained(out_dir)
        for name in info["models"]:
            by_task.setdefault(info["task"], {})[name] = ck.join(out_dir, name)
    if not by_task:
        raise ValueError("evaluate_offline: no trained model to evaluate")
    events = None
    results: dict[str, EvaluationResult] = {}
    for task in sorted(by_task, key=lambda t: TASK_ORDER.index(t) if t in TASK_ORDER else len(TASK_ORDER)):
        if task not in tables:
            raise ValueError(f"evaluate_offline: no table given for task {task!r}")
        frame = read_table(tables[task])
        frame = frame[frame[S.SPLIT] == split].reset_index(drop=True)
        if frame.empty:
            raise ValueError(f"{tables[task]} has no rows in split {split!r}: nothing to evaluate")
        preds = {}
        for name, path in by_task[task].items():
            model = load_model(path)
            if "events" in model.needs and events is None:
                if not events_path:
                    raise ValueError(f"model {name!r} needs the events table and none was given")
                events = read_table(events_path)
            inputs = ModelInputs(events=events)
            preds[model.display_name] = np.asarray(model.predict(frame, inputs), dtype=np.float64)
        label = S.LABEL if task == "purchase" else (S.LTV_LABEL if task == "ltv" else S.VALUE)
        is_new = frame[S.IS_NEW_USER].to_numpy(bool) if S.IS_NEW_USER in frame.columns else None
        results[task] = evaluate_models(frame[label].to_numpy(np.float64), preds, is_new_user=is_new, task=task)
    write_evaluation(results, html_path, json_path)
    return results


def write_evaluation(results: Mapping[str, EvaluationResult], html_path: str, json_path: str) -> None:
    """One HTML page (a block of sections per task) and one JSON {task: numbers}."""
    page = HtmlReport("Offline evaluation of the run's models")
    for task, res in results.items():
        sub = build_html(res)
        page.add(sub.title, "")
        for heading, body in sub.sections:
            page.add(f"{task}: {heading}", body)
    page.write(html_path)
    with fsspec.open(json_path, "w", encoding="utf-8") as f:
        json.dump({task: res.to_dict() for task, res in results.items()}, f, indent=1, allow_nan=False)


def flat_metrics(results: Mapping[str, EvaluationResult]) -> dict[str, Any]:
    """``{"<task>/<model>/<metric>": value}`` for KFP Metrics and the registry manifest."""
    return {f"{task}/{k}": v for task, res in results.items() for k, v in res.summary().items()}
