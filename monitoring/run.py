"""The one entry point a stage, a KFP component or the CLI calls: ``run_monitor``.

Input: a run date, a codebook (a saved TargetCodebook with provenance: a path, e.g.
the registry champion's ``codebook.json`` resolved by the caller, or the object), and
the data (URL + dataset spec, or already cleaned lines). No training run is needed.

Steps: load + clean the lines before run_date -> check the data fingerprint against
the codebook's -> take the current window (last ``current_days`` trading days) ->
codebook health + Evidently drift vs the codebook's reference sketch -> rules ->
recommendation. Outputs (always, also when the run cannot judge):

- ``drift_review.html``: the page someone opens from an alert (verdict first);
- ``recommendation.json``: {action: keep|rebuild|error, reasons, metrics, rules, ...};
- ``alert.json``: {"alert": bool, "level", "exit_code", "summary", ...} for schedulers.

``MonitorResult.exit_code``: 0 keep, 3 rebuild recommended, 1 error / bad input (see
``monitoring.recommend``). ``run_monitor`` never raises for bad input: the error is
the recommendation (action "error") and the alert; bugs still raise, after the
error artifacts are written.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from monitoring.config import MonitorConfig
from monitoring.errors import (CodebookMismatch, EmptyWindow, InsufficientData, MissingReference, MonitorError,
                               NoPrices, StaleData)
from monitoring.recommend import Recommendation, error_recommendation, evaluate_rules, recommend, write_alert
from quantrec.data import schema as S
from quantrec.redact import redact

HTML_NAME, RECOMMENDATION_NAME, ALERT_NAME = "drift_review.html", "recommendation.json", "alert.json"


@dataclass
class MonitorOutcome:
    """Everything one evaluation produced (what the review page shows)."""

    recommendation: Recommendation
    health: Any = None                # monitoring.health.HealthResult
    drift: list[Any] = field(default_factory=list)   # monitoring.drift.ColumnDrift
    snapshot: Any = None              # the Evidently snapshot
    provenance: Any = None            # the codebook's CodebookProvenance
    current: pd.DataFrame | None = None  # the current window's drift columns
    centroids: list[float] | None = None  # layer-1 centroids in GMV (K,)
    candidate: Any = None             # monitoring.health.CandidateResult


@dataclass
class MonitorResult:
    """What ``run_monitor`` returns: the recommendation and where the files are."""

    recommendation: Recommendation
    paths: dict[str, str]

    @property
    def exit_code(self) -> int:
        return self.recommendation.exit_code

    @property
    def action(self) -> str:
        return self.recommendation.action

    def summary(self) -> dict[str, Any]:
        """Flat metadata for a KFP artifact / a registry record."""
        rec = self.recommendation
        return {"action": rec.action, "exit_code": rec.exit_code, "alert": rec.alert, "summary": rec.summary,
                "run_date": rec.context.get("run_date"), **{k: v for k, v in self.paths.items()}}


# ---- inputs -------------------------------------------------------------------------
def load_codebook_with_reference(codebook: Any) -> Any:
    """A TargetCodebook with provenance from a path or an object.

    MissingReference: the file is absent, or the codebook has no provenance (fitted
    before provenance existed: rebuild it). CodebookMismatch: not a TargetCodebook, or
    its provenance / file is invalid.
    """
    from quantrec.codebook import load_codebook
    from quantrec.codebook.provenance import ProvenanceError
    from quantrec.codebook.target import TargetCodebook

    where = redact(codebook) if isinstance(codebook, str) else "the given codebook"
    if isinstance(codebook, str):
        try:
            codebook = load_codebook(codebook)
        except FileNotFoundError:
            raise MissingReference(f"codebook file not found: {where}") from None
        except ProvenanceError as exc:
            raise CodebookMismatch(f"{where}: {exc}") from None
        except (ValueError, KeyError, TypeError) as exc:
            raise CodebookMismatch(f"{where} is not a readable codebook: {exc}") from None
    if not isinstance(codebook, TargetCodebook):
        raise CodebookMismatch(f"{where} is a {type(codebook).__name__}, not a TargetCodebook (transform + "
                               "codebook): it cannot be monitored in label units")
    if codebook.provenance is None:
        raise MissingReference(f"{where} carries no provenance (fit window, data fingerprint, reference sketch): "
                               "it was fitted before provenance was recorded; rebuild the codebook to monitor it")
    if not hasattr(codebook.codebook, "centroids"):
        raise CodebookMismatch(f"{where}: a {codebook.method} codebook has no layer-1 centroids to monitor")
    return codebook


def load_lines(run_date: pd.Timestamp, data: str | None = None, spec: Any = None) -> tuple[pd.DataFrame, Any]:
    """Cleaned purchase lines strictly before run_date, and the DatasetSpec used."""
    from quantrec.data.clean import clean_transactions
    from quantrec.data.load import load_transactions
    from quantrec.data.spec import DatasetSpec, load_spec, resolve_data_url

    spec = spec if isinstance(spec, DatasetSpec) else load_spec(spec)
    raw = load_transactions(resolve_data_url(spec, data), spec, before=run_date)
    lines, _ = clean_transactions(raw, spec.cleaning)
    return lines, spec


def _days(lines: pd.DataFrame) -> pd.Series:
    """The day of each line (DAY, or TS normalised when the frame has no DAY column)."""
    if S.DAY in lines.columns:
        return pd.to_datetime(lines[S.DAY])
    if S.TS in lines.columns:
        return pd.to_datetime(lines[S.TS]).dt.normalize()
    raise ValueError(f"lines have neither a {S.DAY!r} nor a {S.TS!r} column")


def current_window(lines: pd.DataFrame, run_date: Any, config: MonitorConfig = MonitorConfig(),
                   ) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The lines of the last ``config.current_days`` trading days before run_date.

    lines: cleaned purchase lines (any days; only those before run_date count).
    Returns (window lines, {"start", "end" (exclusive = run_date), "trading_days", "lines"}).
    EmptyWindow: no line before run_date. StaleData: the newest day is more than
    ``max_staleness_days`` before run_date. InsufficientData: < ``min_current_lines``.
    """
    d = pd.Timestamp(run_date).normalize()
    day = _days(lines)
    before = (day < d).to_numpy()
    if not before.any():
        raise EmptyWindow(f"no purchase lines before {d.date()}: the current window is empty"
                          + (f" (the data covers {day.min().date()} .. {day.max().date()})" if len(day) else
                             " (no lines at all)"))
    days = np.unique(day[before].to_numpy())
    start = pd.Timestamp(days[-min(config.current_days, len(days))])
    newest = pd.Timestamp(days[-1])
    info = {"start": str(start.date()), "end": str(d.date()), "trading_days": int(min(config.current_days, len(days))),
            "newest_day": str(newest.date())}
    stale = (d - newest).days - 1  # days between the newest data day and the day before run_date
    if stale > config.max_staleness_days:
        raise StaleData(f"the newest purchase line before {d.date()} is from {newest.date()}, {stale} days "
                        f"earlier than the day before run_date (max_staleness_days {config.max_staleness_days}): "
                        "the feed looks stopped")
    window = lines[(day >= start).to_numpy() & before].reset_index(drop=True)
    info["lines"] = int(len(window))
    if len(window) < config.min_current_lines:
        raise InsufficientData(f"current window {info['start']} .. {info['end']} holds {len(window)} lines, "
                               f"fewer than min_current_lines {config.min_current_lines}: too few for a verdict")
    return window, info


