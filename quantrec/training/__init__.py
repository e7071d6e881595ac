"""Generic training machinery that knows no model: the trainer (AdamW, early stopping,
safetensors checkpoints, resume, DDP), checkpoints, warm start, scheduled sampling."""

from quantrec.training.trainer import (StepContext, TrainConfig, TrainingDiverged, TrainResult,
                                       set_seed, train)

__all__ = ["train", "TrainConfig", "TrainResult", "StepContext", "TrainingDiverged", "set_seed"]
