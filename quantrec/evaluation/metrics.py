"""Offline metrics for the GMV, LTV and purchase tasks (definitions: REFERENCE.md "Metrics").

All functions take 1-D arrays of equal length n (a 2-D array with a single column is
accepted and flattened). Labels and predictions are in the task's own units (GMV in
currency units, purchase probability in [0, 1]).

Two kinds of failure are kept apart on purpose:
- invalid input (empty, NaN/inf, length mismatch, wrong shape, probabilities outside
  [0, 1], labels not 0/1) raises ``ValueError``;
- a metric that is undefined on valid input (XAUC with no pair of distinct labels,
  Spearman on a constant array, AUC with one class, Norm-Gini with zero total label)
  returns ``nan``, so slice tables of small or degenerate slices still fill in.

Tie conventions (decided here, stated in every report):
- XAUC and AUC: pairs tied in the label are excluded; a pair with distinct labels but
  tied predictions counts as half a concordant pair (the Mann-Whitney convention, so
  XAUC on 0/1 labels equals ROC AUC).
- Norm-Gini: items with tied predictions share their labels evenly, i.e. the gain
  curve is the expectation over a uniformly random order within each tie group. This
  makes the result independent of the sort algorithm (the papers' pandas sort leaves
  tie order unspecified).
- Spearman: average ranks for ties.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

__all__ = [
    "XAUCResult", "mae", "xauc", "norm_gini", "spearman", "auc", "logloss",
    "regression_metrics", "classification_metrics", "REGRESSION_METRICS",
    "CLASSIFICATION_METRICS",
]

# Column order of ``regression_metrics`` / ``classification_metrics`` (stable: other
# stages and the report tables rely on it).
REGRESSION_METRICS = ["MAE", "XAUC", "Norm-Gini", "Spearman",
                      "MAE(+)", "XAUC(+)", "Norm-Gini(+)", "Spearman(+)"]
CLASSIFICATION_METRICS = ["AUC", "logloss", "Brier", "mean p", "positive rate"]

_LOGLOSS_EPS = 1e-15


# ---------------------------------------------------------------------------------
# input validation
# ---------------------------------------------------------------------------------
def _as_1d(name: str, a: Any) -> np.ndarray:
    """``a`` as a finite float64 vector; raises ValueError with the argument's name."""
    arr = np.asarray(a, dtype=np.float64)
    if arr.ndim == 2 and arr.shape[1] == 1:
        arr = arr[:, 0]
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D (or one column), got shape {arr.shape}")
    if arr.size == 0:
        raise ValueError(f"{name} is empty")
    if not np.all(np.isfinite(arr)):
        bad = int(np.count_nonzero(~np.isfinite(arr)))
        raise ValueError(f"{name} has {bad} NaN/inf value(s)")
    return arr


def _pair(y: Any, pred: Any, y_name: str = "y", pred_name: str = "pred") -> tuple[np.ndarray, np.ndarray]:
    y_arr, p_arr = _as_1d(y_name, y), _as_1d(pred_name, pred)
    if y_arr.shape != p_arr.shape:
        raise ValueError(f"length mismatch: {y_name} has {y_arr.size}, {pred_name} has {p_arr.size}")
    return y_arr, p_arr


def _binary(y01: Any, p: Any) -> tuple[np.ndarray, np.ndarray]:
    y, prob = _pair(y01, p, "y01", "p")
    if not np.all((y == 0) | (y == 1)):
        raise ValueError("y01 must contain only 0 and 1")
    if prob.min() < 0 or prob.max() > 1:
        raise ValueError(f"p must be probabilities in [0, 1], got range [{prob.min()}, {prob.max()}]")
    return y, prob


