"""Shared pieces of the models: the model protocol, the feature encoder, config
(de)serialisation, frame -> tensor conversion, and the fit / predict / save / load
plumbing of the neural models.

The protocol every model of ``quantrec.models.MODELS`` follows (stages and components
read these declarations and never branch on a model's name)::

    name: str                   registry key, also written into config.json
    display_name: str           how reports and metric keys name it ("RQ-Reg")
    config_cls: type            dataclass with small(**kw) / paper(**kw) and a ``task`` field
    output: str                 "value" (currency units) | "probability" (in [0, 1])
    needs: frozenset[str]       extra inputs: "codebook" (the run's GMV codebook),
                                "events" (the whole behaviour log)
    warm_starts: bool           whether ``fit(init_from=champion)`` is supported
    fit(train, val, inputs=None, out_dir=None, init_from=None) -> TrainResult
    predict(frame, inputs=None) -> (n,) float64
    save(path) / load(path)

Model directory layout (every neural model): ``model.safetensors`` (weights),
``config.json`` ({"model": name, "config": ..., "state": ...}), ``features.json``
(the fitted ``FeaturePipeline``). Weights are loaded with safetensors only.
"""

from __future__ import annotations

import dataclasses
import tempfile
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import torch
from torch import nn

from quantrec.data import schema
from quantrec.models.features import FeaturePipeline, FeatureSpec
from quantrec.dataclass_io import build_dataclass
from quantrec.training import checkpoints as ck
from quantrec.training.trainer import Batch, StepContext, TrainConfig, TrainResult, set_seed, train

#: label column of each task table
LABELS: dict[str, str] = {"gmv": schema.VALUE, "ltv": schema.LTV_LABEL, "purchase": schema.LABEL}
#: early-stopping / selection metric (lower is better) of each model output
METRICS: dict[str, str] = {"value": "mae", "probability": "logloss"}
OUTPUTS = tuple(METRICS)
NEEDS = frozenset({"codebook", "events"})


@dataclasses.dataclass
class ModelInputs:
    """What a model may need beyond the rows of its task table.

    codebook: the run's GMV ``TargetCodebook`` (models whose ``needs`` has "codebook").
    events: the events table, i.e. cleaned purchase lines strictly before run_date
        (columns of ``schema``: user_id, item_id, order_id, ts, day, quantity,
        unit_price, gmv, country), for models whose ``needs`` has "events".
    """

    codebook: Any | None = None
    events: pd.DataFrame | None = None


# ---- configs ---------------------------------------------------------------------------
def config_to_json(cfg: Any) -> dict[str, Any]:
    """Dataclass (possibly with a nested TrainConfig ``train`` field) -> JSON dict."""
    return dataclasses.asdict(cfg)


def config_from_json(cls: type, d: dict[str, Any]) -> Any:
    """Inverse of ``config_to_json``; unknown keys are ignored (forward compatible)."""
    return build_dataclass(cls, d, strict=False)


def task_spec(task: str, mode: str = "index", min_count: int = 2) -> FeatureSpec:
    """Feature spec of a value task ("gmv" | "ltv")."""
    if task == "gmv":
        return FeatureSpec.gmv(mode=mode, min_count=min_count)
    if task == "ltv":
        return FeatureSpec.ltv(mode=mode, min_count=min_count)
    raise ValueError(f"unknown task {task!r} for the feature pipeline (gmv|ltv)")


def label_column(task: str) -> str:
    """The label column of a task table; an unknown task is an error, never a default."""
    try:
        return LABELS[task]
    except KeyError:
        raise ValueError(f"unknown task {task!r}; known tasks: {sorted(LABELS)}") from None


def metric_name(output: str) -> str:
    """The model-selection metric of an output kind ("value" -> "mae", "probability" -> "logloss")."""
    try:
        return METRICS[output]
    except KeyError:
        raise ValueError(f"unknown model output {output!r}; known: {OUTPUTS}") from None


def selection_metric(output: str, y: Any, pred: Any) -> float:
    """The metric ``metric_name(output)`` of predictions ``pred`` (n,) for labels ``y`` (n,)."""
    from quantrec.evaluation.metrics import logloss, mae
    return float(mae(y, pred) if metric_name(output) == "mae" else logloss(y, pred))


