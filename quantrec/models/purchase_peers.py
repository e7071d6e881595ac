"""Peers of DMQN on the purchase task (issue 9), behind the model protocol
(``quantrec.models.base``): same fit / predict / save / load, same tables, same inputs.

Sequence peers (``needs = {"events"}``; histories = the user's purchase lines with day <
the request day, ``quantrec.data.sequences``; batches = ``RequestBatches``; trained by the
generic trainer with early stopping on val logloss, like DMQN)::

    event vector  x_s = emb(item_s) + emb(price paid_s) + emb(quantity_s)      (E,)
    candidate     c   = emb(item_c) + emb(price level_c)                       (E,)
    interest      u   = one of
        mean_pool  mean of x_s over the WHOLE history
        din        DIN activation unit a(c, k) = w^T ReLU(W [c, k, c - k, c * k]) over the
                   LAST ``max_recent`` events (k_s = x_s + emb(age bucket_s)), softmax over
                   them plus a learned "nothing" slot, u = sum_s a_s k_s
        sim        SIM-style two stages: (1) search: the WHOLE history's (request, item)
                   pairs scored by the learned item-embedding inner product
                   <emb(item_c), emb(item_p)>, top ``top_k`` kept; (2) the same DIN
                   attention over the kept pairs (k_p = mean event vector of the pair +
                   emb(count bucket) + emb(age bucket))
    logit  = MLP([c, u, c * u, log1p(history length)]) + per-item bias         (R,)

Tabular peers (no events):

    popularity / ui_lines   ``ColumnRateModel``: the training label rate per log2 bucket of
                            one leakage-free column of the purchase table (``i_lines``: the
                            item's earlier lines; ``ui_lines``: the user's earlier lines of
                            the same item), Laplace-smoothed: a calibrated one-feature model
    lgbm_purchase           LightGBM binary classifier on the purchase table's GMV history
                            features (``schema.NUMERIC_FEATURES``) through the shared
                            ``FeaturePipeline`` + chosen categoricals, early stopping on val
                            logloss. (``quantrec.models.lgbm`` is a value regressor: its
                            feature spec refuses the purchase task.)
"""

from __future__ import annotations

import json
import math
import tempfile
from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar

import fsspec
import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from quantrec.data import schema as S
from quantrec.data.sequences import (PRICE_BUCKETS, QTY_BUCKETS, EventLog, ItemIndex, Requests,
                                     history_length_summary)
from quantrec.dataclass_io import ConfigError, build_dataclass
from quantrec.evaluation.metrics import logloss
from quantrec.models.dmqn import (AGE_BUCKETS, COUNT_BUCKETS, age_bucket, pair_events, predict_request_rows,
                                  purchase_batches, request_mean_bce, row_blocks)
from quantrec.models.features import FeaturePipeline, FeatureSpec
from quantrec.training import checkpoints as ck
from quantrec.training.batching import Batch, RequestBatches
from quantrec.training.trainer import StepContext, TrainConfig, TrainResult, set_seed, train

POOLINGS = ("mean", "din", "sim")


class PeerInputError(ValueError):
    """Missing / malformed inputs of a purchase peer (names the table, column or key)."""


