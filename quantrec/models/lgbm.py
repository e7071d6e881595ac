"""LightGBM peer on the same feature pipeline (numeric block + categorical indices as
LightGBM categorical features).

Objective (config ``objective``): default "l1" (regression_l1) on the raw value, because
the headline metric is MAE and L1 fits the conditional median, which minimises it;
"tweedie" (mean of a zero-inflated / heavy-tailed value), "huber", "regression" (L2)
and "l2_log" (L2 on log1p(value), served as expm1: a geometric-mean estimate, close to
the median for a log-symmetric value) are selectable.

``categorical``: which categorical columns enter (as LightGBM categorical features);
None = all of the task's (user, item, country for GMV). With thousands of ids the id
categoricals can overfit (measured on the default data: early stopping after 26
rounds, issue 13); ``("country",)`` leaves the ids' information to the history
features.

Early stopping on the validation MAE in label units (built-in L1 for the raw-label
objectives; the same MAE through a custom eval for "l2_log"). Saved as LightGBM's
native text model (``model.txt``) + ``config.json`` + ``features.json``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import fsspec
import lightgbm as lgb
import numpy as np
import pandas as pd

from quantrec.models.base import ModelInputs, config_from_json, config_to_json, label_column
from quantrec.models.features import FeaturePipeline, model_feature_spec
from quantrec.training import checkpoints as ck
from quantrec.training.trainer import TrainResult


@dataclass
class LGBMConfig:
    task: str = "gmv"
    cat_mode: str = "index"
    min_count: int = 2
    objective: str = "l1"            # "l1" | "tweedie" | "huber" | "regression" | "l2_log"
    categorical: tuple[str, ...] | None = None   # None = the task's; ("country",) = no ids
    num_boost_round: int = 1000
    early_stopping_rounds: int = 50
    clip_quantile: float = 1.0       # clip training labels at this quantile (1.0 = no clip)
    params: dict[str, Any] = field(default_factory=lambda: {
        "learning_rate": 0.05, "num_leaves": 63, "min_data_in_leaf": 50,
        "feature_fraction": 0.9, "bagging_fraction": 0.8, "bagging_freq": 1,
        "cat_smooth": 10.0, "max_cat_to_onehot": 8, "num_threads": 2, "verbose": -1})
    seed: int = 0

    @classmethod
    def small(cls, **kw) -> "LGBMConfig":
        return cls(num_boost_round=300, **kw)

    @classmethod
    def paper(cls, **kw) -> "LGBMConfig":
        return cls(**kw)


OBJECTIVES = ("l1", "tweedie", "huber", "regression", "l2_log")


class LGBMModel:
    """The model protocol (``quantrec.models.base``) over a LightGBM booster. It does not
    warm start: boosting from the champion's trees would keep splits on yesterday's
    categorical indices, which the refitted feature pipeline renumbers."""

    name = "lgbm"
    display_name = "LightGBM"
    config_cls = LGBMConfig
    output = "value"
    needs = frozenset()
    warm_starts = False

    def __init__(self, config: LGBMConfig | None = None) -> None:
        self.config = config or LGBMConfig()
        self.features: FeaturePipeline | None = None
        self.booster: lgb.Booster | None = None
        self.state: dict[str, Any] = {}

    @property
    def label(self) -> str:
        return label_column(self.config.task)

    def _matrix(self, frame: pd.DataFrame) -> pd.DataFrame:
        """(n, F + C) frame: numeric block + int categorical indices."""
        num, cat = self.features.transform(frame)
        df = pd.DataFrame(num, columns=self.features.numeric_names)
        for j, c in enumerate(self.features.spec.categorical):
            df[f"cat_{c}"] = cat[:, j].astype(np.int32)
        return df

    @property
    def metric(self) -> str:
        return "mae"

    def fit(self, frame_train: pd.DataFrame, frame_val: pd.DataFrame, inputs: ModelInputs | None = None,
            out_dir: str | None = None, init_from: "LGBMModel | None" = None,
            features: FeaturePipeline | None = None) -> TrainResult:
        """Train with early stopping on validation L1 (= MAE); ``out_dir`` is unused (a
        booster trains in one go). Returns a TrainResult whose epochs are boosting rounds."""
        if init_from is not None:
            raise ValueError("lgbm does not warm start (warm_starts = False)")
        cfg = self.config
        if cfg.objective not in OBJECTIVES:
            raise ValueError(f"lgbm: unknown objective {cfg.objective!r}; expected one of {OBJECTIVES}")
        self.features = features or FeaturePipeline(model_feature_spec(cfg)).fit(frame_train)
        y_tr = frame_train[self.label].to_numpy(dtype=np.float64)
        y_va = frame_val[self.label].to_numpy(dtype=np.float64)
        clip = float(np.quantile(y_tr, cfg.clip_quantile))
        self.state = {"clip": clip}
        log_target = cfg.objective == "l2_log"
        t_tr = np.log1p(np.clip(y_tr, 0, clip)) if log_target else np.clip(y_tr, 0, clip)
        cats = [f"cat_{c}" for c in self.features.spec.categorical]
        dtr = lgb.Dataset(self._matrix(frame_train), t_tr, categorical_feature=cats, free_raw_data=True)
        dva = lgb.Dataset(self._matrix(frame_val), np.log1p(np.clip(y_va, 0, None)) if log_target else y_va,
                          categorical_feature=cats, reference=dtr)
        objective = {"l1": "regression_l1", "l2_log": "regression"}.get(cfg.objective, cfg.objective)
        params = {**cfg.params, "objective": objective, "metric": "None" if log_target else "l1",
                  "seed": cfg.seed, "deterministic": True}

        def mae_in_label_units(pred: np.ndarray, data: lgb.Dataset):  # for the log target only
            return "mae", float(np.mean(np.abs(np.expm1(np.clip(pred, 0.0, 30.0)) - y_va))), False

        self.booster = lgb.train(params, dtr, num_boost_round=cfg.num_boost_round, valid_sets=[dva],
                                 feval=mae_in_label_units if log_target else None,
                                 callbacks=[lgb.early_stopping(cfg.early_stopping_rounds, verbose=False)])
        self.state["best_iteration"] = int(self.booster.best_iteration)
        best = float(self.booster.best_score["valid_0"]["mae" if log_target else "l1"])
        return TrainResult(best_checkpoint="", last_checkpoint="", history=[], best_epoch=self.booster.best_iteration,
                           best_metric=best, epochs_run=int(self.booster.current_iteration()),
                           stopped_early=self.booster.current_iteration() < cfg.num_boost_round)

    def predict(self, frame: pd.DataFrame, inputs: ModelInputs | None = None) -> np.ndarray:
        """(n,) float64 predicted value, clamped at 0."""
        if self.booster is None:
            raise RuntimeError("lgbm: call fit() or load() first")
        p = np.asarray(self.booster.predict(self._matrix(frame), num_iteration=self.booster.best_iteration or None),
                       dtype=np.float64)
        if self.config.objective == "l2_log":
            p = np.expm1(np.clip(p, 0.0, 30.0))
        return np.clip(p, 0.0, None)

    def save(self, path: str) -> None:
        with fsspec.open(ck.join(path, "model.txt"), "w") as f:
            f.write(self.booster.model_to_string(num_iteration=self.booster.best_iteration or None))
        ck.save_json(ck.join(path, "config.json"),
                     {"model": self.name, "config": config_to_json(self.config), "state": self.state})
        self.features.save(ck.join(path, "features.json"))

    @classmethod
    def load(cls, path: str) -> "LGBMModel":
        meta = ck.load_json(ck.join(path, "config.json"))
        if meta.get("model") != cls.name:
            raise ValueError(f"{path} holds a {meta.get('model')!r} model, not 'lgbm'")
        m = cls(config_from_json(LGBMConfig, meta["config"]))
        m.state = meta["state"]
        m.features = FeaturePipeline.load(ck.join(path, "features.json"))
        with fsspec.open(ck.join(path, "model.txt"), "r") as f:
            m.booster = lgb.Booster(model_str=f.read())
        return m
