"""The daily pipeline's offline evaluation: saved models scored on a task table split.

``evaluate_saved_models`` loads each model directory (``quantrec.models.load_model``),
predicts the rows of one split of the GMV task table and writes one report (HTML +
JSON) comparing them, with value-decile, long-tail and new/returning-user slices.
"""

from __future__ import annotations

from typing import Mapping

import numpy as np

from quantrec.data import schema as S
from quantrec.data.tasks import read_table
from quantrec.evaluation.report import EvaluationResult, evaluate_models

DISPLAY_NAMES = {"rqreg": "RQ-Reg", "wlr": "WLR", "mlp": "MLP", "lgbm": "LightGBM"}


def evaluate_saved_models(table_path: str, model_dirs: Mapping[str, str], split: str = "eval",
                          html_path: str | None = None, json_path: str | None = None) -> EvaluationResult:
    """Score every saved model on ``split`` rows of the GMV table at ``table_path``.

    model_dirs: model key (e.g. "rqreg") -> saved model directory (fsspec URL).
    Returns the EvaluationResult; writes the report when both paths are given.
    Raises ValueError when the split has no rows.
    """
    from quantrec.models import load_model

    frame = read_table(table_path)
    frame = frame[frame[S.SPLIT] == split].reset_index(drop=True)
    if frame.empty:
        raise ValueError(f"{table_path} has no rows in split {split!r}: nothing to evaluate")
    preds = {DISPLAY_NAMES.get(k, k): np.asarray(load_model(path).predict(frame), dtype=np.float64)
             for k, path in model_dirs.items()}
    result = evaluate_models(frame[S.VALUE].to_numpy(np.float64), preds,
                             is_new_user=frame[S.IS_NEW_USER].to_numpy(bool), task="gmv")
    if html_path and json_path:
        result.write(html_path, json_path)
    return result
