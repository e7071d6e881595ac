"""The two quantizers RQ-Reg compares against (paper Tables 5/6), same encode/decode API.

- Plain K-means with the same total vocabulary: one layer of ``layers * size``
  centroids. It is an ``RQCodebook`` with ``layers=1`` (``fit_flat_kmeans``), so it
  shares encode/decode/save/load and the exact 1-D fit.
- GR's dynamic-quantile vocabulary (Ma et al. 2024, Algorithm 1) with greedy
  largest-first label encoding: variable-length token sequences with SOS/EOS/PAD.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from quantrec.codebook import cluster1d
from quantrec.codebook.rq import FORMAT, RQCodebook, validate_values
from quantrec.codebook.jsonio import JsonArtifact


def fit_flat_kmeans(values: Any, layers: int = 3, size: int = 48, finish_below: float = 1e-4,
                    seed: int = 0, allow_negative: bool = False,
                    dp_max_unique: int = 20_000) -> RQCodebook:
    """One-layer K-means with ``layers * size`` centroids (same vocabulary as RQ L x K)."""
    cb = RQCodebook.fit(values, layers=1, size=layers * size, first_layer="kmeans", last_layer="kmeans",
                        finish_below=finish_below, seed=seed, allow_negative=allow_negative,
                        dp_max_unique=dp_max_unique)
    cb.config.update({"method": "kmeans", "vocab_of": [int(layers), int(size)]})
    return cb


class DynamicQuantileCodebook(JsonArtifact):
    """GR vocabulary: token values from dynamic quantiles; labels as greedy token sums.

    Token ids: ``PAD = 0``, ``SOS = 1``, ``EOS = 2``; vocabulary token j (j = 0 is the
    largest value, values strictly decreasing) has id ``3 + j``. Special tokens
    decode to 0. ``encode(y)`` -> int64 (n, max_len + 2): SOS, the greedy tokens
    (non-increasing values, repeats allowed), EOS, then PAD. ``layers`` = ``max_len``
    (content positions); ``size`` = total token ids (3 + vocabulary).
    """

    PAD, SOS, EOS = 0, 1, 2
    N_SPECIAL = 3

    def __init__(self, vocab: np.ndarray, config: dict[str, Any]):
        v = np.asarray(vocab, dtype=np.float64)
        if v.ndim != 1 or len(v) == 0 or np.any(v <= 0) or np.any(np.diff(v) >= 0):
            raise ValueError("vocabulary must be a non-empty, strictly decreasing array of positive values")
        self.vocab = v
        self.config = dict(config)
        self.max_len = int(self.config["max_len"])
        self.stop_rel = float(self.config["stop_rel"])
        self._asc = v[::-1].copy()
        # Token value per id (specials first): decode is one gather + sum.
        self.token_values = np.concatenate([np.zeros(self.N_SPECIAL), v])

    @classmethod
    def fit(cls, values: Any, q_start: float = 0.9999, q_end: float = 0.9, decay: float = 0.99,
            eps: float = 1e-6, max_vocab: int = 4096, stop_rel: float = 1e-3,
            max_len: int = 64, **_ignored: Any) -> "DynamicQuantileCodebook":
        """Algorithm 1 of GR on labels y (n,) >= 0.

        Repeat: z = q-quantile (weighted, inverse CDF) of the current values; stop if
        z == 0; add z; subtract z from every current value >= z; q = max(q * decay,
        q_end); until max(current / original) <= eps or ``max_vocab`` steps (a cap we
        add: a long tail can need very many steps; recorded in config as
        ``hit_max_vocab``). Encoding stops once the remainder is <= stop_rel * y (GR's
        correctness bound 0.001 y) or no token fits, or after ``max_len`` tokens.
        """
        if not (0 < q_end <= q_start < 1) or not (0 < decay <= 1):
            raise ValueError(f"need 0 < q_end <= q_start < 1 and 0 < decay <= 1, got "
                             f"q_start={q_start}, q_end={q_end}, decay={decay}")
        y = validate_values(values)
        u, w = cluster1d.collapse(y)
        pos = u > 0
        orig, cur, wt = u[pos], u[pos].copy(), w[pos]
        if orig.size == 0:
            raise ValueError("dynamic-quantile vocabulary needs at least one positive label")
        vocab: list[float] = []
        q = q_start
        total = wt.sum()
        err = np.inf
        steps = 0
        while err > eps and steps < max_vocab:
            order = np.argsort(cur, kind="stable")
            cw = np.cumsum(wt[order])
            z = float(cur[order][min(np.searchsorted(cw, q * total, side="left"), len(cw) - 1)])
            if z <= 0:
                break
            vocab.append(z)
            hit = cur >= z
            cur[hit] -= z
            # Subtracting sums of vocabulary values leaves rounding residue (~1e-16 of the
            # label); it is zero, not a value to learn a token for.
            cur[cur <= orig * 1e-12] = 0.0
            err = float(np.max(cur / orig))
            q = max(q * decay, q_end)
            steps += 1
        config = {"format": FORMAT, "method": "dynamic_quantile", "q_start": q_start, "q_end": q_end,
                  "decay": decay, "eps": eps, "max_vocab": int(max_vocab), "stop_rel": stop_rel,
                  "max_len": int(max_len), "steps": steps, "final_max_rel_error": err,
                  "hit_max_vocab": bool(steps >= max_vocab and err > eps), "n_train": int(y.size)}
        book = cls(np.unique(vocab)[::-1], config)
        # Sequence length actually needed on the training labels (<= max_len).
        lengths = book.lengths(book.encode(u))
        book.max_len = int(max(1, lengths.max()))
        book.config["max_len"] = book.max_len
        book.config["max_len_cap"] = int(max_len)
        return book

    @property
    def layers(self) -> int:
        return self.max_len

    @property
    def size(self) -> int:
        return self.N_SPECIAL + len(self.vocab)

    @property
    def method(self) -> str:
        return "dynamic_quantile"

    def encode(self, values: Any) -> np.ndarray:
        """Token ids (n, max_len + 2) int64: SOS, greedy largest-first tokens, EOS, PAD."""
        y = validate_values(values)
        n = y.size
        out = np.full((n, self.max_len + 2), self.PAD, dtype=np.int64)
        out[:, 0] = self.SOS
        r = y.copy()
        active = np.ones(n, dtype=bool)
        length = np.zeros(n, dtype=np.int64)
        for t in range(self.max_len):
            k = np.searchsorted(self._asc, r, side="right") - 1   # largest value <= r
            active &= (k >= 0) & (r > self.stop_rel * y)
            if not active.any():
                break
            j = len(self.vocab) - 1 - k[active]                     # id order: largest first
            out[np.flatnonzero(active), 1 + t] = self.N_SPECIAL + j
            r[active] -= self.vocab[j]
            length += active
        out[np.arange(n), 1 + length] = self.EOS
        return out

    def lengths(self, codes: Any) -> np.ndarray:
        """Number of content tokens per row (n,)."""
        codes = np.asarray(codes)
        return np.sum(codes >= self.N_SPECIAL, axis=1)

    def decode_partial(self, codes: Any) -> np.ndarray:
        """Cumulative reconstructions (n, max_len) after 1..max_len content tokens."""
        codes = self._check_codes(codes)
        return np.cumsum(self.token_values[codes[:, 1:1 + self.max_len]], axis=1)

    def decode(self, codes: Any) -> np.ndarray:
        """Sum of the token values (n,) float64; specials count 0."""
        codes = self._check_codes(codes)
        return self.token_values[codes].sum(axis=1)

    def finished_mask(self, codes: Any) -> np.ndarray:
        """Bool (n, max_len + 2): True at EOS and PAD positions."""
        codes = self._check_codes(codes)
        return (codes == self.EOS) | (codes == self.PAD)

    def _check_codes(self, codes: Any) -> np.ndarray:
        codes = np.asarray(codes)
        if codes.ndim != 2 or not np.issubdtype(codes.dtype, np.integer):
            raise ValueError(f"codes must be an integer (n, T) array, got {codes.dtype} {codes.shape}")
        if codes.size and (codes.min() < 0 or codes.max() >= self.size):
            raise ValueError(f"token ids must lie in [0, {self.size}), got [{codes.min()}, {codes.max()}]")
        return codes

    def to_dict(self) -> dict[str, Any]:
        return {"format": FORMAT, "kind": "DynamicQuantileCodebook", "config": self.config,
                "vocab": self.vocab.tolist()}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "DynamicQuantileCodebook":
        if d.get("format") != FORMAT or d.get("kind") != "DynamicQuantileCodebook":
            raise ValueError(f"not a DynamicQuantileCodebook artifact (kind={d.get('kind')!r})")
        return cls(np.array(d["vocab"], dtype=np.float64), d["config"])



    def __repr__(self) -> str:
        return f"DynamicQuantileCodebook(vocab={len(self.vocab)}, max_len={self.max_len})"
