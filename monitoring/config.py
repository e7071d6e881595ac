"""MonitorConfig: the current window, the drift methods and thresholds, the rebuild rule.

Every threshold is explicit (Evidently's defaults pick the method by sample size and
flag almost any shift of a large sample as drift). Calibrated on the weekly history of
the default data, 2010-03 .. 2011-12 (``benchmarks/drift_history.py``, figures in
``benchmarks/RESULTS.md`` "drift_history"):

- the voting rule, ``rebuild_gain`` (how much a rebuild would lower the current
  labels' reconstruction error): swept over 0 .. 8%; 3% is the fewest-rebuilds
  threshold within 1% of the best error on the 2010 weeks; on 2011 (out of sample) it
  lowers the next weeks' error by 12% vs never rebuilding and 9% vs rebuilding every
  week; it recommends a rebuild in 14 of 92 weeks (4 of the 49 weeks of 2011);
- every other threshold (context rules: Evidently columns, occupancy, price points,
  clip shares) = the 90th percentile of the statistic measured with a FRESH codebook
  (fitted on the 365 days before each week, what a rebuild gives) over the 93 weeks: a
  value above it is more unusual than a just-rebuilt codebook shows in 90% of weeks.
  Dead / overloaded codes: any (a fresh codebook shows one in 2% / 1% of weeks).

Built from a plain dict (the KFP ``config`` parameter, a CLI ``--config`` JSON) with
``MonitorConfig.from_dict``: unknown keys and mistyped values are named errors.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from quantrec.dataclass_io import build_dataclass

#: Columns of the Evidently drift check (current window vs the codebook's sketch).
DRIFT_COLUMNS = ("gmv", "log_gmv", "unit_price", "quantity")
#: Health rules ``recommend.evaluate_rules`` knows (the vote list may name any of these
#: and ``drift:<column>``).
HEALTH_RULES = ("rebuild_gain", "occupancy_js", "occupancy_psi", "recon_ratio", "recon_mae_ratio", "above_clip_ratio",
                "beyond_last_centroid_ratio", "dead_codes", "overloaded_codes", "top_price_point_tv")


@dataclass(frozen=True)
class DriftTest:
    """One Evidently column test. method: an Evidently stattest name for numerical
    columns ("wasserstein" = W1 / std(reference), "ks", "psi", "jensenshannon", ...);
    threshold: its drift threshold (distance methods: drift when value >= threshold;
    p-value methods: drift when p < threshold). Evidently's "psi" / "jensenshannon" bin
    numerical columns by Sturges' rule whatever n_bins says: we use Wasserstein here
    and compute PSI / JS ourselves on the codebook's own bins (layer-1 codes, health.py).
    """

    method: str = "wasserstein"
    threshold: float = 0.1


@dataclass(frozen=True)
class DriftConfig:
    """Per-column tests. Wasserstein normed by the reference std: on GMV the heavy tail
    inflates that std, so log GMV is the sensitive column and GMV the tail check."""

    gmv: DriftTest = field(default_factory=lambda: DriftTest("wasserstein", 0.045))
    log_gmv: DriftTest = field(default_factory=lambda: DriftTest("wasserstein", 0.20))
    unit_price: DriftTest = field(default_factory=lambda: DriftTest("wasserstein", 0.05))
    quantity: DriftTest = field(default_factory=lambda: DriftTest("wasserstein", 0.042))

    def tests(self) -> dict[str, DriftTest]:
        return {c: getattr(self, c) for c in DRIFT_COLUMNS}


@dataclass(frozen=True)
class HealthConfig:
    """Thresholds of the codebook health rules (see recommend.evaluate_rules).

    rebuild_gain: relative drop of the current labels' reconstruction error (within the
        clip) that a rebuild would bring (``health.candidate_gain``); fires above it.
        candidate_min_lines: fewer candidate training lines -> not measured.
    occupancy_js: Jensen-Shannon distance (base 2, in [0, 1]) between reference and
        current layer-1 code shares. occupancy_psi: PSI on the same shares (each share
        floored at ``psi_floor``). recon_ratio: current / fit-time reconstruction MAE of
        the labels within the clip (quantization error proper). recon_mae_ratio: the same
        over all labels (includes the clipped tail). above_clip_ratio /
        beyond_last_centroid_ratio: current / fit-time share of labels above the clip /
        above the largest layer-1 centroid. dead_codes: codes expected to hold at least
        ``dead_min_expected`` current lines (by their reference share) that hold none;
        fires at >= the threshold. overloaded_codes: codes holding more than
        ``overload_ratio`` x their reference share (and >= ``overload_min_count`` lines);
        fires at >= the threshold. top_price_point_tv: total variation between reference
        and current shares over the reference's top price points.
    """

    rebuild_gain: float = 0.03
    candidate_min_lines: int = 1000
    occupancy_js: float = 0.115
    occupancy_psi: float = 0.074
    psi_floor: float = 1e-4
    recon_ratio: float = 1.13
    recon_mae_ratio: float = 2.5
    above_clip_ratio: float = 2.3
    beyond_last_centroid_ratio: float = 2.25
    dead_codes: int = 1
    dead_min_expected: float = 10.0
    overloaded_codes: int = 1
    overload_ratio: float = 3.0
    overload_min_count: int = 30
    top_price_point_tv: float = 0.05    # calibrated: 0.0496


@dataclass(frozen=True)
class MonitorConfig:
    """What a monitoring run compares and when it recommends a rebuild.

    current_days: the current window = the last this-many TRADING days (days with
        data) before run_date. Trading days, not calendar days, so the shop's
        Christmas closure does not empty the window; ``max_staleness_days`` catches a
        feed that stopped.
    min_current_lines: fewer cleaned lines than this -> InsufficientData (no verdict).
    max_staleness_days: newest current line older than this before run_date -> StaleData.
    drift / health: thresholds (see DriftConfig / HealthConfig).
    vote: the rules whose firing counts toward a rebuild (others are shown, not counted);
        names from ``HEALTH_RULES`` or ``drift:<column>``.
    min_votes: rebuild when at least this many voting rules fire.
    top_k_price_points: price points compared (at most the sketch's top_k).
    embed_evidently: put Evidently's own HTML (about 3.6 MB) inside the review page
        (collapsed), so the page stays one self-contained file.
    """

    current_days: int = 7
    min_current_lines: int = 500
    max_staleness_days: int = 14
    drift: DriftConfig = field(default_factory=DriftConfig)
    health: HealthConfig = field(default_factory=HealthConfig)
    vote: tuple[str, ...] = ("rebuild_gain",)
    min_votes: int = 1
    top_k_price_points: int = 20
    embed_evidently: bool = True

    def __post_init__(self) -> None:
        if self.current_days < 1:
            raise ValueError(f"monitoring config: current_days must be >= 1, got {self.current_days}")
        if self.min_current_lines < 1:
            raise ValueError(f"monitoring config: min_current_lines must be >= 1, got {self.min_current_lines}")
        if self.max_staleness_days < 0:
            raise ValueError(f"monitoring config: max_staleness_days must be >= 0, got {self.max_staleness_days}")
        if self.min_votes < 1:
            raise ValueError(f"monitoring config: min_votes must be >= 1, got {self.min_votes}")
        known = set(HEALTH_RULES) | {f"drift:{c}" for c in DRIFT_COLUMNS}
        unknown = [v for v in self.vote if v not in known]
        if unknown:
            raise ValueError(f"monitoring config: vote names unknown rule(s) {unknown}; known: {sorted(known)}")
        if self.min_votes > len(self.vote):
            raise ValueError(f"monitoring config: min_votes {self.min_votes} > the {len(self.vote)} voting rules")
        for col, t in self.drift.tests().items():
            if not t.method:
                raise ValueError(f"monitoring config: drift.{col}.method is empty")
            if not t.threshold > 0:
                raise ValueError(f"monitoring config: drift.{col}.threshold must be > 0, got {t.threshold}")

    @classmethod
    def from_dict(cls, raw: dict[str, Any] | None) -> "MonitorConfig":
        """From a JSON-like dict (partial: missing keys keep their defaults)."""
        return build_dataclass(cls, raw)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["vote"] = list(self.vote)
        return d
