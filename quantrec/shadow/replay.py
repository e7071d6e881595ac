"""Replayed requests and the per-arm ranking metrics, as bootstrap-ready estimators.

A request is one user-day of the replay table (``quantrec.data.tasks.build_replay_requests``):
its candidate list is the items the user bought that day (label 1, realised GMV) plus
sampled items of that day's catalogue (label 0, GMV 0). Every arm ranks the SAME
candidates by score = p(purchase) x expected GMV. Metrics (all on the arm's score
unless said otherwise; ties in the score are ordered at random and every value is the
exact expectation over that order, see ``quantrec.evaluation.metrics``):

- GMV@k: realised GMV of the bought items ranked in the top k, mean per request
  (currency units; on a slice, over the requests holding slice rows). Requests with at
  most k candidates capture everything at k.
- NDCG: value-weighted NDCG over the full list (gain = realised GMV), mean per request.
- AUC: ROC AUC of the score for "bought", over all candidate rows of the slice.
- GAUC: AUC inside each request, weighted by the request's candidate count, over the
  requests holding both classes (DIN's GAUC with the request as the group).
- MAE, XAUC: of the arm's (calibrated) expected GMV against the realised GMV on the
  bought lines.

Slices (rows): "all"; "long_tail" = candidates whose item price ``i_price_last`` (the
item's median unit price on its last selling day before the request, known for
unbought candidates too, unlike the realised unit price) is at or above its
``long_tail_quantile`` (default 0.9: the top-10% prices) over the replay rows (items
with no price history are not long tail);
"new_users" / "returning_users" from ``is_new_user``; "hist_<lo>_<hi>" / "hist_<lo>+"
buckets of ``hist_len`` (the user's purchase lines before the day) for returning users.
Ranking always uses the full candidate list: on a row slice, GMV@k and NDCG count only
the slice's value (e.g. long-tail GMV captured in the top k of the whole list), while
AUC / GAUC / MAE / XAUC use the slice's rows.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Iterator

import numpy as np
import pandas as pd

from quantrec.data import schema as S
from quantrec.evaluation.metrics import _group_auc_parts, _rank_weights_codes, xauc
from quantrec.shadow.bootstrap import PairEstimator, RatioEstimator

__all__ = ["REQUIRED_COLUMNS", "LONG_TAIL_PRICE", "metric_names", "metric_direction", "slice_names",
           "history_slice_names", "ReplayIndex", "build_index", "PairSet", "pair_set", "arm_estimators",
           "validate_history_edges"]

HIST_LEN = "hist_len"
LONG_TAIL_PRICE = "i_price_last"
REQUIRED_COLUMNS = (S.REQUEST_ID, S.USER, S.LABEL, S.VALUE, HIST_LEN, S.IS_NEW_USER, LONG_TAIL_PRICE)
BASE_SLICES = ("all", "long_tail", "new_users", "returning_users")

# metric name -> direction in which it is better (the default direction of a rule)
_FIXED_METRICS = {"NDCG": "higher", "AUC": "higher", "GAUC": "higher", "MAE": "lower", "XAUC": "higher"}


def metric_names(ks: tuple[int, ...]) -> list[str]:
    """Metric columns of an arm, in report order: GMV@k for each k, NDCG, AUC, GAUC, MAE, XAUC."""
    return [f"GMV@{int(k)}" for k in ks] + list(_FIXED_METRICS)


def metric_direction(metric: str) -> str:
    """"higher" or "lower": the direction in which ``metric`` is better."""
    if metric.startswith("GMV@"):
        return "higher"
    try:
        return _FIXED_METRICS[metric]
    except KeyError:
        raise ValueError(f"unknown metric {metric!r}") from None


def validate_history_edges(edges: tuple[int, ...]) -> tuple[int, ...]:
    edges = tuple(int(e) for e in edges)
    if any(e < 2 for e in edges) or any(b <= a for a, b in zip(edges, edges[1:])):
        raise ValueError(f"history_edges must be strictly increasing integers >= 2, got {list(edges)}")
    return edges


def history_slice_names(edges: tuple[int, ...]) -> list[str]:
    """Bucket names of returning users' history length: edges (20, 100) ->
    "hist_1_19", "hist_20_99", "hist_100+"."""
    edges = validate_history_edges(edges)
    bounds = (1,) + edges
    names = [f"hist_{lo}_{hi - 1}" for lo, hi in zip(bounds[:-1], bounds[1:])]
    return names + [f"hist_{bounds[-1]}+"]


def slice_names(history_edges: tuple[int, ...]) -> list[str]:
    """Every slice a replay defines, in report order."""
    return list(BASE_SLICES) + history_slice_names(history_edges)


@dataclass
class ReplayIndex:
    """The replay table reduced to arrays, with its slices.

    Row arrays have shape (n,): ``request`` (request code 0..R-1), ``user`` (user code
    0..U-1), ``label`` (0/1 float), ``gmv`` (realised GMV, currency units). ``request_user``
    (R,) is the user of each request; ``users`` (U,) the user ids. ``masks``: slice name
    -> bool (n,), every name of ``slice_names`` present (possibly all False).
    """

    request: np.ndarray
    user: np.ndarray
    label: np.ndarray
    gmv: np.ndarray
    request_user: np.ndarray
    users: np.ndarray
    masks: dict[str, np.ndarray]
    long_tail_threshold: float
    _ideal: dict[str, np.ndarray] = field(default_factory=dict, repr=False)

    @property
    def n_rows(self) -> int:
        return int(self.label.size)

    @property
    def n_requests(self) -> int:
        return int(self.request_user.size)

    @property
    def n_users(self) -> int:
        return int(self.users.size)

    def ideal_dcg(self, slice_name: str) -> np.ndarray:
        """(R,) ideal DCG of each request for the slice's gains (arm-independent, cached)."""
        if slice_name not in self._ideal:
            gain = self.gmv * self.masks[slice_name]
            _, disc = _rank_weights_codes(gain, self.request, self.n_requests)
            self._ideal[slice_name] = np.bincount(self.request, weights=disc * gain, minlength=self.n_requests)
        return self._ideal[slice_name]

    def slice_summary(self) -> pd.DataFrame:
        """Per slice: rows, requests, users, bought lines, realised GMV (sum)."""
        rows = []
        for name, m in self.masks.items():
            bought = m & (self.label == 1)
            rows.append({"slice": name, "rows": int(m.sum()),
                         "requests": int(np.unique(self.request[m]).size),
                         "users": int(np.unique(self.user[m]).size),
                         "bought lines": int(bought.sum()), "realised GMV": float(self.gmv[bought].sum())})
        return pd.DataFrame(rows, columns=["slice", "rows", "requests", "users", "bought lines", "realised GMV"])


