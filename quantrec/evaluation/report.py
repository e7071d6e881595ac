"""Offline evaluation of every model of a run: metric tables, slices, the plots' data,
one self-contained HTML report (KFP HTML artifact) and one JSON with every number.

    result = evaluate_models(y, {"RQ-Reg": p1, "WLR": p2}, is_new_user=new, task="gmv")
    result.write(html.path, json.path)
    metrics.metadata.update(result.summary())    # KFP Metrics artifact

Everything plotted is first computed into a table (``distributions``, ``buckets``,
``calibration``), so the JSON holds the figures' numbers and the HTML figures are drawn
from the same tables.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any, Mapping

import fsspec
import numpy as np
import pandas as pd

from quantrec.evaluation.metrics import CLASSIFICATION_METRICS, REGRESSION_METRICS, _as_1d
from quantrec.evaluation.slices import TASKS, decile_edges, decile_index, sliced_metrics
from quantrec.reports import HtmlReport, escape

__all__ = ["EvaluationResult", "evaluate_models"]

LABEL_SERIES = "label"
N_CALIBRATION_BINS = 10
N_HIST_BINS = 40
# Slices whose metrics also go into the flat summary (the deciles stay in the tables).
SUMMARY_SLICES = ("top10%", "new users", "returning users")

_TASK_TITLES = {"gmv": "GMV regression", "purchase": "purchase probability", "ltv": "customer LTV"}
_DEFINITIONS = {
    "regression": [
        "MAE = mean |pred - y| (label units).",
        "XAUC = share of concordant pairs among all pairs with distinct labels, computed "
        "exactly in O(n log n); label-tied pairs are excluded, prediction-tied pairs count 0.5.",
        "Norm-Gini = gini(order by prediction) / gini(order by label), gini = 2 mean(gain) - 1, "
        "gain = cumsum(y) / sum(y); tied predictions share their labels evenly.",
        "Spearman = rank correlation with average ranks for ties.",
        "(+) = the same metric on rows with label > 0 only.",
        "Slices: value deciles of the label (ties kept in one decile; empty deciles omitted), "
        "top10% = label >= its 0.9-quantile, new/returning users when known.",
        "Calibration: rows binned by prediction quantile; mean prediction vs mean label per bin.",
    ],
    "purchase": [
        "AUC = rank-based ROC AUC (tied scores count 0.5). logloss = mean binary cross-entropy "
        "(nats, p clipped to [1e-15, 1 - 1e-15]). Brier = mean (p - y)^2.",
        "Calibration: rows binned by predicted-probability quantile; mean p vs observed rate per bin.",
    ],
}


def _records(df: pd.DataFrame) -> list[dict[str, Any]]:
    """DataFrame rows as JSON-safe dicts (NaN/inf -> None, numpy scalars -> Python)."""
    out = []
    for row in df.to_dict(orient="records"):
        clean = {}
        for k, v in row.items():
            if isinstance(v, (np.floating, float)):
                v = float(v)
                clean[k] = v if math.isfinite(v) else None
            elif isinstance(v, np.integer):
                clean[k] = int(v)
            elif isinstance(v, np.bool_):
                clean[k] = bool(v)
            else:
                clean[k] = v
        out.append(clean)
    return out


def _frame(records: list[dict[str, Any]], columns: list[str]) -> pd.DataFrame:
    """Inverse of ``_records``: None in numeric columns back to NaN."""
    df = pd.DataFrame.from_records(records, columns=columns)
    for c in df.columns:
        if df[c].dtype == object and all(v is None or isinstance(v, (int, float)) for v in df[c]):
            df[c] = df[c].astype(float)
    return df


@dataclass
class EvaluationResult:
    """All numbers of one offline evaluation.

    Tables (pandas):
      overall: one row per model: "model" + metric columns.
      slices: long format "model", "slice", "n" + metric columns.
      buckets: MAE by label-decile bucket (regression tasks; empty for purchase):
        "model", "bucket", "label_min", "label_max", "n", "MAE", "mean_label", "mean_pred".
      calibration: "model", "bin", "n", "pred_min", "pred_max", "mean_pred", "mean_label".
      distributions: histogram counts, "series" (label or model; for purchase
        "<model> | y=0/1"), "bin_left", "bin_right", "count"; log-spaced bins for
        regression (only values > 0 can be placed on a log axis).
      dist_summary: per series "n", "n_nonpositive", "mean", "p10", "p50", "p90", "p99", "max".
    """

    task: str
    n: int
    models: list[str]
    overall: pd.DataFrame
    slices: pd.DataFrame
    buckets: pd.DataFrame
    calibration: pd.DataFrame
    distributions: pd.DataFrame
    dist_summary: pd.DataFrame
    notes: list[str] = field(default_factory=list)

    @property
    def metric_columns(self) -> list[str]:
        return list(CLASSIFICATION_METRICS if self.task == "purchase" else REGRESSION_METRICS)

    def summary(self) -> dict[str, float]:
        """Flat {"<model>/<metric>": value} of the overall table, plus
        "<model>/<slice>/<metric>" for the top10% and user slices. Only finite
        values (a KFP Metrics artifact cannot hold NaN)."""
        out: dict[str, float] = {}
        def add(prefix: str, r: Mapping[str, Any]) -> None:
            for m in self.metric_columns:
                v = r[m]
                if v is not None and math.isfinite(v):
                    out[f"{prefix}/{m}"] = float(v)

        for r in self.overall.to_dict(orient="records"):
            add(str(r["model"]), r)
        sub = self.slices[self.slices["slice"].isin(SUMMARY_SLICES)]
        for r in sub.to_dict(orient="records"):
            add(f"{r['model']}/{r['slice']}", r)
        return out

    # ---- serialisation ------------------------------------------------------------
    _TABLES = ("overall", "slices", "buckets", "calibration", "distributions", "dist_summary")

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict with every table as a list of records (NaN -> null)."""
        d: dict[str, Any] = {"task": self.task, "n": self.n, "models": list(self.models),
                             "notes": list(self.notes), "summary": self.summary()}
        for name in self._TABLES:
            table: pd.DataFrame = getattr(self, name)
            d[name] = {"columns": list(table.columns), "records": _records(table)}
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "EvaluationResult":
        tables = {name: _frame(d[name]["records"], d[name]["columns"]) for name in cls._TABLES}
        return cls(task=d["task"], n=int(d["n"]), models=list(d["models"]),
                   notes=list(d.get("notes", [])), **tables)

    @classmethod
    def read_json(cls, path: str) -> "EvaluationResult":
        with fsspec.open(path, "r", encoding="utf-8") as f:
            return cls.from_dict(json.load(f))

    def write_json(self, path: str) -> str:
        with fsspec.open(path, "w", encoding="utf-8") as f:
            json.dump(self.to_dict(), f, indent=1, allow_nan=False)
        return path

    def write_html(self, path: str) -> str:
        return build_html(self).write(path)

    def write(self, html_path: str, json_path: str) -> None:
        """Write the HTML report and the JSON of all numbers (local paths or fsspec URLs)."""
        self.write_json(json_path)
        self.write_html(html_path)


