"""Offline evaluation: metrics (``metrics``), slices (``slices``) and the per-run
report (``report.evaluate_models`` -> ``EvaluationResult.write``)."""

from quantrec.evaluation.metrics import (
    XAUCResult, auc, classification_metrics, logloss, mae, norm_gini, regression_metrics,
    spearman, xauc,
)
from quantrec.evaluation.report import EvaluationResult, evaluate_models
from quantrec.evaluation.slices import slice_masks, sliced_metrics

__all__ = [
    "XAUCResult", "auc", "classification_metrics", "logloss", "mae", "norm_gini",
    "regression_metrics", "spearman", "xauc", "EvaluationResult", "evaluate_models",
    "slice_masks", "sliced_metrics",
]
