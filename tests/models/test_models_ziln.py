"""ZILN: the zero-inflated lognormal loss, its mean / median / quantiles, and that it
learns the spend ranking of a zero-inflated LTV table."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import stats

from quantrec.models import MODELS, load_model
from quantrec.models.ziln import ZILNConfig, ZILNModel, ziln_loss, ziln_params, ziln_quantile
from quantrec.training.trainer import TrainConfig


def _train(epochs=6):
    return TrainConfig(epochs=epochs, batch_size=64, lr=3e-3, progress=False, seed=0)


def test_loss_is_bce_plus_lognormal_nll_of_the_positive_rows():
    g = torch.Generator().manual_seed(0)
    out = torch.randn(8, 3, generator=g)
    y = torch.tensor([0.0, 1.5, 0.0, 7.0, 0.2, 0.0, 30.0, 2.0])
    loss, parts = ziln_loss(out, y)
    p, mu, sigma = ziln_params(out)
    bce = torch.nn.functional.binary_cross_entropy(p, (y > 0).float())
    pos = y > 0
    nll = -torch.distributions.LogNormal(mu[pos], sigma[pos]).log_prob(y[pos])
    expected = bce + nll.sum() / len(y)          # zero rows add 0 to the mean
    torch.testing.assert_close(loss, expected, rtol=1e-5, atol=1e-6)
    assert parts["bce"] == pytest.approx(float(bce), rel=1e-5)


def test_quantiles_of_the_zero_inflated_mixture_match_scipy():
    p = torch.tensor([1.0, 0.8, 0.4, 0.85], dtype=torch.float64)
    mu = torch.tensor([0.5, 1.0, 2.0, -0.3], dtype=torch.float64)
    sigma = torch.tensor([0.7, 1.2, 0.5, 0.2], dtype=torch.float64)
    for q in (0.1, 0.5, 0.9):
        got = ziln_quantile(p, mu, sigma, q).numpy()
        want = []
        for pi, m, s in zip(p.numpy(), mu.numpy(), sigma.numpy()):
            # mixture CDF: (1 - p) mass at 0, then p * LogNormal
            want.append(0.0 if q <= 1 - pi else stats.lognorm.ppf((q - (1 - pi)) / pi, s, scale=math.exp(m)))
        np.testing.assert_allclose(got, want, rtol=1e-6)
    # the median of a sure positive is exp(mu); of a p < 0.5 customer it is 0
    assert ziln_quantile(p, mu, sigma, 0.5)[0].item() == pytest.approx(math.exp(0.5))
    assert ziln_quantile(p, mu, sigma, 0.5)[2].item() == 0.0


def test_point_prediction_mean_and_median(gmv_frames):
    tr, va, ev = gmv_frames
    m = ZILNModel(ZILNConfig(d_model=16, emb_dim=4, train=_train(2)))
    m.fit(tr, va)
    num, cat = (torch.from_numpy(a) for a in m.features.transform(ev))
    p, mu, sigma = ziln_params(m.net(num, cat).double())
    mean = (p * torch.exp(mu + 0.5 * sigma ** 2)).detach().numpy()
    np.testing.assert_allclose(m.predict(ev), mean, rtol=1e-6)
    m.config.point = "median"
    np.testing.assert_allclose(m.predict(ev), ziln_quantile(p, mu, sigma, 0.5).detach().numpy(), rtol=1e-6)
    qs = m.predict_quantiles(ev, (0.1, 0.5, 0.9))
    assert qs.shape == (len(ev), 3) and (np.diff(qs, axis=1) >= 0).all()
    np.testing.assert_allclose(qs[:, 1], m.predict(ev), rtol=1e-6)
    with pytest.raises(ValueError, match="quantiles"):
        m.predict_quantiles(ev, (0.0,))


def test_fit_save_load_roundtrip_and_registry(tmp_path, gmv_frames):
    tr, va, ev = gmv_frames
    assert MODELS["ziln"] is ZILNModel and ZILNModel.output == "value"
    m = ZILNModel(ZILNConfig(d_model=16, emb_dim=4, train=_train(3)))
    m.fit(tr, va)
    p = m.predict(ev)
    assert p.shape == (len(ev),) and np.isfinite(p).all() and (p >= 0).all()
    m.save(str(tmp_path / "m"))
    back = load_model(str(tmp_path / "m"))
    assert isinstance(back, ZILNModel)
    np.testing.assert_allclose(back.predict(ev), p, rtol=1e-6)
    with pytest.raises(ValueError, match="point"):
        ZILNConfig(point="mode")


def test_learns_the_zero_inflated_spend_of_the_ltv_table(ltv_frames):
    """Label = 0 for ~40% of customers (at random), else ~ first-period spend x noise:
    ZILN must rank by spend (Norm-Gini well above a constant's 0) and its probability
    head must learn the share of buyers."""
    from quantrec.evaluation.metrics import norm_gini
    tr, va = ltv_frames
    m = ZILNModel(ZILNConfig(task="ltv", d_model=16, emb_dim=4, train=_train(15)))
    m.fit(tr, va)
    pred = m.predict(va)
    assert norm_gini(va["ltv"].to_numpy(), pred) > 0.4
    num, cat = (torch.from_numpy(a) for a in m.features.transform(tr))
    with torch.no_grad():
        prob = ziln_params(m.net(num, cat))[0].numpy()
    assert abs(prob.mean() - (tr["ltv"].to_numpy() > 0).mean()) < 0.1