def _column(requests: pd.DataFrame, name: str) -> pd.Series:
    if name not in requests.columns:
        raise ValueError(f"replay requests lack the column {name!r} (need {list(REQUIRED_COLUMNS)})")
    return requests[name]


def build_index(requests: pd.DataFrame, long_tail_quantile: float = 0.9,
                history_edges: tuple[int, ...] = (20, 100)) -> ReplayIndex:
    """Validate the replay table and reduce it to a ``ReplayIndex`` (row order kept).

    Raises ValueError naming the column for: a missing column, no rows, labels not 0/1,
    negative / non-finite GMV, missing user or request ids, a request spanning several
    users, missing ``is_new_user`` / ``hist_len``.
    """
    for c in REQUIRED_COLUMNS:
        _column(requests, c)
    if len(requests) == 0:
        raise ValueError("replay requests are empty: nothing to compare")
    if not 0.0 < long_tail_quantile < 1.0:
        raise ValueError(f"long_tail_quantile must be in (0, 1), got {long_tail_quantile}")
    for c in (S.REQUEST_ID, S.USER):
        if requests[c].isna().any():
            raise ValueError(f"replay column {c!r} has {int(requests[c].isna().sum())} missing value(s)")
    label = pd.to_numeric(requests[S.LABEL], errors="coerce").to_numpy(np.float64)
    if not np.all((label == 0) | (label == 1)):
        raise ValueError(f"replay column {S.LABEL!r} must hold only 0 and 1")
    gmv = pd.to_numeric(requests[S.VALUE], errors="coerce").to_numpy(np.float64)
    if not np.all(np.isfinite(gmv)) or gmv.min() < 0:
        raise ValueError(f"replay column {S.VALUE!r} must be finite and >= 0 (realised GMV)")
    req_codes, _ = pd.factorize(requests[S.REQUEST_ID], sort=True)
    user_codes, users = pd.factorize(requests[S.USER], sort=True)
    req_codes = req_codes.astype(np.int64)
    user_codes = user_codes.astype(np.int64)
    n_req = int(req_codes.max()) + 1
    request_user = np.full(n_req, -1, dtype=np.int64)
    request_user[req_codes] = user_codes
    if np.any(request_user[req_codes] != user_codes):
        raise ValueError(f"a {S.REQUEST_ID!r} spans several {S.USER!r} values: a request is one user-day")
    new = requests[S.IS_NEW_USER]
    hist = pd.to_numeric(requests[HIST_LEN], errors="coerce")
    if new.isna().any() or hist.isna().any():
        raise ValueError(f"replay columns {S.IS_NEW_USER!r} / {HIST_LEN!r} have missing values")
    new = new.to_numpy(bool)
    hist = hist.to_numpy(np.float64)
    price = pd.to_numeric(requests[LONG_TAIL_PRICE], errors="coerce").to_numpy(np.float64)
    known = np.isfinite(price)
    threshold = float(np.quantile(price[known], long_tail_quantile)) if known.any() else math.nan
    masks = {"all": np.ones(label.size, dtype=bool),
             "long_tail": known & (price >= threshold) if known.any() else np.zeros(label.size, dtype=bool),
             "new_users": new, "returning_users": ~new}
    edges = validate_history_edges(history_edges)
    bounds = (1,) + edges + (math.inf,)
    for name, lo, hi in zip(history_slice_names(edges), bounds[:-1], bounds[1:]):
        masks[name] = ~new & (hist >= lo) & (hist < hi)
    return ReplayIndex(request=req_codes, user=user_codes, label=label, gmv=gmv,
                       request_user=request_user, users=np.asarray(users), masks=masks,
                       long_tail_threshold=threshold)


