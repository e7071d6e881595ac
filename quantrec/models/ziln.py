"""ZILN: zero-inflated lognormal value model (Wang, Liu & Miao 2019, "A Deep Probabilistic
Model for Customer Lifetime Value Prediction").

The shared feature encoder feeds a head with three outputs per row (l0, l1, l2):

    p     = sigmoid(l0)            probability that the value is > 0
    mu    = l1                     location of log(value) given value > 0
    sigma = softplus(l2) (+ eps)   scale of log(value) given value > 0

Loss (the authors' code): BCE(l0, 1[y > 0]) + mean over ALL rows of
``-1[y > 0] * log LogNormal(y; mu, sigma)`` (zero rows add nothing to the second term).

Point prediction (config ``point``):
* "mean" (the paper): p * exp(mu + sigma^2 / 2), the expected value; what a value
  ranking (or an LTV sum) wants;
* "median": the median of the zero-inflated mixture, exp(mu + sigma * Phi^-1(1 - 0.5 / p))
  when p > 0.5, else 0; what MAE rewards.
``predict_quantiles(frame, qs)`` gives any quantile of the mixture.

The GMV task has no zero labels (every row is a purchase line), so there p -> 1 and
ZILN is a heteroscedastic lognormal regression; on the LTV table a customer who never
comes back has value 0, the case the model was built for.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from quantrec.models.base import FeatureEncoder, ModelInputs, NeuralModel, ScalarNetConfig
from quantrec.models.features import FeaturePipeline, model_feature_spec
from quantrec.training.trainer import Batch, StepContext

POINTS = ("mean", "median")
_SIGMA_EPS = 1e-3        # lower bound of sigma: keeps the NLL finite on repeated values


@dataclass
class ZILNConfig(ScalarNetConfig):
    """ScalarNetConfig (task, encoder width, dropout, train) + the point prediction."""

    point: str = "mean"      # "mean" | "median" of the predicted distribution
    categorical: tuple[str, ...] | None = None   # embedded id columns; None = the task's all

    def __post_init__(self) -> None:
        if self.point not in POINTS:
            raise ValueError(f"ZILN point must be one of {POINTS}, got {self.point!r}")


class ZILNNet(nn.Module):
    """FeatureEncoder -> ReLU -> Linear(d, 3): forward(num (B, F), cat (B, C)) -> (B, 3)
    raw outputs (l0, l1, l2)."""

    def __init__(self, n_numeric: int, cardinalities: list[int], cfg: ZILNConfig) -> None:
        super().__init__()
        self.encoder = FeatureEncoder(n_numeric, cardinalities, cfg.emb_dim, 2 * cfg.d_model, cfg.d_model,
                                      cfg.dropout)
        self.head = nn.Sequential(nn.ReLU(), nn.Linear(cfg.d_model, 3))

    def forward(self, num: torch.Tensor, cat: torch.Tensor) -> torch.Tensor:
        return self.head(self.encoder(num, cat))  # (B, 3)


def ziln_params(out: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(B, 3) raw outputs -> p (B,), mu (B,), sigma (B,)."""
    return torch.sigmoid(out[:, 0]), out[:, 1], F.softplus(out[:, 2]) + _SIGMA_EPS


def ziln_loss(out: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
    """BCE on 1[y > 0] + mean lognormal NLL of the positive rows (zero rows count 0).

    out (B, 3) raw outputs, y (B,) labels >= 0 (label units)."""
    positive = (y > 0).float()
    bce = F.binary_cross_entropy_with_logits(out[:, 0], positive)
    _, mu, sigma = ziln_params(out)
    log_y = torch.log(y.clamp(min=1e-12))
    # -log LogNormal(y; mu, sigma) = log y + log sigma + log sqrt(2 pi) + (log y - mu)^2 / (2 sigma^2)
    nll = log_y + torch.log(sigma) + 0.5 * math.log(2 * math.pi) + (log_y - mu) ** 2 / (2 * sigma ** 2)
    reg = (positive * nll).mean()
    return bce + reg, {"bce": float(bce.detach()), "lognormal_nll": float(reg.detach())}


def ziln_quantile(p: torch.Tensor, mu: torch.Tensor, sigma: torch.Tensor, q: float) -> torch.Tensor:
    """q-quantile of the mixture (1 - p) * delta_0 + p * LogNormal(mu, sigma): 0 while
    q <= 1 - p, else exp(mu + sigma * Phi^-1((q - (1 - p)) / p)). All (B,) float."""
    inner = ((q - (1.0 - p)) / p.clamp(min=1e-12)).clamp(min=1e-12, max=1 - 1e-7)
    z = math.sqrt(2.0) * torch.erfinv(2.0 * inner - 1.0)
    value = torch.exp((mu + sigma * z).clamp(max=30.0))
    return torch.where(q > 1.0 - p, value, torch.zeros_like(value))


class ZILNModel(NeuralModel):
    """The model protocol over ``ZILNNet`` (see the module docstring)."""

    name = "ziln"
    display_name = "ZILN"
    config_cls = ZILNConfig

    def fit(self, frame_train, frame_val, inputs: ModelInputs | None = None, out_dir: str | None = None,
            init_from=None, features: FeaturePipeline | None = None):
        """``NeuralModel.fit`` with the feature columns of the config (``categorical``)."""
        features = features or FeaturePipeline(model_feature_spec(self.config)).fit(frame_train)
        return super().fit(frame_train, frame_val, inputs, out_dir, init_from, features)

    def _build(self) -> nn.Module:
        return ZILNNet(self.features.n_numeric, self.features.cardinalities, self.config)

    def _loss(self, net: nn.Module, batch: Batch, ctx: StepContext):
        return ziln_loss(net(batch["num"], batch["cat"]), batch["y"])

    def _predict_tensor(self, net: nn.Module, num: torch.Tensor, cat: torch.Tensor) -> torch.Tensor:
        p, mu, sigma = ziln_params(net(num, cat).double())
        if self.config.point == "median":
            return ziln_quantile(p, mu, sigma, 0.5)
        return p * torch.exp((mu + 0.5 * sigma ** 2).clamp(max=30.0))

    @torch.no_grad()
    def predict_quantiles(self, frame: Any, qs: tuple[float, ...] = (0.1, 0.5, 0.9)) -> np.ndarray:
        """(n, len(qs)) quantiles of the predicted distribution, label units."""
        if self.net is None or self.features is None:
            raise RuntimeError("ziln: call fit() or load() first")
        for q in qs:
            if not 0.0 < q < 1.0:
                raise ValueError(f"quantiles must lie in (0, 1), got {q}")
        d = self.tensors(frame, with_targets=False)
        self.net.eval()
        p, mu, sigma = ziln_params(self.net(d["num"], d["cat"]).double())
        return torch.stack([ziln_quantile(p, mu, sigma, q) for q in qs], 1).numpy()
