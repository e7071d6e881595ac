"""Calibrated expected GMV for expected-value ranking (score = p(purchase) x E[GMV]).

RQ-Reg predicts a median-like value (its target is log1p GMV and decoding picks codes),
so it under-estimates the mean GMV per bin; WLR's exp(logit) estimates the mean but is
noisy in the tail. Ranking by p x value needs the conditional MEAN of the value, so
each arm's predicted GMV is mapped through a monotone calibration fitted on the
validation split's bought lines (never on the evaluation rows it is then scored on):

- "isotonic": centred isotonic regression (Oron & Flournoy 2017) of realised GMV on
  predicted GMV. Plain isotonic least squares estimates E[GMV | prediction] under a
  monotone constraint but is a step function, which would turn every step into a block
  of tied scores and throw the model's ranking inside a step away. The centred variant
  keeps the step values (the block means of realised GMV) at the blocks' mean
  prediction and interpolates linearly between them, so the map is strictly
  increasing between the first and last block centres (ranking preserved) and flat
  beyond them (no extrapolation).
- "none": the arm's values are used as given (already an expectation).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from quantrec.evaluation.metrics import _as_1d
from quantrec.evaluation.report import _calibration

__all__ = ["CALIBRATION_METHODS", "IsotonicCalibrator", "fit_isotonic", "calibration_bins",
           "MIN_CALIBRATION_ROWS"]

CALIBRATION_METHODS = ("isotonic", "none")
MIN_CALIBRATION_ROWS = 20


@dataclass
class IsotonicCalibrator:
    """Piecewise-linear monotone map prediction -> expected realised GMV.

    knots_x: (K,) strictly increasing block centres (mean prediction of each isotonic
    block); knots_y: (K,) strictly increasing block means of the realised GMV.
    Outside [knots_x[0], knots_x[-1]] the map is constant.
    """

    knots_x: np.ndarray
    knots_y: np.ndarray
    n_fit: int

    def apply(self, pred: Any) -> np.ndarray:
        """Calibrated values, shape of ``pred`` (n,), currency units."""
        return np.interp(np.asarray(pred, dtype=np.float64), self.knots_x, self.knots_y)

    def to_dict(self) -> dict[str, Any]:
        return {"method": "isotonic (centred)", "n_fit": int(self.n_fit), "knots": int(self.knots_x.size),
                "knots_x": [float(v) for v in self.knots_x], "knots_y": [float(v) for v in self.knots_y]}


def fit_isotonic(pred: Any, realised: Any, min_rows: int = MIN_CALIBRATION_ROWS) -> IsotonicCalibrator:
    """Centred isotonic regression of ``realised`` on ``pred`` (both (m,), currency units).

    Raises ValueError when fewer than ``min_rows`` rows are given.
    """
    from sklearn.isotonic import IsotonicRegression

    x = _as_1d("calibration predictions", pred)
    y = _as_1d("calibration realised values", realised)
    if x.size != y.size:
        raise ValueError(f"length mismatch: {x.size} calibration predictions, {y.size} realised values")
    if x.size < min_rows:
        raise ValueError(f"isotonic calibration needs at least {min_rows} bought lines, got {x.size}")
    order = np.argsort(x, kind="stable")
    xs, ys = x[order], y[order]
    fitted = IsotonicRegression(increasing=True).fit(xs, ys).predict(xs)
    # blocks = runs of equal fitted value (consecutive in x order; values increase)
    new = np.r_[True, fitted[1:] != fitted[:-1]]
    block = np.cumsum(new) - 1
    centres = np.bincount(block, weights=xs) / np.bincount(block)
    values = fitted[new]
    # Equal predictions always share a block, so the centres increase strictly.
    return IsotonicCalibrator(knots_x=centres, knots_y=values, n_fit=int(x.size))


def calibration_bins(pred: np.ndarray, realised: np.ndarray, label: str, n_bins: int) -> pd.DataFrame:
    """Equal-count bins by prediction: mean prediction vs mean realised value per bin.

    Columns "model" (= label), "bin", "n", "pred_min", "pred_max", "mean_pred",
    "mean_label" (the offline report's calibration table). Empty input -> empty table.
    """
    if pred.size == 0:
        return pd.DataFrame(columns=["model", "bin", "n", "pred_min", "pred_max", "mean_pred", "mean_label"])
    return _calibration(np.asarray(realised, dtype=np.float64), {label: np.asarray(pred, dtype=np.float64)},
                        n_bins)


def mean_ratio(pred: np.ndarray, realised: np.ndarray) -> float:
    """sum(realised) / sum(pred): 1 = calibrated on average, > 1 = under-estimates."""
    s = float(np.sum(pred))
    return float(np.sum(realised)) / s if s > 0 else math.nan