# ---------------------------------------------------------------------------------
# pair metrics
# ---------------------------------------------------------------------------------
@dataclass
class PairSet:
    """Pairs (i, j) of bought rows of one slice with gmv[i] > gmv[j] (the XAUC pairs).

    exact: every such pair is listed; otherwise a uniform seeded sample of them
    (shared by all arms, so deltas stay paired). ``lines`` = bought rows in the slice.
    Arm-independent parts of the estimator, computed once: ``users`` (U_s,) the users
    holding a pair, ``key`` (P,) = local(u_i) * U_s + local(u_j), ``D`` (U_s, U_s) pair counts.
    """

    i: np.ndarray
    j: np.ndarray
    exact: bool
    lines: int
    users: np.ndarray
    key: np.ndarray
    D: np.ndarray


def _local_codes(codes: np.ndarray, n_total: int) -> tuple[np.ndarray, np.ndarray]:
    """(present (U_s,), local code of each entry (same shape as codes)) for codes in
    0..n_total-1; O(n) (a lookup table instead of a sort)."""
    present = np.flatnonzero(np.bincount(codes.reshape(-1), minlength=n_total))
    lut = np.full(n_total, -1, dtype=np.int64)
    lut[present] = np.arange(present.size)
    return present, lut[codes]


def pair_set(index: ReplayIndex, slice_name: str, max_pairs: int, seed: int) -> PairSet:
    """The XAUC pairs of a slice: all pairs with distinct GMV when the slice has at most
    ``max_pairs`` line pairs, else ``max_pairs`` uniformly drawn line pairs (those with
    tied GMV dropped)."""
    rows = np.flatnonzero(index.masks[slice_name] & (index.label == 1))
    n = rows.size
    if n * (n - 1) // 2 <= max_pairs:
        a, b = np.triu_indices(n, k=1)
        exact = True
    else:
        rng = np.random.default_rng(seed)
        a, b = rng.integers(0, n, size=(2, max_pairs))
        exact = False
    i, j = rows[a], rows[b]
    y_i, y_j = index.gmv[i], index.gmv[j]
    keep = y_i != y_j
    i, j, swap = i[keep], j[keep], (y_i < y_j)[keep]
    i, j = np.where(swap, j, i), np.where(swap, i, j)
    users, local = _local_codes(np.stack([index.user[i], index.user[j]]), index.n_users)
    n_u = users.size
    key = local[0] * n_u + local[1]
    D = np.bincount(key, minlength=n_u * n_u).astype(np.float64).reshape(n_u, n_u)
    return PairSet(i=i, j=j, exact=exact, lines=int(n), users=users, key=key, D=D)


