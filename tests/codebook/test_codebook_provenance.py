"""Codebook provenance: dataset fingerprint, reference sketch, saved with the codebook."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from quantrec.codebook import load_codebook
from quantrec.codebook.provenance import (FORMAT, CodebookProvenance, FingerprintMismatch, ProvenanceError,
                                          build_provenance, codebook_label_stats, dataset_fingerprint,
                                          price_point_shares, top_price_points)
from quantrec.codebook.target import TargetCodebook
from quantrec.data import schema as S
from quantrec.data.spec import DatasetSpec

SPEC = DatasetSpec.from_dict({"name": "shop_a", "columns": {"user_id": "u", "item_id": "i", "ts": "t",
                                                            "quantity": "q", "unit_price": "p"}})


def lines_frame(n_days: int = 20, seed: int = 0, start: str = "2011-01-03") -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    n = n_days * 50
    ts = pd.Timestamp(start) + pd.to_timedelta(np.sort(rng.integers(0, n_days * 86400, n)), unit="s")
    q = rng.choice([1.0, 2.0, 3.0, 6.0, 12.0], n)
    p = rng.choice([0.85, 1.25, 2.95, 4.95, 9.95], n)
    return pd.DataFrame({S.USER: pd.array(rng.integers(1, 40, n).astype(str), dtype="string"),
                         S.ITEM: pd.array(rng.integers(1, 90, n).astype(str), dtype="string"),
                         S.TS: ts, S.DAY: ts.normalize(), S.QUANTITY: q, S.UNIT_PRICE: p, S.VALUE: q * p})


@pytest.fixture(scope="module")
def fitted():
    rng = np.random.default_rng(1)
    y = np.round(np.concatenate([rng.choice([1.25, 2.95, 9.9, 15.0, 17.7], 4000),
                                 rng.lognormal(2.5, 1.2, 3000)]), 2)
    price = rng.uniform(0.5, 5.0, y.size)
    qty = rng.integers(1, 24, y.size).astype(float)
    book = TargetCodebook.fit(y, layers=2, size=8, finish_below=5e-3)
    prov = build_provenance(y, book, ("2010-01-01", "2011-01-01"), "shop_a:0123456789abcdef",
                            unit_price=price, quantity=qty, n_quantiles=101, top_k=5)
    return y, book, prov


# ---- fingerprint ------------------------------------------------------------------------
def test_fingerprint_is_stable_for_the_same_dataset_on_a_later_day():
    lines = lines_frame()
    fp = dataset_fingerprint(SPEC, lines)
    assert fp.startswith("shop_a:") and len(fp.split(":")[1]) == 16
    # a later run sees more days appended: same dataset, same fingerprint
    assert dataset_fingerprint(SPEC, lines[lines[S.DAY] < "2011-01-10"]) == fp
    # the events table read back from parquet: object strings, shuffled rows
    events = lines.sample(frac=1.0, random_state=3).astype({S.USER: object, S.ITEM: object})
    assert dataset_fingerprint(SPEC, events) == fp


def test_fingerprint_differs_for_another_dataset():
    lines = lines_frame()
    fp = dataset_fingerprint(SPEC, lines)
    other_spec = DatasetSpec.from_dict({**SPEC.to_dict(), "name": "shop_b"})
    assert dataset_fingerprint(other_spec, lines) != fp
    assert dataset_fingerprint(SPEC, lines_frame(seed=7)) != fp          # same spec, another shop's data
    changed = lines.copy()
    first = changed[S.DAY] == changed[S.DAY].min()
    changed.loc[first.idxmax(), S.UNIT_PRICE] += 0.01                      # one first-day line differs
    assert dataset_fingerprint(SPEC, changed) != fp


def test_fingerprint_bad_input_names_the_problem():
    with pytest.raises(ProvenanceError, match="no lines"):
        dataset_fingerprint(SPEC, lines_frame().iloc[:0])
    with pytest.raises(ProvenanceError, match="unit_price"):
        dataset_fingerprint(SPEC, lines_frame().drop(columns=[S.UNIT_PRICE]))


# ---- sketch ------------------------------------------------------------------------------
def test_sketch_matches_the_training_labels(fitted):
    y, book, prov = fitted
    sk = prov.sketch
    assert sk.n == y.size and len(sk.quantiles["gmv"]) == 101
    np.testing.assert_array_equal(sk.quantiles["gmv"], np.quantile(y, np.linspace(0, 1, 101), method="inverted_cdf"))
    assert set(sk.quantiles) == {"gmv", "unit_price", "quantity"}
    assert sum(sk.log_gmv_counts) == y.size and len(sk.log_gmv_edges) == len(sk.log_gmv_counts) + 1
    ref = sk.reference_frame()
    np.testing.assert_allclose(ref["log_gmv"], np.log1p(ref["gmv"]))
    # layer-1 occupancy = brute-force encode of every label
    np.testing.assert_array_equal(sk.stats["code_counts"], np.bincount(book.encode(y)[:, 0], minlength=book.size))
    err = np.abs(y - book.decode(book.encode(y)))
    assert sk.stats["recon_mae"] == pytest.approx(err.mean(), rel=1e-9)
    within = y <= book.transform.clip
    assert sk.stats["recon_mae_within_clip"] == pytest.approx(err[within].mean(), rel=1e-9)
    assert sk.stats["share_above_clip"] == pytest.approx(np.mean(y > book.transform.clip))
    assert sk.stats["share_beyond_last_centroid"] == pytest.approx(np.mean(y > np.max(book.centroids[0])))
    # top price points: the most frequent values, with their shares
    vals, counts = np.unique(y, return_counts=True)
    top = vals[np.argsort(-counts, kind="stable")[:5]]
    assert set(sk.top_values) == set(top)
    np.testing.assert_allclose(sk.top_shares, price_point_shares(y, sk.top_values))


def test_price_points_match_after_rounding():
    y = np.array([3 * 0.85, 2 * 1.275, 2.55, 7.0])    # three spellings of 2.55
    v, s = top_price_points(y, 1)
    assert v[0] == pytest.approx(2.55) and s[0] == pytest.approx(0.75)
    np.testing.assert_allclose(price_point_shares(y, [2.55, 9.0]), [0.75, 0.0])


def test_label_stats_need_an_rq_target_codebook(fitted):
    y, book, _ = fitted
    with pytest.raises(ProvenanceError, match="TargetCodebook"):
        codebook_label_stats(y, book.codebook)


def test_build_provenance_rejects_bad_input(fitted):
    y, book, _ = fitted
    with pytest.raises(ProvenanceError, match="start < end"):
        build_provenance(y, book, ("2011-01-01", "2010-01-01"), "fp")
    with pytest.raises(ProvenanceError, match="not a date"):
        build_provenance(y, book, ("yesterday", "2011-01-01"), "fp")
    with pytest.raises(ProvenanceError, match="data_fingerprint"):
        build_provenance(y, book, ("2010-01-01", "2011-01-01"), "")
    with pytest.raises(ProvenanceError, match="same lines"):
        build_provenance(y, book, ("2010-01-01", "2011-01-01"), "fp", unit_price=y[:10])


# ---- saved with the codebook ------------------------------------------------------------
def test_provenance_round_trips_in_the_codebook_json(fitted, tmp_path):
    y, book, prov = fitted
    path = str(tmp_path / "cb.json")
    book.with_provenance(prov).save(path)
    loaded = load_codebook(path)
    assert isinstance(loaded, TargetCodebook) and loaded.provenance is not None
    assert loaded.provenance.to_dict() == prov.to_dict()
    assert loaded.digest() == book.digest()
    np.testing.assert_array_equal(loaded.encode(y), book.encode(y))
    assert json.load(open(path))["provenance"]["format"] == FORMAT


def test_codebook_json_without_provenance_loads_and_saves_as_before(fitted, tmp_path):
    _, book, _ = fitted
    old = {"kind": "TargetCodebook", "transform": book.transform.to_dict(), "codebook": book.codebook.to_dict()}
    path = tmp_path / "old.json"
    path.write_text(json.dumps(old))
    loaded = load_codebook(str(path))
    assert loaded.provenance is None
    assert loaded.to_dict() == old       # no "provenance" key appears


def test_refit_parameters_reproduce_the_codebook(fitted):
    y, book, prov = fitted
    assert prov.refit == {"transform": "log1p", "clip_quantile": 0.999, "target_max": 6.0, "method": "rq",
                          "layers": 2, "size": 8, "finish_below": 5e-3}
    assert TargetCodebook.fit(y, **prov.refit).digest() == book.digest()


def test_provenance_of_another_codebook_is_refused(fitted, tmp_path):
    y, book, prov = fitted
    other = TargetCodebook.fit(y, layers=2, size=6, finish_below=5e-3)
    with pytest.raises(ProvenanceError, match="another codebook"):
        other.with_provenance(prov)
    # a file whose centroids were edited after the provenance was attached
    d = book.with_provenance(prov).to_dict()
    d["codebook"]["centroids"][0][0] += 0.001
    path = tmp_path / "edited.json"
    path.write_text(json.dumps(d))
    with pytest.raises(ProvenanceError, match="does not describe"):
        load_codebook(str(path))


def test_malformed_provenance_names_the_key(fitted):
    _, _, prov = fitted
    d = prov.to_dict()
    del d["sketch"]["stats"]
    with pytest.raises(ProvenanceError, match="stats"):
        CodebookProvenance.from_dict(d)
    d = prov.to_dict()
    d.pop("data_fingerprint")
    with pytest.raises(ProvenanceError, match="data_fingerprint"):
        CodebookProvenance.from_dict(d)
    with pytest.raises(ProvenanceError, match="format"):
        CodebookProvenance.from_dict({**prov.to_dict(), "format": "v0"})


def test_fingerprint_check(fitted):
    _, _, prov = fitted
    prov.check_fingerprint("shop_a:0123456789abcdef")
    with pytest.raises(FingerprintMismatch, match="another dataset"):
        prov.check_fingerprint("shop_b:0123456789abcdef")


def test_real_data_fingerprint_is_the_same_for_every_run_date(real_lines, default_spec):
    fp = dataset_fingerprint(default_spec, real_lines)
    assert fp.startswith("online_retail_ii:")
    for cut in ("2010-06-01", "2011-12-01"):
        assert dataset_fingerprint(default_spec, real_lines[real_lines[S.DAY] < cut]) == fp
