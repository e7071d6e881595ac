"""Offline metrics for the GMV, LTV and purchase tasks, computed as the papers' code does
(XAUC as in RQ-Reg and GR, arXiv 2412.20211; Norm-Gini as in the LTV papers).

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
- Ranking metrics over groups (NDCG, top-k value, GAUC): rows are ranked inside their
  group by score descending and tied scores are in uniformly random order; every value
  is the exact expectation over that order (``expected_rank_weights``), never the
  accident of a sort. This matters: task tables list a group's positives first, so a
  stable sort would hand a constant score a perfect ranking.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

__all__ = [
    "XAUCResult", "mae", "xauc", "norm_gini", "spearman", "auc", "logloss",
    "regression_metrics", "classification_metrics", "REGRESSION_METRICS",
    "CLASSIFICATION_METRICS", "group_codes", "expected_rank_weights", "per_group_auc", "gauc",
    "per_group_ndcg", "ndcg",
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


# ---------------------------------------------------------------------------------
# ranking metrics over groups (requests / users): NDCG, top-k value, GAUC
# ---------------------------------------------------------------------------------
def group_codes(groups: Any, n: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Dense integer codes of group labels.

    groups: shape (n,), any labels numpy can sort (str, int, ...). Returns
    ``(codes, labels)``: codes int64 (n,) in 0..G-1, labels (G,) the distinct group
    labels in sorted order (code g <-> labels[g]). Raises ValueError on a shape
    mismatch with ``n`` or on labels that cannot be ordered (e.g. None mixed with str).
    """
    arr = np.asarray(groups)
    if arr.ndim != 1:
        raise ValueError(f"groups must be 1-D, got shape {arr.shape}")
    if n is not None and arr.size != n:
        raise ValueError(f"length mismatch: groups has {arr.size}, expected {n}")
    try:
        labels, codes = np.unique(arr, return_inverse=True)
    except TypeError as exc:
        raise ValueError(f"group labels cannot be ordered (missing values?): {exc}") from None
    return codes.reshape(-1).astype(np.int64), labels


def _codes_or_single(groups: Any, n: int) -> tuple[np.ndarray, int]:
    if groups is None:
        return np.zeros(n, dtype=np.int64), 1
    codes, labels = group_codes(groups, n)
    return codes, int(labels.size)


