"""DMQN (Wei et al., 2025, seeds/002): purchase probability of a candidate item from the
user's WHOLE behaviour history.

Per request (user u at request day D; history = all of u's purchase lines with day < D,
packed as values + offsets, see ``quantrec.data.sequences``)::

    pairs  the history's events grouped into (request, item) pairs: P <= S (on the
           default run P is 38% of S); an item's events share one codeword draw
    e_p  = sum over the pair's events of emb(item) + emb(price paid) + emb(quantity)
    MCQM  N codebooks x W codewords (C = N * W clusters, ~100), assigned from the ITEM
          embedding (so an item always lands in the same cluster in eval):
          z_pn = normalize(P_n emb(item_p));  l_pnw = scale * cos(z_pn, c_nw)   (P, N, W)
          a_pn = gumbel_softmax(l_pn, tau) in training (straight-through hard by
                 default; tau annealed tau_start -> tau_end over the epochs); argmax in eval
          cluster (n, w): mean event vector of its events (pooled in fixed chunks of the
          packed pairs: memory O(P), never O(B * longest history)) -> per-codebook
          linear + codeword / log-count / log-age embeddings               (B, C, d)
    ICIM  HSTU blocks over the non-empty clusters ORDERED BY RECENCY (most recent first;
          ``quantrec.models.hstu``: pointwise SiLU attention / n, relative position +
          log-bucketed time-gap bias on the clusters' last-event times)     (B, C, d)
    state = [ICIM output, non-empty flag] in (codebook, codeword) order    (B, C, d + 1)
    item memory (``item_memory`` = M > 0; small() / paper(): 2048, 0 = off): the M most recent DISTINCT
          known items of the history (item row 0, the shared row of rare items, is not
          an identity and is left out), each as F = 6 numbers (item // 1024, item % 1024,
          log1p(lines), count bucket, log-age bucket of its last and of its first event
          before the request day), packed row-major into ceil(M * F / (d + 1)) extra
          rows appended to the state (``pack_memory``; every number is an integer < 1024
          or a log1p: exact in float32 and the item id survives the serving cache's
          float16 storage too)                        state (B, C + ceil(M F / (d + 1)), d + 1)
    ---- everything above is candidate-independent: ``user_states`` computes it for a
         cache; ``score`` does only what follows ----
    CTAM  candidate c = proj(emb(item_c) + emb(price level_c))             (R, d)
          (1) multi-head softmax target attention over the valid clusters + a learned
              "nothing" slot; (2) cluster-aware: c's OWN cluster in each codebook (the
              codeword its item embedding is assigned to) read from the state;
          (3) with the item memory on: the exact-item read, c's own entry in the
              memory (match on the item index; absent = count 0): embeddings of its
              count / last-age / first-age buckets, found flag, log1p(lines)
          MLP([c, interest, c * interest, own clusters, <c, own cluster_n> for each
              codebook n (bilinear), mean cluster, log #clusters (, memory read)])
              + per-item bias (+ a linear "wide" logit of the memory read)
    loss  BCE (per-row mean over the GLOBAL batch, exact under DDP)
          + diversity_weight * mean_n (1 - H(mean_p softmax(l_pn)) / log W)

Guards of the known failure modes: codebook collapse (codeword usage and perplexity
per codebook, each epoch and in ``diagnostics()``, plus the diversity term), attention
collapse (normalised entropy of the CTAM attention), instability (seeded runs, NaN
check in the trainer, gradient clipping).

Item attributes: the item index (fitted on the events up to the last training day)
knows each item's median unit price in that window, log-bucketed: the candidate's
price level. History events carry the price actually paid and the quantity. The
product description (raw data only, not in the events table) is not used.
"""

from __future__ import annotations

import math
import tempfile
from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from quantrec.data import schema as S
from quantrec.data.sequences import (PRICE_BUCKETS, QTY_BUCKETS, EventLog, Histories, ItemIndex,
                                     Requests, build_histories, history_length_summary, ranges_to_index)
from quantrec.dataclass_io import ConfigError, build_dataclass
from quantrec.evaluation.metrics import logloss
from quantrec.models.hstu import HSTUConfig, HSTUStack, attention_mass_entropy
from quantrec.training import checkpoints as ck
from quantrec.training.batching import Batch, RequestBatches
from quantrec.training.trainer import StepContext, TrainConfig, TrainResult, set_seed, train

AGE_BUCKETS = 64      # log-bucketed seconds between a cluster's last event and the request day
COUNT_BUCKETS = 16    # 1 + floor(log2(events in the cluster))
#: item memory entry: (item // ITEM_SPLIT, item % ITEM_SPLIT, log1p(lines), count bucket,
#: last-age bucket, first-age bucket); the item index is split so that both halves are
#: integers < 1024, exact in float16 (the serving cache's default state dtype) as in float32
MEMORY_FIELDS = 6
ITEM_SPLIT = 1024
#: which M distinct items the memory keeps: the most recently bought, or the most often
#: bought (lines; ties: the more recent)
MEMORY_ORDERS = ("recency", "count")


class DMQNInputError(ValueError):
    """Missing / malformed inputs of DMQN (names the table, column or key)."""


