"""Each metric against a slow reference implementation (brute force over pairs /
permutations) on random data with heavy ties, plus small cases worked by hand."""

from __future__ import annotations

import itertools
import json
import math
import pickle

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from quantrec.evaluation.metrics import (
    CLASSIFICATION_METRICS, REGRESSION_METRICS, XAUCResult, _count_inversions, auc,
    classification_metrics, logloss, mae, norm_gini, regression_metrics, spearman, xauc,
)


# ---------------------------------------------------------------------------------
# slow references
# ---------------------------------------------------------------------------------
def ref_xauc(y, p) -> float:
    """O(n^2): concordant pairs (+0.5 for tied predictions) over pairs with distinct labels."""
    num = den = 0.0
    for i in range(len(y)):
        for j in range(i + 1, len(y)):
            if y[i] == y[j]:
                continue
            den += 1
            s = (y[i] - y[j]) * (p[i] - p[j])
            num += 1.0 if s > 0 else 0.5 if s == 0 else 0.0
    return num / den if den else math.nan


def paper_gini(y_ordered) -> float:
    """The papers' formula on an already ordered label sequence."""
    y_ordered = np.asarray(y_ordered, dtype=float)
    gain = np.cumsum(y_ordered) / y_ordered.sum()
    return 2 * gain.mean() - 1


def ref_norm_gini(y, p) -> float:
    """Average of the papers' normalized Gini over every order of the tied predictions
    (enumerated exhaustively: only for small n)."""
    y, p = np.asarray(y, float), np.asarray(p, float)
    true = paper_gini(np.sort(y)[::-1])
    groups = [np.flatnonzero(p == v) for v in sorted(set(p), reverse=True)]
    vals = []
    for perms in itertools.product(*[itertools.permutations(g) for g in groups]):
        order = [i for perm in perms for i in perm]
        vals.append(paper_gini(y[order]) / true)
    return float(np.mean(vals))


def ref_avg_ranks(x) -> np.ndarray:
    x = np.asarray(x, float)
    return np.array([(x < v).sum() + ((x == v).sum() + 1) / 2.0 for v in x])


def ref_spearman(y, p) -> float:
    ry, rp = ref_avg_ranks(y), ref_avg_ranks(p)
    ry, rp = ry - ry.mean(), rp - rp.mean()
    return float((ry * rp).sum() / math.sqrt((ry ** 2).sum() * (rp ** 2).sum()))


def ref_auc(y01, p) -> float:
    pos = [s for s, t in zip(p, y01) if t == 1]
    neg = [s for s, t in zip(p, y01) if t == 0]
    wins = sum(1.0 if a > b else 0.5 if a == b else 0.0 for a in pos for b in neg)
    return wins / (len(pos) * len(neg))


def tied_data(rng, n, n_label_values, n_pred_values):
    """Integer-valued labels/predictions: small value sets force heavy ties."""
    y = rng.integers(0, n_label_values, n).astype(float)
    p = rng.integers(0, n_pred_values, n).astype(float)
    return y, p


# ---------------------------------------------------------------------------------
# MAE
# ---------------------------------------------------------------------------------
def test_mae_by_hand_and_reference():
    assert mae([1, 2, 3], [2, 2, 5]) == pytest.approx((1 + 0 + 2) / 3)
    rng = np.random.default_rng(0)
    y, p = rng.normal(size=500), rng.normal(size=500)
    assert mae(y, p) == pytest.approx(sum(abs(a - b) for a, b in zip(y, p)) / 500)


# ---------------------------------------------------------------------------------
# XAUC
# ---------------------------------------------------------------------------------
def test_xauc_by_hand():
    assert xauc([1, 2, 3], [10, 20, 30]) == 1.0
    assert xauc([1, 2, 3], [30, 20, 10]) == 0.0
    assert xauc([1, 2, 3], [5, 5, 5]) == 0.5          # prediction ties: half credit
    # pairs with distinct labels: (0,2) discordant, (1,2) concordant; (0,1) label-tied
    assert xauc([1, 1, 2], [3, 1, 2]) == 0.5
    # y=[0,1,2], p=[0,0,1]: pair (0,1) prediction tie -> 0.5, (0,2) and (1,2) concordant
    assert xauc([0, 1, 2], [0, 0, 1]) == pytest.approx(2.5 / 3)
    r = xauc([1, 2, 3], [1, 2, 3])
    assert isinstance(r, XAUCResult) and r.method == "exact" and r.n_pairs == 3 and not r.sampled


