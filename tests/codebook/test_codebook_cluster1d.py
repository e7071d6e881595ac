"""Exact 1-D clustering primitives against brute force."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from quantrec.codebook import cluster1d


def _brute_force(x: np.ndarray, w: np.ndarray, k: int, criterion: str) -> float:
    """Best cost over every split of the sorted values into k contiguous runs."""
    n = len(x)
    best = np.inf
    for cuts in itertools.combinations(range(1, n), k - 1):
        b = [0, *cuts, n]
        cost = 0.0
        for a, e in zip(b[:-1], b[1:]):
            xs, ws = x[a:e], w[a:e]
            if criterion == "mean":
                m = np.average(xs, weights=ws)
                cost += float(np.sum(ws * (xs - m) ** 2))
            else:
                cost += min(float(np.sum(ws * np.abs(xs - v))) for v in xs)
        best = min(best, cost)
    return best


sample = st.lists(st.integers(0, 400), min_size=2, max_size=8, unique=True).flatmap(
    lambda xs: st.tuples(st.just(sorted(xs)), st.lists(st.integers(1, 9), min_size=len(xs), max_size=len(xs)),
                         st.integers(1, len(xs))))


@settings(max_examples=60, deadline=None)
@given(sample, st.sampled_from(["mean", "median"]))
def test_optimal_1d_matches_brute_force(data, criterion):
    xs, ws, k = data
    x = np.array(xs, float) / 10.0
    w = np.array(ws, float)
    c = cluster1d.optimal_1d(x, w, k, criterion)
    assert len(c) == k and np.all(np.diff(c) >= 0)
    got = cluster1d.objective(x, w, c, criterion)
    best = _brute_force(x, w, k, criterion)
    assert got <= best + 1e-9 * max(1.0, best)


def test_optimal_kmedians_centroids_are_data_values():
    rng = np.random.default_rng(3)
    x = np.unique(np.round(rng.lognormal(2, 1, 500), 2))
    w = rng.integers(1, 50, len(x)).astype(float)
    c = cluster1d.optimal_1d(x, w, 12, "median")
    assert np.isin(c, x).all()


def test_optimal_not_worse_than_lloyd_from_quantiles():
    rng = np.random.default_rng(4)
    x, w = cluster1d.collapse(np.round(rng.lognormal(2, 1.3, 20_000), 2))
    for crit in ("mean", "median"):
        opt = cluster1d.objective(x, w, cluster1d.optimal_1d(x, w, 16, crit), crit)
        lloyd = cluster1d.lloyd_1d(x, w, cluster1d.weighted_quantile_init(x, w, 16), crit)
        assert opt <= cluster1d.objective(x, w, lloyd, crit) * (1 + 1e-12)


def test_assign_sorted_is_nearest_centroid():
    rng = np.random.default_rng(5)
    c = np.sort(rng.normal(0, 5, 30))
    v = rng.normal(0, 8, 5000)
    code = cluster1d.assign_sorted(v, c)
    brute = np.argmin(np.abs(v[:, None] - c[None, :]), axis=1)
    np.testing.assert_allclose(np.abs(v - c[code]), np.abs(v - c[brute]))


def test_assign_sorted_duplicate_centroids_use_lowest_index():
    c = np.array([1.0, 2.0, 2.0, 2.0])
    assert cluster1d.assign_sorted(np.array([0.0, 1.9, 2.0, 50.0]), c).tolist() == [0, 1, 1, 1]


def test_lloyd_pinned_zero_stays_and_objective_does_not_increase():
    rng = np.random.default_rng(6)
    x, w = cluster1d.collapse(np.round(rng.normal(0, 3, 5000), 2))
    start = cluster1d.weighted_quantile_init(x, w, 9)
    start[np.argmin(np.abs(start))] = 0.0
    start = np.sort(start)
    out = cluster1d.lloyd_1d(x, w, start, "mean", pinned=int(np.searchsorted(start, 0.0)))
    assert np.count_nonzero(out == 0.0) == 1
    assert cluster1d.objective(x, w, out, "mean") <= cluster1d.objective(x, w, start, "mean")


def test_fit_layer_large_unique_path_uses_lloyd_and_is_seeded():
    rng = np.random.default_rng(7)
    x, w = cluster1d.collapse(rng.lognormal(1, 1, 3000))
    a = cluster1d.fit_layer(x, w, 10, "mean", dp_max_unique=100, seed=1)
    b = cluster1d.fit_layer(x, w, 10, "mean", dp_max_unique=100, seed=1)
    exact = cluster1d.fit_layer(x, w, 10, "mean")
    np.testing.assert_array_equal(a, b)
    # Lloyd reaches a local optimum no better than the exact one, and not far from it.
    oa, oe = (cluster1d.objective(x, w, c, "mean") for c in (a, exact))
    assert oe <= oa * (1 + 1e-12) and oa <= 1.5 * oe


def test_bad_inputs():
    with pytest.raises(ValueError, match="criterion"):
        cluster1d.optimal_1d(np.array([1.0, 2.0]), np.ones(2), 1, "mode")
    with pytest.raises(ValueError, match="no values"):
        cluster1d.optimal_1d(np.array([]), np.array([]), 2)
    with pytest.raises(ValueError, match="k must be"):
        cluster1d.optimal_1d(np.array([1.0, 2.0]), np.ones(2), 0)
