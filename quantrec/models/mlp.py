"""MLP peer: the shared encoder + head, trained with Huber (or MSE) on log1p(value);
serves expm1(prediction) clamped at 0 (a conditional-median-like estimate, which is
what MAE rewards)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from quantrec.models.base import NeuralModel, ScalarNet
from quantrec.training.trainer import Batch, StepContext, TrainConfig


@dataclass
class MLPConfig:
    task: str = "gmv"
    cat_mode: str = "index"
    min_count: int = 2
    emb_dim: int = 16
    d_model: int = 64
    dropout: float = 0.1
    loss: str = "huber"          # "huber" | "mse", on log1p(value)
    huber_delta: float = 1.0     # log1p units
    train: TrainConfig = field(default_factory=lambda: TrainConfig(epochs=6, batch_size=512, lr=2e-3))

    @classmethod
    def small(cls, **kw) -> "MLPConfig":
        return cls(**kw)

    @classmethod
    def paper(cls, **kw) -> "MLPConfig":
        kw.setdefault("train", TrainConfig(epochs=50, batch_size=256, lr=5e-4, patience=5))
        return cls(d_model=512, emb_dim=64, **kw)


class MLPModel(NeuralModel):
    name = "mlp"
    config_cls = MLPConfig

    def _targets(self, y: np.ndarray) -> dict[str, torch.Tensor]:
        return {"t": torch.from_numpy(np.log1p(np.clip(y, 0.0, None)).astype(np.float32))}

    def _build(self) -> nn.Module:
        return ScalarNet(self.features.n_numeric, self.features.cardinalities, self.config)

    def _loss(self, net: nn.Module, batch: Batch, ctx: StepContext):
        pred = net(batch["num"], batch["cat"])
        if self.config.loss == "mse":
            return F.mse_loss(pred, batch["t"])
        return F.huber_loss(pred, batch["t"], delta=self.config.huber_delta)

    def _predict_tensor(self, net, num, cat) -> torch.Tensor:
        return torch.expm1(net(num, cat).clamp(min=0.0, max=30.0))