def test_xauc_undefined_when_all_labels_tied():
    assert math.isnan(xauc([2, 2, 2], [1, 2, 3]))
    assert math.isnan(xauc([5.0], [1.0]))


@pytest.mark.parametrize("seed", range(6))
def test_xauc_matches_bruteforce_with_heavy_ties(seed):
    rng = np.random.default_rng(seed)
    for _ in range(25):
        n = int(rng.integers(2, 60))
        y, p = tied_data(rng, n, int(rng.integers(1, 6)), int(rng.integers(1, 6)))
        got, want = xauc(y, p), ref_xauc(y, p)
        if math.isnan(want):
            assert math.isnan(got)
        else:
            assert got == pytest.approx(want, abs=1e-12)


def test_xauc_continuous_matches_bruteforce():
    rng = np.random.default_rng(7)
    y = rng.lognormal(size=300)
    p = y * rng.lognormal(size=300)
    assert xauc(y, p) == pytest.approx(ref_xauc(y, p), abs=1e-12)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.integers(-3, 3), st.integers(-3, 3)), min_size=2, max_size=40))
def test_xauc_property_against_bruteforce(pairs):
    y = np.array([a for a, _ in pairs], float)
    p = np.array([b for _, b in pairs], float)
    got, want = xauc(y, p), ref_xauc(y, p)
    assert (math.isnan(got) and math.isnan(want)) or got == pytest.approx(want, abs=1e-12)


def test_xauc_large_n_equals_kendall_without_ties():
    # Without ties XAUC = (tau + 1) / 2: checks the vectorised inversion count at a
    # size where brute force is impossible.
    from scipy.stats import kendalltau

    rng = np.random.default_rng(3)
    n = 200_000
    y = rng.normal(size=n)
    p = y + rng.normal(size=n)
    assert xauc(y, p) == pytest.approx((kendalltau(y, p).statistic + 1) / 2, abs=1e-9)


def test_count_inversions_against_bruteforce():
    rng = np.random.default_rng(11)
    for _ in range(200):
        r = rng.integers(0, int(rng.integers(1, 70)), int(rng.integers(0, 50)))
        want = sum(1 for i in range(len(r)) for j in range(i + 1, len(r)) if r[i] > r[j])
        assert _count_inversions(r) == want


def test_xauc_on_binary_labels_equals_auc():
    rng = np.random.default_rng(5)
    y = (rng.random(400) < 0.3).astype(float)
    p = np.round(rng.random(400) + 0.3 * y, 1)   # rounded: many score ties
    assert xauc(y, p) == pytest.approx(auc(y, p), abs=1e-12)


def test_xauc_sampled_is_labelled_seeded_and_close():
    rng = np.random.default_rng(2)
    y, p = tied_data(rng, 3000, 50, 30)
    p = p + 0.05 * y
    exact = xauc(y, p)
    est = xauc(y, p, max_pairs_exact=1000, sample_pairs=200_000, seed=1)
    assert est.sampled and est.method == "sampled"
    assert 0 < est.n_pairs <= 200_000 and est.stderr > 0
    assert abs(est - exact) < 5 * est.stderr
    assert float(xauc(y, p, max_pairs_exact=1000, sample_pairs=200_000, seed=1)) == float(est)
    assert float(xauc(y, p, max_pairs_exact=1000, sample_pairs=200_000, seed=2)) != float(est)
    # under the threshold it stays exact
    assert xauc(y, p, max_pairs_exact=10**9).method == "exact"


def test_xauc_result_behaves_like_float_and_serialises():
    r = xauc([1, 2, 3, 4], [1, 3, 2, 4])
    assert r == pytest.approx(5 / 6) and r > 0.5 and r + 0 == pytest.approx(5 / 6)
    assert json.loads(json.dumps({"x": r}))["x"] == pytest.approx(5 / 6)
    back = pickle.loads(pickle.dumps(r))
    assert back == r and back.method == "exact" and back.n_pairs == 6