# ---- the shared encoder ----------------------------------------------------------------
class FeatureEncoder(nn.Module):
    """Categorical embeddings + numeric features -> two-layer MLP.

    forward(num (B, F) float32, cat (B, C) int64) -> (B, out_dim).
    Index 0 of every embedding table is the unknown / unseen id.
    """

    def __init__(self, n_numeric: int, cardinalities: list[int], emb_dim: int,
                 hidden: int, out_dim: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.embs = nn.ModuleList(nn.Embedding(c, emb_dim) for c in cardinalities)
        d_in = n_numeric + emb_dim * len(cardinalities)
        self.mlp = nn.Sequential(nn.Linear(d_in, hidden), nn.ReLU(), nn.Dropout(dropout),
                                 nn.Linear(hidden, out_dim))

    def forward(self, num: torch.Tensor, cat: torch.Tensor) -> torch.Tensor:
        parts = [num] + [emb(cat[:, j]) for j, emb in enumerate(self.embs)]  # (B,F), (B,e)...
        return self.mlp(torch.cat(parts, dim=1))  # (B, out_dim)


@dataclasses.dataclass
class ScalarNetConfig:
    """Fields and presets shared by the one-output models (WLR, MLP) over ScalarNet."""

    task: str = "gmv"
    cat_mode: str = "index"
    min_count: int = 2
    emb_dim: int = 16
    d_model: int = 64
    dropout: float = 0.1
    train: TrainConfig = dataclasses.field(
        default_factory=lambda: TrainConfig(epochs=6, batch_size=512, lr=2e-3))

    @classmethod
    def small(cls, **kw: Any) -> Any:
        """The daily default."""
        return cls(**kw)

    @classmethod
    def paper(cls, **kw: Any) -> Any:
        """Same width / optimiser as the authors' RQ-Reg, for a like-for-like comparison."""
        kw.setdefault("train", TrainConfig(epochs=50, batch_size=256, lr=5e-4, patience=5))
        return cls(d_model=512, emb_dim=64, **kw)


class ScalarNet(nn.Module):
    """FeatureEncoder -> ReLU -> Linear: one number per row (WLR's logit, the MLP's
    log1p value). forward(num (B, F), cat (B, C)) -> (B,). ``cfg`` has emb_dim,
    d_model and dropout."""

    def __init__(self, n_numeric: int, cardinalities: list[int], cfg: Any) -> None:
        super().__init__()
        self.encoder = FeatureEncoder(n_numeric, cardinalities, cfg.emb_dim, 2 * cfg.d_model,
                                      cfg.d_model, cfg.dropout)
        self.head = nn.Sequential(nn.ReLU(), nn.Linear(cfg.d_model, 1))

    def forward(self, num: torch.Tensor, cat: torch.Tensor) -> torch.Tensor:
        return self.head(self.encoder(num, cat)).squeeze(-1)  # (B,)


# ---- base model ------------------------------------------------------------------------
class NeuralModel:
    """fit / predict / save / load for a torch model over the shared features.

    Subclasses set ``name`` and ``config_cls`` (and ``output`` / ``needs`` when they
    differ) and implement ``_prepare`` (fit-time target state), ``_targets`` (labels ->
    extra training tensors), ``_build``, ``_loss`` and ``_predict_tensor`` (output units:
    value, e.g. GMV, or probability).
    """

    name: ClassVar[str] = ""
    display_name: ClassVar[str] = ""
    config_cls: ClassVar[type] = object
    output: ClassVar[str] = "value"
    needs: ClassVar[frozenset[str]] = frozenset()
    warm_starts: ClassVar[bool] = True

    def __init__(self, config: Any | None = None) -> None:
        self.config = config if config is not None else self.config_cls()
        self.features: FeaturePipeline | None = None
        self.net: nn.Module | None = None
        self.state: dict[str, Any] = {}
        self.train_result: TrainResult | None = None
        self.warm_start_report: dict[str, Any] | None = None

    # -- hooks --
    def _prepare(self, y_train: np.ndarray, inputs: ModelInputs) -> None:
        """Fit target-side state from the (n,) training labels (stored in self.state)."""

    def _targets(self, y: np.ndarray) -> dict[str, torch.Tensor]:
        return {}

    def _build(self) -> nn.Module:
        raise NotImplementedError

    def _loss(self, net: nn.Module, batch: Batch, ctx: StepContext):
        raise NotImplementedError

    def _predict_tensor(self, net: nn.Module, num: torch.Tensor, cat: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def _epoch_hook(self, epoch: int, epochs: int) -> dict[str, Any]:
        return {}

    # -- data --
    @property
    def label(self) -> str:
        return label_column(self.config.task)

    @property
    def metric(self) -> str:
        """Early-stopping metric on the val split: MAE for values, logloss for probabilities."""
        return metric_name(self.output)

    def tensors(self, frame: pd.DataFrame, with_targets: bool = True) -> Batch:
        """frame -> {"num": (n,F), "cat": (n,C), "y": (n,) raw labels, **targets}."""
        num, cat = self.features.transform(frame)
        out: Batch = {"num": torch.from_numpy(num), "cat": torch.from_numpy(cat)}
        if with_targets:
            y = frame[self.label].to_numpy(dtype=np.float64)
            out["y"] = torch.from_numpy(y.astype(np.float32))
            out.update(self._targets(y))
        return out

    # -- public API --
    def fit(self, frame_train: pd.DataFrame, frame_val: pd.DataFrame, inputs: ModelInputs | None = None,
            out_dir: str | None = None, init_from: "NeuralModel | None" = None,
            features: FeaturePipeline | None = None) -> TrainResult:
        """Fit features (unless given) on ``frame_train``, train with early stopping on
        ``self.metric`` over ``frame_val``; checkpoints go to ``out_dir`` (a temp dir if
        None; an existing run there is resumed). ``inputs``: what ``needs`` declares.
        ``init_from``: a trained model of the same kind (the champion) whose weights start
        training (``training.warm_start``); its report is kept in
        ``self.warm_start_report``. Leaves the best weights loaded."""
        cfg = self.config
        inputs = inputs or ModelInputs()
        set_seed(cfg.train.seed)
        if cfg.train.num_threads:
            torch.set_num_threads(cfg.train.num_threads)
        self.features = features or FeaturePipeline(task_spec(cfg.task, cfg.cat_mode, cfg.min_count)).fit(frame_train)
        self._prepare(frame_train[self.label].to_numpy(dtype=np.float64), inputs)
        tr, va = self.tensors(frame_train), self.tensors(frame_val)
        set_seed(cfg.train.seed)
        self.net = self._build()
        self.warm_start_report = None
        if init_from is not None:
            from quantrec.training.warm_start import warm_start
            self.warm_start_report = warm_start(self.net, self.features, init_from.net, init_from.features)
        tmp = None
        if out_dir is None:
            tmp = tempfile.TemporaryDirectory(prefix=f"quantrec-{self.name}-")
            out_dir = tmp.name
        try:
            self.train_result = train(self.net, self._loss, tr, va, cfg.train, out_dir,
                                      eval_fn=self._val_metric, model_config=self._config_json(),
                                      epoch_hook=self._epoch_hook)
        finally:
            if tmp is not None:
                tmp.cleanup()
        self.net.eval()
        return self.train_result

    def _val_metric(self, net: nn.Module, data: Batch) -> float:
        pred = self._predict_batched(net, data["num"], data["cat"])
        return selection_metric(self.output, data["y"].double().numpy(), pred.numpy())

    @torch.no_grad()
    def _predict_batched(self, net: nn.Module, num: torch.Tensor, cat: torch.Tensor) -> torch.Tensor:
        was = net.training
        net.eval()
        bs = self.config.train.eval_batch_size
        outs = [self._predict_tensor(net, num[i:i + bs], cat[i:i + bs]).double()
                for i in range(0, num.shape[0], bs)]
        net.train(was)
        return torch.cat(outs) if outs else torch.zeros(0, dtype=torch.float64)

    def predict(self, frame: pd.DataFrame, inputs: ModelInputs | None = None) -> np.ndarray:
        """(n,) float64 prediction for ``frame``: value (GMV / LTV in currency units) or
        probability, as ``output`` says."""
        if self.net is None or self.features is None:
            raise RuntimeError(f"{self.name}: call fit() or load() first")
        d = self.tensors(frame, with_targets=False)
        return self._predict_batched(self.net, d["num"], d["cat"]).numpy()

    def _config_json(self) -> dict[str, Any]:
        return {"model": self.name, "config": config_to_json(self.config), "state": self.state}

    def save(self, path: str) -> None:
        """Write model.safetensors + config.json + features.json under ``path`` (fsspec)."""
        ck.save_state(ck.join(path, "model.safetensors"), self.net.state_dict())
        ck.save_json(ck.join(path, "config.json"), self._config_json())
        self.features.save(ck.join(path, "features.json"))

    def _after_load(self, path: str) -> None:
        """Hook for extra artefacts (e.g. the codebook)."""

    @classmethod
    def load(cls, path: str) -> "NeuralModel":
        meta = ck.load_json(ck.join(path, "config.json"))
        if meta.get("model") != cls.name:
            raise ValueError(f"{path} holds a {meta.get('model')!r} model, not {cls.name!r}")
        m = cls(config_from_json(cls.config_cls, meta["config"]))
        m.state = meta["state"]
        m.features = FeaturePipeline.load(ck.join(path, "features.json"))
        m._after_load(path)
        m.net = m._build()
        m.net.load_state_dict(ck.load_state(ck.join(path, "model.safetensors")))
        m.net.eval()
        return m