# ---- the evaluation -------------------------------------------------------------------
def evaluate(run_date: Any, codebook: Any, lines: pd.DataFrame, data_fingerprint: str,
             config: MonitorConfig = MonitorConfig()) -> MonitorOutcome:
    """Judge ``codebook`` (path or TargetCodebook with provenance) on the current window
    of ``lines`` (cleaned purchase lines; ``data_fingerprint`` = dataset_fingerprint of
    the same dataset). Raises MonitorError on bad input; returns the outcome."""
    from monitoring.drift import current_frame, run_drift
    from monitoring.health import codebook_health
    from quantrec.codebook.provenance import FingerprintMismatch

    d = pd.Timestamp(run_date).normalize()
    book = load_codebook_with_reference(codebook)
    prov = book.provenance
    try:
        prov.check_fingerprint(data_fingerprint)
    except FingerprintMismatch as exc:
        raise CodebookMismatch(str(exc)) from None
    fit_end = pd.Timestamp(prov.fit_window[1])
    if fit_end > d:
        raise MonitorError(f"the codebook was fitted on {prov.fit_window[0]} .. {prov.fit_window[1]}, which ends "
                           f"after run_date {d.date()}: monitoring compares later data with the fit, not the fit "
                           "with itself (use a codebook fitted before run_date)")
    window, info = current_window(lines, d, config)
    y_cur = window[S.VALUE].to_numpy(np.float64)
    health = codebook_health(y_cur, book, prov, config.health, top_k=config.top_k_price_points)
    candidate = _candidate(y_cur, book, prov, lines, pd.Timestamp(info["start"]), config)
    current = current_frame(window)
    drift, snapshot = run_drift(prov.sketch.reference_frame(), current, config.drift)
    metrics = {"rebuild_gain": candidate.gain, "candidate_mae": candidate.mae_candidate,
               "kept_mae": candidate.mae_kept, **health.metrics(), **{f"drift_{r.column}": r.value for r in drift}}
    rules = evaluate_rules(metrics, drift, config, notes={"rebuild_gain": candidate.note})
    context = {"run_date": str(d.date()), "codebook_id": _codebook_id(codebook), "current_window": info,
               "data_fingerprint": data_fingerprint,
               "codebook": {"fit_window": list(prov.fit_window), "data_fingerprint": prov.data_fingerprint,
                            "digest": prov.codebook_digest, "n_train": prov.sketch.n, "layers": int(book.layers),
                            "size": int(book.size), "clip": float(book.transform.clip)},
               "candidate": candidate.to_dict()}
    rec = recommend(rules, config, metrics=metrics, context=context)
    return MonitorOutcome(recommendation=rec, health=health, drift=drift, snapshot=snapshot, provenance=prov,
                          current=current, centroids=[float(c) for c in book.centroids[0]], candidate=candidate)


