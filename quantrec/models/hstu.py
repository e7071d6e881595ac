"""HSTU blocks (Zhai et al., ICML 2024, "Actions Speak Louder than Words"), as DMQN's
ICIM runs them over a user's interest clusters.

One block (B = batch, L = padded length, d = model width, H = heads,
da = attention dim per head, dv = linear dim per head)::

    n  = layernorm(x)                                   (B, L, d)
    u, v, q, k = split(silu(n @ W_uvqk))                (B, L, H*dv) x2, (B, L, H*da) x2
    a_ij = silu(q_i . k_j + rab_ij) / n_valid           (B, H, L, L)  no softmax
    y  = u * layernorm(sum_j a_ij v_j)                  (B, L, H*dv)
    x' = x + dropout(y @ W_o)                           (B, L, d)

``rab`` is a learned relative attention bias: one weight per relative position j - i
plus one per log-bucketed time gap |t_i - t_j| (seconds, bucket = floor(ln(gap) /
``time_log_base``), as the reference implementation buckets them). The attention is
normalised by the number of VALID keys of the sequence (the reference divides by the
padded length; ours makes padded positions irrelevant to valid outputs: a test checks
it). Padded positions are masked out of the attention and their outputs are zeroed.

Read (not copied) from meta-recsys/generative-recommenders:
research/modeling/sequential/hstu.py.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass
class HSTUConfig:
    """One HSTU block.

    d_model: width of the residual stream.
    n_heads, attn_dim, linear_dim: heads and per-head q/k and u/v widths.
    max_len: longest sequence (relative-position table has 2 * max_len - 1 entries).
    time_buckets: log-bucketed time-gap weights (gaps beyond the last bucket share it).
    time_log_base: bucket = floor(ln(max(gap_s, 1)) / time_log_base); 0.301 (the
        reference's value) gives about 2.3 buckets per doubling of the gap, so 64
        buckets reach ln(gap) = 19 (gaps up to ~6 years in seconds).
    use_time_bias / use_position_bias: ablation switches.
    causal: attend only to positions j <= i (sequence modelling); DMQN's clusters are
        an unordered-by-causality set ordered by recency, so it uses causal=False.
    """

    d_model: int = 32
    n_heads: int = 2
    attn_dim: int = 16
    linear_dim: int = 16
    max_len: int = 128
    time_buckets: int = 64
    time_log_base: float = 0.301
    dropout: float = 0.1
    use_time_bias: bool = True
    use_position_bias: bool = True
    causal: bool = False
    eps: float = 1e-6


def time_gap_buckets(ts: torch.Tensor, n_buckets: int, log_base: float = 0.301) -> torch.Tensor:
    """(B, L) int64 timestamps (seconds) -> (B, L, L) int64 bucket of |t_i - t_j|.

    bucket = clamp(floor(ln(max(|gap|, 1)) / log_base), 0, n_buckets).
    """
    gap = (ts[:, :, None] - ts[:, None, :]).abs().clamp(min=1).double()     # (B, L, L)
    return (gap.log() / log_base).floor().long().clamp(0, n_buckets)


class RelativeBias(nn.Module):
    """Learned bias rab_ij = w_pos[j - i] + w_time[bucket(|t_i - t_j|)], shared by heads."""

    def __init__(self, cfg: HSTUConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.pos_w = nn.Parameter(torch.randn(2 * cfg.max_len - 1) * 0.02)   # (2M-1,)
        self.time_w = nn.Parameter(torch.randn(cfg.time_buckets + 1) * 0.02)  # (T+1,)

    def forward(self, ts: torch.Tensor | None, length: int, buckets: torch.Tensor | None = None) -> torch.Tensor:
        """ts (B, L) int64 seconds or None -> bias broadcastable to (B, L, L).
        ``buckets`` (B, L, L): precomputed ``time_gap_buckets(ts)`` (shared by a stack)."""
        cfg = self.cfg
        if length > cfg.max_len:
            raise ValueError(f"sequence length {length} exceeds HSTUConfig.max_len {cfg.max_len}")
        bias = torch.zeros(1, length, length, device=self.pos_w.device)
        if cfg.use_position_bias:
            pos = torch.arange(length, device=self.pos_w.device)
            rel = pos[None, :] - pos[:, None] + cfg.max_len - 1                   # (L, L): j - i
            bias = bias + self.pos_w[rel][None]
        if cfg.use_time_bias and ts is not None:
            if buckets is None:
                buckets = time_gap_buckets(ts, cfg.time_buckets, cfg.time_log_base)
            bias = bias + self.time_w[buckets]
        return bias                                                               # (B|1, L, L)


class HSTUBlock(nn.Module):
    """See the module docstring. forward(x (B, L, d), valid (B, L) bool, ts (B, L) int64
    seconds | None) -> (B, L, d); padded positions come out as zeros."""

    def __init__(self, cfg: HSTUConfig) -> None:
        super().__init__()
        self.cfg = cfg
        H = cfg.n_heads
        self.uvqk = nn.Linear(cfg.d_model, 2 * H * cfg.linear_dim + 2 * H * cfg.attn_dim, bias=False)
        nn.init.normal_(self.uvqk.weight, std=0.02)
        self.out = nn.Linear(H * cfg.linear_dim, cfg.d_model)
        nn.init.xavier_uniform_(self.out.weight)
        self.bias = RelativeBias(cfg)
        self.drop = nn.Dropout(cfg.dropout)
        self.last_attention: torch.Tensor | None = None   # (B, H, L, L) of the last call, detached

    def forward(self, x: torch.Tensor, valid: torch.Tensor, ts: torch.Tensor | None = None,
                buckets: torch.Tensor | None = None) -> torch.Tensor:
        cfg = self.cfg
        B, L, _ = x.shape
        H, da, dv = cfg.n_heads, cfg.attn_dim, cfg.linear_dim
        n = F.layer_norm(x, (cfg.d_model,), eps=cfg.eps)                           # (B, L, d)
        u, v, q, k = torch.split(F.silu(self.uvqk(n)), [H * dv, H * dv, H * da, H * da], dim=-1)
        q = q.reshape(B, L, H, da)
        k = k.reshape(B, L, H, da)
        scores = torch.einsum("bihd,bjhd->bhij", q, k)                             # (B, H, L, L)
        scores = scores + self.bias(ts, L, buckets)[:, None]                       # + rab
        mask = valid[:, None, :, None] & valid[:, None, None, :]                   # (B, 1, L, L)
        if cfg.causal:
            mask = mask & torch.ones(L, L, dtype=torch.bool, device=x.device).tril()
        n_valid = valid.sum(1).clamp(min=1).to(x.dtype)[:, None, None, None]       # (B, 1, 1, 1)
        attn = F.silu(scores) * mask / n_valid                                     # (B, H, L, L)
        self.last_attention = attn.detach()
        av = torch.einsum("bhij,bjhd->bihd", attn, v.reshape(B, L, H, dv)).reshape(B, L, H * dv)
        y = u * F.layer_norm(av, (H * dv,), eps=cfg.eps)                           # (B, L, H*dv)
        out = x + self.drop(self.out(y))                                           # (B, L, d)
        return out * valid[..., None].to(out.dtype)


class HSTUStack(nn.Module):
    """``n_blocks`` HSTU blocks with a final layernorm. forward as ``HSTUBlock``."""

    def __init__(self, cfg: HSTUConfig, n_blocks: int) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(HSTUBlock(cfg) for _ in range(n_blocks))
        self.norm = nn.LayerNorm(cfg.d_model, eps=cfg.eps)

    def forward(self, x: torch.Tensor, valid: torch.Tensor, ts: torch.Tensor | None = None) -> torch.Tensor:
        cfg = self.blocks[0].cfg if len(self.blocks) else None
        buckets = (time_gap_buckets(ts, cfg.time_buckets, cfg.time_log_base)
                   if cfg is not None and ts is not None and cfg.use_time_bias else None)   # once per stack
        for block in self.blocks:
            x = block(x, valid, ts, buckets)
        return self.norm(x) * valid[..., None].to(x.dtype)                         # (B, L, d)


def attention_mass_entropy(attn: torch.Tensor, valid: torch.Tensor) -> float:
    """Mean normalised entropy of |attention| rows (HSTU weights are not a softmax:
    rows are normalised to sum 1 first). attn (B, H, L, L), valid (B, L). 1 = uniform
    over the valid keys, 0 = one key takes all (attention collapse). Rows with fewer
    than 2 valid keys are skipped; nan when none is left."""
    w = attn.abs()
    s = w.sum(-1, keepdim=True)
    p = w / s.clamp(min=1e-12)
    ent = -(p * p.clamp(min=1e-12).log()).sum(-1)                                  # (B, H, L)
    n_keys = valid.sum(1).to(attn.dtype)                                           # (B,)
    norm = n_keys.clamp(min=2).log()[:, None, None]
    keep = (valid[:, None, :] & (n_keys[:, None, None] >= 2) & (s[..., 0] > 0))    # (B, H, L)
    if not bool(keep.any()):
        return math.nan
    return float((ent / norm)[keep].mean())
