"""Replay estimators: their point values equal the metrics module on the data, and every
bootstrap replicate equals the metrics recomputed on the explicitly resampled data
(users duplicated), which is what makes the vectorised bootstrap exact."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from quantrec.evaluation.metrics import auc, expected_rank_weights, gauc, mae, per_group_ndcg, xauc
from quantrec.shadow.replay import (
    arm_estimators, build_index, history_slice_names, metric_names, pair_set, slice_names,
)
from shadow_data import make_requests

KS = (1, 3, 10)


def reference_metrics(df: pd.DataFrame, masks: dict[str, np.ndarray], p: np.ndarray, v: np.ndarray,
                      ks=KS) -> dict[tuple[str, str], float]:
    """Every (slice, metric) straight from quantrec.evaluation.metrics on a frame."""
    score = p * v
    req = df["request_id"].to_numpy()
    y = df["label"].to_numpy(float)
    g = df["gmv"].to_numpy(float)
    top, _ = expected_rank_weights(score, req, ks)
    out = {}
    for name, m in masks.items():
        reqs = np.unique(req[m])
        for t, k in enumerate(ks):
            cap = pd.Series(top[:, t] * g * m).groupby(req).sum()
            out[(name, f"GMV@{k}")] = float(cap.loc[reqs].mean()) if reqs.size else math.nan
        _, nd = per_group_ndcg(g * m, score, req)
        out[(name, "NDCG")] = float(np.nanmean(nd)) if np.isfinite(nd).any() else math.nan
        out[(name, "AUC")] = auc(y[m], score[m]) if m.any() else math.nan
        out[(name, "GAUC")] = gauc(y[m], score[m], req[m]) if m.any() else math.nan
        b = m & (y == 1)
        out[(name, "MAE")] = mae(g[b], v[b]) if b.any() else math.nan
        out[(name, "XAUC")] = float(xauc(g[b], v[b])) if b.sum() > 1 else math.nan
    return out


def duplicate_users(df: pd.DataFrame, masks, p, v, users: np.ndarray, w: np.ndarray):
    """The resampled data: user users[u] repeated w[u] times (distinct ids per copy)."""
    parts, mparts, pp, vv = [], {k: [] for k in masks}, [], []
    for u, count in zip(users, w):
        rows = np.flatnonzero(df["user_id"].to_numpy() == u)
        for c in range(int(count)):
            part = df.iloc[rows].copy()
            part["user_id"] = part["user_id"] + f"#{c}"
            part["request_id"] = part["request_id"] + f"#{c}"
            parts.append(part)
            for k in masks:
                mparts[k].append(masks[k][rows])
            pp.append(p[rows])
            vv.append(v[rows])
    return (pd.concat(parts, ignore_index=True), {k: np.concatenate(x) for k, x in mparts.items()},
            np.concatenate(pp), np.concatenate(vv))


def arm(df, seed):
    rng = np.random.default_rng(seed)
    p = np.clip(0.1 + 0.2 * df["ui_lines"].to_numpy() + rng.normal(0, 0.05, len(df)), 0.01, 1.0)
    p = np.round(p, 1)                            # ties in the score on purpose
    v = np.round(df["i_price_last"].fillna(1.0).to_numpy() * 4)
    return p, v


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_points_and_every_replicate_equal_the_metrics_on_resampled_data(seed):
    df = make_requests(n_users=10, seed=seed)
    index = build_index(df, history_edges=(20, 100))
    p, v = arm(df, seed)
    pairs = {s: pair_set(index, s, max_pairs=10**7, seed=0) for s in index.masks}
    assert all(ps.exact for ps in pairs.values())
    ests = dict(arm_estimators(index, p, v, KS, pairs))
    assert set(ests) == {(s, m) for s in slice_names((20, 100)) for m in metric_names(KS)}

    ref = reference_metrics(df, index.masks, p, v)
    for key, est in ests.items():
        assert est.point() == pytest.approx(ref[key], nan_ok=True, abs=1e-12), key

    rng = np.random.default_rng(100 + seed)
    W = rng.multinomial(index.n_users, np.full(index.n_users, 1 / index.n_users), size=3).astype(float)
    for w in W:
        dup, dmasks, dp, dv = duplicate_users(df, index.masks, p, v, index.users, w)
        ref_w = reference_metrics(dup, dmasks, dp, dv)
        for key, est in ests.items():
            got = est.replicates(w[None, :])[0]
            assert got == pytest.approx(ref_w[key], nan_ok=True, abs=1e-9), (key, w)


def test_constant_score_ranks_by_expectation_not_by_table_order():
    df = make_requests(n_users=6, seed=4)          # positives come first in every request
    index = build_index(df)
    n = len(df)
    pairs = {s: pair_set(index, s, 10**7, 0) for s in index.masks}
    ests = dict(arm_estimators(index, np.full(n, 0.3), np.full(n, 2.0), (1,), pairs))
    per_req = df.groupby("request_id")["gmv"].agg(["sum", "size"])
    expected = float((per_req["sum"] / per_req["size"]).mean())   # random pick of one candidate
    assert ests[("all", "GMV@1")].point() == pytest.approx(expected)
    assert ests[("all", "AUC")].point() == pytest.approx(0.5)
    assert ests[("all", "GAUC")].point() == pytest.approx(0.5)


def test_slices_follow_their_definitions():
    df = make_requests(n_users=30, seed=7)
    index = build_index(df, long_tail_quantile=0.9, history_edges=(20, 100))
    price = df["i_price_last"].to_numpy()
    thr = np.nanquantile(price, 0.9)
    assert index.long_tail_threshold == pytest.approx(thr)
    np.testing.assert_array_equal(index.masks["long_tail"], np.nan_to_num(price, nan=-1) >= thr)
    new = df["is_new_user"].to_numpy()
    hist = df["hist_len"].to_numpy()
    np.testing.assert_array_equal(index.masks["new_users"], new)
    assert history_slice_names((20, 100)) == ["hist_1_19", "hist_20_99", "hist_100+"]
    np.testing.assert_array_equal(index.masks["hist_20_99"], ~new & (hist >= 20) & (hist < 100))
    # the history buckets partition the returning users' rows
    total = sum(index.masks[s].astype(int) for s in history_slice_names((20, 100)))
    np.testing.assert_array_equal(total, (~new).astype(int))
    summary = index.slice_summary().set_index("slice")
    assert summary.loc["all", "requests"] == df["request_id"].nunique()
    assert summary.loc["all", "bought lines"] == int(df["label"].sum())


def test_empty_slice_gives_nan_estimators():
    df = make_requests(n_users=5, seed=1)
    df["hist_len"] = np.where(df["is_new_user"], 0, 5)
    index = build_index(df, history_edges=(50,))
    assert not index.masks["hist_50+"].any()
    pairs = {s: pair_set(index, s, 10**7, 0) for s in index.masks}
    ests = dict(arm_estimators(index, np.full(len(df), 0.5), np.ones(len(df)), (1,), pairs))
    W = np.ones((4, index.n_users))
    for m in metric_names((1,)):
        assert math.isnan(ests[("hist_50+", m)].point())
        assert np.isnan(ests[("hist_50+", m)].replicates(W)).all()


def test_xauc_pairs_are_sampled_above_the_budget_with_an_exact_point():
    df = make_requests(n_users=40, seed=3)
    index = build_index(df)
    n_lines = int(df["label"].sum())
    assert n_lines * (n_lines - 1) // 2 > 2000
    ps = pair_set(index, "all", max_pairs=2000, seed=5)
    assert not ps.exact and 0 < ps.i.size <= 2000
    assert (index.gmv[ps.i] > index.gmv[ps.j]).all()
    again = pair_set(index, "all", max_pairs=2000, seed=5)
    np.testing.assert_array_equal(ps.i, again.i)
    p, v = arm(df, 0)
    est = dict(arm_estimators(index, p, v, (1,), {s: pair_set(index, s, 2000, 5) for s in index.masks}))
    b = df["label"].to_numpy() == 1
    assert est[("all", "XAUC")].point() == pytest.approx(float(xauc(df["gmv"][b], v[b])))
    # the sampled-pair replicate at w = 1 estimates it closely
    assert est[("all", "XAUC")].replicates(np.ones((1, index.n_users)))[0] == pytest.approx(
        est[("all", "XAUC")].point(), abs=0.05)


@pytest.mark.parametrize("mutate, match", [
    (lambda d: d.drop(columns=["hist_len"]), "hist_len"),
    (lambda d: d.assign(label=2), "label"),
    (lambda d: d.assign(gmv=-1.0), "gmv"),
    (lambda d: d.assign(request_id="same"), "spans several"),
    (lambda d: d.iloc[:0], "empty"),
    (lambda d: d.assign(user_id=None), "user_id"),
])
def test_build_index_rejects_bad_tables(mutate, match):
    with pytest.raises(ValueError, match=match):
        build_index(mutate(make_requests(n_users=4, seed=0)))


@pytest.mark.parametrize("block", [1, 3, 32, 500])
def test_auc_pair_matrix_equals_brute_force_pairs_with_ties(block):
    from quantrec.shadow.replay import _auc_pair_matrix

    rng = np.random.default_rng(block)
    for _ in range(20):
        n, n_users = int(rng.integers(1, 200)), int(rng.integers(1, 7))
        u = rng.integers(0, n_users, n)
        y = (rng.random(n) < 0.3).astype(float)
        s = rng.integers(0, int(rng.integers(1, 12)), n).astype(float)     # heavy ties
        ref = np.zeros((n_users, n_users))
        for i in np.flatnonzero(y == 1):
            for j in np.flatnonzero(y == 0):
                ref[u[i], u[j]] += 1.0 if s[i] > s[j] else 0.5 if s[i] == s[j] else 0.0
        np.testing.assert_allclose(_auc_pair_matrix(u, y, s, n_users, block=block), ref)
