"""Bootstrap primitives: weights, estimator replicates, percentile intervals, paired deltas."""

from __future__ import annotations

import math

import numpy as np
import pytest

from quantrec.shadow.bootstrap import (
    Estimate, PairEstimator, RatioEstimator, evaluate_estimators, paired_delta, summarize, user_weights,
)


def test_user_weights_are_seeded_multinomial_resamples():
    w = user_weights(50, 200, seed=3)
    assert w.shape == (200, 50)
    np.testing.assert_array_equal(w.sum(1), 50)
    np.testing.assert_array_equal(w, user_weights(50, 200, seed=3))
    assert not np.array_equal(w, user_weights(50, 200, seed=4))
    # about 1 - 1/e of the users appear in a resample
    assert 0.55 < (w > 0).mean() < 0.71
    with pytest.raises(ValueError, match="resamples"):
        user_weights(5, 0, 0)


def test_ratio_estimator_replicates_are_weighted_ratios():
    num, den = np.array([1.0, 2.0, 6.0]), np.array([1.0, 1.0, 2.0])
    est = RatioEstimator(num, den)
    assert est.point() == pytest.approx(9 / 4)
    W = np.array([[1, 1, 1], [3, 0, 0], [0, 0, 0]], dtype=float)
    reps = est.replicates(W)
    assert reps[0] == pytest.approx(9 / 4) and reps[1] == pytest.approx(1.0) and math.isnan(reps[2])


def test_pair_estimator_quadratic_form_and_rank_one_denominator():
    rng = np.random.default_rng(0)
    C = rng.random((4, 4))
    row, col = rng.integers(1, 4, 4).astype(float), rng.integers(1, 4, 4).astype(float)
    users = np.array([0, 2, 3, 5])
    est = PairEstimator(users=users, C=C, row_count=row, col_count=col)
    same = PairEstimator(users=users, C=C, D=np.outer(row, col))
    W = rng.integers(0, 3, size=(6, 7)).astype(float)
    ws = W[:, users]
    ref = np.array([w @ C @ w / ((w @ row) * (w @ col)) for w in ws])
    np.testing.assert_allclose(est.replicates(W), ref)
    np.testing.assert_allclose(same.replicates(W), ref)
    assert est.point() == pytest.approx(C.sum() / (row.sum() * col.sum()))
    assert PairEstimator(users=users, C=C, D=np.ones((4, 4)), exact_point=0.25).point() == 0.25
    with pytest.raises(ValueError, match="needs D"):
        PairEstimator(users=users, C=C)


def test_evaluate_estimators_keeps_keys_and_batches_ratios():
    rng = np.random.default_rng(1)
    W = rng.integers(0, 3, size=(5, 3)).astype(float)
    ests = [("a", RatioEstimator(np.array([1.0, 2, 3]), np.ones(3))),
            ("b", PairEstimator(users=np.arange(3), C=np.eye(3), D=np.ones((3, 3)))),
            ("c", RatioEstimator(np.array([0.0, 1, 0]), np.array([1.0, 1, 0])))]
    out = evaluate_estimators(iter(ests), W)
    assert list(out) == ["a", "b", "c"]
    for key, est in ests:
        assert out[key][0] == pytest.approx(est.point())
        np.testing.assert_allclose(out[key][1], est.replicates(W))


def test_summarize_percentiles_and_missing():
    reps = np.arange(1000, dtype=float)
    e = summarize(500.0, reps, 0.9)
    assert e.ci_low == pytest.approx(np.quantile(reps, 0.05)) and e.ci_high == pytest.approx(np.quantile(reps, 0.95))
    assert e.n_valid == 1000 and not e.missing
    half_nan = np.where(np.arange(1000) % 2 == 0, np.nan, 1.0)
    assert summarize(1.0, half_nan, 0.95).n_valid == 500 and not summarize(1.0, half_nan, 0.95).missing
    mostly_nan = np.where(np.arange(1000) % 4 == 0, 1.0, np.nan)
    assert summarize(1.0, mostly_nan, 0.95).missing          # too few defined resamples
    assert summarize(math.nan, reps, 0.95).missing
    assert Estimate(1.0, math.nan, 2.0, 0.0, 1).to_dict()["ci_low"] is None


def test_paired_delta_cancels_shared_noise():
    rng = np.random.default_rng(2)
    shared = rng.normal(0, 1.0, 2000)                 # resample noise common to both arms
    a = (10.5, 10.5 + shared + rng.normal(0, 0.01, 2000))
    b = (10.0, 10.0 + shared)
    d = paired_delta(a, b, 0.95)
    assert d.point == pytest.approx(0.5)
    assert d.ci_low > 0.45 and d.ci_high < 0.55           # unpaired CIs would overlap widely
    r = paired_delta(a, b, 0.95, relative=True)
    assert r.point == pytest.approx(0.05)
    assert paired_delta((1.0, np.ones(10)), (0.0, np.zeros(10)), 0.95, relative=True).missing
