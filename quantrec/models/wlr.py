"""WLR (Covington et al., 2016): the production baseline.

Same encoder as RQ-Reg. Every sample is fed as a positive with weight w = value and a
negative with weight 1: loss = mean(w * softplus(-z) + softplus(z)) for logit z; the
optimum has odds exp(z) = w, so we serve exp(z) as the predicted value.
Weights are clipped at the ``clip_quantile`` of the training labels (heavy tails
otherwise dominate the gradient; set 1.0 to disable).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from quantrec.models.base import NeuralModel, ScalarNet
from quantrec.training.trainer import Batch, StepContext, TrainConfig


@dataclass
class WLRConfig:
    task: str = "gmv"
    cat_mode: str = "index"
    min_count: int = 2
    emb_dim: int = 16
    d_model: int = 64
    dropout: float = 0.1
    clip_quantile: float = 0.999
    train: TrainConfig = field(default_factory=lambda: TrainConfig(epochs=6, batch_size=512, lr=2e-3))

    @classmethod
    def small(cls, **kw) -> "WLRConfig":
        return cls(**kw)

    @classmethod
    def paper(cls, **kw) -> "WLRConfig":
        """Same width / optimiser as the authors' RQ-Reg, for a like-for-like baseline."""
        kw.setdefault("train", TrainConfig(epochs=50, batch_size=256, lr=5e-4, patience=5))
        return cls(d_model=512, emb_dim=64, **kw)


class WLRModel(NeuralModel):
    name = "wlr"
    config_cls = WLRConfig

    def _prepare(self, y_train: np.ndarray) -> None:
        self.state = {"clip": float(np.quantile(y_train, self.config.clip_quantile))}

    def _targets(self, y: np.ndarray) -> dict[str, torch.Tensor]:
        w = np.clip(y, 0.0, self.state["clip"]).astype(np.float32)
        return {"w": torch.from_numpy(w)}

    def _build(self) -> nn.Module:
        return ScalarNet(self.features.n_numeric, self.features.cardinalities, self.config)

    def _loss(self, net: nn.Module, batch: Batch, ctx: StepContext):
        z = net(batch["num"], batch["cat"])  # (B,)
        loss = (batch["w"] * F.softplus(-z) + F.softplus(z)).mean()
        return loss

    def _predict_tensor(self, net, num, cat) -> torch.Tensor:
        return torch.exp(net(num, cat).clamp(max=30.0))  # (B,) odds = E[value]