# ---------------------------------------------------------------------------------
# tables behind the figures
# ---------------------------------------------------------------------------------
def _calibration(y: np.ndarray, preds: Mapping[str, np.ndarray], n_bins: int) -> pd.DataFrame:
    rows = []
    for model, p in preds.items():
        # equal-count bins by prediction rank (tied predictions may straddle a bin edge;
        # harmless here, both bins then report the same mean prediction)
        order = np.argsort(p, kind="stable")
        for b, idx in enumerate(np.array_split(order, min(n_bins, p.size))):
            rows.append({"model": model, "bin": b + 1, "n": int(idx.size),
                         "pred_min": float(p[idx].min()), "pred_max": float(p[idx].max()),
                         "mean_pred": float(p[idx].mean()), "mean_label": float(y[idx].mean())})
    return pd.DataFrame(rows, columns=["model", "bin", "n", "pred_min", "pred_max", "mean_pred", "mean_label"])


def _buckets(y: np.ndarray, preds: Mapping[str, np.ndarray]) -> pd.DataFrame:
    dec = decile_index(y, decile_edges(y))
    rows = []
    for model, p in preds.items():
        for k in range(10):
            m = dec == k
            if not m.any():
                continue
            rows.append({"model": model, "bucket": f"decile {k + 1:02d}",
                         "label_min": float(y[m].min()), "label_max": float(y[m].max()),
                         "n": int(m.sum()), "MAE": float(np.abs(p[m] - y[m]).mean()),
                         "mean_label": float(y[m].mean()), "mean_pred": float(p[m].mean())})
    return pd.DataFrame(rows, columns=["model", "bucket", "label_min", "label_max", "n",
                                       "MAE", "mean_label", "mean_pred"])


def _series(y: np.ndarray, preds: Mapping[str, np.ndarray], task: str) -> dict[str, np.ndarray]:
    if task == "purchase":
        out = {}
        for model, p in preds.items():
            out[f"{model} | y=1"] = p[y == 1]
            out[f"{model} | y=0"] = p[y == 0]
        return out
    return {LABEL_SERIES: y, **preds}


