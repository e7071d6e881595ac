"""Evaluation slices: value deciles of the true label, the top-10% long tail, and new
vs returning users; metrics per (model, slice) in long format.

Slice definitions (stated in every report):
- "decile 01" .. "decile 10": rows whose label falls in (q_{k-1}, q_k] of the label's
  own deciles q_1..q_9 (decile 01 includes everything <= q_1). Tied labels always
  stay in one decile, so with heavy ties (e.g. a zero-inflated LTV label) some deciles
  are empty and are left out; the deciles present still partition the rows.
- "top10%": the long tail, rows with label >= the label's 0.9-quantile. Ties at the
  threshold are kept, so it holds at least 10% of rows and is never empty.
- "new users" / "returning users": from ``is_new_user`` (a user with no purchase
  before the event's day), only when it is given.
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np
import pandas as pd

from quantrec.evaluation.metrics import (
    CLASSIFICATION_METRICS, REGRESSION_METRICS, _as_1d, classification_metrics,
    regression_metrics,
)

__all__ = ["slice_masks", "sliced_metrics", "decile_edges", "decile_index", "TASKS"]

TASKS = ("gmv", "purchase", "ltv")


def decile_edges(y: np.ndarray) -> np.ndarray:
    """The nine inner decile edges q_1..q_9 of ``y`` (linear interpolation), shape (9,)."""
    return np.quantile(y, np.arange(1, 10) / 10.0)


def decile_index(y: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Decile number 0..9 for each label: k such that q_k < y <= q_{k+1}."""
    return np.searchsorted(edges, y, side="left")


def _bool_mask(name: str, a: Any, n: int) -> np.ndarray:
    arr = np.asarray(a)
    if arr.ndim != 1 or arr.size != n:
        raise ValueError(f"{name} must have shape ({n},), got {arr.shape}")
    if arr.dtype != bool:
        try:
            num = arr.astype(np.float64)
        except (TypeError, ValueError):
            raise ValueError(f"{name} must be boolean (or 0/1)") from None
        if np.isnan(num).any():
            raise ValueError(f"{name} has missing values")
        if not np.all((num == 0) | (num == 1)):
            raise ValueError(f"{name} must be boolean (or 0/1)")
        arr = num.astype(bool)
    return arr


def slice_masks(y: Any, is_new_user: Any = None, value_slices: bool = True) -> dict[str, np.ndarray]:
    """Named boolean masks of shape (n,) over the rows, in display order.

    Always "all"; with ``value_slices`` (regression tasks) the non-empty value deciles
    "decile 01".."decile 10" and "top10%"; with ``is_new_user`` (bool, shape (n,))
    "new users" and "returning users" (only the non-empty ones).
    """
    y = _as_1d("y", y)
    n = y.size
    masks: dict[str, np.ndarray] = {"all": np.ones(n, dtype=bool)}
    if value_slices:
        dec = decile_index(y, decile_edges(y))
        for k in range(10):
            m = dec == k
            if m.any():
                masks[f"decile {k + 1:02d}"] = m
        masks["top10%"] = y >= np.quantile(y, 0.9)
    if is_new_user is not None:
        new = _bool_mask("is_new_user", is_new_user, n)
        for name, m in (("new users", new), ("returning users", ~new)):
            if m.any():
                masks[name] = m
    return masks


def sliced_metrics(y: Any, preds: Mapping[str, Any], is_new_user: Any = None,
                   task: str = "gmv") -> pd.DataFrame:
    """Metrics of every model on every slice, long format.

    y: labels, shape (n,); preds: model name -> predictions, shape (n,) each;
    task: "gmv" | "ltv" (regression metrics, value slices) or "purchase" (AUC,
    logloss, ...; y is 0/1 and only "all" and the user slices apply).
    Returns columns ["model", "slice", "n", <metric columns>], one row per
    (model, slice), models in the given order, slices in ``slice_masks`` order.
    """
    if task not in TASKS:
        raise ValueError(f"task must be one of {TASKS}, got {task!r}")
    if not preds:
        raise ValueError("preds is empty: need at least one model")
    y = _as_1d("y", y)
    regression = task != "purchase"
    masks = slice_masks(y, is_new_user, value_slices=regression)
    fn = regression_metrics if regression else classification_metrics
    columns = REGRESSION_METRICS if regression else CLASSIFICATION_METRICS
    rows = []
    for model, pred in preds.items():
        p = _as_1d(f"preds[{model!r}]", pred)
        if p.size != y.size:
            raise ValueError(f"length mismatch: y has {y.size}, preds[{model!r}] has {p.size}")
        for name, m in masks.items():
            rows.append({"model": model, "slice": name, "n": int(m.sum()), **fn(y[m], p[m])})
    return pd.DataFrame(rows, columns=["model", "slice", "n", *columns])
