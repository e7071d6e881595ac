"""HSTU block: shapes, padding invariance, the time bias matters, gradients flow."""

import math

import pytest
import torch

from quantrec.models.hstu import (HSTUBlock, HSTUConfig, HSTUStack, RelativeBias, attention_mass_entropy,
                                  time_gap_buckets)


def _inputs(B=3, L=7, d=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(B, L, d, generator=g)
    lens = torch.tensor([L, 4, 1])[:B]
    valid = torch.arange(L)[None, :] < lens[:, None]
    ts = torch.cumsum(torch.randint(60, 10 ** 7, (B, L), generator=g), 1)
    return x, valid, ts


def _block(**kw):
    torch.manual_seed(0)
    cfg = HSTUConfig(d_model=16, n_heads=2, attn_dim=8, linear_dim=8, max_len=16, dropout=0.0, **kw)
    b = HSTUBlock(cfg)
    # the default init is small (std 0.02): make the biases large enough to matter
    with torch.no_grad():
        b.bias.time_w.normal_(0, 1.0)
        b.bias.pos_w.normal_(0, 1.0)
    return b.eval()


def test_shapes_and_padded_outputs_are_zero():
    b = _block()
    x, valid, ts = _inputs()
    y = b(x, valid, ts)
    assert y.shape == x.shape
    assert torch.all(y[~valid] == 0)
    assert torch.isfinite(y).all()
    assert b.last_attention.shape == (3, 2, 7, 7)


def test_padding_does_not_change_valid_outputs():
    b = _block()
    x, valid, ts = _inputs()
    y = b(x, valid, ts)
    # more padding, with garbage in the padded slots: valid outputs unchanged
    pad = 5
    x2 = torch.cat([x, 100 * torch.randn(3, pad, 16)], 1)
    x2[~torch.cat([valid, torch.zeros(3, pad, dtype=torch.bool)], 1)] = 55.0
    valid2 = torch.cat([valid, torch.zeros(3, pad, dtype=torch.bool)], 1)
    ts2 = torch.cat([ts, torch.randint(0, 10 ** 9, (3, pad))], 1)
    y2 = b(x2, valid2, ts2)
    torch.testing.assert_close(y2[:, :7][valid], y[valid], rtol=1e-5, atol=1e-5)
    # a sequence alone equals the same sequence inside a padded batch
    y_alone = b(x[1:2, :4], valid[1:2, :4], ts[1:2, :4])
    torch.testing.assert_close(y_alone[0], y[1, :4], rtol=1e-5, atol=1e-5)


def test_time_bias_has_an_effect_and_can_be_switched_off():
    b = _block()
    x, valid, ts = _inputs()
    y = b(x, valid, ts)
    y_other_times = b(x, valid, ts * 37 + 11)          # different gaps, same order
    assert (y - y_other_times).abs().max() > 1e-3
    b_off = _block(use_time_bias=False)
    torch.testing.assert_close(b_off(x, valid, ts), b_off(x, valid, ts * 37 + 11))


def test_time_buckets_are_log_spaced():
    ts = torch.tensor([[0, 1, 2, 4, 1000, 10 ** 6]])
    bk = time_gap_buckets(ts, 64, 0.301)[0, 0]
    # ln(1) = 0 -> 0; ln(2) / 0.301 = 2.3 -> 2; ln(4) / 0.301 = 4.6 -> 4
    assert bk.tolist()[:4] == [0, 0, 2, 4]
    assert bk[4] == math.floor(math.log(1000) / 0.301)
    assert time_gap_buckets(torch.tensor([[0, 10 ** 12]]), 8)[0, 0, 1] == 8   # clamped


def test_relative_bias_rejects_too_long_sequences():
    rb = RelativeBias(HSTUConfig(max_len=4))
    with pytest.raises(ValueError, match="max_len"):
        rb(None, 5)


def test_gradient_flows_to_every_parameter():
    torch.manual_seed(0)
    stack = HSTUStack(HSTUConfig(d_model=16, n_heads=2, attn_dim=8, linear_dim=8, max_len=16), n_blocks=2)
    x, valid, ts = _inputs()
    x.requires_grad_(True)
    stack(x, valid, ts)[valid].pow(2).sum().backward()
    assert x.grad[valid].abs().sum() > 0
    assert torch.all(x.grad[~valid] == 0)                # padded inputs do not matter
    for name, p in stack.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_causal_mask_hides_the_future():
    b = _block(causal=True)
    x, valid, ts = _inputs()
    y = b(x, valid, ts)
    x2 = x.clone()
    x2[0, 5:] += 3.0                                     # change the future of position 4
    y2 = b(x2, valid, ts)
    torch.testing.assert_close(y2[0, :5], y[0, :5])
    assert (y2[0, 5:] - y[0, 5:]).abs().max() > 1e-3


def test_attention_mass_entropy_detects_collapse():
    valid = torch.ones(1, 4, dtype=torch.bool)
    uniform = torch.full((1, 1, 4, 4), 0.25)
    collapsed = torch.zeros(1, 1, 4, 4)
    collapsed[..., 0] = 1.0
    assert attention_mass_entropy(uniform, valid) == pytest.approx(1.0)
    assert attention_mass_entropy(collapsed, valid) == pytest.approx(0.0, abs=1e-6)