def _candidate(y_cur: np.ndarray, book: Any, prov: Any, lines: pd.DataFrame, cur_start: pd.Timestamp,
               config: MonitorConfig) -> Any:
    """The rebuild candidate's gain: fitted on the kept codebook's fit-window length of
    days ending where the current window starts (what a rebuild now would see, with the
    current labels out of sample)."""
    from monitoring.health import candidate_gain
    length = pd.Timestamp(prov.fit_window[1]) - pd.Timestamp(prov.fit_window[0])
    start = cur_start - length
    day = _days(lines)
    m = ((day >= start) & (day < cur_start)).to_numpy()
    return candidate_gain(y_cur, book, prov, lines.loc[m, S.VALUE].to_numpy(np.float64),
                          (str(start.date()), str(cur_start.date())), config.health.candidate_min_lines)


def _codebook_id(codebook: Any) -> str | None:
    """sha256 of a codebook file's bytes (the registry's codebook_id); None for an object."""
    if not isinstance(codebook, str):
        return None
    from quantrec.data.snapshot import file_digest
    return file_digest(codebook)


def _paths(out_dir: str | None, html_path: str | None, recommendation_path: str | None,
           alert_path: str | None) -> dict[str, str]:
    if out_dir is None and None in (html_path, recommendation_path, alert_path):
        raise ValueError("run_monitor needs out_dir, or all of html_path / recommendation_path / alert_path")
    if out_dir is not None and "://" not in out_dir:
        os.makedirs(out_dir, exist_ok=True)
    join = (lambda name: f"{out_dir.rstrip('/')}/{name}") if out_dir is not None else None
    return {"html": html_path or join(HTML_NAME), "recommendation": recommendation_path or join(RECOMMENDATION_NAME),
            "alert": alert_path or join(ALERT_NAME)}


