"""Centred isotonic calibration: monotone, mean-correcting, order-preserving."""

from __future__ import annotations

import numpy as np
import pytest

from quantrec.shadow.calibration import calibration_bins, fit_isotonic, mean_ratio


def median_like(seed: int, n: int = 4000):
    """A model that predicts the median of a lognormal GMV (like RQ-Reg on log1p):
    it under-estimates the mean by exp(sigma^2 / 2)."""
    rng = np.random.default_rng(seed)
    mu = rng.uniform(1.0, 4.0, n)
    realised = np.exp(mu + rng.normal(0, 0.8, n))
    return np.exp(mu), realised


def test_isotonic_corrects_a_median_predictor_to_the_mean():
    pred, real = median_like(0)
    assert mean_ratio(pred, real) > 1.25                        # exp(0.32) ~ 1.38
    cal = fit_isotonic(pred, real)
    test_pred, test_real = median_like(1)
    assert abs(mean_ratio(cal.apply(test_pred), test_real) - 1.0) < 0.08
    bins = calibration_bins(cal.apply(test_pred), test_real, "calibrated", 5)
    ratios = bins["mean_label"] / bins["mean_pred"]
    assert ((ratios > 0.75) & (ratios < 1.3)).all()


def test_centred_isotonic_is_strictly_increasing_inside_and_flat_outside():
    pred, real = median_like(2, 2000)
    cal = fit_isotonic(pred, real)
    assert np.all(np.diff(cal.knots_x) > 0) and np.all(np.diff(cal.knots_y) > 0)
    inside = np.linspace(cal.knots_x[0], cal.knots_x[-1], 500)
    assert np.all(np.diff(cal.apply(inside)) > 0)                 # keeps the model's order
    assert cal.apply([cal.knots_x[0] / 10])[0] == cal.knots_y[0]
    assert cal.apply([cal.knots_x[-1] * 10])[0] == cal.knots_y[-1]
    d = cal.to_dict()
    assert d["n_fit"] == 2000 and d["knots"] == cal.knots_x.size


def test_constant_or_anti_correlated_predictions_calibrate_to_the_mean():
    rng = np.random.default_rng(3)
    real = rng.lognormal(2, 1, 500)
    cal = fit_isotonic(-real, real)           # the wrong order: one block, the overall mean
    np.testing.assert_allclose(cal.apply([-1000.0, 0.0, 5.0]), real.mean())


def test_fit_isotonic_input_errors():
    with pytest.raises(ValueError, match="at least 20"):
        fit_isotonic(np.arange(5.0), np.arange(5.0))
    with pytest.raises(ValueError, match="length mismatch"):
        fit_isotonic(np.arange(30.0), np.arange(31.0))
    with pytest.raises(ValueError, match="NaN"):
        fit_isotonic(np.r_[np.arange(30.0), np.nan], np.arange(31.0))