def _tied_pairs(sorted_values: np.ndarray) -> int:
    """Number of unordered pairs with equal values, given the values sorted."""
    if sorted_values.size < 2:
        return 0
    boundaries = np.flatnonzero(sorted_values[1:] != sorted_values[:-1]) + 1
    sizes = np.diff(np.concatenate(([0], boundaries, [sorted_values.size]))).astype(np.int64)
    return int((sizes * (sizes - 1) // 2).sum())


# ---------------------------------------------------------------------------------
# MAE
# ---------------------------------------------------------------------------------
def mae(y: Any, pred: Any) -> float:
    """Mean absolute error mean(|pred - y|), in label units. y, pred: shape (n,)."""
    y, pred = _pair(y, pred)
    return float(np.mean(np.abs(pred - y)))


# ---------------------------------------------------------------------------------
# XAUC
# ---------------------------------------------------------------------------------
class XAUCResult(float):
    """An XAUC value that is a plain ``float`` for arithmetic, comparison and JSON,
    labelled with how it was obtained.

    Attributes:
        method: ``"exact"`` (all pairs counted) or ``"sampled"`` (estimate from
            ``n_pairs`` random pairs with distinct labels, fixed seed).
        n_pairs: pairs with distinct labels that entered the value.
        stderr: standard error of the estimate (0.0 when exact).
    """

    method: str
    n_pairs: int
    stderr: float

    def __new__(cls, value: float, method: str, n_pairs: int, stderr: float = 0.0) -> "XAUCResult":
        obj = super().__new__(cls, value)
        obj.method = method
        obj.n_pairs = int(n_pairs)
        obj.stderr = float(stderr)
        return obj

    @property
    def sampled(self) -> bool:
        return self.method == "sampled"

    def __reduce__(self) -> tuple:
        # float's default pickling would call __new__ with the value only.
        return (XAUCResult, (float(self), self.method, self.n_pairs, self.stderr))

    def __repr__(self) -> str:
        return (f"XAUCResult({float(self)!r}, method={self.method!r}, "
                f"n_pairs={self.n_pairs}, stderr={self.stderr:.3g})")


def _count_inversions(ranks: np.ndarray) -> int:
    """Number of pairs i < j with ranks[i] > ranks[j] (strict), for non-negative ints.

    O(n log K) for K distinct ranks, fully vectorised: a most-significant-bit-first
    radix pass. At bit b, elements that share all higher bits form a group (the array
    is kept stably sorted by those higher bits, so a group is a contiguous run in the
    original order); a pair inside a group whose earlier element has bit b = 1 and
    later element bit b = 0 is an inversion decided exactly at this bit. Each pair is
    counted at the one bit where its ranks first differ. After counting, a stable
    partition (zeros before ones within each group) prepares the next bit.
    """
    a = np.ascontiguousarray(ranks, dtype=np.int64)
    n = a.size
    if n < 2:
        return 0
    top = int(a.max()).bit_length()
    idx = np.arange(n, dtype=np.int64)
    total = 0
    for b in range(top - 1, -1, -1):
        prefix = a >> (b + 1)
        bit = (a >> b) & 1
        new_group = np.empty(n, dtype=bool)
        new_group[0] = True
        np.not_equal(prefix[1:], prefix[:-1], out=new_group[1:])
        start = np.maximum.accumulate(np.where(new_group, idx, 0))
        ones_incl = np.cumsum(bit)
        ones_excl = ones_incl - bit
        ones_before = ones_excl - ones_excl[start]      # earlier ones in the same group
        is_zero = bit == 0
        total += int(ones_before[is_zero].sum())
        if b == 0:
            break
        starts = idx[new_group]
        ends = np.append(starts[1:], n)
        zeros_in_group = (ends - starts) - (ones_incl[ends - 1] - ones_excl[starts])
        gid = np.cumsum(new_group) - 1
        zeros_before = (idx - start) - ones_before
        pos = np.where(is_zero, start + zeros_before, start + zeros_in_group[gid] + ones_before)
        nxt = np.empty_like(a)
        nxt[pos] = a
        a = nxt
    return total


def _xauc_exact(y: np.ndarray, pred: np.ndarray) -> XAUCResult:
    n = y.size
    # Order by label, then by prediction inside label ties: inside a label tie group
    # the predictions are then ascending, so every strict inversion of the prediction
    # sequence is a pair with distinct labels whose predictions disagree (discordant).
    order = np.lexsort((pred, y))
    ys, ps = y[order], pred[order]
    _, pred_rank = np.unique(ps, return_inverse=True)
    discordant = _count_inversions(pred_rank.reshape(-1))

    all_pairs = n * (n - 1) // 2
    label_tied = _tied_pairs(ys)
    distinct = all_pairs - label_tied
    if distinct == 0:
        return XAUCResult(math.nan, "exact", 0)
    pred_tied = _tied_pairs(np.sort(ps))
    # pairs tied in both: runs of equal (y, pred) in the lexsorted sequence
    same = np.empty(n, dtype=bool)
    same[0] = False
    same[1:] = (ys[1:] == ys[:-1]) & (ps[1:] == ps[:-1])
    run_start = np.flatnonzero(~same)
    sizes = np.diff(np.append(run_start, n)).astype(np.int64)
    both_tied = int((sizes * (sizes - 1) // 2).sum())
    half = pred_tied - both_tied                      # distinct labels, tied predictions
    concordant = distinct - discordant - half
    return XAUCResult((concordant + 0.5 * half) / distinct, "exact", distinct)


def _xauc_sampled(y: np.ndarray, pred: np.ndarray, sample_pairs: int, seed: int) -> XAUCResult:
    rng = np.random.default_rng(seed)
    n = y.size
    i = rng.integers(0, n, size=sample_pairs)
    j = rng.integers(0, n, size=sample_pairs)
    # Uniform ordered pairs restricted to distinct labels = uniform over unordered
    # pairs with distinct labels (i == j is dropped by the same filter).
    keep = y[i] != y[j]
    i, j = i[keep], j[keep]
    if i.size == 0:
        return XAUCResult(math.nan, "sampled", 0, math.nan)
    s = np.sign(y[i] - y[j]) * np.sign(pred[i] - pred[j])
    score = (s > 0) + 0.5 * (s == 0)
    stderr = float(score.std(ddof=1) / math.sqrt(score.size)) if score.size > 1 else math.nan
    return XAUCResult(float(score.mean()), "sampled", int(score.size), stderr)


def xauc(y: Any, pred: Any, max_pairs_exact: int | None = None,
         sample_pairs: int = 1_000_000, seed: int = 0) -> XAUCResult:
    """Share of concordant pairs among all pairs with distinct labels.

    Pairs tied in ``y`` are excluded; a pair with distinct labels and tied predictions
    counts 0.5. y, pred: shape (n,).

    Exact by default in O(n log n) (sort by label, count inversions of prediction
    ranks); about a second for n = 1e6. When ``max_pairs_exact`` is given and
    n (n - 1) / 2 exceeds it, returns instead an unbiased estimate from
    ``sample_pairs`` uniformly drawn pairs (generator seeded with ``seed``), with
    ``method == "sampled"`` and a standard error. Returns ``nan`` if no pair has
    distinct labels.
    """
    y, pred = _pair(y, pred)
    if sample_pairs < 1:
        raise ValueError(f"sample_pairs must be >= 1, got {sample_pairs}")
    n = y.size
    if max_pairs_exact is not None and n * (n - 1) // 2 > max_pairs_exact:
        return _xauc_sampled(y, pred, int(sample_pairs), seed)
    return _xauc_exact(y, pred)


# ---------------------------------------------------------------------------------
# Normalized Gini
# ---------------------------------------------------------------------------------
def _gini(y: np.ndarray, score: np.ndarray) -> float:
    """2 * mean(gain) - 1 with items ordered by ``score`` descending, ties sharing labels."""
    order = np.argsort(-score, kind="stable")
    ys, ss = y[order], score[order]
    new = np.empty(ys.size, dtype=bool)
    new[0] = True
    new[1:] = ss[1:] != ss[:-1]
    gid = np.cumsum(new) - 1
    # Expected label at each position under a random order within a tie group is the
    # group mean (cumsum is linear), so this is the gain averaged over tie-breaks.
    group_mean = np.bincount(gid, weights=ys) / np.bincount(gid)
    gain = np.cumsum(group_mean[gid]) / ys.sum()
    return float(2.0 * gain.mean() - 1.0)


def norm_gini(y: Any, pred: Any) -> float:
    """Normalized Gini: gini(order by pred) / gini(order by y), as in the LTV papers.

    gain = cumsum(y sorted by pred descending) / sum(y); gini = 2 mean(gain) - 1.
    y: non-negative labels, shape (n,); pred: shape (n,). 1.0 = perfect ranking.
    Prediction ties share their labels evenly (see module docstring). Returns
    ``nan`` when sum(y) == 0. Raises ValueError for negative labels (the gain curve
    is not a share of total value then).
    """
    y, pred = _pair(y, pred)
    if y.min() < 0:
        raise ValueError("norm_gini needs non-negative labels")
    if y.sum() <= 0:
        return math.nan
    return _gini(y, pred) / _gini(y, y)


# ---------------------------------------------------------------------------------
# Spearman
# ---------------------------------------------------------------------------------
def spearman(y: Any, pred: Any) -> float:
    """Spearman rank correlation (average ranks for ties). y, pred: shape (n,).
    Returns ``nan`` when n < 2 or either array is constant."""
    y, pred = _pair(y, pred)
    if y.size < 2 or np.all(y == y[0]) or np.all(pred == pred[0]):
        return math.nan
    from scipy.stats import spearmanr

    return float(spearmanr(y, pred).statistic)


# ---------------------------------------------------------------------------------
# purchase probability
# ---------------------------------------------------------------------------------
def auc(y01: Any, p: Any) -> float:
    """ROC AUC from average ranks (Mann-Whitney U / (n1 n0)); tied scores count 0.5.

    y01: 0/1 labels, shape (n,); p: scores, shape (n,) (any real scores are fine:
    only their order matters). Returns ``nan`` if only one class is present.
    """
    y, p = _pair(y01, p, "y01", "p")
    if not np.all((y == 0) | (y == 1)):
        raise ValueError("y01 must contain only 0 and 1")
    n_pos = int(y.sum())
    n_neg = y.size - n_pos
    if n_pos == 0 or n_neg == 0:
        return math.nan
    from scipy.stats import rankdata

    ranks = rankdata(p)  # average ranks, 1-based
    u = ranks[y == 1].sum() - n_pos * (n_pos + 1) / 2.0
    return float(u / (n_pos * n_neg))


def logloss(y01: Any, p: Any) -> float:
    """Mean binary cross-entropy in nats; p clipped to [1e-15, 1 - 1e-15] so a
    confident miss costs about 34.5 rather than inf. y01, p: shape (n,)."""
    y, prob = _binary(y01, p)
    prob = np.clip(prob, _LOGLOSS_EPS, 1.0 - _LOGLOSS_EPS)
    return float(-np.mean(y * np.log(prob) + (1.0 - y) * np.log1p(-prob)))


# ---------------------------------------------------------------------------------
# metric bundles
# ---------------------------------------------------------------------------------
def _regression_core(y: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    if y.size == 0:
        return {"MAE": math.nan, "XAUC": math.nan, "Norm-Gini": math.nan, "Spearman": math.nan}
    # Norm-Gini is undefined for negative labels; keep the other metrics of the row.
    gini = norm_gini(y, pred) if y.min() >= 0 else math.nan
    return {"MAE": mae(y, pred), "XAUC": float(_xauc_exact(y, pred)),
            "Norm-Gini": gini, "Spearman": spearman(y, pred)}


def regression_metrics(y: Any, pred: Any) -> dict[str, float]:
    """MAE, XAUC (exact), Norm-Gini, Spearman, and their "(+)" variants computed on the
    rows with y > 0 only. y, pred: shape (n,). Keys in ``REGRESSION_METRICS`` order;
    undefined values are ``nan`` (e.g. "(+)" variants when no label is positive)."""
    y, pred = _pair(y, pred)
    out = _regression_core(y, pred)
    pos = y > 0
    # GMV labels are usually all positive: then "(+)" is the same computation, skip it
    plus = dict(out) if pos.all() else _regression_core(y[pos], pred[pos])
    out.update({f"{k}(+)": v for k, v in plus.items()})
    return {k: out[k] for k in REGRESSION_METRICS}


def classification_metrics(y01: Any, p: Any) -> dict[str, float]:
    """AUC, logloss, Brier score, mean predicted probability and observed positive
    rate (their ratio is the overall calibration). y01: 0/1, p: probabilities, shape (n,).
    Keys in ``CLASSIFICATION_METRICS`` order."""
    y, prob = _binary(y01, p)
    return {"AUC": auc(y, prob), "logloss": logloss(y, prob),
            "Brier": float(np.mean((prob - y) ** 2)),
            "mean p": float(prob.mean()), "positive rate": float(y.mean())}
