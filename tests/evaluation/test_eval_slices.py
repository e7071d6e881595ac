"""Slices partition the rows as documented and per-slice metrics equal the metrics of
the masked rows."""

from __future__ import annotations

import math

import numpy as np
import pytest

from quantrec.evaluation.metrics import REGRESSION_METRICS, classification_metrics, regression_metrics
from quantrec.evaluation.slices import slice_masks, sliced_metrics


def deciles(masks):
    return {k: v for k, v in masks.items() if k.startswith("decile")}


@pytest.mark.parametrize("kind", ["continuous", "heavy_ties", "zero_inflated"])
def test_deciles_partition_and_are_ordered(kind):
    rng = np.random.default_rng(0)
    n = 1003
    y = {"continuous": rng.lognormal(size=n),
         "heavy_ties": rng.integers(0, 4, n).astype(float),
         "zero_inflated": np.where(rng.random(n) < 0.6, 0.0, rng.lognormal(size=n))}[kind]
    masks = slice_masks(y)
    dec = deciles(masks)
    stacked = np.stack(list(dec.values()))
    assert (stacked.sum(axis=0) == 1).all()                   # each row in exactly one decile
    assert all(m.any() for m in dec.values())                 # empty deciles are left out
    names = list(dec)
    assert names == sorted(names)
    for a, b in zip(names, names[1:]):                        # value ranges do not overlap
        assert y[dec[a]].max() < y[dec[b]].min()
    for v in np.unique(y):                                    # tied labels share a decile
        assert sum(bool((dec[k] & (y == v)).any()) for k in names) == 1
    top = masks["top10%"]
    assert top.sum() >= 0.1 * n and top[np.argmax(y)]
    assert y[top].min() >= y[~top].max() if (~top).any() else True


def test_continuous_deciles_are_tenths():
    y = np.arange(1000, dtype=float)
    masks = slice_masks(y)
    assert [int(m.sum()) for m in deciles(masks).values()] == [100] * 10
    assert masks["top10%"].sum() == 100 and masks["top10%"][-100:].all()
    assert masks["all"].all()


def test_user_slices_complement_and_validation():
    y = np.arange(10, dtype=float)
    new = np.array([1, 0] * 5)
    masks = slice_masks(y, is_new_user=new, value_slices=False)
    assert list(masks) == ["all", "new users", "returning users"]
    assert (masks["new users"] ^ masks["returning users"]).all()
    assert masks["new users"].sum() == 5
    only_returning = slice_masks(y, is_new_user=np.zeros(10, bool), value_slices=False)
    assert "new users" not in only_returning
    with pytest.raises(ValueError, match="shape"):
        slice_masks(y, is_new_user=new[:5])
    with pytest.raises(ValueError, match="missing"):
        slice_masks(y, is_new_user=np.where(new == 1, np.nan, 0.0))
    with pytest.raises(ValueError, match="boolean"):
        slice_masks(y, is_new_user=np.full(10, 2))
    with pytest.raises(ValueError, match="NaN"):
        slice_masks([1.0, np.nan])


def test_sliced_metrics_long_format_matches_masked_metrics():
    rng = np.random.default_rng(1)
    n = 600
    y = np.where(rng.random(n) < 0.3, 0.0, rng.lognormal(size=n))
    new = rng.random(n) < 0.4
    preds = {"RQ-Reg": y + rng.random(n), "WLR": rng.random(n)}
    df = sliced_metrics(y, preds, is_new_user=new)
    masks = slice_masks(y, new)
    assert list(df.columns) == ["model", "slice", "n", *REGRESSION_METRICS]
    assert len(df) == len(preds) * len(masks)
    assert list(df["model"].unique()) == ["RQ-Reg", "WLR"]
    for row in df.to_dict(orient="records"):
        m = masks[row["slice"]]
        assert row["n"] == m.sum()
        want = regression_metrics(y[m], preds[row["model"]][m])
        for k, v in want.items():
            assert (math.isnan(v) and math.isnan(row[k])) or row[k] == pytest.approx(v)


def test_sliced_metrics_purchase_task_and_errors():
    y = np.array([0, 1, 0, 1, 1, 0], float)
    p = np.array([0.1, 0.9, 0.2, 0.8, 0.3, 0.4])
    new = np.array([True, True, True, False, False, False])
    df = sliced_metrics(y, {"DMQN": p}, is_new_user=new, task="purchase")
    assert list(df["slice"]) == ["all", "new users", "returning users"]
    assert df.loc[0, "AUC"] == pytest.approx(classification_metrics(y, p)["AUC"])
    assert df.loc[1, "AUC"] == 1.0
    with pytest.raises(ValueError, match="task"):
        sliced_metrics(y, {"DMQN": p}, task="ctr")
    with pytest.raises(ValueError, match="empty"):
        sliced_metrics(y, {})
    with pytest.raises(ValueError, match="length mismatch"):
        sliced_metrics(y, {"DMQN": p[:3]})
