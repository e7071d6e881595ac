"""The shadow comparison's artifacts: the decision JSON and the HTML report.

HTML order: verdict first (and its basis), reasons and warnings, the threshold checks,
the delta tables with CIs and forest plots (one per reference), the per-arm metric
tables per slice, the calibration plots per arm, the data and the method notes.
"""

from __future__ import annotations

import json
import math
from typing import TYPE_CHECKING, Any

import fsspec
import numpy as np
import pandas as pd

from quantrec.evaluation.report import _records
from quantrec.reports import HtmlReport, escape, figure_to_html, table_to_html

if TYPE_CHECKING:  # pragma: no cover
    from quantrec.shadow.compare import ShadowResult

__all__ = ["records", "json_safe", "write_json", "build_html"]


def records(df: pd.DataFrame) -> list[dict[str, Any]]:
    """DataFrame rows as JSON-safe dicts (NaN -> None)."""
    return _records(df)


def json_safe(obj: Any) -> Any:
    """``obj`` with NaN/inf -> None and numpy scalars -> Python, recursively."""
    if isinstance(obj, dict):
        return {str(k): json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    if isinstance(obj, (np.floating, float)):
        return float(obj) if math.isfinite(obj) else None
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.bool_):
        return bool(obj)
    return obj


def write_json(decision: dict[str, Any], path: str) -> str:
    """Write the decision dict as strict JSON (NaN -> null) through fsspec."""
    with fsspec.open(path, "w", encoding="utf-8") as f:
        json.dump(json_safe(decision), f, indent=1, allow_nan=False)
    return path


# ---------------------------------------------------------------------------------
# formatting
# ---------------------------------------------------------------------------------
def _fmt(v: Any, relative: bool = False) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "n/a"
    if v == 0:
        return "0"
    return f"{100 * v:+.2f}%" if relative else f"{v:.4g}"


def _ci(lo: float, hi: float, relative: bool = False) -> str:
    return f"[{_fmt(lo, relative)}, {_fmt(hi, relative)}]"


def _fig(width: float, height: float) -> tuple[Any, Any]:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height))
    return fig, fig.add_subplot(1, 1, 1)


def _verdict_html(res: "ShadowResult") -> str:
    cls, word = ("pass", "BLESSED") if res.blessed else ("fail", "NOT BLESSED")
    arms = []
    for role in ("challenger", "baseline", "champion"):
        a = res.arms.get(role)
        if a is None:
            arms.append(f"<li>{role}: <i>none</i>" + (" (first run: judged against the baseline only)"
                                                      if role == "champion" else "") + "</li>")
            continue
        ids = ", ".join(f"{k}: {v}" for k, v in a["model_ids"].items())
        arms.append(f"<li>{role}: <b>{escape(a['name'])}</b>{' (' + escape(ids) + ')' if ids else ''}</li>")
    return (f'<p style="font-size:1.4em" class="{cls}">{word}</p>'
            "<p>Each threshold is tested on the bootstrap confidence-interval bound it names "
            "(by default the unfavourable end of the interval), not on the point estimate.</p>"
            f"<ul>{''.join(arms)}</ul>")


def _list_html(items: list[str]) -> str:
    return "<ul>" + "".join(f"<li>{escape(t)}</li>" for t in items) + "</ul>" if items else "<p>none</p>"


def _checks_table(res: "ShadowResult") -> pd.DataFrame:
    rows = []
    for c in res.checks:
        rel = bool(c["rule"]["relative"]) and c["rule"]["kind"] == "change"
        est = c["estimate"] or {}
        rows.append({"status": c["status"].upper(), "rule": c["description"],
                     "required": "yes" if c["rule"]["required"] else "no",
                     "tested": _fmt(c["tested"], rel), "limit": _fmt(c["limit"], rel),
                     "point": _fmt(est.get("point"), rel),
                     "CI": _ci(est.get("ci_low"), est.get("ci_high"), rel) if est else "n/a"})
    return pd.DataFrame(rows, columns=["status", "rule", "required", "tested", "limit", "point", "CI"])


