"""Generic trainer (AdamW, early stopping, safetensors checkpoints, resume, DDP) and
scheduled-sampling schedules."""

from quantrec.training.trainer import (StepContext, TrainConfig, TrainingDiverged, TrainResult,
                                       set_seed, train)

__all__ = ["train", "TrainConfig", "TrainResult", "StepContext", "TrainingDiverged", "set_seed"]
