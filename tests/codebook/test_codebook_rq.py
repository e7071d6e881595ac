"""RQCodebook: properties on the training data, edge cases, persistence."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from quantrec.codebook import RQCodebook

# Price-point-like labels: popular values with heavy ties plus a continuous spread.
PRICES = [0.85, 1.25, 1.65, 2.1, 2.95, 4.95, 9.9, 12.5, 15.0, 19.8, 99.0]
labels = st.lists(st.one_of(st.sampled_from(PRICES),
                            st.floats(0.0, 5000.0, allow_nan=False, allow_infinity=False)),
                  min_size=1, max_size=150)
SMALL = dict(layers=3, size=6)


@settings(max_examples=40, deadline=None)
@given(labels, st.sampled_from(["kmeans", "kmedians"]), st.sampled_from(["kmeans", "kmedians"]))
def test_codes_in_range_and_errors_bounded_and_non_increasing(ys, first, last):
    y = np.array(ys)
    cb = RQCodebook.fit(y, first_layer=first, last_layer=last, **SMALL)
    codes = cb.encode(y)
    assert codes.dtype == np.int64 and codes.shape == (len(y), 3)
    assert codes.min() >= 0 and codes.max() < cb.size
    err = np.abs(y[:, None] - cb.decode_partial(codes))          # (n, L) after each layer
    # Never increasing with more layers, for every single label (0 is always a candidate).
    assert np.all(np.diff(err, axis=1) <= 1e-9 * (1 + y[:, None]))
    # Never above the last layer's bound recorded at fit time.
    assert np.all(err[:, -1] <= cb.max_abs_error[-1] + 1e-9 * (1 + y))
    np.testing.assert_allclose(cb.decode(codes), cb.decode_partial(codes)[:, -1], rtol=0, atol=1e-9)


@settings(max_examples=25, deadline=None)
@given(labels)
def test_last_layer_bound_is_geometric(ys):
    """The recorded bound is no larger than half the widest gap between adjacent
    last-layer centroids (or the edge distance, or finish_below): nearest centroid."""
    y = np.array(ys)
    cb = RQCodebook.fit(y, **SMALL)
    codes = cb.encode(y)
    r_before = y - (cb.decode_partial(codes)[:, -2])
    c = cb.centroids[-1]
    half_gap = 0.5 * np.max(np.diff(c), initial=0.0)
    edge = max(0.0, c[0] - r_before.min(), r_before.max() - c[-1])
    assert cb.max_abs_error[-1] <= max(half_gap, edge, cb.finish_below) + 1e-9


@settings(max_examples=25, deadline=None)
@given(labels)
def test_more_layers_never_worse_on_training_data(ys):
    y = np.array(ys)
    # Within one codebook every further layer keeps or lowers each label's error
    # (each layer after the first can pick its exact-zero code).
    cb = RQCodebook.fit(y, layers=3, size=6)
    partial_err = np.abs(y[:, None] - cb.decode_partial(cb.encode(y)))  # (n, L)
    assert np.all(np.diff(partial_err, axis=1) <= 1e-9)
    # Across separate fits the mean error does not grow with L. (Per label it may:
    # with a K-medians last layer, layer 2 of an L=3 fit is a different clustering
    # from the last layer of an L=2 fit.)
    maes = [np.mean(np.abs(y - c.decode(c.encode(y))))
            for c in (RQCodebook.fit(y, layers=L, size=6) for L in (1, 2, 3))]
    assert maes[1] <= maes[0] + 1e-9 and maes[2] <= maes[1] + 1e-9


@settings(max_examples=25, deadline=None)
@given(labels, st.lists(st.floats(0.0, 1e4, allow_nan=False), min_size=2, max_size=60))
def test_deterministic_and_monotone_in_first_layer(ys, probe):
    y = np.array(ys)
    a, b = RQCodebook.fit(y, **SMALL), RQCodebook.fit(y, **SMALL)
    for ca, cb_ in zip(a.centroids, b.centroids):
        np.testing.assert_array_equal(ca, cb_)
    p = np.sort(np.array(probe))
    codes = a.encode(p)
    np.testing.assert_array_equal(codes, a.encode(p))
    np.testing.assert_array_equal(codes, b.encode(p))
    assert np.all(np.diff(codes[:, 0]) >= 0)


@settings(max_examples=20, deadline=None)
@given(labels, st.sampled_from(["kmeans", "kmedians"]))
def test_save_load_round_trip_exact(tmp_path_factory, ys, first):
    y = np.array(ys)
    cb = RQCodebook.fit(y, first_layer=first, **SMALL)
    path = str(tmp_path_factory.mktemp("cb") / "codebook.json")
    cb.save(path)
    back = RQCodebook.load(path)
    assert back.config == cb.config and back.layers == cb.layers and back.size == cb.size
    for c0, c1 in zip(cb.centroids, back.centroids):
        assert c0.tobytes() == c1.tobytes()
    np.testing.assert_array_equal(back.encode(y), cb.encode(y))
    assert back.zero_code == cb.zero_code and back.max_abs_error == cb.max_abs_error


def test_save_is_plain_json_through_fsspec():
    cb = RQCodebook.fit(np.array(PRICES * 3), layers=2, size=4)
    cb.save("memory://quantrec-test/cb.json")
    import fsspec
    with fsspec.open("memory://quantrec-test/cb.json", "r") as f:
        d = json.load(f)
    assert d["kind"] == "RQCodebook" and len(d["centroids"]) == 2
    assert RQCodebook.load("memory://quantrec-test/cb.json").centroids[1].tolist() == d["centroids"][1]


def test_zero_code_and_finishing():
    # K-medians puts centroids on price points: those lines are exact after layer 1,
    # so layers 2..L are their zero codes and the mask says "finished".
    y = np.repeat(np.array([1.25, 2.95, 9.9, 15.0]), 50)
    y = np.concatenate([y, np.linspace(0.5, 30.0, 100)])
    cb = RQCodebook.fit(y, layers=3, size=8, first_layer="kmedians")
    assert cb.zero_code[0] == -1            # no label below finish_below
    assert all(cb.centroids[l][cb.zero_code[l]] == 0.0 for l in (1, 2))
    codes = cb.encode(np.array([2.95, 15.0]))
    assert np.all(codes[:, 1:] == np.array(cb.zero_code[1:]))
    mask = cb.finished_mask(codes)
    assert mask.tolist() == [[False, True, True], [False, True, True]]
    np.testing.assert_array_equal(cb.decode(codes), [2.95, 15.0])


def test_zero_inflated_labels_get_a_first_layer_zero_code():
    rng = np.random.default_rng(0)
    y = np.concatenate([np.zeros(500), rng.lognormal(3, 1, 500)])
    cb = RQCodebook.fit(y, layers=2, size=16)
    assert cb.zero_code[0] >= 0 and cb.centroids[0][cb.zero_code[0]] == 0.0
    codes = cb.encode(np.array([0.0, 0.001]))
    assert cb.finished_mask(codes).all()
    np.testing.assert_array_equal(cb.decode(codes), [0.0, 0.0])


def test_finish_below_forces_zero_code_even_if_a_small_centroid_is_nearer():
    y = np.array([10.0, 10.004, 20.0, 20.3, 20.31, 30.0])
    cb = RQCodebook.fit(y, layers=2, size=3, finish_below=0.01)
    codes = cb.encode(np.array([10.004]))
    assert codes[0, 1] == cb.zero_code[1]


@pytest.mark.parametrize("bad,msg", [
    ([], "empty"),
    ([1.0, np.nan], "NaN/inf"),
    ([1.0, np.inf], "NaN/inf"),
    ([1.0, -2.0], "negative"),
    ([[1.0, 2.0], [3.0, 4.0]], "1-D"),
])
def test_bad_labels_raise_clear_errors(bad, msg):
    with pytest.raises(ValueError, match=msg):
        RQCodebook.fit(np.array(bad, dtype=float), **SMALL)


def test_encode_validates_too():
    cb = RQCodebook.fit(np.array(PRICES), **SMALL)
    with pytest.raises(ValueError, match="negative"):
        cb.encode(np.array([-1.0]))
    with pytest.raises(ValueError, match=r"\[0, 6\)"):
        cb.decode(np.array([[0, 0, 6]]))
    with pytest.raises(ValueError, match="shape"):
        cb.decode(np.array([[0, 0]]))


@pytest.mark.parametrize("kw,msg", [({"layers": 0}, "layers"), ({"size": 1}, "size"),
                                    ({"first_layer": "kmodes"}, "first_layer"),
                                    ({"last_layer": "kmodes"}, "last_layer"),
                                    ({"finish_below": -1.0}, "finish_below")])
def test_bad_parameters(kw, msg):
    with pytest.raises(ValueError, match=msg):
        RQCodebook.fit(np.array(PRICES), **{**SMALL, **kw})


def test_negative_labels_allowed_by_flag():
    y = np.array([-5.0, -1.0, 0.5, 2.0, 7.0, 7.0, 11.0])
    cb = RQCodebook.fit(y, layers=2, size=4, allow_negative=True)
    err = np.abs(y - cb.decode(cb.encode(y)))
    assert err.max() <= cb.max_abs_error[-1] + 1e-12
    assert RQCodebook.from_dict(cb.to_dict()).allow_negative


def test_fewer_distinct_values_than_size_is_exact():
    y = np.array([3.0, 3.0, 7.5, 12.0, 7.5])
    cb = RQCodebook.fit(y, layers=3, size=48)
    assert all(len(c) == 48 for c in cb.centroids)
    codes = cb.encode(y)
    np.testing.assert_array_equal(cb.decode(codes), y)
    assert cb.finished_mask(codes)[:, 1:].all()


@pytest.mark.parametrize("first", ["kmeans", "kmedians"])
def test_constant_label(first):
    y = np.full(1000, 4.2)
    cb = RQCodebook.fit(y, first_layer=first, **SMALL)
    codes = cb.encode(y)
    assert np.all(codes == codes[0])
    np.testing.assert_array_equal(cb.decode(codes), y)
    # An unseen value still encodes to something sensible (nearest centroids).
    assert cb.decode(cb.encode(np.array([5.0])))[0] == pytest.approx(4.2)


def test_one_extreme_outlier():
    rng = np.random.default_rng(1)
    y = np.concatenate([np.round(rng.lognormal(2.5, 0.8, 5000), 2), [168_469.6]])
    cb = RQCodebook.fit(y, layers=3, size=16)
    rec = cb.decode(cb.encode(y))
    # The outlier gets its own layer-1 centroid instead of dragging a shared one.
    assert rec[-1] == pytest.approx(168_469.6, abs=1e-6)
    assert np.mean(np.abs(y[:-1] - rec[:-1])) < 0.05
    assert cb.centroids[0][-2] < 1000


def test_from_dict_rejects_other_artifacts():
    with pytest.raises(ValueError, match="not an RQCodebook"):
        RQCodebook.from_dict({"format": "x", "kind": "RQCodebook", "centroids": [[0.0, 1.0]], "config": {}})
    with pytest.raises(ValueError, match="sorted"):
        RQCodebook([np.array([2.0, 1.0])], {})


def test_last_layer_kmedians_lowers_mae_against_all_kmeans():
    rng = np.random.default_rng(8)
    y = np.round(rng.choice(PRICES, 5000) * rng.choice([1, 2, 3, 6, 12, 24], 5000), 2)
    y = np.concatenate([y, np.round(rng.lognormal(3, 1.5, 2000), 2)])
    maes = {last: np.mean(np.abs(y - (cb := RQCodebook.fit(y, layers=3, size=8, last_layer=last)).decode(cb.encode(y))))
            for last in ("kmeans", "kmedians")}
    assert maes["kmedians"] < maes["kmeans"]
