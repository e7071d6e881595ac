"""Codebook health: how well a fitted GMV codebook still fits the current labels.

Reference = the codebook's provenance sketch (its training labels); current = the
labels of the monitoring window. Both sides' codebook statistics come from the same
function (``quantrec.codebook.provenance.codebook_label_stats``).

Measured (all on GMV labels, in currency units where a unit applies):
- layer-1 code occupancy shift: Jensen-Shannon distance (base 2, 0 = same shares,
  1 = disjoint) and PSI between the reference and current code shares; the codes are
  the codebook's own bins, so no binning choice is involved;
- dead codes (expected >= ``dead_min_expected`` current lines by their reference share,
  hold none) and overloaded codes (hold more than ``overload_ratio`` x their reference
  share);
- share of mass at the reference's top price points, now vs at fit time, and the price
  points that are popular now but were not then;
- reconstruction error of the current labels vs at fit time (within the clip, and all);
- share of labels above the clip / beyond the largest layer-1 centroid vs at fit time;
- the gain of a rebuild (``candidate_gain``): fit the codebook a rebuild would give (same
  ``refit`` parameters, same fit-window length, on the days just before the current
  window) and compare both codebooks' reconstruction error on the current labels. On
  the weekly history this was the statistic that predicts whether a rebuild lowers
  the next week's error (benchmarks/RESULTS.md, drift_history: rank correlations of
  every statistic with the realised gain).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from scipy.spatial.distance import jensenshannon

from monitoring.config import HealthConfig
from quantrec.codebook.provenance import (CodebookProvenance, codebook_label_stats, price_point_shares,
                                          top_price_points)


def _ratio(cur: float, ref: float, floor: float) -> float:
    """cur / ref with ref floored (a reference share of exactly 0 must not divide by 0)."""
    return float(cur / max(ref, floor))


def occupancy_psi(ref_share: np.ndarray, cur_share: np.ndarray, floor: float = 1e-4) -> float:
    """PSI = sum (c - r) ln(c / r) over codes; shares floored at ``floor`` (empty codes)."""
    r = np.maximum(np.asarray(ref_share, np.float64), floor)
    c = np.maximum(np.asarray(cur_share, np.float64), floor)
    return float(np.sum((c - r) * np.log(c / r)))


def occupancy_js(ref_share: np.ndarray, cur_share: np.ndarray) -> float:
    """Jensen-Shannon distance (base 2) between two share vectors (K,)."""
    return float(jensenshannon(np.asarray(ref_share, np.float64), np.asarray(cur_share, np.float64), base=2))


@dataclass(frozen=True)
class HealthResult:
    """The health numbers of one current window (JSON-able via ``to_dict``).

    ref_shares / cur_shares: (K,) layer-1 code shares. top_values (k,): the reference's
    top price points with ref_top_shares / cur_top_shares; new_top_values /
    new_top_shares: the current's top points absent from the reference's top list.
    reference / current: ``codebook_label_stats`` of each side.
    """

    n_current: int
    ref_shares: list[float]
    cur_shares: list[float]
    occupancy_js: float
    occupancy_psi: float
    dead_codes: list[int]
    overloaded_codes: list[int]
    top_values: list[float]
    ref_top_shares: list[float]
    cur_top_shares: list[float]
    top_mass_ref: float
    top_mass_cur: float
    top_price_point_tv: float
    new_top_values: list[float]
    new_top_shares: list[float]
    recon_ratio: float
    recon_mae_ratio: float
    above_clip_ratio: float
    beyond_last_centroid_ratio: float
    reference: dict[str, Any]
    current: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def metrics(self) -> dict[str, float]:
        """The scalar health statistics (what the rules read and the JSON reports)."""
        return {"occupancy_js": self.occupancy_js, "occupancy_psi": self.occupancy_psi,
                "dead_codes": len(self.dead_codes), "overloaded_codes": len(self.overloaded_codes),
                "top_mass_ref": self.top_mass_ref, "top_mass_cur": self.top_mass_cur,
                "top_price_point_tv": self.top_price_point_tv, "recon_ratio": self.recon_ratio,
                "recon_mae_ratio": self.recon_mae_ratio, "above_clip_ratio": self.above_clip_ratio,
                "beyond_last_centroid_ratio": self.beyond_last_centroid_ratio,
                "recon_mae_within_clip_ref": self.reference["recon_mae_within_clip"],
                "recon_mae_within_clip_cur": self.current["recon_mae_within_clip"],
                "recon_mae_ref": self.reference["recon_mae"], "recon_mae_cur": self.current["recon_mae"],
                "share_above_clip_ref": self.reference["share_above_clip"],
                "share_above_clip_cur": self.current["share_above_clip"],
                "share_beyond_last_centroid_ref": self.reference["share_beyond_last_centroid"],
                "share_beyond_last_centroid_cur": self.current["share_beyond_last_centroid"]}


def codebook_health(y_current: Any, codebook: Any, provenance: CodebookProvenance,
                    config: HealthConfig = HealthConfig(), top_k: int = 20) -> HealthResult:
    """Health of ``codebook`` (a TargetCodebook) on the current labels y (n,) in GMV.

    provenance: the codebook's own (its sketch is the reference). top_k: price points
    compared (capped at the sketch's). Raises ValueError on empty / invalid labels.
    """
    sk = provenance.sketch
    ref = sk.stats
    cur = codebook_label_stats(y_current, codebook)
    n = cur["n"]
    rc = np.asarray(ref["code_counts"], np.float64)
    cc = np.asarray(cur["code_counts"], np.float64)
    if rc.shape != cc.shape:
        raise ValueError(f"reference occupancy has {rc.size} codes, the codebook {cc.size}: "
                         "the provenance belongs to another codebook")
    rs, cs = rc / rc.sum(), cc / cc.sum()
    expected = rs * n
    dead = np.flatnonzero((expected >= config.dead_min_expected) & (cc == 0))
    ref_floor = 0.5 / max(float(rc.sum()), 1.0)  # half a line: a code empty at fit time
    overloaded = np.flatnonzero((cc >= config.overload_min_count)
                                & (cs > config.overload_ratio * np.maximum(rs, ref_floor)))
    k = min(top_k, len(sk.top_values))
    tv = np.asarray(sk.top_values[:k], np.float64)
    ref_top = np.asarray(sk.top_shares[:k], np.float64)
    cur_top = price_point_shares(y_current, tv)
    own_v, own_s = top_price_points(y_current, k)
    new = ~np.isin(own_v, tv)
    floor = 1.0 / max(sk.n, 1)
    return HealthResult(
        n_current=int(n), ref_shares=rs.tolist(), cur_shares=cs.tolist(),
        occupancy_js=occupancy_js(rs, cs), occupancy_psi=occupancy_psi(rs, cs, config.psi_floor),
        dead_codes=[int(i) for i in dead], overloaded_codes=[int(i) for i in overloaded],
        top_values=tv.tolist(), ref_top_shares=ref_top.tolist(), cur_top_shares=cur_top.tolist(),
        top_mass_ref=float(ref_top.sum()), top_mass_cur=float(cur_top.sum()),
        top_price_point_tv=float(0.5 * np.abs(cur_top - ref_top).sum()),
        new_top_values=own_v[new].tolist(), new_top_shares=own_s[new].tolist(),
        recon_ratio=_ratio(cur["recon_mae_within_clip"], ref["recon_mae_within_clip"], 1e-12),
        recon_mae_ratio=_ratio(cur["recon_mae"], ref["recon_mae"], 1e-12),
        above_clip_ratio=_ratio(cur["share_above_clip"], ref["share_above_clip"], floor),
        beyond_last_centroid_ratio=_ratio(cur["share_beyond_last_centroid"], ref["share_beyond_last_centroid"], floor),
        reference=dict(ref), current=cur)


@dataclass(frozen=True)
class CandidateResult:
    """Kept codebook vs the candidate a rebuild would give, on the current labels.

    gain: 1 - mae_candidate / mae_kept (NaN when not measured; ``note`` says why), both
    MAEs (GMV) over the current labels <= the smaller of the two clips (so the same
    lines, and the quantization error proper). fit_window / n_train: the candidate's.
    """

    gain: float
    mae_kept: float
    mae_candidate: float
    fit_window: tuple[str, str] | None
    n_train: int
    note: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _not_measured(note: str, window: tuple[str, str] | None = None, n: int = 0) -> CandidateResult:
    nan = float("nan")
    return CandidateResult(gain=nan, mae_kept=nan, mae_candidate=nan, fit_window=window, n_train=n, note=note)


def candidate_gain(y_current: Any, codebook: Any, provenance: CodebookProvenance, y_train: Any,
                   fit_window: tuple[str, str], min_train_lines: int = 1000) -> CandidateResult:
    """How much a rebuild would lower the reconstruction error of the current labels.

    y_current (n,): current labels (GMV). y_train (m,): the labels a rebuild would fit
    on (the caller picks them: the kept codebook's fit-window length, ending where the
    current window starts, so the current labels are out of sample for both codebooks).
    The candidate is ``TargetCodebook.fit(y_train, **provenance.refit)``.
    """
    from quantrec.codebook.target import TargetCodebook

    if provenance.refit is None:
        return _not_measured("not measured: the codebook's provenance has no refit parameters", fit_window)
    y_train = np.asarray(y_train, dtype=np.float64)
    if y_train.size < min_train_lines:
        return _not_measured(f"not measured: {y_train.size} candidate training lines in {fit_window[0]} .. "
                             f"{fit_window[1]} (< {min_train_lines})", fit_window, int(y_train.size))
    try:
        cand = TargetCodebook.fit(y_train, **provenance.refit)
    except (TypeError, ValueError) as exc:
        return _not_measured(f"not measured: the candidate could not be fitted ({exc})", fit_window, int(y_train.size))
    y = np.asarray(y_current, dtype=np.float64)
    y = y[y <= min(codebook.transform.clip, cand.transform.clip)]
    if y.size == 0:
        return _not_measured("not measured: no current label below both clips", fit_window, int(y_train.size))
    kept = float(np.mean(np.abs(y - codebook.decode(codebook.encode(y)))))
    new = float(np.mean(np.abs(y - cand.decode(cand.encode(y)))))
    gain = 1.0 - new / kept if kept > 0 else (0.0 if new == 0 else float("-inf"))
    return CandidateResult(gain=float(gain), mae_kept=kept, mae_candidate=new, fit_window=fit_window,
                           n_train=int(y_train.size), note=f"candidate fitted on {fit_window[0]} .. {fit_window[1]} "
                                                           f"({y_train.size:,} labels)")
