"""WLR (Covington et al., 2016): the production baseline.

Same encoder as RQ-Reg. Every sample is fed as a positive with weight w = value and a
negative with weight 1: loss = mean(w * softplus(-z) + softplus(z)) for logit z; the
optimum has odds exp(z) = w, so we serve exp(z) as the predicted value.
Weights are clipped at the ``clip_quantile`` of the training labels (heavy tails
otherwise dominate the gradient; set 1.0 to disable).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from quantrec.models.base import ModelInputs, NeuralModel, ScalarNet, ScalarNetConfig
from quantrec.models.features import FeaturePipeline, model_feature_spec
from quantrec.training.trainer import Batch, StepContext


@dataclass
class WLRConfig(ScalarNetConfig):
    clip_quantile: float = 0.999
    categorical: tuple[str, ...] | None = None   # embedded id columns; None = the task's all


class WLRModel(NeuralModel):
    name = "wlr"
    display_name = "WLR"
    config_cls = WLRConfig

    def fit(self, frame_train, frame_val, inputs: ModelInputs | None = None, out_dir: str | None = None,
            init_from=None, features: FeaturePipeline | None = None):
        """``NeuralModel.fit`` with the feature columns of the config (``categorical``)."""
        features = features or FeaturePipeline(model_feature_spec(self.config)).fit(frame_train)
        return super().fit(frame_train, frame_val, inputs, out_dir, init_from, features)

    def _prepare(self, y_train: np.ndarray, inputs: ModelInputs) -> None:
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