def _delta_table(res: "ShadowResult", reference: str, all_slice: bool) -> pd.DataFrame:
    """Deltas vs ``reference``: slice "all" only, or every other slice."""
    d = res.deltas[res.deltas["reference"] == reference]
    d = d[(d["slice"] == "all") == all_slice]
    rows = []
    for (s, m), g in d.groupby(["slice", "metric"], sort=False):
        ab = g[g["change"] == "absolute"].iloc[0]
        re = g[g["change"] == "relative"].iloc[0]
        excl = (ab["ci_low"] > 0 or ab["ci_high"] < 0) if math.isfinite(ab["ci_low"]) else False
        rows.append({"slice": s, "metric": m, "better": ab["direction"],
                     "delta": _fmt(ab["point"]), "delta CI": _ci(ab["ci_low"], ab["ci_high"]),
                     "relative": _fmt(re["point"], True), "relative CI": _ci(re["ci_low"], re["ci_high"], True),
                     "CI excludes 0": "yes" if excl else "no"})
    return pd.DataFrame(rows)


def _forest_figure(res: "ShadowResult", reference: str) -> Any:
    """Relative change (%) with CI: every metric on slice "all" (top), then the largest-k
    GMV and AUC on every other slice."""
    d = res.deltas[(res.deltas["reference"] == reference) & (res.deltas["change"] == "relative")]
    ks = res.config["ks"]
    top_gmv = f"GMV@{max(ks)}"
    main = d[d["slice"] == "all"]
    rest = d[(d["slice"] != "all") & d["metric"].isin([top_gmv, "AUC"])]
    rows = pd.concat([main, rest], ignore_index=True)
    labels = [f"{m} [{s}]" for s, m in zip(rows["slice"], rows["metric"])]
    fig, ax = _fig(7.5, 0.32 * len(rows) + 1.4)
    y = np.arange(len(rows))[::-1]
    pt = 100 * rows["point"].to_numpy(float)
    lo = 100 * rows["ci_low"].to_numpy(float)
    hi = 100 * rows["ci_high"].to_numpy(float)
    ok = np.isfinite(lo) & np.isfinite(hi) & np.isfinite(pt)
    good = np.where(rows["direction"].to_numpy() == "higher", lo > 0, hi < 0)
    bad = np.where(rows["direction"].to_numpy() == "higher", hi < 0, lo > 0)
    colors = np.where(good, "#176c2c", np.where(bad, "#b00020", "#555555"))
    for yi, p, l, h, c, k in zip(y, pt, lo, hi, colors, ok):
        if k:
            ax.errorbar(p, yi, xerr=[[p - l], [h - p]], fmt="o", color=c, capsize=3, markersize=4)
    ax.axvline(0.0, color="grey", linestyle="--", linewidth=1)
    ax.set_yticks(y)
    ax.set_yticklabels(labels, fontsize=8)
    ax.set_xlabel(f"relative change vs {reference} (%), {round(100 * res.config['ci_level'])}% bootstrap CI")
    ax.set_title("green: CI on the better side of 0, red: on the worse side (MAE: lower is better)",
                 fontsize=8)
    return fig


def _metric_tables(res: "ShadowResult") -> str:
    parts = []
    m = res.metrics
    for s, g in m.groupby("slice", sort=False):
        rows = []
        for (role, arm), ga in g.groupby(["role", "arm"], sort=False):
            row: dict[str, str] = {"arm": f"{arm} ({role})"}
            for r in ga.itertuples(index=False):
                row[r.metric] = f"{_fmt(r.point)} {_ci(r.ci_low, r.ci_high)}"
            rows.append(row)
        parts.append(f"<h3>{escape(s)}</h3>" + table_to_html(pd.DataFrame(rows)))
    return "\n".join(parts)