# ---- config ------------------------------------------------------------------------------
@dataclass
class DMQNConfig:
    """DMQN hyper-parameters. ``small()`` = the daily default, ``paper()`` = paper-size.

    Data: min_count (item index: lines in the fit window for an own embedding row; rarer
    items share row 0), max_history (0 = the WHOLE history; > 0 keeps the most recent N
    events per request, counted and reported), max_train_requests (0 = all training
    requests; > 0 the most recent N, like the GMV models' max_train_rows).
    MCQM: codebooks N x codewords W (N * W clusters), code_dim (per-codebook projection),
    logit_scale (cosine logits x scale), tau_start -> tau_end (Gumbel temperature,
    geometric over the epochs), straight_through (hard one-hot forward in training, the
    eval assignment; False = soft pooling in training), gumbel_scale (1 = the standard
    Gumbel noise; 0 = no noise: a deterministic straight-through argmax; an ablation),
    diversity_weight, chunk_len
    (events per pooling chunk: memory bound).
    ICIM: hstu_blocks, hstu_heads, hstu_attn_dim, hstu_linear_dim, time_buckets,
    use_time_bias. CTAM: ctam_heads, mlp_hidden, item_bias (a learned per-item logit
    offset, the "wide" term of factorisation models: popularity without going through
    the MLP), own_bilinear (N explicit scores <W_q c, W_k own cluster_n> of the candidate
    against its own cluster in each codebook, fed to the MLP: on the 2011-12-10 run
    +0.02 val AUC at 6 epochs). Item memory: item_memory (M, 0 = off): the M most
    recent distinct items of the history kept with their line count and ages in the
    state, read exactly by each candidate (requests with more distinct items than M are
    counted in ``DMQNModel.state["item_memory"]``); item_memory_order "count" keeps the M
    most often bought instead. ``train.batch_size`` counts REQUESTS.
    """

    task: str = "purchase"
    min_count: int = 2
    max_history: int = 0
    max_train_requests: int = 0
    item_dim: int = 32
    d_model: int = 32
    codebooks: int = 4
    codewords: int = 25
    code_dim: int = 16
    logit_scale: float = 30.0
    tau_start: float = 1.0
    tau_end: float = 0.2
    straight_through: bool = True
    gumbel_scale: float = 1.0
    diversity_weight: float = 0.1
    chunk_len: int = 256
    hstu_blocks: int = 2
    hstu_heads: int = 2
    hstu_attn_dim: int = 16
    hstu_linear_dim: int = 16
    time_buckets: int = 64
    use_time_bias: bool = True
    ctam_heads: int = 2
    mlp_hidden: int = 64
    item_bias: bool = True
    own_bilinear: bool = True
    item_memory: int = 0
    item_memory_order: str = "recency"
    dropout: float = 0.1
    eval_requests: int = 64
    train: TrainConfig = field(default_factory=lambda: TrainConfig(
        epochs=6, batch_size=32, lr=1e-2, weight_decay=0.01, patience=2))

    def __post_init__(self) -> None:
        for key, low in (("min_count", 1), ("max_history", 0), ("max_train_requests", 0), ("item_dim", 1),
                         ("d_model", 1), ("codebooks", 1), ("codewords", 2), ("code_dim", 1),
                         ("chunk_len", 1), ("hstu_blocks", 0), ("hstu_heads", 1), ("hstu_attn_dim", 1),
                         ("hstu_linear_dim", 1), ("time_buckets", 1), ("ctam_heads", 1), ("mlp_hidden", 2),
                         ("eval_requests", 1), ("item_memory", 0)):
            if getattr(self, key) < low:
                raise ConfigError(key, f"must be at least {low}, got {getattr(self, key)}")
        if self.d_model % self.ctam_heads:
            raise ConfigError("ctam_heads", f"must divide d_model {self.d_model}, got {self.ctam_heads}")
        if not 0 < self.tau_end <= self.tau_start:
            raise ConfigError("tau_end", f"need 0 < tau_end <= tau_start, got {self.tau_end} / {self.tau_start}")
        if self.gumbel_scale < 0 or self.diversity_weight < 0 or self.logit_scale <= 0:
            raise ConfigError("logit_scale", "logit_scale > 0, gumbel_scale >= 0 and diversity_weight >= 0")
        if self.item_memory_order not in MEMORY_ORDERS:
            raise ConfigError("item_memory_order", f"one of {MEMORY_ORDERS}, got {self.item_memory_order!r}")
        if self.item_memory > ITEM_SPLIT ** 2:
            raise ConfigError("item_memory", f"at most {ITEM_SPLIT ** 2} entries, got {self.item_memory}")

    @classmethod
    def small(cls, **kw: Any) -> "DMQNConfig":
        """Daily default: 4 x 25 = 100 clusters, width 32, 2 HSTU blocks, WHOLE histories,
        ALL training requests, 6 epochs of 32 requests per step at AdamW 1e-2 (early
        stopping on val logloss, patience 2). Chosen on the val split of the 2011-12-10
        run (benchmarks/RESULTS.md, dmqn_quality): lr 1e-2 beat 2e-3 / 5e-3 / 2e-2 and a
        cosine decay; logit scale 30 beat 10; no Gumbel noise was not better; keeping the
        most recent 2000 of the 4067 requests cost 0.02 val logloss; the bilinear
        own-cluster scores gained ~0.02 val AUC; val logloss still falls after 6 epochs
        (10 epochs: ~0.004 lower, with more spread across seeds) but 6 keep the fit at
        about 2-3 minutes on this shared 2-core machine. Item memory of the 2048 most
        recent distinct items (RESULTS.md, dmqn_item_memory, 3 seeds): val AUC 0.712 ->
        0.781, GAUC 0.701 -> 0.757, logloss 0.475 -> 0.422 (512: 0.772 / 0.750 / 0.428);
        it costs ~40% more time per epoch, ~1 ms more per cached-state scoring of 100
        candidates and 31 KB per user state in the float16 cache (6.6 KB without, 12.8 KB
        at 512): set ``item_memory`` lower where the cache's size matters more."""
        kw.setdefault("item_memory", 2048)
        return cls(**kw)

    @classmethod
    def paper(cls, **kw: Any) -> "DMQNConfig":
        """Paper-size: the paper states ~100 interest clusters (kept: 4 x 25) but not its
        widths; these follow HSTU's published settings (4 blocks, width 64), with
        more epochs and patience."""
        kw.setdefault("train", TrainConfig(epochs=20, batch_size=32, lr=5e-3, patience=3))
        base = dict(item_dim=64, d_model=64, code_dim=32, hstu_blocks=4, hstu_heads=2,
                    hstu_attn_dim=32, hstu_linear_dim=32, ctam_heads=4, mlp_hidden=256, item_memory=2048)
        base.update(kw)
        return cls(**base)

    @property
    def clusters(self) -> int:
        return self.codebooks * self.codewords

    @property
    def memory_rows(self) -> int:
        """State rows holding the packed item memory (0 when it is off)."""
        return -(-self.item_memory * MEMORY_FIELDS // (self.d_model + 1))

    @property
    def state_rows(self) -> int:
        """Rows of a user state: C clusters + the packed item memory."""
        return self.clusters + self.memory_rows

    def hstu(self) -> HSTUConfig:
        return HSTUConfig(d_model=self.d_model, n_heads=self.hstu_heads, attn_dim=self.hstu_attn_dim,
                          linear_dim=self.hstu_linear_dim, max_len=self.clusters,
                          time_buckets=self.time_buckets, dropout=self.dropout,
                          use_time_bias=self.use_time_bias)


# ---- MCQM ----------------------------------------------------------------------------------
def chunked_pool(a: torch.Tensor, e: torch.Tensor, offsets: torch.Tensor, chunk: int) -> torch.Tensor:
    """Per-request weighted sums of event vectors, chunk by chunk.

    a (S, N, W) assignment weights, e (S, D) event vectors, offsets (B + 1,) ->
    (B, N, W, D) with out[b, n, w] = sum_{s in request b} a[s, n, w] * e[s].
    The packed sequence is cut into chunks of ``chunk`` events that never straddle two
    requests (K <= S / chunk + B chunks), each padded to ``chunk``: memory O(S + B *
    chunk), never O(B * longest history).
    """
    S_, N, W = a.shape
    B = offsets.shape[0] - 1
    D = e.shape[1]
    lens = offsets[1:] - offsets[:-1]                                        # (B,)
    n_chunks = (lens + chunk - 1) // chunk                                   # (B,)
    K = int(n_chunks.sum())
    if K == 0:
        return a.new_zeros(B, N, W, D)
    chunk_req = torch.repeat_interleave(torch.arange(B), n_chunks)           # (K,)
    first_chunk = torch.cumsum(n_chunks, 0) - n_chunks                       # (B,)
    chunk_start = offsets[chunk_req] + (torch.arange(K) - first_chunk[chunk_req]) * chunk
    pos = chunk_start[:, None] + torch.arange(chunk)[None, :]                # (K, T)
    pos = torch.where(pos < offsets[chunk_req + 1][:, None], pos, torch.full_like(pos, S_))
    a_pad = torch.cat([a, a.new_zeros(1, N, W)])[pos]                        # (K, T, N, W)
    e_pad = torch.cat([e, e.new_zeros(1, D)])[pos]                           # (K, T, D)
    part = torch.einsum("ktnw,ktd->knwd", a_pad, e_pad)                      # (K, N, W, D)
    return a.new_zeros(B, N, W, D).index_add(0, chunk_req, part)


def age_bucket(age_s: torch.Tensor, n: int = AGE_BUCKETS, log_base: float = 0.301) -> torch.Tensor:
    """Seconds (int64, any shape) -> log bucket in [0, n - 1] (as HSTU's time gaps)."""
    return (age_s.clamp(min=1).double().log() / log_base).floor().long().clamp(0, n - 1)


class MCQM(nn.Module):
    """Multi-codebook cluster quantisation: (request, item) pairs -> (B, C, d) clusters
    in (codebook, codeword) order, with validity and last-event times."""

    def __init__(self, cfg: DMQNConfig) -> None:
        super().__init__()
        self.cfg = cfg
        N, W, dc, E, d = cfg.codebooks, cfg.codewords, cfg.code_dim, cfg.item_dim, cfg.d_model
        self.proj = nn.Linear(E, N * dc)
        self.codewords = nn.Parameter(torch.randn(N, W, dc))
        self.value_w = nn.Parameter(torch.randn(N, E, d) / math.sqrt(E))     # per-codebook value map
        self.value_b = nn.Parameter(torch.zeros(N, d))
        self.code_emb = nn.Parameter(torch.randn(N, W, d) * 0.02)
        self.count_emb = nn.Embedding(COUNT_BUCKETS, d)
        self.age_emb = nn.Embedding(AGE_BUCKETS, d)
        self.norm = nn.LayerNorm(d)

    def logits(self, e: torch.Tensor) -> torch.Tensor:
        """e (S, E) -> (S, N, W) scaled cosine similarity to every codeword."""
        N, dc = self.cfg.codebooks, self.cfg.code_dim
        z = F.normalize(self.proj(e).reshape(-1, N, dc), dim=-1)              # (S, N, dc)
        c = F.normalize(self.codewords, dim=-1)                              # (N, W, dc)
        return self.cfg.logit_scale * torch.einsum("snc,nwc->snw", z, c)

    def assign(self, logits: torch.Tensor, tau: float) -> tuple[torch.Tensor, torch.Tensor]:
        """(S, N, W) logits -> (weights (S, N, W), hard index (S, N)). Training: Gumbel-
        softmax at temperature ``tau`` (straight-through hard or soft); eval: argmax."""
        if not self.training:
            idx = logits.argmax(-1)
            return F.one_hot(idx, logits.shape[-1]).to(logits.dtype), idx
        if self.cfg.gumbel_scale > 0:
            u = torch.rand_like(logits).clamp(1e-9, 1 - 1e-9)
            logits = logits - self.cfg.gumbel_scale * torch.log(-torch.log(u))
        soft = (logits / tau).softmax(-1)
        idx = soft.argmax(-1)
        if not self.cfg.straight_through:
            return soft, idx
        hard = F.one_hot(idx, logits.shape[-1]).to(logits.dtype)
        return hard - soft.detach() + soft, idx

    def forward(self, key: torch.Tensor, e: torch.Tensor, count: torch.Tensor, ts: torch.Tensor,
                offsets: torch.Tensor, request_ts: torch.Tensor, tau: float) -> dict[str, torch.Tensor]:
        """Over P (request, item) pairs, grouped by request (offsets (B + 1,)):
        key (P, E) the item embedding (what assigns to codewords), e (P, E) the SUM of the
        pair's event vectors (item + price paid + quantity), count (P,) events, ts (P,)
        int64 s of the pair's last event, request_ts (B,) int64 s ->
        clusters (B, C, d) in (codebook, codeword) order (mean event vector per cluster
        -> per-codebook linear + codeword / count / age embeddings), valid (B, C) bool,
        last_ts (B, C) int64, logits (P, N, W), hard (P, N)."""
        cfg = self.cfg
        N, W = cfg.codebooks, cfg.codewords
        B = offsets.shape[0] - 1
        logits = self.logits(key)
        a, hard = self.assign(logits, tau)                                            # one draw per pair
        req = torch.repeat_interleave(torch.arange(B), offsets[1:] - offsets[:-1])    # (P,)
        pooled = chunked_pool(a, e, offsets, cfg.chunk_len)                           # (B, N, W, E) sums
        flat = ((req[:, None] * N + torch.arange(N)[None, :]) * W + hard).reshape(-1)  # (P * N,)
        cnt = count[:, None].expand(-1, N).reshape(-1)
        n_hard = torch.zeros(B * N * W, dtype=torch.long).index_add(0, flat, cnt).reshape(B, N, W)
        last = torch.zeros(B * N * W, dtype=torch.long).scatter_reduce(
            0, flat, ts[:, None].expand(-1, N).reshape(-1), "amax", include_self=True).reshape(B, N, W)
        valid = n_hard > 0
        mean = pooled / n_hard.clamp(min=1).to(pooled.dtype)[..., None]
        h = torch.einsum("bnwe,ned->bnwd", mean, self.value_w) + self.value_b[None, :, None, :]
        cnt_b = (torch.log2(n_hard.clamp(min=1).double()).floor().long() + 1).clamp(max=COUNT_BUCKETS - 1)
        age = age_bucket(request_ts[:, None, None] - last)
        h = self.norm(h + self.code_emb[None] + self.count_emb(cnt_b * valid) + self.age_emb(age))
        h = h * valid[..., None]
        C = N * W
        return {"clusters": h.reshape(B, C, -1), "valid": valid.reshape(B, C), "last_ts": last.reshape(B, C),
                "logits": logits, "hard": hard, "count": count}


def pair_events(item: torch.Tensor, offsets: torch.Tensor, n_items: int) -> tuple[torch.Tensor, ...]:
    """Packed events -> (request, item) pairs: (pair of every event (S,), pair item (P,),
    pair offsets (B + 1,)); pairs are grouped by request (sorted by request, item)."""
    B = offsets.shape[0] - 1
    req = torch.repeat_interleave(torch.arange(B), offsets[1:] - offsets[:-1])
    keys, inv = torch.unique(req * n_items + item, sorted=True, return_inverse=True)
    per_req = torch.bincount(torch.div(keys, n_items, rounding_mode="floor"), minlength=B)
    return inv, keys % n_items, torch.cat([offsets.new_zeros(1), per_req.cumsum(0)])


def recency_order(valid: torch.Tensor, last_ts: torch.Tensor) -> torch.Tensor:
    """(B, C) -> (B, C) permutation: most recent cluster first, empty clusters last
    (ties keep codebook order: stable)."""
    key = torch.where(valid, last_ts, torch.full_like(last_ts, -1))
    return torch.sort(key, dim=1, descending=True, stable=True).indices


# ---- item memory ---------------------------------------------------------------------------
def build_item_memory(pair_item: torch.Tensor, pair_off: torch.Tensor, count: torch.Tensor, first: torch.Tensor,
                      last: torch.Tensor, request_ts: torch.Tensor, M: int,
                      order: str = "recency") -> tuple[torch.Tensor, torch.Tensor]:
    """(request, item) pairs (grouped by request, ``pair_off`` (B + 1,)): pair_item (P,),
    count (P,) lines, first / last (P,) int64 s of the pair's first / last event,
    request_ts (B,) int64 s -> (memory (B, M, MEMORY_FIELDS) float32, distinct (B,) int64).

    Entry j of request b = its j-th most recently bought distinct item (ties: smaller item
    row first; ``order`` "count": its j-th most often bought, ties: the more recent
    first): (item // 1024, item % 1024, log1p(lines), count bucket 1 + floor(log2 lines)
    (0 = empty entry), age bucket of the last and of the first event). Item row 0
    (rare items sharing a row) is not an identity and is left out. ``distinct``: the
    known distinct items of each history BEFORE the cap M (> M = entries dropped)."""
    B = pair_off.shape[0] - 1
    req = torch.repeat_interleave(torch.arange(B), pair_off[1:] - pair_off[:-1])   # (P,)
    sel = torch.nonzero(pair_item > 0).squeeze(1)
    o = sel[torch.sort(last[sel], descending=True, stable=True).indices]            # most recent first
    if order == "count":
        o = o[torch.sort(count[o], descending=True, stable=True).indices]           # most lines first
    o = o[torch.sort(req[o], stable=True).indices]                                  # grouped by request
    r = req[o]
    distinct = torch.bincount(r, minlength=B)
    rank = torch.arange(o.shape[0]) - (torch.cumsum(distinct, 0) - distinct)[r]
    keep = rank < M
    o, r, rank = o[keep], r[keep], rank[keep]
    it, n = pair_item[o], count[o]
    vals = torch.stack([torch.div(it, ITEM_SPLIT, rounding_mode="floor"), it % ITEM_SPLIT,
                        torch.log1p(n.double()), count_bucket(n),
                        age_bucket(request_ts[r] - last[o]), age_bucket(request_ts[r] - first[o])], 1)
    mem = torch.zeros(B, M, MEMORY_FIELDS, dtype=torch.float32)
    mem[r, rank] = vals.float()
    return mem, distinct


def count_bucket(n: torch.Tensor) -> torch.Tensor:
    """Line counts (int64 >= 1) -> 1 + floor(log2 n), capped at COUNT_BUCKETS - 1."""
    return (torch.log2(n.clamp(min=1).double()).floor().long() + 1).clamp(max=COUNT_BUCKETS - 1)


def pack_memory(mem: torch.Tensor, width: int) -> torch.Tensor:
    """(B, M, F) -> (B, ceil(M * F / width), width): row-major, zero-padded at the end."""
    B = mem.shape[0]
    flat = mem.reshape(B, -1)
    rows = -(-flat.shape[1] // width)
    return F.pad(flat, (0, rows * width - flat.shape[1])).reshape(B, rows, width)


def unpack_memory(rows: torch.Tensor, M: int) -> torch.Tensor:
    """The inverse of ``pack_memory``: (B, rows, width) -> (B, M, MEMORY_FIELDS)."""
    return rows.reshape(rows.shape[0], -1)[:, :M * MEMORY_FIELDS].reshape(rows.shape[0], M, MEMORY_FIELDS)


def memory_lookup(mem: torch.Tensor, item: torch.Tensor, row_unit: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Each candidate's own memory entry: mem (B, M, F), item (R,) rows, row_unit (R,) ->
    (found (R,) bool, entry (R, F); zeros where not found). Ids are rounded before the
    match (a float16-stored state stays exact: both halves are integers < 1024)."""
    ids = mem[..., 0].round().long() * ITEM_SPLIT + mem[..., 1].round().long()      # (B, M)
    ids = torch.where(mem[..., 3] > 0.5, ids, torch.full_like(ids, -1))             # empty entries match nothing
    match = ids[row_unit] == item[:, None]                                          # (R, M)
    found = match.any(1)
    pos = match.to(torch.int8).argmax(1)                                            # an item is listed once
    entry = mem[row_unit, pos] * found[:, None].to(mem.dtype)
    return found, entry


class ItemMemoryRead(nn.Module):
    """The candidate's exact-item read -> features (R, d + 2) for the CTAM MLP and a
    linear "wide" logit (R,): count-bucket embedding (bucket 0 = never bought) + last /
    first age-bucket embeddings (when found), the found flag and log1p(lines)."""

    def __init__(self, d: int) -> None:
        super().__init__()
        self.count_emb = nn.Embedding(COUNT_BUCKETS, d)
        self.last_emb = nn.Embedding(AGE_BUCKETS, d)
        self.first_emb = nn.Embedding(AGE_BUCKETS, d)
        self.norm = nn.LayerNorm(d)
        self.wide = nn.Linear(d + 2, 1)

    @property
    def dim(self) -> int:
        return self.count_emb.embedding_dim + 2

    def forward(self, mem: torch.Tensor, item: torch.Tensor,
                row_unit: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """mem (B, M, F), candidates item (R,) + their unit (R,) -> (features (R, d + 2),
        wide logit (R,))."""
        found, entry = memory_lookup(mem, item, row_unit)
        f = found[:, None].to(entry.dtype)
        cb = entry[:, 3].round().long().clamp(0, COUNT_BUCKETS - 1)
        last = entry[:, 4].round().long().clamp(0, AGE_BUCKETS - 1)
        first = entry[:, 5].round().long().clamp(0, AGE_BUCKETS - 1)
        v = self.norm(self.count_emb(cb) + f * (self.last_emb(last) + self.first_emb(first)))
        x = torch.cat([v, f, entry[:, 2:3]], 1)                                      # (R, d + 2)
        return x, self.wide(x).squeeze(-1)


# ---- CTAM ----------------------------------------------------------------------------------
def row_blocks(row_unit: torch.Tensor, n_units: int, block: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Cut every unit's rows into blocks of ``block`` rows: (unit of each block (K,),
    flat slot of each row in a (K * block) grid (R,)). K <= R / block + n_units, so the
    padding is bounded by n_units * block (not by the unit with the most rows)."""
    R = row_unit.shape[0]
    counts = torch.bincount(row_unit, minlength=n_units)                     # (B,)
    n_blocks = (counts + block - 1) // block
    block_unit = torch.repeat_interleave(torch.arange(n_units), n_blocks)    # (K,)
    if R == 0:
        return block_unit, row_unit.clone()
    order = torch.sort(row_unit, stable=True).indices
    start = torch.cumsum(counts, 0) - counts
    rank = torch.empty_like(row_unit)
    rank[order] = torch.arange(R) - start[row_unit[order]]                   # position in its unit
    first_block = torch.cumsum(n_blocks, 0) - n_blocks
    return block_unit, (first_block[row_unit] + rank // block) * block + rank % block


class CTAM(nn.Module):
    """Cluster-aware target attention + MLP -> logit.

    Two reads of the user's clusters by a candidate c: (1) multi-head softmax target
    attention over all valid clusters plus a learned "nothing" slot; (2) c's OWN cluster
    in every codebook (the codeword c's item embedding is assigned to), i.e. where the
    user's earlier purchases of c and of items quantised like c were pooled.

    forward(state (B, C, d + 1) in (codebook, codeword) order (the cluster rows only), cand
    (R, d), own (R, N) cluster index of c per codebook, row_unit (R,), extra (R, extra_dim)
    more MLP inputs or None) -> (logit (R,), attention (R, H, C + 1) with the "nothing"
    slot at index 0).
    """

    def __init__(self, cfg: DMQNConfig, extra_dim: int = 0) -> None:
        super().__init__()
        d, H, N = cfg.d_model, cfg.ctam_heads, cfg.codebooks
        if d % H:
            raise ValueError(f"d_model {d} must be divisible by ctam_heads {H}")
        self.H, self.dh, self.block = H, d // H, 64
        self.q, self.k, self.v = nn.Linear(d, d), nn.Linear(d, d), nn.Linear(d, d)
        self.null_kv = nn.Parameter(torch.randn(2, d) * 0.02)                 # "nothing" slot
        self.out = nn.Linear(d, d)
        self.own = nn.Linear(N * (d + 1), d)
        self.own_bilinear = cfg.own_bilinear
        n_bil = N if cfg.own_bilinear else 0
        if cfg.own_bilinear:
            self.own_q, self.own_k = nn.Linear(d, d), nn.Linear(d + 1, d)
        self.mlp = nn.Sequential(nn.Linear(5 * d + 1 + n_bil + extra_dim, cfg.mlp_hidden), nn.ReLU(),
                                 nn.Dropout(cfg.dropout),
                                 nn.Linear(cfg.mlp_hidden, cfg.mlp_hidden // 2), nn.ReLU(),
                                 nn.Linear(cfg.mlp_hidden // 2, 1))

    def forward(self, state: torch.Tensor, cand: torch.Tensor, own: torch.Tensor,
                row_unit: torch.Tensor, extra: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        B, C, D1 = state.shape
        H, dh = self.H, self.dh
        h, valid = state[..., :-1], state[..., -1] > 0.5                      # (B, C, d), (B, C)
        k = torch.cat([self.null_kv[0].expand(B, 1, -1), self.k(h)], 1).reshape(B, C + 1, H, dh)
        v = torch.cat([self.null_kv[1].expand(B, 1, -1), self.v(h)], 1).reshape(B, C + 1, H, dh)
        keys_ok = torch.cat([torch.ones(B, 1, dtype=torch.bool), valid], 1)   # (B, C + 1)
        # rows in blocks of T per unit: batched (T x (C + 1)) matmuls per block instead of
        # gathering every row's (C + 1, d) keys
        T = self.block
        block_unit, slot = row_blocks(row_unit, B, T)                         # (K,), (R,)
        K = block_unit.shape[0]
        q = self.q(cand).reshape(-1, H, dh)                                   # (R, H, dh)
        q_blk = q.new_zeros(K * T, H, dh).index_copy(0, slot, q).reshape(K, T, H, dh)
        scores = torch.einsum("kthd,kchd->khtc", q_blk, k[block_unit]) / math.sqrt(dh)   # (K, H, T, C+1)
        scores = scores.masked_fill(~keys_ok[block_unit][:, None, None, :], float("-inf"))
        w = scores.softmax(-1)
        inter = torch.einsum("khtc,kchd->kthd", w, v[block_unit]).reshape(K * T, H * dh)[slot]
        inter = self.out(inter)                                               # (R, d)
        own_rows = state[row_unit[:, None], own]                              # (R, N, d + 1)
        own_h = self.own(own_rows.reshape(own_rows.shape[0], -1))             # (R, d)
        n_valid = valid.sum(1, keepdim=True)                                  # (B, 1)
        summary = (h * valid[..., None]).sum(1) / n_valid.clamp(min=1)        # (B, d)
        parts = [cand, inter, cand * inter, own_h, summary[row_unit], torch.log1p(n_valid.float())[row_unit]]
        if self.own_bilinear:   # (R, N): how well c matches its own cluster in each codebook
            parts.append(torch.einsum("rd,rnd->rn", self.own_q(cand), self.own_k(own_rows)) / math.sqrt(cand.shape[1]))
        if extra is not None:   # (R, extra_dim): e.g. the item memory read
            parts.append(extra)
        x = torch.cat(parts, dim=1)
        attn = w.permute(0, 2, 1, 3).reshape(K * T, H, C + 1)[slot]           # (R, H, C+1)
        return self.mlp(x).squeeze(-1), attn


# ---- the network ---------------------------------------------------------------------------
class DMQNNet(nn.Module):
    """Embeddings + MCQM + ICIM (HSTU) + CTAM. ``user_state`` / ``score`` split the
    candidate-independent part from the rest; ``forward`` = both."""

    def __init__(self, n_items: int, cfg: DMQNConfig) -> None:
        super().__init__()
        self.cfg = cfg
        E, d = cfg.item_dim, cfg.d_model
        self.item_emb = nn.Embedding(n_items, E)
        self.price_emb = nn.Embedding(PRICE_BUCKETS, E)
        self.qty_emb = nn.Embedding(QTY_BUCKETS, E)
        for emb in (self.item_emb, self.price_emb, self.qty_emb):
            nn.init.normal_(emb.weight, std=0.1)
        self.mcqm = MCQM(cfg)
        self.icim = HSTUStack(cfg.hstu(), cfg.hstu_blocks)
        self.cand_proj = nn.Linear(E, d)
        self.memory = ItemMemoryRead(d) if cfg.item_memory > 0 else None
        self.ctam = CTAM(cfg, self.memory.dim if self.memory is not None else 0)
        self.item_bias = nn.Embedding(n_items, 1) if cfg.item_bias else None
        if self.item_bias is not None:
            nn.init.zeros_(self.item_bias.weight)
        self.last_aux: dict[str, torch.Tensor] = {}

    def user_state(self, hist: Batch, tau: float = 1.0) -> torch.Tensor:
        """Packed histories (hist_item, hist_price, hist_qty, hist_ts (S,), hist_offsets
        (B + 1,), hist_request_ts (B,)) -> state (B, C + memory_rows, d + 1) float32: rows
        [0, C) in (codebook, codeword) order, the ICIM output of each cluster and, last
        channel, 1 = the cluster is non-empty (ICIM sees the clusters ordered by
        recency); rows [C, C + memory_rows) the packed item memory (``build_item_memory``
        / ``pack_memory``; none when ``item_memory`` = 0)."""
        item, ts = hist["hist_item"], hist["hist_ts"]
        inv, pair_item, pair_off = pair_events(item, hist["hist_offsets"], self.item_emb.num_embeddings)
        P, E = pair_item.shape[0], self.cfg.item_dim
        count = torch.zeros(P, dtype=torch.long).index_add(0, inv, torch.ones_like(inv))
        last = torch.zeros(P, dtype=torch.long).scatter_reduce(0, inv, ts, "amax", include_self=True)
        memory = None
        if self.cfg.item_memory > 0:
            first = torch.full((P,), torch.iinfo(torch.long).max).scatter_reduce(0, inv, ts, "amin", include_self=True)
            memory, distinct = build_item_memory(pair_item, pair_off, count, first, last, hist["hist_request_ts"],
                                                 self.cfg.item_memory, self.cfg.item_memory_order)
        key = self.item_emb(pair_item)                                           # (P, E)
        side = self.price_emb(hist["hist_price"]) + self.qty_emb(hist["hist_qty"])   # (S, E)
        e = key * count[:, None].to(key.dtype) + torch.zeros(P, E).index_add(0, inv, side)
        m = self.mcqm(key, e, count, last, pair_off, hist["hist_request_ts"], tau)
        order = recency_order(m["valid"], m["last_ts"])                          # (B, C)
        x = torch.gather(m["clusters"], 1, order[..., None].expand_as(m["clusters"]))
        valid = torch.gather(m["valid"], 1, order)
        h = self.icim(x, valid, torch.gather(m["last_ts"], 1, order))            # (B, C, d) recency order
        h = torch.zeros_like(h).scatter(1, order[..., None].expand_as(h), h)     # back to (n, w) order
        self.last_aux = {"logits": m["logits"], "hard": m["hard"], "valid": m["valid"], "count": count}
        state = torch.cat([h, m["valid"][..., None].to(h.dtype)], -1)
        if memory is None:
            return state
        self.last_aux["memory_distinct"] = distinct
        return torch.cat([state, pack_memory(memory, state.shape[-1]).to(state.dtype)], 1)

    def own_clusters(self, item: torch.Tensor) -> torch.Tensor:
        """(R,) item rows -> (R, N) state row (n * W + w) of the codeword w each codebook n
        assigns the item to (the eval assignment: argmax, no noise)."""
        idx = self.mcqm.logits(self.item_emb(item)).argmax(-1)                   # (R, N)
        return idx + torch.arange(self.cfg.codebooks)[None, :] * self.cfg.codewords

    def score(self, state: torch.Tensor, item: torch.Tensor, price: torch.Tensor,
              row_unit: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """state (B, C + memory_rows, d + 1), candidates (R,) + their unit (R,) ->
        (logit (R,), attn)."""
        C = self.cfg.clusters
        if state.shape[1] != self.cfg.state_rows:
            raise DMQNInputError(f"score: a state has {state.shape[1]} rows, this model's have "
                                 f"{self.cfg.state_rows} ({C} clusters + {self.cfg.memory_rows} memory rows)")
        cand = self.cand_proj(self.item_emb(item) + self.price_emb(price))     # (R, d)
        extra = wide = None
        if self.memory is not None:
            extra, wide = self.memory(unpack_memory(state[:, C:], self.cfg.item_memory), item, row_unit)
        logit, attn = self.ctam(state[:, :C], cand, self.own_clusters(item), row_unit, extra)
        if wide is not None:
            logit = logit + wide
        if self.item_bias is not None:
            logit = logit + self.item_bias(item)[:, 0]
        return logit, attn

    def forward(self, batch: Batch, tau: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
        state = self.user_state(batch, tau)
        logit, attn = self.score(state, batch["cand_item"], batch["cand_price"], batch["row_unit"])
        self.last_aux["attn"] = attn
        return logit, attn


# ---- diagnostics helpers ---------------------------------------------------------------------
def codebook_usage(hard: torch.Tensor, W: int, weights: torch.Tensor | None = None) -> dict[str, list[float]]:
    """hard (P, N) codeword of every (request, item) pair, weights (P,) its events (None
    = 1) -> per codebook: share of the W codewords used, perplexity exp(H(usage)) of
    the event distribution over codewords (W = uniform, 1 = collapse)."""
    N = hard.shape[1]
    used, ppl = [], []
    w = None if weights is None else weights.double()
    for n in range(N):
        c = torch.bincount(hard[:, n], weights=w, minlength=W).double()
        p = c / c.sum().clamp(min=1)
        used.append(float((c > 0).double().mean()))
        ppl.append(float(torch.exp(-(p * p.clamp(min=1e-12).log()).sum())))
    return {"usage": used, "perplexity": ppl}


def ctam_entropy(attn: torch.Tensor) -> float:
    """Mean normalised entropy of the CTAM attention rows (R, H, C + 1) over their
    non-zero (valid) slots: 1 = uniform, 0 = one cluster takes all. nan if no row has
    >= 2 slots."""
    n = (attn > 0).sum(-1).double()                                          # (R, H)
    ent = -(attn.double() * attn.double().clamp(min=1e-12).log()).sum(-1)
    keep = n >= 2
    if not bool(keep.any()):
        return math.nan
    return float((ent[keep] / n[keep].log()).mean())


def memory_cap_report(distinct: Any, M: int) -> dict[str, Any]:
    """What the item memory's cap M dropped: distinct (R,) known distinct items per request
    (before the cap) -> requests, requests over the cap, entries dropped, the largest and
    the 50/90/99th percentiles of distinct items."""
    d = np.asarray(distinct, dtype=np.int64)
    q = np.quantile(d, [0.5, 0.9, 0.99]) if len(d) else np.zeros(3)
    return {"M": int(M), "requests": int(len(d)), "requests_over_cap": int((d > M).sum()),
            "share_over_cap": float((d > M).mean()) if len(d) else 0.0,
            "entries_dropped": int(np.maximum(d - M, 0).sum()), "distinct_max": int(d.max(initial=0)),
            "distinct_p50": float(q[0]), "distinct_p90": float(q[1]), "distinct_p99": float(q[2])}


def history_memory_report(hist: Histories, M: int) -> dict[str, Any]:
    """``memory_cap_report`` of requests' histories (known items: row > 0), from the
    event log directly (no forward pass)."""
    rows, offsets = ranges_to_index(hist.start, hist.end)
    req = np.repeat(np.arange(hist.n), np.diff(offsets))
    item = hist.log.item[rows]
    keep = item > 0
    n_items = int(hist.log.item.max(initial=0)) + 1
    pairs = np.unique(req[keep] * n_items + item[keep])             # distinct (request, item)
    return memory_cap_report(np.bincount(pairs // n_items, minlength=hist.n), M)


# ---- the model ---------------------------------------------------------------------------------
def _events_of(inputs: Any) -> pd.DataFrame:
    ev = inputs if isinstance(inputs, pd.DataFrame) else getattr(inputs, "events", None)
    if ev is None:
        raise DMQNInputError("dmqn needs the events table: pass inputs=ModelInputs(events=...)")
    return ev


def purchase_batches(frame: pd.DataFrame, index: ItemIndex, events: pd.DataFrame | None, log: EventLog | None,
                     cap: int, with_labels: bool, who: str,
                     error: type[Exception]) -> tuple[Requests, Histories, RequestBatches]:
    """A purchase table -> its requests, their histories (``cap`` most recent events, 0 =
    whole) and a request provider with rows cand_item, cand_price (+ y) (R,): what DMQN and
    the sequence peers train and predict on. ``log``: the events already indexed (else built
    from ``events``). A missing column raises ``error`` naming it, before events are read."""
    missing = [c for c in (S.USER, S.DAY, S.ITEM) + ((S.LABEL,) if with_labels else ()) if c not in frame.columns]
    if missing:
        raise error(f"{who}: the purchase table lacks the column(s) {missing}")
    log = log if log is not None else EventLog.from_events(events, index)
    req = Requests.of(frame)
    hist = build_histories(log, req.users, req.days, cap)
    item = index.lookup(frame[S.ITEM].to_numpy())
    rows = {"cand_item": torch.from_numpy(item), "cand_price": torch.from_numpy(index.price[item])}
    if with_labels:
        rows["y"] = torch.from_numpy(frame[S.LABEL].to_numpy(dtype=np.float32))
    return req, hist, RequestBatches(hist, req.row_request, rows)


def request_mean_bce(logit: torch.Tensor, y: torch.Tensor, provider: RequestBatches, ctx: StepContext) -> torch.Tensor:
    """BCE summed over the batch's candidate rows, divided by the rows of the whole global
    batch (all shards), times the world size: DDP's gradient mean then equals the
    single-process row mean exactly."""
    rows = provider.rows(ctx.global_index) if ctx.global_index is not None else logit.shape[0]
    return F.binary_cross_entropy_with_logits(logit, y, reduction="sum") * ctx.world / max(rows, 1)


@torch.no_grad()
def predict_request_rows(net: nn.Module, prov: RequestBatches, eval_requests: int,
                         logits: Any) -> np.ndarray:
    """(n_rows,) float64 probabilities in the provider's original row order;
    ``logits(net, batch)`` -> (rows,) logits. The net's train/eval mode is restored."""
    was = net.training
    net.eval()
    out = np.zeros(int(sum(prov.row_count)), dtype=np.float64)
    for idx, b in prov.iter_batches(eval_requests):
        out[prov.row_positions(idx)] = torch.sigmoid(logits(net, b).double()).numpy()
    net.train(was)
    return out


class DMQNModel:
    """fit / predict / save / load + the caching API (``user_states`` / ``score``).

    Model directory: ``model.safetensors``, ``config.json`` ({"model": "dmqn", "config",
    "state"}), ``item_index.json``.
    """

    name: ClassVar[str] = "dmqn"
    display_name: ClassVar[str] = "DMQN"
    config_cls: ClassVar[type] = DMQNConfig
    output: ClassVar[str] = "probability"
    needs: ClassVar[frozenset[str]] = frozenset({"events"})
    warm_starts: ClassVar[bool] = True

    def __init__(self, config: DMQNConfig | None = None) -> None:
        self.config = config if config is not None else DMQNConfig()
        if self.config.task != "purchase":
            raise ValueError(f"dmqn predicts the purchase task, config.task is {self.config.task!r}")
        self.index: ItemIndex | None = None
        self.net: DMQNNet | None = None
        self.state: dict[str, Any] = {}
        self.train_result: TrainResult | None = None
        self.warm_start_report: dict[str, Any] | None = None
        self.last_memory_report: dict[str, Any] | None = None
        self._provider: RequestBatches | None = None

    # -- data --
    def _log(self, events: pd.DataFrame) -> EventLog:
        return EventLog.from_events(events, self.index)

    def provider(self, frame: pd.DataFrame, events: pd.DataFrame | None = None, log: EventLog | None = None,
                 with_labels: bool = True) -> tuple[Requests, Histories, RequestBatches]:
        """A task table -> its requests, their whole histories, and a request provider with
        rows cand_item, cand_price (+ y) (R,)."""
        if self.index is None:
            raise RuntimeError("dmqn: call fit() or load() first")
        return purchase_batches(frame, self.index, events, log, self.config.max_history, with_labels, "dmqn",
                                DMQNInputError)

    def _tau(self, epoch: int, epochs: int) -> float:
        c = self.config
        frac = epoch / max(epochs - 1, 1)
        return float(c.tau_start * (c.tau_end / c.tau_start) ** frac)

    def _epoch_hook(self, epoch: int, epochs: int) -> dict[str, Any]:
        return {"tau": self._tau(epoch, epochs)}

    # -- training --
    def _loss(self, net: nn.Module, batch: Batch, ctx: StepContext):
        logit, attn = net(batch, ctx.extra.get("tau", 1.0))
        inner = net.module if hasattr(net, "module") else net
        bce = request_mean_bce(logit, batch["y"], self._provider, ctx)
        logits = inner.last_aux["logits"]                                      # (S, N, W)
        parts: dict[str, float] = {"bce": float(bce.detach())}
        loss = bce
        if logits.shape[0] and self.config.diversity_weight > 0:
            p_bar = logits.softmax(-1).mean(0)                                  # (N, W)
            ent = -(p_bar * p_bar.clamp(min=1e-12).log()).sum(-1)
            div = (1 - ent / math.log(self.config.codewords)).mean()
            loss = loss + self.config.diversity_weight * div
            parts["diversity"] = float(div.detach())
        if logits.shape[0]:
            use = codebook_usage(inner.last_aux["hard"], self.config.codewords, inner.last_aux["count"])
            parts["perplexity_min"] = min(use["perplexity"])
            parts["usage_min"] = min(use["usage"])
        ent = ctam_entropy(attn.detach())
        if math.isfinite(ent):
            parts["ctam_entropy"] = ent
        parts["clusters_per_user"] = float(inner.last_aux["valid"].sum(1).double().mean())
        return loss, parts

    def _predict_provider(self, net: DMQNNet, prov: RequestBatches) -> np.ndarray:
        """(n_rows,) float64 probabilities in the provider's original row order."""
        return predict_request_rows(net, prov, self.config.eval_requests, lambda n, b: n(b)[0])

    def _val_logloss(self, net: DMQNNet, prov: RequestBatches) -> float:
        return float(logloss(prov.original_rows("y").numpy(), self._predict_provider(net, prov)))

    def fit(self, train_frame: pd.DataFrame, val_frame: pd.DataFrame, inputs: Any = None,
            out_dir: str | None = None, init_from: "DMQNModel | None" = None) -> TrainResult:
        """Fit the item index on the events up to the last training day, train with early
        stopping on val logloss (checkpoints in ``out_dir``; an existing run resumes).
        ``inputs.events``: the events table. ``init_from``: the champion DMQN (warm start:
        weights by name / shape, item-embedding rows by item id)."""
        cfg = self.config
        events = _events_of(inputs)
        if len(train_frame) == 0:
            raise DMQNInputError("dmqn: the training table is empty")
        set_seed(cfg.train.seed)
        if cfg.train.num_threads:
            torch.set_num_threads(cfg.train.num_threads)
        cutoff = pd.to_datetime(train_frame[S.DAY]).max().normalize() + pd.Timedelta(days=1)
        self.index = ItemIndex.fit(events, cutoff, cfg.min_count)
        log = self._log(events)
        if cfg.max_train_requests > 0:
            # requests are ordered by (day, user): keep the most recent N
            keep = Requests.of(train_frame)
            train_frame = train_frame[keep.row_request >= keep.n - cfg.max_train_requests].reset_index(drop=True)
        _, hist_tr, prov_tr = self.provider(train_frame, log=log)
        _, hist_va, prov_va = self.provider(val_frame, log=log)
        self._provider = prov_tr
        set_seed(cfg.train.seed)
        self.net = DMQNNet(self.index.size, cfg)
        if init_from is not None:
            self.warm_start_report = warm_start_dmqn(self.net, self.index, init_from.net, init_from.index)
        self.state = {"train_requests": prov_tr.n, "train_rows": int(sum(prov_tr.row_count)),
                      "history": history_length_summary(hist_tr), "cap": hist_tr.cap_report(),
                      "item_index_cutoff": self.index.cutoff, "items": self.index.size - 1}
        if cfg.item_memory > 0:
            self.state["item_memory"] = {s: history_memory_report(h, cfg.item_memory)
                                         for s, h in (("train", hist_tr), ("val", hist_va))}
        tmp = None
        if out_dir is None:
            tmp = tempfile.TemporaryDirectory(prefix="quantrec-dmqn-")
            out_dir = tmp.name
        try:
            self.train_result = train(self.net, self._loss, prov_tr, prov_va, cfg.train, out_dir,
                                      eval_fn=self._val_logloss, model_config=self._config_json(),
                                      epoch_hook=self._epoch_hook)
        finally:
            if tmp is not None:
                tmp.cleanup()
            self._provider = None
        self.net.eval()
        self.state["val_diagnostics"] = self._diagnostics(prov_va)
        return self.train_result

    # -- inference --
    def predict(self, frame: pd.DataFrame, inputs: Any = None) -> np.ndarray:
        """(n,) float64 purchase probabilities of the rows (user_id, day, item_id) of
        ``frame``; histories from ``inputs.events`` strictly before each row's day."""
        if self.net is None:
            raise RuntimeError("dmqn: call fit() or load() first")
        if len(frame) == 0:
            return np.zeros(0, dtype=np.float64)
        _, _, prov = self.provider(frame, _events_of(inputs), with_labels=False)
        return self._predict_provider(self.net, prov)

    @torch.no_grad()
    def user_states(self, events: pd.DataFrame, users: Any, as_of: Any,
                    progress: bool = False) -> tuple[np.ndarray, torch.Tensor]:
        """Cache refresh: states of ``users`` for requests on day ``as_of`` (histories =
        their events with day < as_of) -> (users (U,) str, states float32 (U, C +
        memory_rows, d + 1): clusters, then the packed item memory, see ``DMQNNet.user_state``).
        Candidate-independent; ``score`` finishes the prediction. With the item memory on,
        ``last_memory_report`` counts the users with more distinct items than it keeps."""
        if self.net is None:
            raise RuntimeError("dmqn: call fit() or load() first")
        users = np.asarray(pd.Series(users, dtype="object").astype(str))
        day = pd.Timestamp(as_of).normalize()
        hist = build_histories(self._log(events), users, np.full(len(users), day), self.config.max_history)
        self.net.eval()
        states, distinct = [], []
        bs = self.config.eval_requests
        for i in tqdm(range(0, len(users), bs), desc="dmqn user states", disable=not progress):
            b = {f"hist_{k}": v for k, v in hist.batch(np.arange(i, min(i + bs, len(users)))).items()}
            states.append(self.net.user_state(b).float())
            if "memory_distinct" in self.net.last_aux:
                distinct.append(self.net.last_aux["memory_distinct"])
        if distinct:
            self.last_memory_report = memory_cap_report(torch.cat(distinct), self.config.item_memory)
        C, D = self.config.state_rows, self.config.d_model + 1
        return users, (torch.cat(states) if states else torch.zeros(0, C, D))

    def user_state(self, history: pd.DataFrame, as_of: Any) -> torch.Tensor:
        """One user's events (any order; rows on/after ``as_of``'s day are ignored) ->
        state (C + memory_rows, d + 1) float32."""
        if history[S.USER].nunique() > 1:
            raise DMQNInputError("user_state: the history holds more than one user_id")
        user = str(history[S.USER].iloc[0]) if len(history) else ""
        return self.user_states(history, [user], as_of)[1][0]

    @torch.no_grad()
    def score(self, states: torch.Tensor, candidate_items: Any, state_index: Any = None) -> np.ndarray:
        """Purchase probabilities (R,) float64 of candidates from cached states.

        states: (C + memory_rows, d + 1) of one user, or (U, C + memory_rows, d + 1) with
        ``state_index`` (R,) naming each candidate's row in it (float16-stored states are
        accepted: the item memory's ids stay exact). candidate_items: (R,) item ids."""
        if self.net is None:
            raise RuntimeError("dmqn: call fit() or load() first")
        st = torch.as_tensor(states, dtype=torch.float32)
        if st.dim() == 2:
            st = st[None]
        item = self.index.lookup(np.asarray(candidate_items, dtype=object))
        if state_index is None:
            if st.shape[0] != 1:
                raise DMQNInputError("score: several states need state_index (one row per candidate)")
            unit = np.zeros(len(item), dtype=np.int64)
        else:
            unit = np.asarray(state_index, dtype=np.int64)
            if unit.shape != item.shape or (len(unit) and (unit.min() < 0 or unit.max() >= st.shape[0])):
                raise DMQNInputError("score: state_index must be (R,) rows of states")
        self.net.eval()
        logit, _ = self.net.score(st, torch.from_numpy(item), torch.from_numpy(self.index.price[item]),
                                  torch.from_numpy(unit))
        return torch.sigmoid(logit.double()).numpy()

    # -- diagnostics --
    @torch.no_grad()
    def _diagnostics(self, prov: RequestBatches) -> dict[str, Any]:
        net = self.net
        was = net.training
        net.eval()
        hards, counts, valid, attns = [], [], [], []
        for _, b in prov.iter_batches(self.config.eval_requests):
            _, attn = net(b)
            hards.append(net.last_aux["hard"])
            counts.append(net.last_aux["count"])
            valid.append(net.last_aux["valid"].sum(1))
            attns.append(ctam_entropy(attn))
        net.train(was)
        if not hards:
            return {}
        use = codebook_usage(torch.cat(hards), self.config.codewords, torch.cat(counts))
        ent = [a for a in attns if math.isfinite(a)]
        hstu_ent = [attention_mass_entropy(blk.last_attention, net.last_aux["valid"])
                    for blk in net.icim.blocks if blk.last_attention is not None]
        return {"codeword_usage": use["usage"], "codeword_perplexity": use["perplexity"],
                "codewords": self.config.codewords,
                "clusters_per_user_mean": float(torch.cat(valid).double().mean()),
                "ctam_attention_entropy": float(np.mean(ent)) if ent else math.nan,
                "hstu_attention_entropy_last_batch": [float(x) for x in hstu_ent]}

    def diagnostics(self, frame: pd.DataFrame | None = None, inputs: Any = None) -> dict[str, Any]:
        """Codeword usage / perplexity per codebook, clusters per user, attention entropy
        (CTAM softmax; HSTU weight mass) on ``frame`` (default: the val split seen in fit)."""
        if frame is None:
            return dict(self.state.get("val_diagnostics", {}))
        _, _, prov = self.provider(frame, _events_of(inputs))
        return self._diagnostics(prov)

    # -- persistence --
    def _config_json(self) -> dict[str, Any]:
        return {"model": self.name, "config": asdict(self.config), "state": self.state}

    def save(self, path: str) -> None:
        """model.safetensors + config.json + item_index.json under ``path`` (fsspec URL)."""
        if self.net is None:
            raise RuntimeError("dmqn: nothing to save, call fit() first")
        ck.save_state(ck.join(path, "model.safetensors"), self.net.state_dict())
        ck.save_json(ck.join(path, "config.json"), self._config_json())
        ck.save_json(ck.join(path, "item_index.json"), self.index.to_json())

    @classmethod
    def load(cls, path: str) -> "DMQNModel":
        meta = ck.load_json(ck.join(path, "config.json"))
        if meta.get("model") != cls.name:
            raise ValueError(f"{path} holds a {meta.get('model')!r} model, not {cls.name!r}")
        m = cls(build_dataclass(DMQNConfig, meta["config"], strict=False))
        m.state = meta.get("state", {})
        m.index = ItemIndex.from_json(ck.load_json(ck.join(path, "item_index.json")))
        m.net = DMQNNet(m.index.size, m.config)
        m.net.load_state_dict(ck.load_state(ck.join(path, "model.safetensors")))
        m.net.eval()
        return m


def warm_start_dmqn(net: DMQNNet, index: ItemIndex, champion: DMQNNet, champion_index: ItemIndex) -> dict[str, Any]:
    """Copy the champion's weights into ``net`` in place: item-embedding rows by item id
    (row 0, the unknown item, included; new items keep their fresh init), every other
    tensor when name and shape match. Returns what was copied and skipped."""
    new_sd, old_sd = net.state_dict(), champion.state_dict()
    report: dict[str, Any] = {"copied": [], "skipped": [], "item_rows": 0}
    with torch.no_grad():
        for name, t in new_sd.items():
            old = old_sd.get(name)
            if old is None:
                report["skipped"].append(name)
            elif name in ("item_emb.weight", "item_bias.weight"):
                if old.shape[1] != t.shape[1]:
                    report["skipped"].append(name)
                    continue
                shared = [i for i in index.ids if i in champion_index._lookup]
                dst = torch.tensor([0] + [index._lookup[i] for i in shared], dtype=torch.long)
                src = torch.tensor([0] + [champion_index._lookup[i] for i in shared], dtype=torch.long)
                t[dst] = old[src]
                report["item_rows"] = int(dst.numel())
            elif old.shape == t.shape:
                t.copy_(old)
                report["copied"].append(name)
            else:
                report["skipped"].append(name)
    net.load_state_dict(new_sd)
    return report