def run_monitor(run_date: Any, codebook: Any, *, data: str | None = None, spec: Any = None,
                config: MonitorConfig | dict[str, Any] | None = None, lines: pd.DataFrame | None = None,
                data_fingerprint: str | None = None, out_dir: str | None = None, html_path: str | None = None,
                recommendation_path: str | None = None, alert_path: str | None = None) -> MonitorResult:
    """Monitor ``codebook`` on the data before ``run_date``; write the page, JSON and alert.

    run_date: "YYYY-MM-DD" (the window ends the day before). codebook: path (fsspec) of
    a saved TargetCodebook with provenance, or the object. data / spec: the table URL
    and the DatasetSpec (object, YAML path, or None = default); ignored for loading when
    ``lines`` (all cleaned purchase lines from the dataset's first day, e.g. a run's
    events table) are given, but the spec still names the dataset for the fingerprint.
    data_fingerprint: override (else ``dataset_fingerprint(spec, lines)``).
    config: MonitorConfig or its dict. Output paths: ``out_dir`` (drift_review.html,
    recommendation.json, alert.json inside) and/or explicit paths (a KFP component passes
    its artifacts' paths). Returns MonitorResult (exit_code 0 keep / 3 rebuild / 1 error).
    """
    from quantrec.codebook.provenance import dataset_fingerprint
    from quantrec.data.spec import NO_PRICES, DatasetSpec, load_spec

    paths = _paths(out_dir, html_path, recommendation_path, alert_path)
    context: dict[str, Any] = {"run_date": str(run_date)}
    cfg: MonitorConfig | None = None
    outcome: MonitorOutcome | None = None
    try:
        cfg = config if isinstance(config, MonitorConfig) else MonitorConfig.from_dict(config)
        d = pd.Timestamp(run_date).normalize()
        context["run_date"] = str(d.date())
        spec = spec if isinstance(spec, DatasetSpec) else load_spec(spec)
        if not spec.has_prices:
            raise NoPrices(f"dataset {spec.name!r}: {NO_PRICES}, so no GMV codebook to monitor; "
                           "do not schedule the monitoring pipeline for it")
        if lines is None:
            lines, spec = load_lines(d, data, spec)
        else:
            spec = spec if isinstance(spec, DatasetSpec) else load_spec(spec)
            if len(lines) == 0:
                raise EmptyWindow(f"no purchase lines given: the current window before {d.date()} is empty")
        fp = data_fingerprint or dataset_fingerprint(spec, lines)
        outcome = evaluate(d, codebook, lines, fp, cfg)
    except (ValueError, OSError) as exc:  # bad input (MonitorError, DataError, SpecError, ...)
        outcome = MonitorOutcome(recommendation=error_recommendation(exc, cfg, context))
    except Exception as exc:  # a bug: still leave an alert and a page behind, then raise
        outcome = MonitorOutcome(recommendation=error_recommendation(exc, cfg, context))
        _write(outcome, paths, cfg)
        raise
    _write(outcome, paths, cfg)
    return MonitorResult(recommendation=outcome.recommendation, paths=paths)


def _write(outcome: MonitorOutcome, paths: dict[str, str], cfg: MonitorConfig | None) -> None:
    from monitoring.report import write_review_page
    rec = outcome.recommendation
    write_review_page(paths["html"], outcome, embed_evidently=bool(cfg.embed_evidently) if cfg else False)
    rec.save(paths["recommendation"])
    write_alert(rec, paths["alert"], report=paths["html"])