def _distributions(series: Mapping[str, np.ndarray], task: str) -> pd.DataFrame:
    cols = ["series", "bin_left", "bin_right", "count"]
    if task == "purchase":
        edges = np.linspace(0.0, 1.0, N_HIST_BINS + 1)
    else:
        positive = [s[s > 0] for s in series.values()]
        positive = [s for s in positive if s.size]
        if not positive:
            return pd.DataFrame(columns=cols)
        lo = min(float(s.min()) for s in positive)
        hi = max(float(s.max()) for s in positive)
        hi = hi * 1.0001 if hi > lo else lo * 10.0
        edges = np.geomspace(lo, hi, N_HIST_BINS + 1)
    rows = []
    for name, s in series.items():
        vals = s[s > 0] if task != "purchase" else s
        counts, _ = np.histogram(vals, bins=edges)
        rows += [{"series": name, "bin_left": float(a), "bin_right": float(b), "count": int(c)}
                 for a, b, c in zip(edges[:-1], edges[1:], counts)]
    return pd.DataFrame(rows, columns=cols)


def _dist_summary(series: Mapping[str, np.ndarray]) -> pd.DataFrame:
    rows = []
    for name, s in series.items():
        if s.size == 0:
            rows.append({"series": name, "n": 0, "n_nonpositive": 0})
            continue
        q = np.quantile(s, [0.1, 0.5, 0.9, 0.99])
        rows.append({"series": name, "n": int(s.size), "n_nonpositive": int((s <= 0).sum()),
                     "mean": float(s.mean()), "p10": float(q[0]), "p50": float(q[1]),
                     "p90": float(q[2]), "p99": float(q[3]), "max": float(s.max())})
    return pd.DataFrame(rows, columns=["series", "n", "n_nonpositive", "mean", "p10", "p50",
                                       "p90", "p99", "max"])


def evaluate_models(y: Any, preds: Mapping[str, Any], is_new_user: Any = None,
                    task: str = "gmv", calibration_bins: int = N_CALIBRATION_BINS) -> EvaluationResult:
    """Evaluate every model on the same rows.

    y: labels, shape (n,): GMV / LTV in currency units ("gmv", "ltv") or 0/1
    ("purchase"). preds: model name -> predictions, shape (n,) each (probabilities for
    "purchase"). is_new_user: optional bool, shape (n,). Returns an EvaluationResult
    whose ``write(html_path, json_path)`` produces the report.
    """
    if task not in TASKS:
        raise ValueError(f"task must be one of {TASKS}, got {task!r}")
    if not preds:
        raise ValueError("preds is empty: need at least one model")
    if calibration_bins < 1:
        raise ValueError(f"calibration_bins must be >= 1, got {calibration_bins}")
    y_arr = _as_1d("y", y)
    p_arrs: dict[str, np.ndarray] = {}
    for model, pred in preds.items():
        p = _as_1d(f"preds[{model!r}]", pred)
        if p.size != y_arr.size:
            raise ValueError(f"length mismatch: y has {y_arr.size}, preds[{model!r}] has {p.size}")
        p_arrs[str(model)] = p

    regression = task != "purchase"
    columns = REGRESSION_METRICS if regression else CLASSIFICATION_METRICS
    slices = sliced_metrics(y_arr, p_arrs, is_new_user=is_new_user, task=task)
    # the "all" slice is the overall table; reuse it rather than compute twice
    overall = slices[slices["slice"] == "all"][["model", *columns]].reset_index(drop=True)
    series = _series(y_arr, p_arrs, task)
    notes = list(_DEFINITIONS["regression" if regression else "purchase"])
    if regression and (y_arr < 0).any():
        notes.append(f"{int((y_arr < 0).sum())} negative label(s): Norm-Gini is undefined (NaN).")
    empty_buckets = pd.DataFrame(columns=["model", "bucket", "label_min", "label_max", "n",
                                          "MAE", "mean_label", "mean_pred"])
    return EvaluationResult(
        task=task, n=int(y_arr.size), models=list(p_arrs),
        overall=overall, slices=slices,
        buckets=_buckets(y_arr, p_arrs) if regression else empty_buckets,
        calibration=_calibration(y_arr, p_arrs, calibration_bins),
        distributions=_distributions(series, task),
        dist_summary=_dist_summary(series),
        notes=notes,
    )