# ---- config --------------------------------------------------------------------------------
@dataclass
class SeqPeerConfig:
    """Hyper-parameters of the sequence peers (mean_pool, din, sim).

    min_count: item index threshold (as DMQN); item_dim: embedding width E;
    att_hidden: DIN activation-unit width; mlp_hidden: output MLP width;
    max_recent: events DIN attends to (the most recent; SIM and mean_pool read the
    whole history); top_k: pairs SIM's search keeps; max_train_requests: 0 = all
    training requests, > 0 the most recent N (as DMQN). ``train.batch_size`` counts
    REQUESTS; the defaults are DMQN small()'s optimiser settings.
    """

    task: str = "purchase"
    min_count: int = 2
    item_dim: int = 32
    att_hidden: int = 32
    mlp_hidden: int = 64
    max_recent: int = 50
    top_k: int = 20
    max_train_requests: int = 0
    item_bias: bool = True
    dropout: float = 0.1
    eval_requests: int = 64
    train: TrainConfig = field(default_factory=lambda: TrainConfig(
        epochs=6, batch_size=32, lr=1e-2, weight_decay=0.01, patience=2))

    def __post_init__(self) -> None:
        for key, low in (("min_count", 1), ("item_dim", 1), ("att_hidden", 1), ("mlp_hidden", 2),
                         ("max_recent", 1), ("top_k", 1), ("max_train_requests", 0), ("eval_requests", 1)):
            if getattr(self, key) < low:
                raise ConfigError(key, f"must be at least {low}, got {getattr(self, key)}")
        if self.task != "purchase":
            raise ConfigError("task", f"the purchase peers predict the purchase task, got {self.task!r}")

    @classmethod
    def small(cls, **kw: Any) -> "SeqPeerConfig":
        """DMQN small()'s width (32) and optimiser (AdamW 1e-2, 32 requests, 6 epochs)."""
        return cls(**kw)

    @classmethod
    def paper(cls, **kw: Any) -> "SeqPeerConfig":
        """DIN / SIM paper-like widths (embeddings 64, MLP 200-80), 20 epochs."""
        kw.setdefault("train", TrainConfig(epochs=20, batch_size=32, lr=5e-3, patience=3))
        base = dict(item_dim=64, att_hidden=64, mlp_hidden=200)
        base.update(kw)
        return cls(**base)


# ---- network pieces ------------------------------------------------------------------------
class DINAttention(nn.Module):
    """DIN's activation unit, softmax-normalised with a learned "nothing" slot.

    forward(q (R, E), keys (R, L, E), mask (R, L) bool) -> (interest (R, E),
    weights (R, L + 1) with the nothing slot at index 0)."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        # W [q, k, q - k, q * k] = (Wq + Wd) q + (Wk - Wd) k + Wp (q * k): three maps
        self.wq, self.wk, self.wp = nn.Linear(dim, hidden), nn.Linear(dim, hidden, bias=False), \
            nn.Linear(dim, hidden, bias=False)
        self.out = nn.Linear(hidden, 1)
        self.null = nn.Parameter(torch.zeros(1))

    def forward(self, q: torch.Tensor, keys: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = F.relu(self.wq(q)[:, None, :] + self.wk(keys) + self.wp(q[:, None, :] * keys))   # (R, L, h)
        s = self.out(h).squeeze(-1).masked_fill(~mask, float("-inf"))                          # (R, L)
        s = torch.cat([self.null.expand(s.shape[0], 1), s], 1)                                 # (R, L + 1)
        w = s.softmax(-1)
        return torch.einsum("rl,rle->re", w[:, 1:], keys), w


def pad_packed(values: torch.Tensor, offsets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Packed (S, ...) values + offsets (B + 1,) -> (padded (B, Lmax, ...) zeros-filled,
    mask (B, Lmax) bool). Row b holds values[offsets[b]:offsets[b + 1]] in order."""
    lens = offsets[1:] - offsets[:-1]
    B, L = lens.shape[0], int(lens.max()) if lens.numel() else 0
    req = torch.repeat_interleave(torch.arange(B), lens)
    pos = torch.arange(values.shape[0]) - offsets[:-1][req]
    out = values.new_zeros((B, max(L, 1)) + tuple(values.shape[1:]))
    mask = torch.zeros(B, max(L, 1), dtype=torch.bool)
    out[req, pos] = values
    mask[req, pos] = True
    return out, mask


