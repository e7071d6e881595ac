"""Exact and fast weighted clustering of 1-D values (K-means and K-medians).

Everything here works on *sorted distinct values with weights* (counts). GMV has heavy
ties (a few thousand distinct values across millions of lines), so the data a layer
really has to cluster is tiny once collapsed; and in 1-D every optimal cluster is a
contiguous run of the sorted values, which gives:

- assignment to the nearest centroid = ``searchsorted`` on the midpoints between
  adjacent sorted centroids (no distance matrix);
- a cluster's weighted mean / median / cost from prefix sums of ``w``, ``w*x`` and
  ``w*x**2`` in O(1) (median: one ``searchsorted`` on the prefix weights);
- the globally optimal clustering by dynamic programming over split points, made
  O(K n log n) by the divide-and-conquer optimisation (the optimal split point is
  monotone in the segment end because both costs satisfy the quadrangle inequality),
  vectorised here level by level so Python loops only over K and log n.

Conventions: ``x`` float64 (n,) strictly increasing, ``w`` float64 (n,) > 0,
centroids float64 (k,) non-decreasing. ``criterion`` is ``"mean"`` (sum of weighted
squared errors) or ``"median"`` (sum of weighted absolute errors).
"""

from __future__ import annotations

import numpy as np

CRITERIA = ("mean", "median")