def _rank_weights_codes(score: np.ndarray, codes: np.ndarray, n_groups: int,
                        ks: tuple[int, ...] = (), dcg_k: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Core of ``expected_rank_weights`` on validated arrays and dense codes."""
    n = score.size
    ks = tuple(int(k) for k in ks)
    if n == 0:
        return np.zeros((0, len(ks))), np.zeros(0)
    order = np.lexsort((-score, codes))           # group, then score descending
    c, s = codes[order], score[order]
    sizes = np.bincount(codes, minlength=n_groups)
    starts = np.concatenate(([0], np.cumsum(sizes)[:-1]))
    pos = np.arange(n, dtype=np.int64) - starts[c]   # 0-based rank inside the group
    new_run = np.empty(n, dtype=bool)
    new_run[0] = True
    new_run[1:] = (c[1:] != c[:-1]) | (s[1:] != s[:-1])
    run_id = np.cumsum(new_run) - 1
    run_start = pos[new_run][run_id]                 # first rank of the row's tie run
    run_size = np.bincount(run_id)[run_id].astype(np.float64)
    # A tie run of size m starting at rank a occupies ranks a..a+m-1 in random order:
    # each row is in the top k with probability |[a, a+m) & [0, k)| / m ...
    top = np.empty((n, len(ks)))
    for t, k in enumerate(ks):
        top[order, t] = np.clip(k - run_start, 0, run_size) / run_size
    # ... and its expected discount is the mean discount over those ranks.
    disc = 1.0 / np.log2(np.arange(int(sizes.max()), dtype=np.float64) + 2.0)
    if dcg_k is not None:
        disc[int(dcg_k):] = 0.0
    cum = np.concatenate(([0.0], np.cumsum(disc)))
    end = run_start + run_size.astype(np.int64)
    discount = np.empty(n)
    discount[order] = (cum[end] - cum[run_start]) / run_size
    return top, discount


def expected_rank_weights(score: Any, groups: Any = None, ks: tuple[int, ...] = (),
                          dcg_k: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Tie-aware rank weights of every row when each group is ranked by score.

    Rows are ranked inside their group (``groups``: shape (n,) labels; None = one
    group) by ``score`` descending; tied scores are ordered uniformly at random and
    the weights are exact expectations over that order. score: shape (n,).
    Returns ``(in_top, discount)``:
      in_top: (n, len(ks)), probability that the row is among the first k of its group;
      discount: (n,), expected DCG discount 1 / log2(1 + rank) (rank 1-based), counting
        0 beyond rank ``dcg_k`` when given.
    A metric linear in the rows' gains (value captured in the top k, DCG) is then
    exactly ``sum(weight * gain)`` per group.
    """
    score = _as_1d("score", score)
    codes, n_groups = _codes_or_single(groups, score.size)
    if any(int(k) < 1 for k in ks) or (dcg_k is not None and dcg_k < 1):
        raise ValueError(f"k must be >= 1, got ks={ks}, dcg_k={dcg_k}")
    return _rank_weights_codes(score, codes, n_groups, tuple(ks), dcg_k)


def _group_auc_parts(y: np.ndarray, score: np.ndarray, codes: np.ndarray,
                     n_groups: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per group: (concordant positive-negative pairs with ties counting 0.5, positives,
    negatives), each shape (G,). AUC of group g = concordant / (pos * neg)."""
    npos = np.bincount(codes, weights=y, minlength=n_groups)
    nneg = np.bincount(codes, weights=1.0 - y, minlength=n_groups)
    if y.size == 0:
        return np.zeros(n_groups), npos, nneg
    order = np.lexsort((score, codes))             # group, then score ascending
    c, s, yy = codes[order], score[order], y[order]
    new_run = np.empty(c.size, dtype=bool)
    new_run[0] = True
    new_run[1:] = (c[1:] != c[:-1]) | (s[1:] != s[:-1])
    run_id = np.cumsum(new_run) - 1
    p_run = np.bincount(run_id, weights=yy)
    n_run = np.bincount(run_id, weights=1.0 - yy)
    run_code = c[new_run]
    neg_before_all = np.cumsum(n_run) - n_run          # negatives in earlier runs (any group)
    first = np.flatnonzero(np.r_[True, run_code[1:] != run_code[:-1]])
    base = np.repeat(neg_before_all[first], np.diff(np.r_[first, run_code.size]))
    neg_below = neg_before_all - base                  # ... of the same group only
    conc = np.bincount(run_code, weights=p_run * (neg_below + 0.5 * n_run), minlength=n_groups)
    return conc, npos, nneg


def per_group_auc(y01: Any, score: Any, groups: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """ROC AUC inside each group (tied scores count 0.5).

    y01: 0/1 labels, score: any real scores, groups: labels, each shape (n,).
    Returns ``(labels (G,), auc (G,), n (G,))`` in sorted label order; auc is ``nan``
    for a group with only one class; n = rows of the group.
    """
    y, s = _pair(y01, score, "y01", "score")
    if not np.all((y == 0) | (y == 1)):
        raise ValueError("y01 must contain only 0 and 1")
    codes, labels = group_codes(groups, y.size)
    conc, npos, nneg = _group_auc_parts(y, s, codes, labels.size)
    with np.errstate(invalid="ignore", divide="ignore"):
        values = np.where((npos > 0) & (nneg > 0), conc / (npos * nneg), math.nan)
    return labels, values, (npos + nneg).astype(np.int64)


def gauc(y01: Any, score: Any, groups: Any) -> float:
    """Group AUC (DIN, Zhou et al. 2018): sum_g n_g AUC_g / sum_g n_g over the groups
    that hold both classes, n_g = rows of group g. Shapes (n,). ``nan`` when no group
    holds both classes."""
    _, values, n = per_group_auc(y01, score, groups)
    ok = np.isfinite(values)
    if not ok.any():
        return math.nan
    return float(np.sum(values[ok] * n[ok]) / np.sum(n[ok]))


def per_group_ndcg(gain: Any, score: Any, groups: Any, k: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """NDCG (@k when given) of each group: E[DCG] / ideal DCG, DCG = sum gain / log2(1 + rank).

    gain: non-negative relevance (e.g. realised GMV: value-weighted NDCG), score: the
    ranking score, groups: labels, each shape (n,). Tied scores: expectation over a
    random order (equals sklearn's ``ndcg_score`` with ``ignore_ties=False``).
    Returns ``(labels (G,), ndcg (G,))``; ``nan`` for a group whose ideal DCG is 0.
    """
    g, s = _pair(gain, score, "gain", "score")
    if g.min() < 0:
        raise ValueError("gain must be non-negative")
    codes, labels = group_codes(groups, g.size)
    if k is not None and k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    _, disc = _rank_weights_codes(s, codes, labels.size, (), k)
    _, ideal_disc = _rank_weights_codes(g, codes, labels.size, (), k)
    dcg = np.bincount(codes, weights=disc * g, minlength=labels.size)
    idcg = np.bincount(codes, weights=ideal_disc * g, minlength=labels.size)
    with np.errstate(invalid="ignore", divide="ignore"):
        return labels, np.where(idcg > 0, dcg / idcg, math.nan)


def ndcg(gain: Any, score: Any, groups: Any = None, k: int | None = None) -> float:
    """Mean NDCG (@k) over the groups with a positive ideal DCG (see ``per_group_ndcg``);
    groups None = one list. ``nan`` when every gain is 0."""
    g = _as_1d("gain", gain)
    if groups is None:
        groups = np.zeros(g.size, dtype=np.int64)
    _, values = per_group_ndcg(g, score, groups, k)
    ok = np.isfinite(values)
    return float(values[ok].mean()) if ok.any() else math.nan