# ---------------------------------------------------------------------------------
# Normalized Gini
# ---------------------------------------------------------------------------------
def test_norm_gini_by_hand():
    assert norm_gini([1, 2, 3], [1, 2, 3]) == pytest.approx(1.0)
    # y=[0,0,1] ordered by pred -> [0,0,1]: gain [0,0,1], gini = 2/3 - 1 = -1/3;
    # true order [1,0,0]: gain [1,1,1], gini = 1.
    assert norm_gini([0, 0, 1], [3, 2, 1]) == pytest.approx(-1 / 3)
    # all predictions tied: every order equally likely -> average of the 3 orders
    assert norm_gini([0, 0, 1], [7, 7, 7]) == pytest.approx(((1 + 1 + 1) + (0 + 1 + 1) + (0 + 0 + 1)) / 9 * 2 - 1)
    assert math.isnan(norm_gini([0, 0, 0], [1, 2, 3]))


@pytest.mark.parametrize("seed", range(4))
def test_norm_gini_matches_tie_enumeration(seed):
    rng = np.random.default_rng(seed)
    for _ in range(15):
        n = int(rng.integers(2, 8))
        y, p = tied_data(rng, n, 4, 3)
        if y.sum() == 0:
            y[0] = 1.0
        assert norm_gini(y, p) == pytest.approx(ref_norm_gini(y, p), abs=1e-12)


def test_norm_gini_without_ties_equals_paper_pandas_code():
    rng = np.random.default_rng(9)
    y = np.where(rng.random(2000) < 0.5, 0.0, rng.lognormal(size=2000))
    p = y + rng.lognormal(size=2000)
    df = pd.DataFrame({"y": y, "p": p})
    by_pred = df.sort_values("p", ascending=False)["y"].to_numpy()
    by_true = df.sort_values("y", ascending=False)["y"].to_numpy()
    assert norm_gini(y, p) == pytest.approx(paper_gini(by_pred) / paper_gini(by_true), abs=1e-12)


def test_norm_gini_rejects_negative_labels():
    with pytest.raises(ValueError, match="non-negative"):
        norm_gini([-1, 2], [1, 2])


# ---------------------------------------------------------------------------------
# Spearman
# ---------------------------------------------------------------------------------
@pytest.mark.parametrize("seed", range(4))
def test_spearman_matches_bruteforce_with_ties(seed):
    rng = np.random.default_rng(seed)
    for _ in range(20):
        n = int(rng.integers(3, 80))
        y, p = tied_data(rng, n, int(rng.integers(2, 6)), int(rng.integers(2, 6)))
        if np.all(y == y[0]) or np.all(p == p[0]):
            assert math.isnan(spearman(y, p))
        else:
            assert spearman(y, p) == pytest.approx(ref_spearman(y, p), abs=1e-12)


def test_spearman_by_hand_and_degenerate():
    assert spearman([1, 2, 3], [10, 100, 1000]) == pytest.approx(1.0)
    assert spearman([1, 2, 3], [3, 2, 1]) == pytest.approx(-1.0)
    assert math.isnan(spearman([1, 2, 3], [4, 4, 4]))
    assert math.isnan(spearman([1], [2]))


# ---------------------------------------------------------------------------------
# AUC / logloss
# ---------------------------------------------------------------------------------
@pytest.mark.parametrize("seed", range(4))
def test_auc_matches_bruteforce_and_sklearn(seed):
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(seed)
    for _ in range(20):
        n = int(rng.integers(2, 80))
        y = (rng.random(n) < rng.random()).astype(float)
        p = rng.integers(0, int(rng.integers(1, 6)), n) / 5.0
        if y.min() == y.max():
            assert math.isnan(auc(y, p))
            continue
        assert auc(y, p) == pytest.approx(ref_auc(y, p), abs=1e-12)
        assert auc(y, p) == pytest.approx(roc_auc_score(y, p), abs=1e-12)


def test_auc_by_hand():
    assert auc([0, 0, 1, 1], [0.1, 0.2, 0.3, 0.4]) == 1.0
    assert auc([0, 1], [0.5, 0.5]) == 0.5
    assert auc([1, 0, 1, 0], [0.9, 0.8, 0.1, 0.2]) == pytest.approx(0.5)


def test_logloss_by_hand_and_against_sklearn():
    from sklearn.metrics import log_loss

    assert logloss([1, 0], [0.5, 0.5]) == pytest.approx(math.log(2))
    assert logloss([1], [0.0]) == pytest.approx(-math.log(1e-15))   # clipped, finite
    rng = np.random.default_rng(1)
    y = (rng.random(300) < 0.4).astype(float)
    p = rng.random(300)
    assert logloss(y, p) == pytest.approx(log_loss(y, p, labels=[0, 1]), rel=1e-12)


