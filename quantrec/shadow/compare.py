"""The shadow A/B comparison a pipeline stage calls: replay -> bootstrap -> decision.

    from quantrec.shadow.compare import ShadowConfig, Arm, run_shadow
    config = ShadowConfig.from_dict(run_config.get("shadow"))
    result = run_shadow(replay_rows, challenger=Arm("RQ-Reg+DMQN", p, v, {...}, calibration_value=v_val),
                        baseline=Arm("WLR+DMQN", p, v_wlr, {...}, calibration_value=v_wlr_val),
                        champion=None, config=config, calibration_frame=val_rows)
    result.write(html_path, json_path)        # report + decision (KFP HTML / Artifact)
    metadata.update(result.summary())         # flat floats / str
    return result.blessed

Arms are predictions, not models: the caller scores the replay rows (and, for the
calibration, the validation split's rows) with each arm's purchase and GMV models, so
this library stays free of model loading and of kfp.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from quantrec.data import schema as S
from quantrec.dataclass_io import build_dataclass
from quantrec.shadow import bootstrap as B
from quantrec.shadow.calibration import (
    CALIBRATION_METHODS, calibration_bins, fit_isotonic, mean_ratio,
)
from quantrec.shadow.decision import DEFAULT_RULES_NOTE, Decision, ThresholdRule, decide, default_rules
from quantrec.shadow.replay import (
    LONG_TAIL_PRICE, ReplayIndex, arm_estimators, build_index, metric_direction, metric_names, pair_set,
    slice_names, validate_history_edges,
)

__all__ = ["ShadowConfig", "Arm", "ShadowResult", "SkippedShadow", "run_shadow", "compact_decision", "ROLES"]

ROLES = ("challenger", "baseline", "champion")
REFERENCES = ("baseline", "champion")


@dataclass
class ShadowConfig:
    """The run config's "shadow" section (``from_dict``; unknown keys are named errors).

    resamples: bootstrap resamples of users; seed: their seed (and the XAUC pair
    sample's); ci_level: two-sided percentile interval level; ks: GMV@k cut-offs;
    calibration: "isotonic" (centred isotonic of realised on predicted GMV, fitted on
    the validation split's bought lines) or "none"; calibration_bins: bins of the
    calibration plots; long_tail_quantile: item-price quantile that starts the
    long-tail slice; history_edges: history-length buckets of returning users;
    xauc_max_pairs: above this many line pairs, the XAUC bootstrap uses that many
    sampled pairs; thresholds: the decision rules (``ThresholdRule``); the default set
    is ``decision.default_rules()``; an empty list means no thresholds: never blessed.
    """

    resamples: int = 1000
    seed: int = 0
    ci_level: float = 0.95
    ks: tuple[int, ...] = (1, 5, 10)
    calibration: str = "isotonic"
    calibration_bins: int = 10
    long_tail_quantile: float = 0.9
    history_edges: tuple[int, ...] = (20, 100)
    xauc_max_pairs: int = 1_000_000
    thresholds: list[ThresholdRule] = field(default_factory=default_rules)

    def __post_init__(self) -> None:
        self.ks = tuple(int(k) for k in self.ks)
        self.history_edges = tuple(int(e) for e in self.history_edges)
        where = "shadow"
        if self.resamples < 100:
            raise ValueError(f"{where}.resamples must be >= 100 for percentile intervals, got {self.resamples}")
        if not 0.5 <= self.ci_level < 1.0:
            raise ValueError(f"{where}.ci_level must be in [0.5, 1), got {self.ci_level}")
        if not self.ks or any(k < 1 for k in self.ks) or len(set(self.ks)) != len(self.ks):
            raise ValueError(f"{where}.ks must be distinct integers >= 1, got {list(self.ks)}")
        if self.calibration not in CALIBRATION_METHODS:
            raise ValueError(f"{where}.calibration must be one of {list(CALIBRATION_METHODS)}, "
                             f"got {self.calibration!r}")
        if self.calibration_bins < 2:
            raise ValueError(f"{where}.calibration_bins must be >= 2, got {self.calibration_bins}")
        if not 0.0 < self.long_tail_quantile < 1.0:
            raise ValueError(f"{where}.long_tail_quantile must be in (0, 1), got {self.long_tail_quantile}")
        if self.xauc_max_pairs < 1000:
            raise ValueError(f"{where}.xauc_max_pairs must be >= 1000, got {self.xauc_max_pairs}")
        try:
            validate_history_edges(self.history_edges)
        except ValueError as exc:
            raise ValueError(f"{where}.{exc}") from None
        rules = []
        for i, r in enumerate(self.thresholds):
            if isinstance(r, dict):
                r = build_dataclass(ThresholdRule, r, prefix=f"{where}.thresholds[{i}].")
            r.validate(self.metrics, self.slices, where=f"{where}.thresholds[{i}]")
            rules.append(r)
        self.thresholds = rules

    @property
    def metrics(self) -> list[str]:
        return metric_names(self.ks)

    @property
    def slices(self) -> list[str]:
        return slice_names(self.history_edges)

    @classmethod
    def from_dict(cls, raw: dict | None) -> "ShadowConfig":
        return build_dataclass(cls, raw)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["ks"], d["history_edges"] = list(self.ks), list(self.history_edges)
        return d


@dataclass
class Arm:
    """One ranking policy: a purchase model and a GMV model, as predictions.

    name: display name (e.g. "RQ-Reg+DMQN"); p_purchase: (n,) probabilities in [0, 1]
    for the replay rows; value: (n,) predicted GMV (currency units) for the same rows,
    raw: calibrated here unless the config says "none"; model_ids: e.g. {"gmv":
    "rqreg@2011-12-10", "purchase": "dmqn@2011-12-10"} for the report;
    calibration_value: (m,) the GMV model's predictions on ``calibration_frame`` rows.
    """

    name: str
    p_purchase: Any
    value: Any
    model_ids: dict[str, str] = field(default_factory=dict)
    calibration_value: Any = None

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "model_ids": dict(self.model_ids)}


@dataclass
class ShadowResult:
    """Everything the comparison decided and measured (``to_json`` is the decision).

    metrics: long table per arm role, slice, metric: point, ci_low, ci_high, std, n_valid.
    deltas: per reference ("baseline" / "champion"), slice, metric and change
      ("absolute" / "relative"): the paired challenger - reference delta with its CI.
    calibration: per arm, stage ("raw" / "calibrated") and bin: mean predicted vs mean
      realised GMV on the replay's bought lines.
    """

    blessed: bool
    reasons: list[str]
    warnings: list[str]
    checks: list[dict[str, Any]]
    arms: dict[str, dict[str, Any] | None]
    metrics: pd.DataFrame
    deltas: pd.DataFrame
    calibration: pd.DataFrame
    slices: pd.DataFrame
    config: dict[str, Any]
    data: dict[str, Any]
    timings: dict[str, float]
    notes: list[str]

    def estimate(self, table: str, **keys: Any) -> B.Estimate | None:
        """The row of ``metrics`` or ``deltas`` (``table``) matching ``keys`` as an Estimate,
        e.g. ``estimate("deltas", reference="baseline", slice="all", metric="AUC",
        change="absolute")``; None if no row matches."""
        return _estimate_of(getattr(self, table), keys)

    def to_json(self) -> dict[str, Any]:
        """The decision as JSON-safe data (NaN -> null)."""
        from quantrec.shadow.report import json_safe, records

        return json_safe({
            "blessed": bool(self.blessed),
            "verdict": "blessed" if self.blessed else "not blessed",
            "decision_basis": "each threshold is tested on the bootstrap CI bound it names "
                              "(default: the unfavourable end), not on the point estimate",
            "reasons": list(self.reasons), "warnings": list(self.warnings),
            "thresholds": self.checks,
            "challenger": self.arms["challenger"], "baseline": self.arms["baseline"],
            "champion": self.arms.get("champion"),
            "deltas": records(self.deltas), "metrics": records(self.metrics),
            "calibration": records(self.calibration), "slices": records(self.slices),
            "config": self.config, "data": self.data, "timings": self.timings, "notes": list(self.notes),
        })

    def decision_record(self) -> dict[str, Any]:
        """The compact decision for a registry manifest: verdict, reasons, threshold
        checks, the arms, the slice-"all" deltas with CIs and the data window (the full
        tables stay in ``to_json``)."""
        return compact_decision(self.to_json())

    def summary(self) -> dict[str, float | str]:
        """Flat KFP metadata: verdict, and for slice "all" every delta (point and CI) and
        every arm's metric point value; only finite numbers."""
        out: dict[str, float | str] = {"verdict": "blessed" if self.blessed else "not blessed",
                                       "blessed": 1.0 if self.blessed else 0.0,
                                       "reasons": " | ".join(self.reasons)[:2000]}
        d = self.deltas[self.deltas["slice"] == "all"]
        for r in d.itertuples(index=False):
            tag = "rel_delta" if r.change == "relative" else "delta"
            for stat in ("point", "ci_low", "ci_high"):
                v = getattr(r, stat)
                if math.isfinite(v):
                    out[f"{r.reference}/{r.metric}/{tag}_{stat}" if stat != "point" else
                        f"{r.reference}/{r.metric}/{tag}"] = float(v)
        m = self.metrics[self.metrics["slice"] == "all"]
        for r in m.itertuples(index=False):
            if math.isfinite(r.point):
                out[f"{r.role}/{r.metric}"] = float(r.point)
        return out

    def write(self, html_path: str, json_path: str) -> None:
        """Write the decision JSON and the HTML report (local paths or fsspec URLs)."""
        from quantrec.shadow.report import build_html, write_json

        write_json(self.to_json(), json_path)
        build_html(self).write(html_path)


@dataclass
class SkippedShadow:
    """The decision of a comparison that could not run (e.g. an interaction table has no
    GMV to replay): not blessed, with the reason; the same JSON keys as ``ShadowResult``,
    so publishing and the registry record it like any decision."""

    reason: str
    config: dict[str, Any]

    blessed = False

    @property
    def reasons(self) -> list[str]:
        return [f"shadow comparison skipped: {self.reason}"]

    def to_json(self) -> dict[str, Any]:
        return {"blessed": False, "verdict": "not blessed", "skipped": True,
                "decision_basis": "no comparison ran: a skipped comparison never blesses",
                "reasons": self.reasons, "warnings": [], "thresholds": [], "challenger": None,
                "baseline": None, "champion": None, "deltas": [], "metrics": [], "calibration": [],
                "slices": [], "config": self.config, "data": {}, "timings": {}, "notes": []}

    def decision_record(self) -> dict[str, Any]:
        return compact_decision(self.to_json())

    def summary(self) -> dict[str, float | str]:
        return {"verdict": "not blessed", "blessed": 0.0, "skipped": 1.0, "reasons": self.reasons[0][:2000]}

    def write(self, html_path: str, json_path: str) -> None:
        from quantrec.reports import HtmlReport
        from quantrec.shadow.report import write_json

        write_json(self.to_json(), json_path)
        HtmlReport("Shadow A/B: skipped").add_text(
            "Not blessed", self.reasons[0] + ". The version is published unblessed; an operator "
            "can promote it by hand (quantrec registry promote).").write(html_path)


def compact_decision(full: dict[str, Any]) -> dict[str, Any]:
    """The compact decision for a registry manifest, from the full decision JSON
    (``ShadowResult.to_json()``, also as read back from the decision artifact)."""
    keep = ("blessed", "verdict", "decision_basis", "reasons", "warnings", "thresholds",
            "challenger", "baseline", "champion")
    out = {k: full[k] for k in keep}
    out["deltas"] = [d for d in full["deltas"] if d["slice"] == "all"]
    out["data"] = {k: v for k, v in full["data"].items() if k != "xauc_pairs"}
    out["bootstrap"] = {k: full["config"][k] for k in ("resamples", "seed", "ci_level")}
    if full.get("skipped"):
        out["skipped"] = True
    return out


def _estimate_of(df: pd.DataFrame, keys: dict[str, Any]) -> B.Estimate | None:
    """The first row of ``df`` whose columns equal ``keys``, as an Estimate (None if none)."""
    mask = np.ones(len(df), dtype=bool)
    for k, v in keys.items():
        mask &= (df[k] == v).to_numpy()
    if not mask.any():
        return None
    r = df[mask].iloc[0]
    return B.Estimate(float(r["point"]), float(r["ci_low"]), float(r["ci_high"]), float(r["std"]),
                      int(r["n_valid"]))


# ---------------------------------------------------------------------------------
# inputs
# ---------------------------------------------------------------------------------
def _vector(arm: Arm, field_name: str, value: Any, n: int, what: str) -> np.ndarray:
    arr = np.asarray(value, dtype=np.float64)
    if arr.ndim != 1 or arr.size != n:
        raise ValueError(f"arm {arm.name!r}: {field_name} must have shape ({n},) ({what}), got {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"arm {arm.name!r}: {field_name} has {int((~np.isfinite(arr)).sum())} NaN/inf value(s)")
    return arr


def _bought_lines(frame: pd.DataFrame) -> np.ndarray:
    """Bool mask of the calibration frame's bought lines: label == 1 when the frame has
    labels (purchase-task rows), else every line (GMV-task rows)."""
    if S.VALUE not in frame.columns:
        raise ValueError(f"calibration_frame lacks the column {S.VALUE!r} (realised GMV)")
    if S.LABEL in frame.columns:
        return frame[S.LABEL].to_numpy() == 1
    return np.ones(len(frame), dtype=bool)


def _calibrate(role: str, arm: Arm, value: np.ndarray, config: ShadowConfig, index: ReplayIndex,
               calibration_frame: pd.DataFrame | None) -> tuple[np.ndarray, dict[str, Any], list[pd.DataFrame]]:
    """(calibrated values (n,), calibration info, calibration bin tables) of one arm."""
    bought = index.label == 1
    realised = index.gmv[bought]
    tables = [calibration_bins(value[bought], realised, "raw", config.calibration_bins)]
    info: dict[str, Any] = {"method": config.calibration,
                            "eval_mean_ratio_raw": mean_ratio(value[bought], realised)}
    if config.calibration == "none":
        if value.min() < 0:
            raise ValueError(f"arm {arm.name!r}: value has negative GMV predictions and calibration is 'none'")
        out = value
    else:
        if calibration_frame is None:
            raise ValueError("calibration 'isotonic' needs calibration_frame (the validation split's rows)")
        if arm.calibration_value is None:
            raise ValueError(f"arm {arm.name!r}: calibration 'isotonic' needs calibration_value "
                             f"(its GMV predictions on the {len(calibration_frame)} calibration_frame rows)")
        cal_pred = _vector(arm, "calibration_value", arm.calibration_value, len(calibration_frame),
                           "one per calibration_frame row")
        m = _bought_lines(calibration_frame)
        cal_real = calibration_frame[S.VALUE].to_numpy(np.float64)[m]
        try:
            calibrator = fit_isotonic(cal_pred[m], cal_real)
        except ValueError as exc:
            raise ValueError(f"arm {arm.name!r}: {exc}") from None
        out = calibrator.apply(value)
        info.update(calibrator.to_dict())
        info["val_mean_ratio_raw"] = mean_ratio(cal_pred[m], cal_real)
        info["eval_mean_ratio_calibrated"] = mean_ratio(out[bought], realised)
        tables.append(calibration_bins(out[bought], realised, "calibrated", config.calibration_bins))
    frames = []
    for t in tables:
        if len(t):
            frames.append(t.rename(columns={"model": "stage"}).assign(role=role, arm=arm.name))
    return out, info, frames


# ---------------------------------------------------------------------------------
# the comparison
# ---------------------------------------------------------------------------------
CALIBRATION_COLUMNS = ["role", "arm", "stage", "bin", "n", "pred_min", "pred_max", "mean_pred", "mean_label"]


def _arm_inputs(arms: dict[str, Arm], index: ReplayIndex, config: ShadowConfig,
                calibration_frame: pd.DataFrame | None):
    """Validated p (n,) and calibrated value (n,) per role, the arms' report info and the
    calibration bin table."""
    n = index.n_rows
    probs: dict[str, np.ndarray] = {}
    values: dict[str, np.ndarray] = {}
    info: dict[str, dict[str, Any] | None] = {}
    frames: list[pd.DataFrame] = []
    for role, arm in arms.items():
        p = _vector(arm, "p_purchase", arm.p_purchase, n, "one per replay row")
        if p.min() < 0 or p.max() > 1:
            raise ValueError(f"arm {arm.name!r}: p_purchase must be probabilities in [0, 1], "
                             f"got range [{p.min()}, {p.max()}]")
        v = _vector(arm, "value", arm.value, n, "one per replay row")
        values[role], cal_info, cal_frames = _calibrate(role, arm, v, config, index, calibration_frame)
        probs[role] = p
        frames += cal_frames
        info[role] = {**arm.describe(), "role": role, "calibration": cal_info}
    info.setdefault("champion", None)
    table = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=CALIBRATION_COLUMNS)
    return probs, values, info, table[CALIBRATION_COLUMNS]


def _counted(items, bar):
    for item in items:
        bar.update(1)
        yield item


def _replicates(index: ReplayIndex, roles: list[str], probs: dict[str, np.ndarray],
                values: dict[str, np.ndarray], config: ShadowConfig, pair_sets: dict,
                progress: bool) -> dict[tuple[str, str, str], tuple[float, np.ndarray]]:
    """{(role, slice, metric): (point, (B,) replicates)}, every arm on the same resamples."""
    from tqdm.auto import tqdm

    weights = B.user_weights(index.n_users, config.resamples, config.seed)
    results: dict[tuple[str, str, str], tuple[float, np.ndarray]] = {}
    den_cache: dict = {}      # XAUC denominators are the same for every arm
    total = len(roles) * len(index.masks) * len(config.metrics)
    with tqdm(total=total, desc="shadow replay + bootstrap", disable=not progress, leave=False) as bar:
        for role in roles:
            gen = arm_estimators(index, probs[role], values[role], config.ks, pair_sets)
            est = B.evaluate_estimators(_counted(gen, bar), weights, den_cache)
            results.update({(role, s, m): v for (s, m), v in est.items()})
    return results


def _tables(results: dict, arms: dict[str, Arm], config: ShadowConfig,
            slices: list[str]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(metrics, deltas) long tables with percentile CIs (see ShadowResult)."""
    level = config.ci_level
    metric_rows = []
    for (role, s, m), (point, reps) in results.items():
        metric_rows.append({"role": role, "arm": arms[role].name, "slice": s, "metric": m,
                            "direction": metric_direction(m), **asdict(B.summarize(point, reps, level))})
    delta_rows = []
    for ref in (r for r in REFERENCES if r in arms):
        for s in slices:
            for m in config.metrics:
                for change in ("absolute", "relative"):
                    e = B.paired_delta(results[("challenger", s, m)], results[(ref, s, m)], level,
                                       relative=change == "relative")
                    delta_rows.append({"reference": ref, "reference_arm": arms[ref].name, "slice": s,
                                       "metric": m, "change": change, "direction": metric_direction(m),
                                       **asdict(e)})
    return pd.DataFrame(metric_rows), pd.DataFrame(delta_rows)


def run_shadow(requests: pd.DataFrame, challenger: Arm, baseline: Arm, champion: Arm | None = None,
               config: ShadowConfig | None = None, calibration_frame: pd.DataFrame | None = None,
               progress: bool = True) -> ShadowResult:
    """Replay ``requests`` (the replay table's rows, n) with every arm, bootstrap every
    metric and delta over users, and decide whether the challenger is blessed.

    challenger / baseline / champion: arms whose arrays are aligned with ``requests``'
    rows; champion None on the first run (then champion rules are skipped and the
    challenger is judged against the baseline only). calibration_frame: validation
    rows (purchase-task rows with ``label`` and ``gmv``, or GMV-task lines) that every
    arm's ``calibration_value`` predicts; required for calibration "isotonic".
    Raises ValueError (naming the arm / column) on malformed input.
    """
    config = config or ShadowConfig()
    t0 = time.perf_counter()
    arms: dict[str, Arm] = {"challenger": challenger, "baseline": baseline}
    if champion is not None:
        arms["champion"] = champion
    names = [a.name for a in arms.values()]
    if len(set(names)) != len(names):
        raise ValueError(f"arm names must differ (they label the report), got {names}")
    index = build_index(requests, config.long_tail_quantile, config.history_edges)
    probs, values, arm_info, calibration = _arm_inputs(arms, index, config, calibration_frame)
    t_cal = time.perf_counter()

    pair_sets = {s: pair_set(index, s, config.xauc_max_pairs, config.seed) for s in index.masks}
    results = _replicates(index, list(arms), probs, values, config, pair_sets, progress)
    t_boot = time.perf_counter()

    metrics, deltas = _tables(results, arms, config, list(index.masks))

    def lookup(rule: ThresholdRule) -> B.Estimate | None:
        if rule.kind == "value":
            return _estimate_of(metrics, {"role": "challenger", "slice": rule.slice, "metric": rule.metric})
        return _estimate_of(deltas, {"reference": rule.against, "slice": rule.slice, "metric": rule.metric,
                                     "change": "relative" if rule.relative else "absolute"})

    decision: Decision = decide(config.thresholds, lookup, has_champion="champion" in arms,
                                names={r: arms[r].name for r in arms}, ci_level=config.ci_level)
    t_end = time.perf_counter()

    days = pd.to_datetime(requests[S.DAY]).dt.normalize().unique() if S.DAY in requests.columns else []
    data = {"rows": index.n_rows, "requests": index.n_requests, "users": index.n_users,
            "bought_lines": int((index.label == 1).sum()),
            "days": sorted(str(pd.Timestamp(d).date()) for d in days),
            "long_tail_column": LONG_TAIL_PRICE, "long_tail_threshold": index.long_tail_threshold,
            "xauc_pairs": {s: {"pairs": int(ps.i.size), "lines": ps.lines, "exact": ps.exact}
                           for s, ps in pair_sets.items()}}
    timings = {"calibration_s": t_cal - t0, "replay_bootstrap_s": t_boot - t_cal,
               "tables_decision_s": t_end - t_boot, "total_s": t_end - t0}
    return ShadowResult(
        blessed=decision.blessed, reasons=decision.reasons, warnings=decision.warnings,
        checks=[c.to_dict() for c in decision.checks], arms=arm_info, metrics=metrics, deltas=deltas,
        calibration=calibration, slices=index.slice_summary(), config=config.to_dict(), data=data,
        timings=timings, notes=_notes(config, index))


def _notes(config: ShadowConfig, index: ReplayIndex) -> list[str]:
    lt = index.long_tail_threshold
    return [
        "Ranking: every arm ranks the same candidates of each request (user-day) by "
        "p(purchase) x expected GMV; tied scores are ordered at random and every metric is "
        "the exact expectation over that order.",
        f"GMV@k = realised GMV of bought items in the top k, mean per request (k = {list(config.ks)}). "
        "NDCG = value-weighted NDCG (gain = realised GMV) over the full list, mean per request. "
        "AUC = ROC AUC of the score over the slice's rows. GAUC = per-request AUC weighted by the "
        "request's candidates, over requests with both classes. MAE / XAUC = the arm's expected "
        "GMV against realised GMV on bought lines (XAUC: label-tied pairs excluded, tied "
        "predictions count 0.5).",
        f"Slices: long_tail = candidates whose item price {LONG_TAIL_PRICE} (median unit price on the "
        f"item's last selling day before the request; known for unbought candidates too) is >= its "
        f"{config.long_tail_quantile:g}-quantile over the replay rows ({lt:.4g}); on row slices GMV@k "
        "and NDCG count the slice's value in the ranking of the whole list. new/returning users "
        "from is_new_user; hist_* = returning users' purchase lines before the day.",
        f"Calibration ({config.calibration}): "
        + ("centred isotonic regression of realised on predicted GMV, fitted per arm on the "
           "validation split's bought lines and applied to the replay predictions (RQ-Reg "
           "predicts a median-like value; expected-value ranking needs the mean); strictly "
           "increasing between the first and last block centres, so it keeps the model's order."
           if config.calibration == "isotonic" else "values used as given."),
        f"Statistics: paired bootstrap over users ({config.resamples} multinomial resamples, seed "
        f"{config.seed}, {round(100 * config.ci_level)}% percentile intervals); every arm is scored on the "
        "same resampled users. Ratio metrics and AUC are exact on each resample (AUC / XAUC as "
        "user-pair U-statistics); XAUC uses "
        + (f"a seeded sample of {config.xauc_max_pairs} line pairs per slice for the bootstrap when a slice "
           "has more pairs (its point value stays exact)."),
        "Decision: each threshold is tested on the CI bound it names (default: the unfavourable "
        "end of the interval), not on the point estimate.",
        DEFAULT_RULES_NOTE,
    ]
