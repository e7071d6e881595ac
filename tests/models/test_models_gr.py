"""GR: label encoding, the embedding mixup, the curriculum schedules, the two-pass
training, autoregressive decoding, save / load and the registry / run-config entry."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from quantrec.models import MODELS, load_model
from quantrec.models.gr import (EOS, N_SPECIAL, PAD, SOS, GRConfig, GRModel, GRNet, sigmoid_omega,
                                teacher_forcing_prob)
from quantrec.training.trainer import StepContext, TrainConfig


def _cfg(**kw):
    kw.setdefault("train", TrainConfig(epochs=4, batch_size=64, lr=3e-3, progress=False, seed=0))
    return GRConfig(d_model=16, n_heads=2, ffn=32, layers=1, feat_emb_dim=4, **kw)


def _prepared(frame, **kw):
    """A GRModel with features, vocabulary and an untrained net (no training)."""
    from quantrec.models.base import task_spec
    from quantrec.models.features import FeaturePipeline
    m = GRModel(_cfg(**kw))
    m.features = FeaturePipeline(task_spec("gmv")).fit(frame)
    m._prepare(frame["gmv"].to_numpy(), None)
    m.net = m._build()
    return m


def test_targets_are_sos_greedy_tokens_eos_and_sum_to_z(gmv_frames):
    tr, _, _ = gmv_frames
    m = _prepared(tr)
    t = m._targets(tr["gmv"].to_numpy())
    tok_in, tok_out, z = t["tok_in"].numpy(), t["tok_out"].numpy(), t["z"].numpy()
    assert (tok_in[:, 0] == SOS).all()
    np.testing.assert_array_equal(tok_in[:, 1:], tok_out[:, :-1])          # shifted by one
    assert ((tok_out == EOS).sum(1) == 1).all()                             # exactly one EOS
    values = np.asarray(m.codebook.token_values)[tok_out].sum(1)
    np.testing.assert_allclose(values, z, rtol=2e-3, atol=1e-5)             # greedy sum ~ z
    # greedy largest-first: token values never increase along a sequence
    vals = np.asarray(m.codebook.token_values)[tok_out]
    both = (tok_out[:, 1:] >= N_SPECIAL) & (tok_out[:, :-1] >= N_SPECIAL)
    assert both.any() and (np.diff(vals, axis=1)[both] <= 0).all()


def test_mixup_is_the_windowed_softmax_over_neighbouring_ids():
    cfg = _cfg(window=1)
    values = torch.tensor([0.0, 0.0, 0.0, 5.0, 3.0, 2.0, 1.0])               # ids 3..6 decreasing
    net = GRNet(2, [3], cfg, values, positions=4)
    logits = torch.full((1, 3, 7), -5.0)
    logits[0, 0, [3, 4, 5]] = torch.tensor([1.0, 3.0, 0.5])                 # argmax id 4: window 3..5
    logits[0, 1, [3, 4]] = torch.tensor([2.0, 1.0])                         # argmax id 3: window 3..4 only
    logits[0, 2, EOS] = 4.0                                                 # argmax EOS: its own embedding
    logits.requires_grad_(True)
    z = net.mixup(logits)
    E = net.tok_emb.weight
    s0 = torch.softmax(torch.tensor([1.0, 3.0, 0.5]), 0)
    torch.testing.assert_close(z[0, 0], s0 @ E[3:6])
    s1 = torch.softmax(torch.tensor([2.0, 1.0]), 0)
    torch.testing.assert_close(z[0, 1], s1 @ E[3:5])
    torch.testing.assert_close(z[0, 2], E[EOS])
    z.sum().backward()                                                      # gradient through sigma, finite
    assert torch.isfinite(logits.grad).all() and logits.grad[0, 0, 4].abs() > 0
    # without mixup the prediction's embedding is E[argmax], no gradient to the logits
    net.cfg.mixup = False
    torch.testing.assert_close(net.predicted_embedding(logits.detach())[0, 0], E[4])


def test_teacher_forcing_schedules():
    cfg = _cfg()
    total = 1000
    w = sigmoid_omega(total)
    assert w * math.log(w) == pytest.approx(500, rel=1e-6)
    assert teacher_forcing_prob(cfg, 0, total) > 0.99
    assert teacher_forcing_prob(cfg, 500, total) == pytest.approx(0.5, abs=1e-6)
    assert teacher_forcing_prob(cfg, total, total) < 0.02
    ps = [teacher_forcing_prob(cfg, s, total) for s in range(0, total, 50)]
    assert all(a >= b for a, b in zip(ps, ps[1:]))                           # decays
    assert teacher_forcing_prob(_cfg(tf_schedule="linear"), 250, total) == pytest.approx(0.75)
    assert teacher_forcing_prob(_cfg(tf_schedule="exponential"), 200, total) == pytest.approx(math.exp(-1))
    assert teacher_forcing_prob(_cfg(tf_schedule="fixed", tf_fixed=0.0), 10, total) == 0.0
    assert teacher_forcing_prob(_cfg(curriculum=False), 900, total) == 1.0
    with pytest.raises(ValueError, match="tf_schedule"):
        _cfg(tf_schedule="cosine")


def test_second_pass_feeds_predictions_where_the_coin_says(gmv_frames):
    tr, _, _ = gmv_frames
    m = _prepared(tr)
    d = m.tensors(tr.head(32))
    g = torch.Generator().manual_seed(0)
    full_tf = m.net(d["num"], d["cat"], d["tok_in"], 1.0, g)
    assert set(full_tf) == {"logits1"}                                       # p = 1: one pass only
    m.net.eval()                                                             # no dropout: passes comparable
    out = m.net(d["num"], d["cat"], d["tok_in"], 0.0, torch.Generator().manual_seed(0))
    assert set(out) == {"logits1", "logits2"}
    # position 0 (after SOS) sees the same input in both passes; later ones see predictions
    torch.testing.assert_close(out["logits2"][:, 0], out["logits1"][:, 0])
    assert not torch.allclose(out["logits2"][:, 1:], out["logits1"][:, 1:])
    ctx = StepContext(0, 0, 4, torch.Generator().manual_seed(0))
    loss, parts = m._loss(m.net, d, ctx)
    assert torch.isfinite(loss) and {"ce", "huber", "ce2", "huber2", "tf_prob"} <= set(parts)
    m.config.curriculum = False
    _, parts = m._loss(m.net, d, ctx)
    assert "ce2" not in parts and parts["tf_prob"] == 1.0


def test_generation_stops_at_eos_and_sums_its_tokens(gmv_frames):
    tr, _, _ = gmv_frames
    m = _prepared(tr)
    d = m.tensors(tr.head(50), with_targets=False)
    with torch.no_grad():
        m.net.eval()
        out = m.net(d["num"], d["cat"])
    tokens = out["tokens"].numpy()
    assert ((tokens == EOS).sum(1) == 1).all()                               # every row ends
    first_eos = (tokens == EOS).argmax(1)
    after = np.arange(tokens.shape[1])[None, :] > first_eos[:, None]
    assert (tokens[after] == PAD).all() and not np.isin(tokens, [SOS]).any()
    values = np.asarray(m.codebook.token_values)[tokens].sum(1)
    np.testing.assert_allclose(out["value"].numpy(), values, rtol=1e-5)


def test_fit_learns_saves_and_loads(tmp_path):
    from models_synth import make_gmv_frame

    from quantrec.evaluation.metrics import mae
    df = make_gmv_frame(1500)
    tr, va, ev = (df[df.split == s].reset_index(drop=True) for s in ("train", "val", "eval"))
    m = GRModel(GRConfig(d_model=32, n_heads=2, ffn=64, feat_emb_dim=4,
                         train=TrainConfig(epochs=6, batch_size=64, lr=3e-3, progress=False, seed=0)))
    res = m.fit(tr, va)
    assert res.epochs_run >= 1 and all(math.isfinite(h["val_metric"]) for h in res.history)
    p = m.predict(ev)
    assert p.shape == (len(ev),) and np.isfinite(p).all() and (p >= 0).all()
    constant = mae(ev["gmv"], np.full(len(ev), np.median(tr["gmv"])))
    assert mae(ev["gmv"], p) < 0.8 * constant
    m.save(str(tmp_path / "gr"))
    back = load_model(str(tmp_path / "gr"))
    assert isinstance(back, GRModel)
    np.testing.assert_allclose(back.predict(ev), p, rtol=1e-5)
    odd = ev.head(3).copy()
    odd["item_id"] = "unseen"
    assert np.isfinite(back.predict(odd)).all()
    m.config.decode = "expected"
    assert not np.allclose(m.predict(ev), p)                                  # the switch is read
    with pytest.raises(ValueError, match="warm start"):
        GRModel(_cfg()).fit(tr, va, init_from=m)


def test_registered_and_configurable_as_a_daily_model():
    from quantrec.config import RunConfig
    assert MODELS["gr"] is GRModel and GRModel.output == "value" and not GRModel.needs
    cfg = RunConfig.from_dict({"models": {"daily": ["rqreg", "wlr", "gr"],
                                          "models": {"gr": {"layers": 1, "train": {"epochs": 2}}}}})
    gr = cfg.models.model_config("gr")
    assert isinstance(gr, GRConfig) and gr.task == "gmv" and gr.layers == 1 and gr.train.epochs == 2
    assert "gr" in cfg.models.roles()["gmv"]
    paper = GRConfig.paper()
    assert (paper.layers, paper.n_heads, paper.d_model, paper.ffn) == (3, 8, 128, 256)