def test_classification_metrics_keys_and_values():
    m = classification_metrics([0, 1, 1, 0], [0.2, 0.8, 0.6, 0.4])
    assert list(m) == CLASSIFICATION_METRICS
    assert m["AUC"] == 1.0
    assert m["Brier"] == pytest.approx((0.04 + 0.04 + 0.16 + 0.16) / 4)
    assert m["mean p"] == pytest.approx(0.5) and m["positive rate"] == 0.5


# ---------------------------------------------------------------------------------
# regression bundle
# ---------------------------------------------------------------------------------
def test_regression_metrics_plus_variants_are_positive_subset():
    rng = np.random.default_rng(4)
    y = np.where(rng.random(500) < 0.6, 0.0, rng.integers(1, 20, 500).astype(float))
    p = y + rng.integers(0, 5, 500)
    m = regression_metrics(y, p)
    assert list(m) == REGRESSION_METRICS
    pos = y > 0
    assert m["MAE"] == pytest.approx(mae(y, p))
    assert m["XAUC"] == pytest.approx(xauc(y, p))
    assert m["Norm-Gini"] == pytest.approx(norm_gini(y, p))
    assert m["Spearman"] == pytest.approx(spearman(y, p))
    assert m["MAE(+)"] == pytest.approx(mae(y[pos], p[pos]))
    assert m["XAUC(+)"] == pytest.approx(xauc(y[pos], p[pos]))
    assert m["Norm-Gini(+)"] == pytest.approx(norm_gini(y[pos], p[pos]))
    assert m["Spearman(+)"] == pytest.approx(spearman(y[pos], p[pos]))


def test_regression_metrics_degenerate_inputs_give_nan_not_errors():
    m = regression_metrics([0.0, 0.0, 0.0], [1.0, 2.0, 3.0])   # no positives, no label pairs
    assert m["MAE"] == pytest.approx(2.0)
    assert all(math.isnan(m[k]) for k in ["XAUC", "Norm-Gini", "Spearman", "MAE(+)", "XAUC(+)"])
    neg = regression_metrics([-1.0, 2.0, 3.0], [0.0, 1.0, 2.0])
    assert math.isnan(neg["Norm-Gini"]) and neg["XAUC"] == 1.0


# ---------------------------------------------------------------------------------
# input validation
# ---------------------------------------------------------------------------------
@pytest.mark.parametrize("fn", [mae, xauc, norm_gini, spearman, regression_metrics])
def test_regression_input_validation(fn):
    with pytest.raises(ValueError, match="length mismatch"):
        fn([1.0, 2.0], [1.0])
    with pytest.raises(ValueError, match="NaN"):
        fn([1.0, np.nan], [1.0, 2.0])
    with pytest.raises(ValueError, match="empty"):
        fn([], [])
    with pytest.raises(ValueError, match="1-D"):
        fn(np.ones((2, 2)), np.ones((2, 2)))


def test_single_column_2d_is_accepted():
    assert mae(np.array([[1.0], [2.0]]), [1.0, 4.0]) == pytest.approx(1.0)


@pytest.mark.parametrize("fn", [logloss, classification_metrics])
def test_classification_input_validation(fn):
    with pytest.raises(ValueError, match="only 0 and 1"):
        fn([0, 2], [0.1, 0.2])
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        fn([0, 1], [0.1, 1.2])
    with pytest.raises(ValueError, match="length mismatch"):
        fn([0, 1], [0.1])
    with pytest.raises(ValueError, match="only 0 and 1"):
        auc([0, 0.5], [0.1, 0.2])


# ---------------------------------------------------------------------------------
# ranking metrics over groups: expected_rank_weights, NDCG, GAUC
# ---------------------------------------------------------------------------------
from quantrec.evaluation.metrics import (  # noqa: E402
    expected_rank_weights, gauc, group_codes, ndcg, per_group_auc, per_group_ndcg,
)


def ref_tie_expectations(score, ks, dcg_k=None):
    """Brute force over every order of the tied scores of ONE group: mean top-k
    membership and mean discount per row."""
    score = np.asarray(score, float)
    n = score.size
    groups = [np.flatnonzero(score == v) for v in sorted(set(score), reverse=True)]
    top = np.zeros((n, len(ks)))
    disc = np.zeros(n)
    count = 0
    for perms in itertools.product(*[itertools.permutations(g) for g in groups]):
        order = [i for perm in perms for i in perm]
        count += 1
        for rank, i in enumerate(order):
            for t, k in enumerate(ks):
                top[i, t] += rank < k
            if dcg_k is None or rank < dcg_k:
                disc[i] += 1.0 / math.log2(rank + 2)
    return top / count, disc / count


