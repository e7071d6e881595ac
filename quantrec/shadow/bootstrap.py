"""Paired bootstrap over users, vectorised: every metric is a function of per-user sums.

The unit of resampling is the user (a user's requests on different days are not
independent). A resample is a vector of user multiplicities ``w`` (shape (U,),
multinomial counts summing to U: the classical bootstrap). Every metric of the replay
is written so that the metric of the resampled data is an exact closed form in ``w``:

- ratio metrics (GMV@k, NDCG, GAUC, MAE): value = sum_u w_u num_u / sum_u w_u den_u
  (``RatioEstimator``). B resamples at once = one matrix product (B, U) @ (U, M).
- pair metrics (AUC, XAUC): U-statistics over pairs of rows, each row belonging to a
  user: value = w' C w / w' D w with C[u, v] the concordance mass of pairs (row of u,
  row of v) and D[u, v] the pair count (``PairEstimator``). A user drawn twice
  contributes every pair between the copies, which is exactly what the quadratic form
  counts. B resamples = one (B, U) @ (U, U) product.

"Paired": every arm is evaluated on the same weight matrix, so a delta's replicate is
the difference of the arms' replicates on the same resampled users.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Iterable

import numpy as np

__all__ = ["Estimate", "RatioEstimator", "PairEstimator", "user_weights", "evaluate_estimators",
           "summarize", "paired_delta", "MIN_VALID_SHARE"]

# A CI needs at least this share of resamples where the metric is defined (e.g. a small
# slice may be absent from a resample); below it the CI is reported as missing.
MIN_VALID_SHARE = 0.5


@dataclass(frozen=True)
class Estimate:
    """A point value with its bootstrap percentile interval.

    point: the metric (or delta) on the observed data; ci_low / ci_high: percentile
    bounds at the configured level; std: bootstrap standard deviation; n_valid:
    resamples where the value was defined. NaN = undefined / missing.
    """

    point: float
    ci_low: float
    ci_high: float
    std: float
    n_valid: int

    @property
    def missing(self) -> bool:
        return not (math.isfinite(self.point) and math.isfinite(self.ci_low) and math.isfinite(self.ci_high))

    def get(self, statistic: str) -> float:
        """``"point"``, ``"ci_low"`` or ``"ci_high"``."""
        if statistic not in ("point", "ci_low", "ci_high"):
            raise ValueError(f"unknown statistic {statistic!r}")
        return float(getattr(self, statistic))

    def to_dict(self) -> dict[str, float | int | None]:
        return {k: (None if isinstance(v, float) and not math.isfinite(v) else v)
                for k, v in asdict(self).items()}


@dataclass
class RatioEstimator:
    """value(w) = sum_u w_u num_u / sum_u w_u den_u. num, den: shape (U,) over all users."""

    num: np.ndarray
    den: np.ndarray

    def point(self) -> float:
        d = float(self.den.sum())
        return float(self.num.sum()) / d if d > 0 else math.nan

    def replicates(self, weights: np.ndarray) -> np.ndarray:
        """(B,) values under the resamples ``weights`` (B, U); NaN where den = 0."""
        with np.errstate(invalid="ignore", divide="ignore"):
            d = weights @ self.den
            return np.where(d > 0, (weights @ self.num) / d, math.nan)


@dataclass
class PairEstimator:
    """value(w) = w_s' C w_s / w_s' D w_s over the users ``users`` that hold pairs.

    users: (U_s,) indices into the global user axis; C: (U_s, U_s) concordance mass of
    pairs (row of user u, row of user v); D: (U_s, U_s) pair counts, or None when D is
    the outer product ``row_count`` x ``col_count`` (AUC: positives x negatives), which
    makes the denominator a product of two dot products. ``exact_point`` overrides the
    point value when C / D hold a sample of the pairs (XAUC on many lines).
    ``den_key``: arms sharing the same D (XAUC pairs of a slice) share this key, so the
    denominator's replicates are computed once per weight matrix (``den_cache``).
    """

    users: np.ndarray
    C: np.ndarray
    D: np.ndarray | None = None
    row_count: np.ndarray | None = None
    col_count: np.ndarray | None = None
    exact_point: float | None = None
    den_key: object | None = None

    def __post_init__(self) -> None:
        if self.D is None and (self.row_count is None or self.col_count is None):
            raise ValueError("PairEstimator needs D or both row_count and col_count")

    def _den_sum(self) -> float:
        if self.D is not None:
            return float(self.D.sum())
        return float(self.row_count.sum() * self.col_count.sum())

    def point(self) -> float:
        if self.exact_point is not None:
            return float(self.exact_point)
        d = self._den_sum()
        return float(self.C.sum()) / d if d > 0 else math.nan

    def replicates(self, weights: np.ndarray, den_cache: dict | None = None) -> np.ndarray:
        """(B,) values under the resamples ``weights`` (B, U); NaN where no pair is drawn.
        den_cache: optional dict shared by calls with the same ``weights``."""
        if self.users.size == 0:
            return np.full(weights.shape[0], math.nan)
        w = weights[:, self.users]
        num = np.einsum("bu,bu->b", w @ self.C, w)
        if self.D is None:
            den = (w @ self.row_count) * (w @ self.col_count)
        elif den_cache is not None and self.den_key is not None and self.den_key in den_cache:
            den = den_cache[self.den_key]
        else:
            den = np.einsum("bu,bu->b", w @ self.D, w)
            if den_cache is not None and self.den_key is not None:
                den_cache[self.den_key] = den
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(den > 0, num / den, math.nan)


def user_weights(n_users: int, resamples: int, seed: int) -> np.ndarray:
    """Bootstrap multiplicities of the users: (resamples, n_users) float64, each row a
    multinomial draw of n_users users with replacement (seeded)."""
    if n_users < 1:
        raise ValueError("the bootstrap needs at least one user")
    if resamples < 1:
        raise ValueError(f"resamples must be >= 1, got {resamples}")
    rng = np.random.default_rng(seed)
    return rng.multinomial(n_users, np.full(n_users, 1.0 / n_users), size=resamples).astype(np.float64)


def evaluate_estimators(estimators: Iterable[tuple[object, RatioEstimator | PairEstimator]],
                        weights: np.ndarray, den_cache: dict | None = None) -> dict[object, tuple[float, np.ndarray]]:
    """Point value and (B,) replicates of every keyed estimator.

    Ratio estimators are batched into one matrix product; pair estimators are evaluated
    as they arrive so their (U, U) matrices can be freed (``estimators`` may be a
    generator). den_cache: shared across calls with the same ``weights`` (e.g. one per
    arm) so a denominator common to the arms is computed once. Returns
    {key: (point, replicates)} in arrival order of the keys.
    """
    out: dict[object, tuple[float, np.ndarray]] = {}
    ratio_keys: list[object] = []
    nums: list[np.ndarray] = []
    dens: list[np.ndarray] = []
    for key, est in estimators:
        if isinstance(est, RatioEstimator):
            ratio_keys.append(key)
            nums.append(est.num)
            dens.append(est.den)
            out[key] = (est.point(), np.empty(0))     # placeholder keeps the order
        else:
            out[key] = (est.point(), est.replicates(weights, den_cache))
    if ratio_keys:
        num = weights @ np.column_stack(nums)
        den = weights @ np.column_stack(dens)
        with np.errstate(invalid="ignore", divide="ignore"):
            reps = np.where(den > 0, num / den, math.nan)
        for col, key in enumerate(ratio_keys):
            out[key] = (out[key][0], reps[:, col])
    return out


def summarize(point: float, replicates: np.ndarray, level: float) -> Estimate:
    """Percentile interval of ``replicates`` (B,) at ``level`` (e.g. 0.95) around ``point``.
    NaN replicates (metric undefined in that resample) are left out; with fewer than
    ``MIN_VALID_SHARE`` of them defined the interval is NaN (missing)."""
    if not 0.0 < level < 1.0:
        raise ValueError(f"ci level must be in (0, 1), got {level}")
    reps = np.asarray(replicates, dtype=np.float64)
    ok = np.isfinite(reps)
    n_valid = int(ok.sum())
    if not math.isfinite(point) or n_valid < max(1, MIN_VALID_SHARE * reps.size):
        return Estimate(float(point), math.nan, math.nan, math.nan, n_valid)
    alpha = (1.0 - level) / 2.0
    lo, hi = np.quantile(reps[ok], [alpha, 1.0 - alpha])
    std = float(reps[ok].std(ddof=1)) if n_valid > 1 else 0.0
    return Estimate(float(point), float(lo), float(hi), std, n_valid)


def paired_delta(challenger: tuple[float, np.ndarray], reference: tuple[float, np.ndarray],
                 level: float, relative: bool = False) -> Estimate:
    """Delta challenger - reference (relative: divided by |reference|) on the observed
    data and on every resample (same weights for both: paired)."""
    (pc, rc), (pr, rr) = challenger, reference
    with np.errstate(invalid="ignore", divide="ignore"):
        if relative:
            point = (pc - pr) / abs(pr) if pr != 0 and math.isfinite(pr) else math.nan
            reps = np.where(rr != 0, (rc - rr) / np.abs(rr), math.nan)
        else:
            point = pc - pr
            reps = rc - rr
    return summarize(float(point), reps, level)