def collapse(values: np.ndarray, weights: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Sorted distinct values and their total weights.

    values: (n,) float; weights: (n,) or None (= counts). Returns (x (m,), w (m,)),
    x strictly increasing, w > 0 summed over ties.
    """
    values = np.asarray(values, dtype=np.float64).ravel()
    if weights is None:
        x, w = np.unique(values, return_counts=True)
        return x, w.astype(np.float64)
    x, inv = np.unique(values, return_inverse=True)
    return x, np.bincount(inv.ravel(), weights=np.asarray(weights, np.float64).ravel(),
                          minlength=len(x))


class _Prefix:
    """Prefix sums of a weighted sorted sample; segment [a, b) statistics in O(1)."""

    def __init__(self, x: np.ndarray, w: np.ndarray):
        self.x = x
        # Centre before squaring: S2 - S1^2/W loses digits when |x| >> spread.
        self.shift = float(np.average(x, weights=w)) if len(x) else 0.0
        xc = x - self.shift
        self.W = np.concatenate([[0.0], np.cumsum(w)])
        self.S1 = np.concatenate([[0.0], np.cumsum(w * xc)])
        self.S2 = np.concatenate([[0.0], np.cumsum(w * xc * xc)])

    def weight(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return self.W[b] - self.W[a]

    def mean(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Weighted mean of segments [a, b); NaN for empty segments."""
        with np.errstate(invalid="ignore", divide="ignore"):
            return (self.S1[b] - self.S1[a]) / (self.W[b] - self.W[a]) + self.shift

    def median_index(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Index of the lower weighted median of segments [a, b) (b > a)."""
        half = self.W[a] + 0.5 * (self.W[b] - self.W[a])
        m = np.searchsorted(self.W, half, side="left") - 1
        return np.clip(m, a, b - 1)

    def cost(self, a: np.ndarray, b: np.ndarray, criterion: str) -> np.ndarray:
        """Within-segment cost of [a, b) around its own optimal centre (0 if empty)."""
        W = self.W[b] - self.W[a]
        S1 = self.S1[b] - self.S1[a]
        if criterion == "mean":
            with np.errstate(invalid="ignore", divide="ignore"):
                c = (self.S2[b] - self.S2[a]) - np.where(W > 0, S1 * S1 / np.where(W > 0, W, 1.0), 0.0)
            return np.maximum(c, 0.0)
        m = self.median_index(a, np.maximum(b, a + 1))
        xm = self.x[np.minimum(m, len(self.x) - 1)] - self.shift
        below = xm * (self.W[m] - self.W[a]) - (self.S1[m] - self.S1[a])
        above = (self.S1[b] - self.S1[m]) - xm * (self.W[b] - self.W[m])
        return np.where(b > a, below + above, 0.0)

    def centre(self, a: np.ndarray, b: np.ndarray, criterion: str) -> np.ndarray:
        """Optimal centre of non-empty segments [a, b): weighted mean or median."""
        if criterion == "mean":
            return self.mean(a, b)
        return self.x[self.median_index(a, b)]


def _check_criterion(criterion: str) -> None:
    if criterion not in CRITERIA:
        raise ValueError(f"criterion must be one of {CRITERIA}, got {criterion!r}")


def optimal_1d(x: np.ndarray, w: np.ndarray, k: int, criterion: str = "mean") -> np.ndarray:
    """Globally optimal weighted 1-D K-means / K-medians by dynamic programming.

    x: (n,) strictly increasing, w: (n,) > 0, k >= 1. Returns the sorted centroids
    (min(k, n),): with n <= k every distinct value is its own centroid. Exact (up to
    float rounding in the prefix sums); O(k n log n) time, O(k n) int32 memory.
    """
    _check_criterion(criterion)
    n = len(x)
    if n == 0:
        raise ValueError("optimal_1d: no values to cluster")
    if k <= 0:
        raise ValueError(f"optimal_1d: k must be >= 1, got {k}")
    if n <= k:
        return x.astype(np.float64).copy()
    P = _Prefix(x, w)
    idx = np.arange(n + 1)
    # F[j] = best cost of the first j points in (current) c clusters; inf = infeasible.
    F = P.cost(np.zeros(n + 1, dtype=np.int64), idx, criterion)
    split = np.zeros((k, n + 1), dtype=np.int32)   # split[c, j]: start of the last cluster
    for c in range(1, k):
        G = np.full(n + 1, np.inf)
        # Tasks: compute G[j] for j in [jlo, jhi] knowing the optimum t in [tlo, thi].
        jlo = np.array([c + 1]); jhi = np.array([n])
        tlo = np.array([c]); thi = np.array([n - 1])
        while len(jlo):
            mid = (jlo + jhi) // 2
            a = tlo
            b = np.minimum(thi, mid - 1)
            lens = b - a + 1
            offs = np.concatenate([[0], np.cumsum(lens)[:-1]])
            total = int(lens.sum())
            seg = np.repeat(np.arange(len(mid)), lens)
            t = a[seg] + (np.arange(total) - offs[seg])
            vals = F[t] + P.cost(t, mid[seg], criterion)
            segmin = np.minimum.reduceat(vals, offs)
            # First (smallest-t) argmin per task: keeps the split monotone under ties.
            pos = np.where(vals <= segmin[seg], np.arange(total), total)
            best_t = t[np.minimum.reduceat(pos, offs)]
            G[mid] = segmin
            split[c, mid] = best_t
            left = jlo <= mid - 1
            right = mid + 1 <= jhi
            jlo, jhi, tlo, thi = (
                np.concatenate([jlo[left], mid[right] + 1]),
                np.concatenate([mid[left] - 1, jhi[right]]),
                np.concatenate([tlo[left], best_t[right]]),
                np.concatenate([best_t[left], thi[right]]),
            )
        F = G
    # Backtrack the k segments ending at n.
    bounds = [n]
    j = n
    for c in range(k - 1, 0, -1):
        j = int(split[c, j])
        bounds.append(j)
    bounds.append(0)
    b = np.array(bounds[::-1])
    return np.sort(P.centre(b[:-1], b[1:], criterion))


def assign_sorted(x: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    """Nearest-centroid code for each value: ``searchsorted`` on the midpoints.

    centroids: (k,) non-decreasing. Returns int64 codes; a value exactly on a midpoint
    goes to the lower centroid; among equal centroids the lowest index wins.
    """
    c = np.asarray(centroids, dtype=np.float64)
    mids = 0.5 * (c[1:] + c[:-1])
    code = np.searchsorted(mids, x, side="left")
    # Canonical index of a run of equal centroids (padding of degenerate layers).
    canon = np.searchsorted(c, c, side="left")
    return canon[code]


def segment_bounds(x: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    """Boundaries (k+1,) into sorted x of the nearest-centroid cells (same tie rule)."""
    mids = 0.5 * (centroids[1:] + centroids[:-1])
    return np.concatenate([[0], np.searchsorted(x, mids, side="right"), [len(x)]])


def objective(x: np.ndarray, w: np.ndarray, centroids: np.ndarray, criterion: str) -> float:
    """Weighted SSE (mean) or weighted sum of absolute errors (median) to nearest centroid."""
    d = x - centroids[assign_sorted(x, centroids)]
    return float(np.sum(w * (d * d if criterion == "mean" else np.abs(d))))


def lloyd_1d(x: np.ndarray, w: np.ndarray, centroids: np.ndarray, criterion: str = "mean",
             pinned: int | None = None, max_iter: int = 1000) -> np.ndarray:
    """Weighted Lloyd (K-means) or its median analogue from the given start.

    Each step: cells by midpoints, then every non-empty cell's centroid moves to its
    weighted mean / median (O(k log n) per step with prefix sums). An empty cell keeps
    its centroid. ``pinned``: index of a centroid that never moves (the exact-zero
    centroid of a residual layer). Stops when the cells stop changing. Returns sorted
    centroids (k,).
    """
    _check_criterion(criterion)
    P = _Prefix(x, w)
    c = np.array(centroids, dtype=np.float64)
    pin_value = c[pinned] if pinned is not None else None
    prev = None
    for _ in range(max_iter):
        b = segment_bounds(x, c)
        if prev is not None and np.array_equal(b, prev):
            break
        prev = b
        nonempty = b[1:] > b[:-1]
        new = c.copy()
        new[nonempty] = P.centre(b[:-1][nonempty], b[1:][nonempty], criterion)
        if pinned is not None:
            new[pinned] = pin_value
        c = np.sort(new)
        if pinned is not None:
            pinned = int(np.searchsorted(c, pin_value, side="left"))
    return c


def weighted_quantile_init(x: np.ndarray, w: np.ndarray, k: int) -> np.ndarray:
    """k centroids at the weighted quantiles (i + 0.5) / k (deterministic start)."""
    cw = np.cumsum(w)
    targets = (np.arange(k) + 0.5) / k * cw[-1]
    return x[np.minimum(np.searchsorted(cw, targets, side="left"), len(x) - 1)].astype(np.float64)


def kmeanspp_init(x: np.ndarray, w: np.ndarray, k: int, seed: int) -> np.ndarray:
    """Weighted k-means++ seeding (D^2 sampling, each point counted w times)."""
    rng = np.random.default_rng(seed)
    p = w / w.sum()
    centres = [x[rng.choice(len(x), p=p)]]
    d2 = (x - centres[0]) ** 2
    for _ in range(1, k):
        q = w * d2
        s = q.sum()
        if s <= 0:  # fewer distinct values than k: everything is already a centre
            break
        centres.append(x[rng.choice(len(x), p=q / s)])
        d2 = np.minimum(d2, (x - centres[-1]) ** 2)
    c = np.sort(np.array(centres, dtype=np.float64))
    if len(c) < k:
        c = np.concatenate([c, np.full(k - len(c), c[-1])])
    return c


def fit_layer(x: np.ndarray, w: np.ndarray, k: int, criterion: str = "mean",
              pin_zero: bool = False, dp_max_unique: int = 20_000, seed: int = 0) -> np.ndarray:
    """Centroids (k,) for one layer, sorted ascending (ties possible if n < k).

    x, w: collapsed sample (see ``collapse``). With at most ``dp_max_unique`` distinct
    values the start is the exact optimum (``optimal_1d``); above that the better of a
    weighted-quantile start and a weighted k-means++ start (``seed``) after Lloyd.
    ``pin_zero``: one centroid is exactly 0.0 and stays there (start: the optimal
    centroid nearest 0 is snapped to 0, then Lloyd with that centroid fixed).
    """
    if pin_zero:
        with_zero = np.union1d(x, [0.0])
        if len(with_zero) <= k:
            # Every distinct value (and 0) gets its own centroid: exact, nothing to fit.
            return _pad(with_zero, k)
    if len(x) <= k:
        c = _pad(x.astype(np.float64), k)
        if not pin_zero:
            return c
    elif len(x) <= dp_max_unique:
        c = optimal_1d(x, w, k, criterion)
    else:
        starts = [weighted_quantile_init(x, w, k), kmeanspp_init(x, w, k, seed)]
        fits = [lloyd_1d(x, w, s, criterion) for s in starts]
        c = min(fits, key=lambda cc: objective(x, w, cc, criterion))
    if pin_zero:
        # Two starts for the pinned fit, keep the better: the k-cluster optimum with its
        # centroid nearest 0 snapped to 0, and the (k-1)-cluster optimum plus 0.
        snapped = c.copy()
        snapped[int(np.argmin(np.abs(snapped)))] = 0.0
        starts = [np.sort(snapped)]
        if len(x) > k - 1 and len(x) <= dp_max_unique and k > 2:
            starts.append(np.sort(np.concatenate([optimal_1d(x, w, k - 1, criterion), [0.0]])))
        fits = [lloyd_1d(x, w, s0, criterion, pinned=int(np.searchsorted(s0, 0.0))) for s0 in starts]
        c = min(fits, key=lambda cc: objective(x, w, cc, criterion))
    return c


def _pad(c: np.ndarray, k: int) -> np.ndarray:
    """Fewer distinct values than k: pad by repeating the largest centroid."""
    return np.concatenate([c, np.full(k - len(c), c[-1])])