@pytest.mark.parametrize("seed", range(6))
def test_expected_rank_weights_match_enumeration_of_tie_orders(seed):
    rng = np.random.default_rng(seed)
    score = rng.integers(0, 3, size=7).astype(float)
    top, disc = expected_rank_weights(score, ks=(1, 3, 5), dcg_k=4)
    ref_top, ref_disc = ref_tie_expectations(score, (1, 3, 5), dcg_k=4)
    np.testing.assert_allclose(top, ref_top, atol=1e-12)
    np.testing.assert_allclose(disc, ref_disc, atol=1e-12)
    # each k is filled exactly (k rows in expectation, or all when the group is smaller)
    np.testing.assert_allclose(top.sum(0), [1, 3, 5])


def test_expected_rank_weights_per_group_and_a_constant_score_gets_no_order_for_free():
    # positives listed first (as the task tables do): a stable sort would rank them on top
    score = np.zeros(8)
    groups = np.array(["a"] * 4 + ["b"] * 4)
    top, _ = expected_rank_weights(score, groups, ks=(1,))
    np.testing.assert_allclose(top[:, 0], 0.25)
    gain = np.array([10.0, 0, 0, 0, 5, 0, 0, 0])
    captured = np.bincount(group_codes(groups)[0], weights=top[:, 0] * gain)
    np.testing.assert_allclose(captured, [2.5, 1.25])   # expected, not the 10 / 5 of a lucky sort


def test_ndcg_matches_sklearn_with_ties_and_cutoff():
    from sklearn.metrics import ndcg_score

    rng = np.random.default_rng(3)
    for _ in range(20):
        gain = rng.integers(0, 5, size=15).astype(float)
        score = rng.integers(0, 4, size=15).astype(float)
        if gain.sum() == 0:
            continue
        for k in (None, 1, 5):
            assert ndcg(gain, score, k=k) == pytest.approx(ndcg_score(gain[None], score[None], k=k), abs=1e-12)


def test_per_group_ndcg_by_hand_and_undefined_groups():
    gain = np.array([0.0, 3.0, 0.0, 0.0])
    score = np.array([2.0, 1.0, 5.0, 1.0])
    labels, values = per_group_ndcg(gain, score, ["x", "x", "y", "y"])
    assert list(labels) == ["x", "y"]
    assert values[0] == pytest.approx(1.0 / math.log2(3))   # the only gain ranked second
    assert math.isnan(values[1])                              # no gain: ideal DCG 0
    assert ndcg(gain, score, ["x", "x", "y", "y"]) == pytest.approx(values[0])
    with pytest.raises(ValueError, match="non-negative"):
        ndcg([-1.0, 1.0], [0.0, 1.0])


def test_gauc_is_the_row_weighted_mean_of_per_group_auc():
    rng = np.random.default_rng(5)
    y = (rng.random(60) < 0.4).astype(float)
    s = rng.integers(0, 6, size=60).astype(float)
    g = rng.integers(0, 5, size=60)
    labels, values, n = per_group_auc(y, s, g)
    num = den = 0.0
    for lab, v, cnt in zip(labels, values, n):
        m = g == lab
        ref = auc(y[m], s[m])
        assert (math.isnan(ref) and math.isnan(v)) or v == pytest.approx(ref)
        assert cnt == m.sum()
        if not math.isnan(ref):
            num, den = num + ref * cnt, den + cnt
    assert gauc(y, s, g) == pytest.approx(num / den)


def test_gauc_undefined_without_mixed_groups_and_input_errors():
    assert math.isnan(gauc([1, 1, 0, 0], [0.1, 0.2, 0.3, 0.4], [1, 1, 2, 2]))
    with pytest.raises(ValueError, match="0 and 1"):
        gauc([2, 0], [0.1, 0.2], [1, 1])
    with pytest.raises(ValueError, match="length mismatch"):
        per_group_auc([1, 0], [0.1, 0.2], [1, 1, 1])
    with pytest.raises(ValueError, match="cannot be ordered"):
        group_codes(np.array(["a", None], dtype=object))
