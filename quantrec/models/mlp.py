"""MLP peer: the shared encoder + head, trained with Huber (or MSE) on log1p(value);
serves expm1(prediction) clamped at 0 (a conditional-median-like estimate, which is
what MAE rewards)."""

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
class MLPConfig(ScalarNetConfig):
    loss: str = "huber"          # "huber" | "mse", on log1p(value)
    huber_delta: float = 1.0     # log1p units
    categorical: tuple[str, ...] | None = None   # embedded id columns; None = the task's all


class MLPModel(NeuralModel):
    name = "mlp"
    display_name = "MLP"
    config_cls = MLPConfig

    def fit(self, frame_train, frame_val, inputs: ModelInputs | None = None, out_dir: str | None = None,
            init_from=None, features: FeaturePipeline | None = None):
        """``NeuralModel.fit`` with the feature columns of the config (``categorical``)."""
        features = features or FeaturePipeline(model_feature_spec(self.config)).fit(frame_train)
        return super().fit(frame_train, frame_val, inputs, out_dir, init_from, features)

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