AUC_BLOCK = 32  # rows per block of the AUC pair-matrix computation (see _auc_pair_matrix)


def _auc_pair_matrix(user: np.ndarray, y: np.ndarray, score: np.ndarray, n_users: int,
                     block: int = AUC_BLOCK) -> np.ndarray:
    """C (n_users, n_users): C[u, v] = sum over positives i of user u and negatives j of
    user v of [s_i > s_j] + 0.5 [s_i == s_j]. user: local codes, y: 0/1, score: (n,).

    Sorted by score (negatives first inside a tie), C = C_order - 0.5 C_tie, where
    C_order counts (positive, negative) pairs with the negative earlier in that order
    and C_tie the tied pairs (all of which C_order counts fully). C_order splits the
    order into blocks of ``block`` rows: pairs across blocks are one sparse matrix
    product (positives per user and block) x (negatives per user in earlier blocks), pairs
    inside a block are enumerated (n * block / 2 of them). C_tie is a sparse product
    over tie groups. Cost O(n log n + U^2 n / block + n block), no Python loop over users.
    """
    from scipy import sparse

    n = y.size
    C = np.zeros((n_users, n_users))
    if n == 0:
        return C
    order = np.lexsort((y, score))
    s, pos, u = score[order], y[order] == 1, user[order]
    neg = ~pos
    n_blocks = -(-n // block)
    blk = np.arange(n) // block
    nb = np.bincount(blk[neg] * n_users + u[neg], minlength=n_blocks * n_users).reshape(n_blocks, n_users)
    nb_before = (np.cumsum(nb, axis=0) - nb).astype(np.float64)      # (blocks, U): negatives before
    # positives per (user, block) are sparse (at most one entry per positive row)
    pa = sparse.csr_matrix((np.ones(int(pos.sum())), (u[pos], blk[pos])), shape=(n_users, n_blocks))
    C += pa @ nb_before
    pad = n_blocks * block - n
    ub = np.concatenate([u, np.zeros(pad, dtype=u.dtype)]).reshape(n_blocks, block)
    pb = np.concatenate([pos, np.zeros(pad, dtype=bool)]).reshape(n_blocks, block)
    qb = np.concatenate([neg, np.zeros(pad, dtype=bool)]).reshape(n_blocks, block)
    later, earlier = np.tril_indices(block, k=-1)
    inside = pb[:, later] & qb[:, earlier]
    key = ub[:, later][inside] * n_users + ub[:, earlier][inside]
    C += np.bincount(key, minlength=n_users * n_users).reshape(n_users, n_users)
    new_group = np.r_[True, s[1:] != s[:-1]]
    if not new_group.all():
        gid = np.cumsum(new_group) - 1
        shape = (n_users, int(gid[-1]) + 1)
        P = sparse.csr_matrix((np.ones(int(pos.sum())), (u[pos], gid[pos])), shape=shape)
        N = sparse.csr_matrix((np.ones(int(neg.sum())), (u[neg], gid[neg])), shape=shape)
        C -= 0.5 * (P @ N.T).toarray()
    return C


def _auc_estimator(index: ReplayIndex, score: np.ndarray, mask: np.ndarray) -> PairEstimator:
    """AUC of ``score`` on the slice rows as a user-pair U-statistic (``_auc_pair_matrix``);
    the denominator is (positives of u) x (negatives of v)."""
    rows = np.flatnonzero(mask)
    users, local = _local_codes(index.user[rows], index.n_users)
    y = index.label[rows]
    C = _auc_pair_matrix(local, y, score[rows], users.size)
    npos = np.bincount(local, weights=y, minlength=users.size)
    nneg = np.bincount(local, minlength=users.size) - npos
    return PairEstimator(users=users, C=C, row_count=npos, col_count=nneg)


def _xauc_estimator(index: ReplayIndex, value: np.ndarray, pairs: PairSet, mask: np.ndarray) -> PairEstimator:
    """XAUC of ``value`` against realised GMV on the pairs of a slice's bought lines:
    C[u, v] = sum over pairs (line of u with the higher GMV, line of v) of
    [value agrees] + 0.5 [value tied]."""
    n_u = pairs.users.size
    vi, vj = value[pairs.i], value[pairs.j]
    k = (vi > vj) + 0.5 * (vi == vj)
    C = np.bincount(pairs.key, weights=k, minlength=n_u * n_u).reshape(n_u, n_u)
    exact_point = None
    if not pairs.exact:
        # the sample serves the bootstrap; the point value is exact (O(n log n))
        bought = mask & (index.label == 1)
        exact_point = float(xauc(index.gmv[bought], value[bought])) if bought.sum() > 1 else math.nan
    return PairEstimator(users=pairs.users, C=C, D=pairs.D, exact_point=exact_point, den_key=("xauc", id(pairs)))


# ---------------------------------------------------------------------------------
# one arm
# ---------------------------------------------------------------------------------
def arm_estimators(index: ReplayIndex, p_purchase: np.ndarray, value: np.ndarray, ks: tuple[int, ...],
                   pair_sets: dict[str, PairSet]) -> Iterator[tuple[tuple[str, str], RatioEstimator | PairEstimator]]:
    """Every (slice, metric) estimator of one arm, as a generator (pair matrices are
    built one at a time so a caller can evaluate and free them).

    p_purchase: (n,) probabilities, value: (n,) expected GMV (calibrated), aligned with
    the index rows; ks: the GMV@k cut-offs; pair_sets: slice -> XAUC pairs.
    """
    score = p_purchase * value
    R, U = index.n_requests, index.n_users
    top, disc = _rank_weights_codes(score, index.request, R, tuple(ks))
    req_user = index.request_user
    bought = index.label == 1

    def per_user(per_request: np.ndarray) -> np.ndarray:
        return np.bincount(req_user, weights=per_request, minlength=U)

    for name, mask in index.masks.items():
        m = mask.astype(np.float64)
        gain = index.gmv * m
        in_slice = np.bincount(index.request, weights=m, minlength=R) > 0
        den = per_user(in_slice.astype(np.float64))
        for t, k in enumerate(ks):
            captured = np.bincount(index.request, weights=top[:, t] * gain, minlength=R)
            yield (name, f"GMV@{int(k)}"), RatioEstimator(per_user(captured * in_slice), den)
        dcg = np.bincount(index.request, weights=disc * gain, minlength=R)
        idcg = index.ideal_dcg(name)
        ok = idcg > 0
        nd = np.divide(dcg, idcg, out=np.zeros(R), where=ok)
        yield (name, "NDCG"), RatioEstimator(per_user(nd), per_user(ok.astype(np.float64)))
        yield (name, "AUC"), _auc_estimator(index, score, mask)
        conc, npos, nneg = _group_auc_parts(index.label[mask], score[mask], index.request[mask], R)
        both = (npos > 0) & (nneg > 0)
        n_r = (npos + nneg) * both
        auc_r = np.divide(conc, npos * nneg, out=np.zeros(R), where=both)
        yield (name, "GAUC"), RatioEstimator(per_user(auc_r * n_r), per_user(n_r))
        b = mask & bought
        err = np.abs(value[b] - index.gmv[b])
        yield (name, "MAE"), RatioEstimator(np.bincount(index.user[b], weights=err, minlength=U),
                                            np.bincount(index.user[b], minlength=U).astype(np.float64))
        yield (name, "XAUC"), _xauc_estimator(index, value, pair_sets[name], mask)