def _calibration_figure(res: "ShadowResult") -> Any | None:
    c = res.calibration
    if c.empty:
        return None
    from matplotlib.figure import Figure
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    arms = list(dict.fromkeys(c["arm"]))
    fig = Figure(figsize=(4.2 * len(arms), 4.2))
    for i, arm in enumerate(arms):
        ax = fig.add_subplot(1, len(arms), i + 1)
        g = c[c["arm"] == arm]
        for stage, gs in g.groupby("stage", sort=False):
            ax.plot(gs["mean_pred"], gs["mean_label"], marker="o", label=str(stage))
        vals = np.concatenate([g["mean_pred"].to_numpy(float), g["mean_label"].to_numpy(float)])
        vals = vals[np.isfinite(vals) & (vals > 0)]
        if vals.size:
            lo, hi = float(vals.min()), float(vals.max())
            ax.plot([lo, hi], [lo, hi], color="grey", linestyle="--", linewidth=1, label="perfect")
            ax.set_xscale("log")
            ax.set_yscale("log")
            for axis in (ax.xaxis, ax.yaxis):   # plain numbers, no crowded minor labels
                axis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
                axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
                axis.set_minor_formatter(NullFormatter())
        ax.set_title(str(arm), fontsize=9)
        ax.set_xlabel("mean predicted GMV per bin (log)")
        if i == 0:
            ax.set_ylabel("mean realised GMV per bin (log)")
        ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def build_html(res: "ShadowResult") -> HtmlReport:
    """The report of one shadow comparison (see the module docstring for its order)."""
    rep = HtmlReport("Shadow A/B replay: blessing decision")
    rep.add("Verdict", _verdict_html(res))
    rep.add("Reasons", _list_html(res.reasons))
    if res.warnings:
        rep.add("Warnings", _list_html(res.warnings))
    rep.add("Thresholds", table_to_html(_checks_table(res)))
    for ref in ("baseline", "champion"):
        if res.arms.get(ref) is None:
            continue
        name = res.arms[ref]["name"]
        rep.add(f"Deltas vs {ref} ({name}), slice all",
                table_to_html(_delta_table(res, ref, True))
                + '<p class="note">delta = challenger - reference; relative = delta / |reference|; '
                  "paired bootstrap over users.</p>")
        rep.add(f"Forest plot vs {ref}", figure_to_html(_forest_figure(res, ref), alt=f"forest plot vs {ref}"))
        rep.add(f"Deltas vs {ref} ({name}), other slices", table_to_html(_delta_table(res, ref, False)))
    rep.add("Metrics per arm and slice (point [CI])", _metric_tables(res))
    fig = _calibration_figure(res)
    cal_info = pd.DataFrame([
        {"arm": a["name"], "method": a["calibration"].get("method"),
         "fit lines": a["calibration"].get("n_fit"), "knots": a["calibration"].get("knots"),
         "val realised/pred (raw)": a["calibration"].get("val_mean_ratio_raw"),
         "eval realised/pred (raw)": a["calibration"].get("eval_mean_ratio_raw"),
         "eval realised/pred (calibrated)": a["calibration"].get("eval_mean_ratio_calibrated")}
        for a in res.arms.values() if a is not None])
    body = table_to_html(cal_info)
    if fig is not None:
        body += figure_to_html(fig, alt="calibration per arm")
    body += ('<p class="note">Bought lines of the replay, binned by predicted-GMV quantile: mean '
             "prediction vs mean realised GMV, before (raw) and after calibration; dashed = perfect. "
             "realised/pred = sum of realised over sum of predicted GMV (1 = calibrated on average).</p>")
    rep.add("Calibration per arm", body)
    rep.add("Calibration bins (table)", table_to_html(res.calibration))
    data = dict(res.data)
    pairs = data.pop("xauc_pairs", {})
    rep.add("Data", table_to_html(pd.DataFrame([{k: (", ".join(v) if isinstance(v, list) else v)
                                                  for k, v in data.items()}]))
            + table_to_html(res.slices)
            + table_to_html(pd.DataFrame([{"slice": s, **v} for s, v in pairs.items()])))
    rep.add("Method and definitions", _list_html(res.notes))
    rep.add("Timings (s)", table_to_html(pd.DataFrame([res.timings])))
    return rep
