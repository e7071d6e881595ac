"""Codebook health: occupancy shift, dead / overloaded codes, price points, rebuild gain."""

from __future__ import annotations

import numpy as np
import pytest

from monitoring.config import HealthConfig
from monitoring.health import candidate_gain, codebook_health, occupancy_js, occupancy_psi
from quantrec.codebook.target import TargetCodebook
from quantrec.data import schema as S

from monitoring_synth import day


def window(lines, start: int, end: int) -> np.ndarray:
    m = (lines[S.DAY] >= day(start)) & (lines[S.DAY] < day(end))
    return lines.loc[m, S.VALUE].to_numpy(np.float64)


def test_occupancy_distances_known_values():
    r = np.array([0.5, 0.5, 0.0])
    assert occupancy_js(r, r) == pytest.approx(0.0, abs=1e-9)
    assert occupancy_psi(r, r) == pytest.approx(0.0, abs=1e-12)
    assert occupancy_js(np.array([1.0, 0.0]), np.array([0.0, 1.0])) == pytest.approx(1.0)   # disjoint
    c = np.array([0.25, 0.75, 0.0])
    expected = (0.25 - 0.5) * np.log(0.25 / 0.5) + (0.75 - 0.5) * np.log(0.75 / 0.5)
    assert occupancy_psi(r, c) == pytest.approx(expected)


def test_training_labels_are_healthy_against_their_own_sketch(shifted_lines, shifted_book):
    """The codebook judged on its own fit window: no shift at all."""
    h = codebook_health(window(shifted_lines, 0, 70), shifted_book, shifted_book.provenance)
    assert h.occupancy_js == pytest.approx(0.0, abs=1e-9)
    assert h.recon_ratio == pytest.approx(1.0)
    assert h.current["share_above_clip"] == pytest.approx(h.reference["share_above_clip"])
    assert h.dead_codes == [] and h.overloaded_codes == []
    assert h.top_price_point_tv == pytest.approx(0.0, abs=1e-12)
    np.testing.assert_allclose(h.cur_top_shares, h.ref_top_shares)


def test_repricing_moves_occupancy_and_price_points(shifted_lines, stable_lines, shifted_book, stable_book):
    stable = codebook_health(window(stable_lines, 190, 200), stable_book, stable_book.provenance)
    shifted = codebook_health(window(shifted_lines, 190, 200), shifted_book, shifted_book.provenance)
    assert shifted.occupancy_js > 2 * stable.occupancy_js
    assert shifted.top_price_point_tv > 2 * stable.top_price_point_tv
    assert shifted.top_mass_cur < 0.5 * shifted.top_mass_ref      # the old price points emptied
    assert shifted.recon_ratio > 1.5 * stable.recon_ratio
    # the new popular GMV values are reported as new price points
    new = set(np.round(shifted.new_top_values, 6))
    assert new and all(v not in np.round(shifted.top_values, 6) for v in new)


def test_dead_and_overloaded_codes():
    rng = np.random.default_rng(0)
    y = rng.choice([1.0, 2.0, 5.0, 10.0, 20.0, 50.0], 6000)
    book = TargetCodebook.fit(y, layers=1, size=6, finish_below=5e-3)
    from quantrec.codebook.provenance import build_provenance
    book = book.with_provenance(build_provenance(y, book, ("2011-01-01", "2011-02-01"), "x:1"))
    codes_of = {v: int(book.encode(np.array([v]))[0, 0]) for v in (1.0, 50.0)}
    cur = np.concatenate([np.full(600, 1.0), rng.choice([2.0, 5.0, 10.0, 20.0], 400)])   # no 50s, many 1s
    h = codebook_health(cur, book, book.provenance, HealthConfig(dead_min_expected=10, overload_ratio=3.0))
    assert h.dead_codes == [codes_of[50.0]]
    assert h.overloaded_codes == [codes_of[1.0]]
    # with too few current lines a missing code is not called dead (expected < 10)
    h_small = codebook_health(cur[::50], book, book.provenance, HealthConfig(dead_min_expected=10))
    assert h_small.dead_codes == []


def test_rebuild_gain_is_large_after_repricing_and_small_without(shifted_lines, stable_lines, shifted_book,
                                                                 stable_book):
    g_shift = candidate_gain(window(shifted_lines, 190, 200), shifted_book, shifted_book.provenance,
                             window(shifted_lines, 120, 190), (day(120), day(190)))
    g_stable = candidate_gain(window(stable_lines, 190, 200), stable_book, stable_book.provenance,
                              window(stable_lines, 120, 190), (day(120), day(190)))
    assert g_shift.gain > 0.2 and g_shift.mae_candidate < g_shift.mae_kept
    assert g_stable.gain < 0.05        # same prices: the refit is no better (here: worse)
    assert g_shift.n_train == window(shifted_lines, 120, 190).size


def test_rebuild_gain_not_measured_is_nan_with_a_reason(shifted_lines, shifted_book):
    from dataclasses import replace
    y = window(shifted_lines, 190, 200)
    few = candidate_gain(y, shifted_book, shifted_book.provenance, y[:10], (day(1), day(2)))
    assert np.isnan(few.gain) and "10 candidate training lines" in few.note
    no_refit = replace(shifted_book.provenance, refit=None)
    r = candidate_gain(y, shifted_book, no_refit, window(shifted_lines, 120, 190), (day(120), day(190)))
    assert np.isnan(r.gain) and "refit" in r.note
