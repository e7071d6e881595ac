"""The daily pipeline's model stages as plain functions over paths.

- ``fit_codebook_stage``: fit the GMV codebook on the training labels (or reuse the
  champion's), and write its reconstruction report.
- ``train_stage``: train RQ-Reg and the production baseline WLR on the GMV task;
  warm start from the champion's checkpoints when the codebook is unchanged.
Configuration: ``ModelsConfig`` (the run config's ``models`` section).
"""

from __future__ import annotations

import dataclasses
import tempfile
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from quantrec.data import schema as S
from quantrec.data.tasks import read_table
from quantrec.dataclass_io import build_dataclass

DAILY_MODELS = ("rqreg", "wlr")
PRESETS = ("small", "paper")


def _merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in override.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


@dataclass(frozen=True)
class ModelsConfig:
    """Which size of model to train and on how many rows.

    preset: "small" (the daily default: minutes on 2 cores) or "paper" (the authors'
    sizes: d_model 512, 50 epochs; hours on CPU, meant for a cluster).
    max_train_rows: train on the most recent this-many training rows; 0 = all rows
        (KFP dict parameters cannot carry null). The default keeps `make run` within a
        few minutes on 2 cores; the benchmark-selected setting is 0 (all rows: -0.19 MAE,
        benchmarks/RESULTS.md gmv_quality), recommended on a cluster.
    rqreg / wlr: overrides of the preset's fields, e.g. {"train": {"epochs": 2}}.
    """

    preset: str = "small"
    max_train_rows: int = 100_000
    rqreg: dict = field(default_factory=dict)
    wlr: dict = field(default_factory=dict)

    def model_config(self, name: str) -> Any:
        from quantrec.models import MODELS
        if self.preset not in PRESETS:
            raise ValueError(f"models.preset must be one of {PRESETS}, not {self.preset!r}")
        cls = MODELS[name].config_cls
        base = dataclasses.asdict(getattr(cls, self.preset)())
        return build_dataclass(cls, _merge(base, getattr(self, name)))


def _splits(gmv_path: str, max_train_rows: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    frame = read_table(gmv_path)
    tr = frame[frame[S.SPLIT] == "train"].sort_values(S.TS, kind="stable")
    va = frame[frame[S.SPLIT] == "val"]
    if tr.empty or va.empty:
        raise ValueError(f"{gmv_path}: the GMV table needs train and val rows "
                         f"(has {len(tr)} train, {len(va)} val)")
    if max_train_rows < 0:
        raise ValueError(f"models.max_train_rows must be >= 0 (0 = all rows), got {max_train_rows}")
    if max_train_rows and len(tr) > max_train_rows:
        tr = tr.iloc[-max_train_rows:]  # the most recent rows: prices and customers drift
    return tr.reset_index(drop=True), va.reset_index(drop=True)


def fit_codebook_stage(gmv_path: str, config: ModelsConfig, codebook_path: str, html_path: str,
                       json_path: str, reuse_path: str | None = None) -> dict[str, Any]:
    """Fit (or reuse) the RQ-Reg codebook and report its reconstruction error in GMV.

    reuse_path: a saved TargetCodebook (the champion's) to keep instead of fitting.
    When fitting, the paper's baselines (flat K-means with the same vocabulary, GR's
    dynamic quantiles) are fitted in the same target space for comparison.
    Returns a flat summary: source, method, and the chosen codebook's errors.
    """
    from quantrec.codebook import fit_codebook, load_codebook, reconstruction_report, write_reconstruction_report
    from quantrec.codebook.target import TargetCodebook
    from quantrec.models.rqreg import RQRegModel

    cfg = config.model_config("rqreg")
    y = _splits(gmv_path, 0)[0][S.VALUE].to_numpy(np.float64)  # every training label
    if reuse_path:
        chosen = load_codebook(reuse_path)
        if not isinstance(chosen, TargetCodebook):
            raise ValueError(f"{reuse_path} is a bare codebook without its target transform; "
                             "rebuild the codebook")
        codebooks = {"champion codebook (reused)": chosen}
    else:
        chosen = RQRegModel(cfg).fit_target_codebook(y)
        tf = chosen.transform
        codebooks = {
            f"RQ L={cfg.layers} K={cfg.codebook_size} ({cfg.first_layer} first layer)": chosen,
            f"flat K-means {cfg.layers * cfg.codebook_size} codes":
                TargetCodebook(tf, fit_codebook(tf.to_z(y), method="kmeans", layers=cfg.layers,
                                                size=cfg.codebook_size)),
            "dynamic quantile (GR)": TargetCodebook(tf, fit_codebook(tf.to_z(y), method="dynamic_quantile")),
        }
    report = reconstruction_report(y, codebooks)
    write_reconstruction_report(report, json_path, html_path, y, codebooks)
    chosen.save(codebook_path)
    first = report["methods"][next(iter(codebooks))]
    tail = first["per_bucket"][-1]
    return {"source": "reused" if reuse_path else "fitted", "method": chosen.method,
            "layers": int(chosen.layers), "size": int(chosen.size), "n_labels": int(y.size),
            "clip": chosen.transform.clip, "mae": first["overall"]["mae"], "mre": first["overall"]["mre"],
            "max_abs": first["overall"]["max_abs"], "tail_bucket": tail["bucket"], "tail_mae": tail["mae"]}


def train_stage(gmv_path: str, codebook_path: str, config: ModelsConfig, out_dirs: dict[str, str],
                champion_dirs: dict[str, str] | None = None) -> dict[str, dict[str, Any]]:
    """Train the daily models (RQ-Reg with the given codebook, WLR) and save them.

    out_dirs: model name -> output directory. champion_dirs: model name -> the
    champion's saved model, to warm start from (pass it only when the codebook is the
    champion's). A diverging run raises ``TrainingDiverged`` naming epoch and step.
    Returns per model: best val MAE, epochs run, whether it was warm started.
    """
    from quantrec.codebook import load_codebook
    from quantrec.models import MODELS, load_model

    unknown = set(out_dirs) - set(DAILY_MODELS)
    if unknown:
        raise ValueError(f"unknown daily model(s) {sorted(unknown)}; expected {DAILY_MODELS}")
    tr, va = _splits(gmv_path, config.max_train_rows)
    summary: dict[str, dict[str, Any]] = {}
    for name, out_dir in out_dirs.items():
        cfg = config.model_config(name)
        model = (MODELS[name](cfg, codebook=load_codebook(codebook_path)) if name == "rqreg"
                 else MODELS[name](cfg))
        champion_dir = (champion_dirs or {}).get(name)
        champion = load_model(champion_dir) if champion_dir else None
        with tempfile.TemporaryDirectory(prefix=f"quantrec-{name}-ckpt-") as ckpt:
            result = model.fit(tr, va, out_dir=ckpt, init_from=champion)
        model.save(out_dir)
        summary[name] = {"val_mae": float(result.best_metric), "epochs": int(result.epochs_run),
                         "train_rows": int(len(tr)), "warm_started": champion is not None,
                         "diverged": bool(result.diverged)}
    return summary
