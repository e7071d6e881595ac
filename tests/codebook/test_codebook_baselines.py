"""Flat K-means and GR dynamic-quantile baselines; the factory and the loader."""

from __future__ import annotations

import numpy as np
import pytest

from quantrec.codebook import (DynamicQuantileCodebook, RQCodebook, fit_codebook,
                               load_codebook)


@pytest.fixture(scope="module")
def gmv_like() -> np.ndarray:
    rng = np.random.default_rng(0)
    prices = np.array([0.42, 0.85, 1.25, 1.65, 2.1, 2.95, 4.95, 9.95])
    qty = rng.choice([1, 2, 3, 4, 6, 12, 24, 48, 96], size=20_000, p=[.3, .15, .1, .06, .1, .2, .05, .03, .01])
    y = np.round(rng.choice(prices, size=20_000) * qty, 2)
    y[:3] = [1500.0, 4100.5, 38970.0]          # long tail
    return y


def test_flat_kmeans_has_the_same_total_vocabulary(gmv_like):
    cb = fit_codebook(gmv_like, "kmeans", layers=3, size=8)
    assert isinstance(cb, RQCodebook)
    assert (cb.layers, cb.size) == (1, 24)
    assert cb.config["method"] == "kmeans" and cb.config["vocab_of"] == [3, 8]
    assert cb.encode(gmv_like).shape == (len(gmv_like), 1)


def test_rq_beats_flat_kmeans_with_same_vocabulary(gmv_like):
    rq = fit_codebook(gmv_like, "rq", layers=3, size=8)
    flat = fit_codebook(gmv_like, "kmeans", layers=3, size=8)
    mae = [np.mean(np.abs(gmv_like - cb.decode(cb.encode(gmv_like)))) for cb in (rq, flat)]
    assert mae[0] < mae[1]


def test_dynamic_quantile_vocabulary_follows_algorithm_1():
    # Hand-run of GR Algorithm 1 with q fixed at 0.5 (q_start = q_end = 0.5) on
    # [1, 2, 3, 4]: z1 = 2 (lower median) -> [1, 0, 1, 2]; z2 = 1 -> [0, 0, 0, 1];
    # z3 = 0 -> stop. Vocabulary {2, 1}.
    cb = DynamicQuantileCodebook.fit(np.array([1.0, 2.0, 3.0, 4.0]), q_start=0.5, q_end=0.5, decay=1.0)
    assert cb.vocab.tolist() == [2.0, 1.0]
    codes = cb.encode(np.array([4.0, 3.0, 1.0]))
    # 4 = 2 + 2, 3 = 2 + 1, 1 = 1; ids: 2.0 -> 3, 1.0 -> 4.
    S, E, P = cb.SOS, cb.EOS, cb.PAD
    assert codes.tolist() == [[S, 3, 3, E], [S, 3, 4, E], [S, 4, E, P]]
    np.testing.assert_array_equal(cb.decode(codes), [4.0, 3.0, 1.0])


def test_dynamic_quantile_sequences_are_greedy_and_correct(gmv_like):
    cb = fit_codebook(gmv_like, "dynamic_quantile")
    assert np.all(np.diff(cb.vocab) < 0)
    codes = cb.encode(gmv_like)
    assert codes.shape == (len(gmv_like), cb.max_len + 2) and np.all(codes[:, 0] == cb.SOS)
    values = cb.token_values[codes[:, 1:]]
    assert np.all(np.diff(values, axis=1)[values[:, 1:] > 0] <= 0)      # non-increasing tokens
    # Exactly one EOS per row, then only PAD.
    eos = codes == cb.EOS
    assert np.all(eos.sum(axis=1) == 1)
    after = np.cumsum(eos, axis=1) > 0
    assert np.all((codes == cb.PAD) == (after & ~eos))
    lengths = cb.lengths(codes)
    rec = cb.decode(codes)
    rem = gmv_like - rec
    # Greedy encoding ends for one of three reasons, and for no other: the remainder is
    # within GR's bound, no vocabulary value fits into it, or the length cap is reached.
    within = np.abs(rem) <= cb.stop_rel * gmv_like + 1e-9
    nothing_fits = rem < cb.vocab.min()
    capped = lengths == cb.max_len
    assert np.all(within | nothing_fits | capped)
    assert np.all(rem >= -1e-9)  # greedy never overshoots
    assert within.mean() > 0.9
    assert cb.finished_mask(codes).sum(axis=1).tolist() == (cb.max_len + 1 - lengths).tolist()


def test_dynamic_quantile_rejects_bad_parameters():
    with pytest.raises(ValueError, match="q_end"):
        DynamicQuantileCodebook.fit(np.array([1.0, 2.0]), q_start=0.5, q_end=0.9)
    with pytest.raises(ValueError, match="positive"):
        DynamicQuantileCodebook.fit(np.zeros(5))


@pytest.mark.parametrize("method", ["rq", "kmeans", "dynamic_quantile"])
def test_every_method_round_trips_through_load_codebook(tmp_path, gmv_like, method):
    cb = fit_codebook(gmv_like, method, layers=2, size=8, first_layer="kmedians")
    path = str(tmp_path / f"{method}.json")
    cb.save(path)
    back = load_codebook(path)
    assert type(back) is type(cb) and back.config == cb.config
    np.testing.assert_array_equal(back.encode(gmv_like), cb.encode(gmv_like))
    assert back.decode(back.encode(gmv_like)).tobytes() == cb.decode(cb.encode(gmv_like)).tobytes()


def test_factory_and_loader_errors(tmp_path):
    with pytest.raises(ValueError, match="unknown codebook method"):
        fit_codebook(np.array([1.0, 2.0]), "pq")
    p = tmp_path / "x.json"
    p.write_text('{"kind": "Nope"}')
    with pytest.raises(ValueError, match="unknown codebook kind"):
        load_codebook(str(p))


def test_dynamic_quantile_vocabulary_has_no_rounding_dust():
    """Sums of decimal prices leave ~1e-16 residues when subtracted; none becomes a token."""
    rng = np.random.default_rng(0)
    prices = np.array([0.42, 0.85, 1.25, 1.65, 2.1, 2.95, 3.75, 4.95, 12.75])
    y = np.round(prices[rng.integers(0, len(prices), 5000)] * rng.integers(1, 48, 5000), 2)
    book = DynamicQuantileCodebook.fit(y)
    assert book.vocab.min() > 1e-6 * y.max()