@torch.no_grad()
def topk_search(q: torch.Tensor, keys: torch.Tensor, mask: torch.Tensor, row_unit: torch.Tensor,
                k: int, block: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
    """SIM's search stage: for every row r, the ``k`` entries of its unit's WHOLE padded
    list with the highest inner product <q_r, key>.

    q (R, E), keys (B, L, E), mask (B, L), row_unit (R,) -> (index (R, k') into L,
    found (R, k') bool: False where the unit has fewer than k' entries), k' = min(k, L).
    Rows are processed in blocks of ``block`` rows per unit (one (T x L) matmul per block):
    memory O(R / block + B) x block x L, never R x L x E."""
    R = q.shape[0]
    B, L, _ = keys.shape
    kk = min(k, L)
    block_unit, slot = row_blocks(row_unit, B, block)                      # (K,), (R,)
    K = block_unit.shape[0]
    q_blk = q.new_zeros(K * block, q.shape[1]).index_copy(0, slot, q).reshape(K, block, -1)
    s = torch.einsum("kte,kle->ktl", q_blk, keys[block_unit])              # (K, T, L)
    s = s.masked_fill(~mask[block_unit][:, None, :], float("-inf"))
    top = s.topk(kk, dim=-1)
    idx = top.indices.reshape(K * block, kk)[slot]                          # (R, k')
    found = torch.isfinite(top.values.reshape(K * block, kk)[slot])
    return idx, found


class SeqPeerNet(nn.Module):
    """Embeddings + one interest extractor (``pooling``) + MLP. forward(batch from
    ``RequestBatches``: hist_item/price/qty/ts (S,), hist_offsets (B + 1,),
    hist_request_ts (B,), cand_item / cand_price / row_unit (R,)) -> logit (R,)."""

    def __init__(self, n_items: int, cfg: SeqPeerConfig, pooling: str) -> None:
        super().__init__()
        if pooling not in POOLINGS:
            raise ValueError(f"unknown pooling {pooling!r}; known: {POOLINGS}")
        self.cfg, self.pooling = cfg, pooling
        E = cfg.item_dim
        self.item_emb = nn.Embedding(n_items, E)
        self.price_emb = nn.Embedding(PRICE_BUCKETS, E)
        self.qty_emb = nn.Embedding(QTY_BUCKETS, E)
        self.age_emb = nn.Embedding(AGE_BUCKETS, E)
        self.count_emb = nn.Embedding(COUNT_BUCKETS, E)
        for emb in (self.item_emb, self.price_emb, self.qty_emb, self.age_emb, self.count_emb):
            nn.init.normal_(emb.weight, std=0.1)
        self.att = DINAttention(E, cfg.att_hidden) if pooling != "mean" else None
        self.mlp = nn.Sequential(nn.Linear(3 * E + 1, cfg.mlp_hidden), nn.ReLU(), nn.Dropout(cfg.dropout),
                                 nn.Linear(cfg.mlp_hidden, cfg.mlp_hidden // 2), nn.ReLU(),
                                 nn.Linear(cfg.mlp_hidden // 2, 1))
        self.item_bias = nn.Embedding(n_items, 1) if cfg.item_bias else None
        if self.item_bias is not None:
            nn.init.zeros_(self.item_bias.weight)
        self.last_attention: torch.Tensor | None = None

    def _events(self, b: Batch) -> torch.Tensor:
        return self.item_emb(b["hist_item"]) + self.price_emb(b["hist_price"]) + self.qty_emb(b["hist_qty"])

    def interest(self, b: Batch, cand: torch.Tensor) -> torch.Tensor:
        """(R, E) user interest of every candidate row."""
        off, ru = b["hist_offsets"], b["row_unit"]
        B = off.shape[0] - 1
        lens = off[1:] - off[:-1]
        req = torch.repeat_interleave(torch.arange(B), lens)
        x = self._events(b)                                                    # (S, E)
        if self.pooling == "mean":
            s = x.new_zeros(B, x.shape[1]).index_add(0, req, x)
            return (s / lens.clamp(min=1)[:, None].to(x.dtype))[ru]
        ts = b["hist_ts"]
        if self.pooling == "din":
            # the last max_recent events of each request (histories come oldest first)
            keep = torch.arange(x.shape[0]) >= (off[1:] - self.cfg.max_recent).clamp(min=0)[req]
            sel_off = torch.cat([off.new_zeros(1), torch.bincount(req[keep], minlength=B).cumsum(0)])
            age = age_bucket(b["hist_request_ts"][req[keep]] - ts[keep])
            keys, mask = pad_packed(x[keep] + self.age_emb(age), sel_off)     # (B, L, E)
            u, w = self.att(cand, keys[ru], mask[ru])
            self.last_attention = w.detach()
            return u
        # sim: (request, item) pairs of the WHOLE history, searched by item embedding
        inv, pair_item, pair_off = pair_events(b["hist_item"], off, self.item_emb.num_embeddings)
        P = pair_item.shape[0]
        count = torch.zeros(P, dtype=torch.long).index_add(0, inv, torch.ones_like(inv))
        last = torch.zeros(P, dtype=torch.long).scatter_reduce(0, inv, ts, "amax", include_self=True)
        pair_req = torch.repeat_interleave(torch.arange(B), pair_off[1:] - pair_off[:-1])
        mean_x = x.new_zeros(P, x.shape[1]).index_add(0, inv, x) / count[:, None].clamp(min=1).to(x.dtype)
        cnt_b = (torch.log2(count.clamp(min=1).double()).floor().long() + 1).clamp(max=COUNT_BUCKETS - 1)
        kv = mean_x + self.count_emb(cnt_b) + self.age_emb(age_bucket(b["hist_request_ts"][pair_req] - last))
        search_keys, mask = pad_packed(self.item_emb(pair_item), pair_off)    # (B, L, E)
        kv_pad, _ = pad_packed(kv, pair_off)
        idx, found = topk_search(self.item_emb(b["cand_item"]), search_keys, mask, ru, self.cfg.top_k)
        keys = kv_pad[ru[:, None], idx]                                        # (R, k, E)
        u, w = self.att(cand, keys, found)
        self.last_attention = w.detach()
        return u

    def forward(self, b: Batch) -> torch.Tensor:
        off, ru = b["hist_offsets"], b["row_unit"]
        cand = self.item_emb(b["cand_item"]) + self.price_emb(b["cand_price"])   # (R, E)
        u = self.interest(b, cand)
        n = torch.log1p((off[1:] - off[:-1]).to(cand.dtype))[ru][:, None]       # (R, 1)
        logit = self.mlp(torch.cat([cand, u, cand * u, n], 1)).squeeze(-1)
        if self.item_bias is not None:
            logit = logit + self.item_bias(b["cand_item"])[:, 0]
        return logit


def _events_of(inputs: Any, name: str) -> pd.DataFrame:
    ev = inputs if isinstance(inputs, pd.DataFrame) else getattr(inputs, "events", None)
    if ev is None:
        raise PeerInputError(f"{name} needs the events table: pass inputs=ModelInputs(events=...)")
    return ev


class SeqPeerModel:
    """fit / predict / save / load of a sequence peer; subclasses set ``name``,
    ``display_name`` and ``pooling``. Directory: model.safetensors, config.json
    ({"model", "config", "state"}), item_index.json."""

    name: ClassVar[str] = ""
    display_name: ClassVar[str] = ""
    pooling: ClassVar[str] = ""
    config_cls: ClassVar[type] = SeqPeerConfig
    output: ClassVar[str] = "probability"
    needs: ClassVar[frozenset[str]] = frozenset({"events"})
    warm_starts: ClassVar[bool] = False

    def __init__(self, config: SeqPeerConfig | None = None) -> None:
        self.config = config if config is not None else SeqPeerConfig()
        self.index: ItemIndex | None = None
        self.net: SeqPeerNet | None = None
        self.state: dict[str, Any] = {}
        self.train_result: TrainResult | None = None
        self._provider: RequestBatches | None = None

    @property
    def history_cap(self) -> int:
        """Events per request the provider packs: DIN reads only the most recent
        ``max_recent`` (0 = whole history for mean_pool and SIM)."""
        return self.config.max_recent if self.pooling == "din" else 0

    def provider(self, frame: pd.DataFrame, events: pd.DataFrame | None = None, log: EventLog | None = None,
                 with_labels: bool = True) -> tuple[Requests, Any, RequestBatches]:
        """A purchase table -> (requests, histories, RequestBatches with rows cand_item,
        cand_price (+ y))."""
        if self.index is None:
            raise RuntimeError(f"{self.name}: call fit() or load() first")
        return purchase_batches(frame, self.index, events, log, self.history_cap, with_labels, self.name,
                                PeerInputError)

    def _loss(self, net: nn.Module, batch: Batch, ctx: StepContext):
        bce = request_mean_bce(net(batch), batch["y"], self._provider, ctx)
        return bce, {"bce": float(bce.detach())}

    def _predict_provider(self, net: nn.Module, prov: RequestBatches) -> np.ndarray:
        return predict_request_rows(net, prov, self.config.eval_requests, lambda n, b: n(b))

    def _val_logloss(self, net: nn.Module, prov: RequestBatches) -> float:
        return float(logloss(prov.original_rows("y").numpy(), self._predict_provider(net, prov)))

    def fit(self, train_frame: pd.DataFrame, val_frame: pd.DataFrame, inputs: Any = None,
            out_dir: str | None = None, init_from: Any = None) -> TrainResult:
        """Item index on the events before the day after the last training day, then
        training with early stopping on val logloss (checkpoints in ``out_dir``; an
        existing run there resumes)."""
        if init_from is not None:
            raise ValueError(f"{self.name} does not warm start (warm_starts = False)")
        cfg = self.config
        events = _events_of(inputs, self.name)
        if len(train_frame) == 0:
            raise PeerInputError(f"{self.name}: the training table is empty")
        set_seed(cfg.train.seed)
        if cfg.train.num_threads:
            torch.set_num_threads(cfg.train.num_threads)
        cutoff = pd.to_datetime(train_frame[S.DAY]).max().normalize() + pd.Timedelta(days=1)
        self.index = ItemIndex.fit(events, cutoff, cfg.min_count)
        log = EventLog.from_events(events, self.index)
        if cfg.max_train_requests > 0:   # requests are ordered by (day, user): keep the most recent N
            keep = Requests.of(train_frame)
            train_frame = train_frame[keep.row_request >= keep.n - cfg.max_train_requests].reset_index(drop=True)
        _, hist_tr, prov_tr = self.provider(train_frame, log=log)
        _, _, prov_va = self.provider(val_frame, log=log)
        self._provider = prov_tr
        set_seed(cfg.train.seed)
        self.net = SeqPeerNet(self.index.size, cfg, self.pooling)
        self.state = {"train_requests": prov_tr.n, "train_rows": int(sum(prov_tr.row_count)),
                      "history": history_length_summary(hist_tr), "cap": hist_tr.cap_report(),
                      "item_index_cutoff": self.index.cutoff, "items": self.index.size - 1}
        tmp = None
        if out_dir is None:
            tmp = tempfile.TemporaryDirectory(prefix=f"quantrec-{self.name}-")
            out_dir = tmp.name
        try:
            self.train_result = train(self.net, self._loss, prov_tr, prov_va, cfg.train, out_dir,
                                      eval_fn=self._val_logloss, model_config=self._config_json())
        finally:
            if tmp is not None:
                tmp.cleanup()
            self._provider = None
        self.net.eval()
        return self.train_result

    def predict(self, frame: pd.DataFrame, inputs: Any = None) -> np.ndarray:
        """(n,) float64 purchase probabilities of the rows (user_id, day, item_id)."""
        if self.net is None:
            raise RuntimeError(f"{self.name}: call fit() or load() first")
        if len(frame) == 0:
            return np.zeros(0, dtype=np.float64)
        _, _, prov = self.provider(frame, _events_of(inputs, self.name), with_labels=False)
        return self._predict_provider(self.net, prov)

    def _config_json(self) -> dict[str, Any]:
        return {"model": self.name, "config": asdict(self.config), "state": self.state}

    def save(self, path: str) -> None:
        """model.safetensors + config.json + item_index.json under ``path`` (fsspec URL)."""
        if self.net is None:
            raise RuntimeError(f"{self.name}: nothing to save, call fit() first")
        ck.save_state(ck.join(path, "model.safetensors"), self.net.state_dict())
        ck.save_json(ck.join(path, "config.json"), self._config_json())
        ck.save_json(ck.join(path, "item_index.json"), self.index.to_json())

    @classmethod
    def load(cls, path: str) -> "SeqPeerModel":
        meta = ck.load_json(ck.join(path, "config.json"))
        if meta.get("model") != cls.name:
            raise ValueError(f"{path} holds a {meta.get('model')!r} model, not {cls.name!r}")
        m = cls(build_dataclass(cls.config_cls, meta["config"], strict=False))
        m.state = meta.get("state", {})
        m.index = ItemIndex.from_json(ck.load_json(ck.join(path, "item_index.json")))
        m.net = SeqPeerNet(m.index.size, m.config, cls.pooling)
        m.net.load_state_dict(ck.load_state(ck.join(path, "model.safetensors")))
        m.net.eval()
        return m


class MeanPoolModel(SeqPeerModel):
    """Mean of the whole history's event vectors (the "sum/avg pooling" baseline of DIN)."""

    name = "mean_pool"
    display_name = "mean-pooled history"
    pooling = "mean"


class DINModel(SeqPeerModel):
    """DIN-style target attention over the most recent ``max_recent`` events."""

    name = "din"
    display_name = "DIN (last 50)"
    pooling = "din"


class SIMModel(SeqPeerModel):
    """SIM-style: top-k of the WHOLE history by learned item-embedding similarity to the
    candidate, then DIN attention over them."""

    name = "sim"
    display_name = "SIM (top-k of all)"
    pooling = "sim"


# ---- tabular peers ------------------------------------------------------------------------
@dataclass
class ColumnRateConfig:
    """column: a non-negative count column of the purchase table; buckets: 0, then
    1 + floor(log2(x)) capped at ``max_bucket``; prior: Laplace pseudo-rows at the
    global training rate."""

    task: str = "purchase"
    column: str = "ui_lines"
    max_bucket: int = 16
    prior: float = 10.0

    def __post_init__(self) -> None:
        if self.task != "purchase":
            raise ConfigError("task", f"the purchase peers predict the purchase task, got {self.task!r}")
        if self.max_bucket < 1 or self.prior < 0:
            raise ConfigError("max_bucket", "max_bucket >= 1 and prior >= 0")

    @classmethod
    def small(cls, **kw: Any) -> "ColumnRateConfig":
        return cls(**kw)

    @classmethod
    def paper(cls, **kw: Any) -> "ColumnRateConfig":
        return cls(**kw)


@dataclass
class PopularityConfig(ColumnRateConfig):
    """ColumnRateConfig on the item's earlier lines (``i_lines``)."""

    column: str = "i_lines"


class ColumnRateModel:
    """Calibrated single-column model: the training label rate per log2 bucket of
    ``config.column`` (NaN = 0). predict -> (n,) float64 probabilities. Saved as
    config.json (the rates are its state)."""

    name: ClassVar[str] = "column_rate"
    display_name: ClassVar[str] = "column rate"
    config_cls: ClassVar[type] = ColumnRateConfig
    output: ClassVar[str] = "probability"
    needs: ClassVar[frozenset[str]] = frozenset()
    warm_starts: ClassVar[bool] = False

    def __init__(self, config: ColumnRateConfig | None = None) -> None:
        self.config = config if config is not None else self.config_cls()
        self.rates: np.ndarray | None = None

    def _bucket(self, frame: pd.DataFrame) -> np.ndarray:
        col = self.config.column
        if col not in frame.columns:
            raise PeerInputError(f"{self.name}: the purchase table lacks the column {col!r}")
        x = np.nan_to_num(frame[col].to_numpy(dtype=np.float64), nan=0.0).clip(min=0)
        b = np.where(x >= 1, 1 + np.floor(np.log2(np.maximum(x, 1))), 0)
        return np.minimum(b, self.config.max_bucket).astype(np.int64)

    def fit(self, train: pd.DataFrame, val: pd.DataFrame, inputs: Any = None, out_dir: str | None = None,
            init_from: Any = None) -> TrainResult:
        """Rates from ``train``; ``val`` gives the reported logloss (nothing to stop early)."""
        if len(train) == 0:
            raise PeerInputError(f"{self.name}: the training table is empty")
        y = train[S.LABEL].to_numpy(dtype=np.float64)
        b = self._bucket(train)
        n = np.bincount(b, minlength=self.config.max_bucket + 1).astype(np.float64)
        pos = np.bincount(b, weights=y, minlength=self.config.max_bucket + 1)
        base = float(y.mean())
        self.rates = (pos + self.config.prior * base) / (n + self.config.prior)
        metric = float(logloss(val[S.LABEL].to_numpy(), self.predict(val))) if len(val) else math.nan
        return TrainResult(best_checkpoint="", last_checkpoint="", history=[], best_epoch=0,
                           best_metric=metric, epochs_run=1)

    def predict(self, frame: pd.DataFrame, inputs: Any = None) -> np.ndarray:
        if self.rates is None:
            raise RuntimeError(f"{self.name}: call fit() or load() first")
        return self.rates[self._bucket(frame)].astype(np.float64)

    def save(self, path: str) -> None:
        ck.save_json(ck.join(path, "config.json"), {"model": self.name, "config": asdict(self.config),
                                                    "state": {"rates": self.rates.tolist()}})

    @classmethod
    def load(cls, path: str) -> "ColumnRateModel":
        meta = ck.load_json(ck.join(path, "config.json"))
        if meta.get("model") != cls.name:
            raise ValueError(f"{path} holds a {meta.get('model')!r} model, not {cls.name!r}")
        m = cls(build_dataclass(cls.config_cls, meta["config"], strict=False))
        m.rates = np.asarray(meta["state"]["rates"], dtype=np.float64)
        return m


class PopularityModel(ColumnRateModel):
    """Item popularity: label rate per log2 bucket of ``i_lines`` (the item's earlier lines)."""

    name = "popularity"
    display_name = "popularity (i_lines)"
    config_cls = PopularityConfig


class RepeatCountModel(ColumnRateModel):
    """Repeat heuristic: label rate per log2 bucket of ``ui_lines`` (the user's earlier
    lines of the same item)."""

    name = "ui_lines"
    display_name = "repeat count (ui_lines)"


@dataclass
class LGBMPurchaseConfig:
    """LightGBM binary classifier on the purchase table's history features.

    categorical: which of user_id / item_id / country enter as LightGBM categoricals
    (default country only: ids overfit, cf. quantrec.models.lgbm)."""

    task: str = "purchase"
    min_count: int = 2
    categorical: tuple[str, ...] = ("country",)
    num_boost_round: int = 1000
    early_stopping_rounds: int = 50
    params: dict[str, Any] = field(default_factory=lambda: {
        "learning_rate": 0.05, "num_leaves": 63, "min_data_in_leaf": 50, "feature_fraction": 0.9,
        "bagging_fraction": 0.8, "bagging_freq": 1, "num_threads": 2, "verbose": -1})
    seed: int = 0

    def __post_init__(self) -> None:
        if self.task != "purchase":
            raise ConfigError("task", f"lgbm_purchase predicts the purchase task, got {self.task!r}")
        bad = [c for c in self.categorical if c not in S.CATEGORICAL_FEATURES]
        if bad:
            raise ConfigError("categorical", f"{bad} are not categorical features {S.CATEGORICAL_FEATURES}")

    @classmethod
    def small(cls, **kw: Any) -> "LGBMPurchaseConfig":
        return cls(num_boost_round=300, **kw)

    @classmethod
    def paper(cls, **kw: Any) -> "LGBMPurchaseConfig":
        return cls(**kw)


class LGBMPurchaseModel:
    """LightGBM ``binary`` on FeaturePipeline(schema.NUMERIC_FEATURES + categorical);
    early stopping on val binary logloss. Saved as model.txt + config.json + features.json."""

    name: ClassVar[str] = "lgbm_purchase"
    display_name: ClassVar[str] = "LightGBM (purchase)"
    config_cls: ClassVar[type] = LGBMPurchaseConfig
    output: ClassVar[str] = "probability"
    needs: ClassVar[frozenset[str]] = frozenset()
    warm_starts: ClassVar[bool] = False

    def __init__(self, config: LGBMPurchaseConfig | None = None) -> None:
        self.config = config if config is not None else LGBMPurchaseConfig()
        self.features: FeaturePipeline | None = None
        self.booster: Any = None
        self.state: dict[str, Any] = {}

    def _matrix(self, frame: pd.DataFrame) -> pd.DataFrame:
        num, cat = self.features.transform(frame)
        df = pd.DataFrame(num, columns=self.features.numeric_names)
        for j, c in enumerate(self.features.spec.categorical):
            df[f"cat_{c}"] = cat[:, j].astype(np.int32)
        return df

    def fit(self, train: pd.DataFrame, val: pd.DataFrame, inputs: Any = None, out_dir: str | None = None,
            init_from: Any = None) -> TrainResult:
        import lightgbm as lgb
        if init_from is not None:
            raise ValueError("lgbm_purchase does not warm start (warm_starts = False)")
        cfg = self.config
        spec = FeatureSpec.gmv(mode="index", min_count=cfg.min_count)
        spec.categorical = [c for c in spec.categorical if c in cfg.categorical]
        self.features = FeaturePipeline(spec).fit(train)
        cats = [f"cat_{c}" for c in spec.categorical]
        dtr = lgb.Dataset(self._matrix(train), train[S.LABEL].to_numpy(dtype=np.float64),
                          categorical_feature=cats, free_raw_data=True)
        dva = lgb.Dataset(self._matrix(val), val[S.LABEL].to_numpy(dtype=np.float64),
                          categorical_feature=cats, reference=dtr)
        params = {**cfg.params, "objective": "binary", "metric": "binary_logloss", "seed": cfg.seed,
                  "deterministic": True}
        self.booster = lgb.train(params, dtr, num_boost_round=cfg.num_boost_round, valid_sets=[dva],
                                 callbacks=[lgb.early_stopping(cfg.early_stopping_rounds, verbose=False)])
        self.state["best_iteration"] = int(self.booster.best_iteration)
        return TrainResult(best_checkpoint="", last_checkpoint="", history=[],
                           best_epoch=int(self.booster.best_iteration),
                           best_metric=float(self.booster.best_score["valid_0"]["binary_logloss"]),
                           epochs_run=int(self.booster.current_iteration()),
                           stopped_early=self.booster.current_iteration() < cfg.num_boost_round)

    def predict(self, frame: pd.DataFrame, inputs: Any = None) -> np.ndarray:
        if self.booster is None:
            raise RuntimeError("lgbm_purchase: call fit() or load() first")
        return np.asarray(self.booster.predict(self._matrix(frame), num_iteration=self.booster.best_iteration or None),
                          dtype=np.float64)

    def save(self, path: str) -> None:
        with fsspec.open(ck.join(path, "model.txt"), "w") as f:
            f.write(self.booster.model_to_string(num_iteration=self.booster.best_iteration or None))
        ck.save_json(ck.join(path, "config.json"),
                     {"model": self.name, "config": json.loads(json.dumps(asdict(self.config))), "state": self.state})
        self.features.save(ck.join(path, "features.json"))

    @classmethod
    def load(cls, path: str) -> "LGBMPurchaseModel":
        import lightgbm as lgb
        meta = ck.load_json(ck.join(path, "config.json"))
        if meta.get("model") != cls.name:
            raise ValueError(f"{path} holds a {meta.get('model')!r} model, not {cls.name!r}")
        cfg = dict(meta["config"])
        cfg["categorical"] = tuple(cfg.get("categorical", ("country",)))
        m = cls(build_dataclass(LGBMPurchaseConfig, cfg, strict=False))
        m.state = meta.get("state", {})
        m.features = FeaturePipeline.load(ck.join(path, "features.json"))
        with fsspec.open(ck.join(path, "model.txt"), "r") as f:
            m.booster = lgb.Booster(model_str=f.read())
        return m


PEER_CLASSES: tuple[type, ...] = (PopularityModel, RepeatCountModel, LGBMPurchaseModel, MeanPoolModel,
                                  DINModel, SIMModel)