# ---------------------------------------------------------------------------------
# HTML
# ---------------------------------------------------------------------------------
def _fig(width: float = 7.5, height: float = 4.2) -> tuple[Any, Any]:
    # A bare Figure (no pyplot state): safe in a headless component and across threads.
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height))
    return fig, fig.add_subplot(1, 1, 1)


def _distribution_figure(res: EvaluationResult) -> Any:
    fig, ax = _fig()
    d = res.distributions
    for name, g in d.groupby("series", sort=False):
        edges = np.append(g["bin_left"].to_numpy(), g["bin_right"].to_numpy()[-1])
        counts = g["count"].to_numpy(dtype=float)
        style = {"color": "black", "linewidth": 2.2} if name == LABEL_SERIES else {"linewidth": 1.4}
        ax.stairs(counts, edges, label=str(name), **style)
    if res.task == "purchase":
        ax.set_xlabel("predicted purchase probability")
        ax.set_yscale("log")
    else:
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("value (log scale; values <= 0 not shown, see table)")
    ax.set_ylabel("rows (log scale)")
    ax.legend(fontsize=8)
    return fig


def _bucket_figure(res: EvaluationResult) -> Any:
    fig, ax = _fig()
    b = res.buckets
    for model, g in b.groupby("model", sort=False):
        ax.plot(np.arange(len(g)), g["MAE"].to_numpy(), marker="o", label=str(model))
    first = b[b["model"] == res.models[0]]
    ax.set_xticks(np.arange(len(first)))
    ax.set_xticklabels([f"{lo:.3g}-{hi:.3g}" for lo, hi in zip(first["label_min"], first["label_max"])],
                       rotation=35, ha="right", fontsize=8)
    if (b["MAE"] > 0).all():
        ax.set_yscale("log")
    ax.set_xlabel("label value decile (range)")
    ax.set_ylabel("MAE")
    ax.legend(fontsize=8)
    return fig


def _calibration_figure(res: EvaluationResult) -> Any:
    fig, ax = _fig(6.0, 5.0)
    c = res.calibration
    for model, g in c.groupby("model", sort=False):
        ax.plot(g["mean_pred"], g["mean_label"], marker="o", label=str(model))
    lo = float(min(c["mean_pred"].min(), c["mean_label"].min()))
    hi = float(max(c["mean_pred"].max(), c["mean_label"].max()))
    log = res.task != "purchase"
    if log and lo > 0:
        ax.set_xscale("log")
        ax.set_yscale("log")
    elif log:
        # zero-inflated labels (LTV): symlog keeps the zero bins visible
        vals = np.concatenate([c["mean_pred"].to_numpy(), c["mean_label"].to_numpy()])
        pos = vals[vals > 0]
        thresh = float(pos.min()) if pos.size else 1.0
        ax.set_xscale("symlog", linthresh=thresh)
        ax.set_yscale("symlog", linthresh=thresh)
    ax.plot([lo, hi], [lo, hi], color="grey", linestyle="--", linewidth=1, label="perfect")
    ax.set_xlabel("mean prediction per bin" + (" (log)" if log else ""))
    ax.set_ylabel("mean label per bin" + (" (log)" if log else ""))
    ax.legend(fontsize=8)
    return fig


def build_html(res: EvaluationResult) -> HtmlReport:
    """The report: metric table, slices, distributions, MAE by bucket, calibration."""
    rep = HtmlReport(f"Offline evaluation: {_TASK_TITLES[res.task]}")
    rep.add("Run", f"<p>task: <b>{escape(res.task)}</b>, rows: <b>{res.n}</b>, models: "
                   f"<b>{escape(', '.join(res.models))}</b></p>")
    rep.add_table("Metrics per model", res.overall)
    rep.add_table("Metrics per slice", res.slices)
    rep.add_figure("Prediction vs ground-truth distributions", _distribution_figure(res),
                   caption="Histogram counts on log axes." if res.task != "purchase"
                   else "Predicted probability by true class, per model.")
    rep.add_table("Distribution summary", res.dist_summary)
    if not res.buckets.empty:
        rep.add_figure("MAE by value bucket", _bucket_figure(res),
                       caption="Buckets are deciles of the true label.")
        rep.add_table("MAE by value bucket (table)", res.buckets)
    rep.add_figure("Calibration", _calibration_figure(res),
                   caption="Rows binned by prediction quantile; dashed line = perfect calibration.")
    rep.add_table("Calibration (table)", res.calibration)
    rep.add("Definitions", "<ul>" + "".join(f"<li>{escape(t)}</li>" for t in res.notes) + "</ul>")
    return rep
