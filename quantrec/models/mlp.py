"""MLP peer: the shared encoder + head, trained with Huber (or MSE) on log1p(value);
serves expm1(prediction) clamped at 0 (a conditional-median-like estimate, which is
what MAE rewards)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from quantrec.models.base import NeuralModel, ScalarNet, ScalarNetConfig
from quantrec.training.trainer import Batch, StepContext


@dataclass
class MLPConfig(ScalarNetConfig):
    loss: str = "huber"          # "huber" | "mse", on log1p(value)
    huber_delta: float = 1.0     # log1p units


class MLPModel(NeuralModel):
    name = "mlp"
    display_name = "MLP"
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
