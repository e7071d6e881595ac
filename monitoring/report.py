"""The drift review page: one self-contained HTML file, the page an alert links to.

Order (what someone opening it from an alert needs first):
1. the verdict (KEEP / REBUILD / ERROR), its reasons and every rule's value vs threshold,
   and what a rebuild would change (the candidate's reconstruction error);
2. layer-1 code occupancy, reference vs current (dead / overloaded codes marked);
3. the top price points, reference vs current shares, and new popular price points;
4. the log GMV distribution and quantiles of GMV, unit price and quantity;
5. Evidently's column results, then Evidently's own report, collapsed.

Evidently's report (about 3.6 MB, self-contained JS) is embedded in an ``<iframe
srcdoc>`` inside a collapsed ``<details>``: the review page stays ONE file, which is
what the KFP UI's HTML viewer shows (it renders a single artifact file: a sibling file
linked by a relative URL would not resolve there, nor from an alert e-mail pointing
to gs://). ``embed_evidently=False`` leaves it out (a 100 kB page).
"""

from __future__ import annotations

import html
from typing import Any

import numpy as np
import pandas as pd

from quantrec.reports import HtmlReport, escape, figure_to_html, table_to_html

_BANNER = {"keep": ("#176c2c", "#e7f5ea", "KEEP the codebook"),
           "rebuild": ("#8a4b00", "#fff1dc", "REBUILD the codebook"),
           "error": ("#b00020", "#fde7ea", "ERROR: no verdict")}
QUANTILE_PROBS = (0.01, 0.1, 0.25, 0.5, 0.75, 0.9, 0.99, 0.999)


def _plt():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def verdict_html(rec: Any) -> str:
    """The banner + reasons + context lines of a Recommendation."""
    fg, bg, title = _BANNER[rec.action]
    ctx = rec.context
    lines = [f"run date {escape(ctx.get('run_date', '?'))}"]
    win = ctx.get("current_window")
    if win:
        lines.append(f"current window {escape(win['start'])} .. {escape(win['end'])} (exclusive), "
                     f"{win.get('trading_days')} trading days, {win.get('lines', 0):,} lines")
    cb = ctx.get("codebook")
    if cb:
        lines.append(f"codebook fitted on {escape(cb['fit_window'][0])} .. {escape(cb['fit_window'][1])} "
                     f"({cb['n_train']:,} labels, L={cb['layers']}, K={cb['size']}, clip {cb['clip']:.4g}), "
                     f"dataset {escape(cb['data_fingerprint'])}")
    reasons = "".join(f"<li>{escape(r)}</li>" for r in rec.reasons)
    return (f'<div style="border:2px solid {fg};background:{bg};padding:12px 16px;border-radius:6px">'
            f'<div style="font-size:1.6em;font-weight:700;color:{fg}">{escape(title)}</div>'
            f'<div class="note">exit code {rec.exit_code} &middot; {"ALERT" if rec.alert else "no alert"}</div>'
            f"<ul>{reasons}</ul><p class='note'>{'<br/>'.join(lines)}</p></div>")


def rules_table(rec: Any) -> pd.DataFrame:
    rows = [{"rule": r.rule, "value": r.value, "threshold": r.threshold, "fired": "yes" if r.fired else "",
             "votes": "yes" if r.votes else "", "message": r.message} for r in rec.rules]
    df = pd.DataFrame(rows)
    if not df.empty:  # voting rules first, fired first
        df = df.sort_values(["votes", "fired"], ascending=False, kind="stable")
    return df


def occupancy_figure(health: Any, centroids: np.ndarray) -> Any:
    """Reference vs current share per layer-1 code (K bars each); dead codes marked x,
    overloaded codes marked ^; x ticks show the codes' centroid values (GMV)."""
    plt = _plt()
    rs, cs = np.asarray(health.ref_shares), np.asarray(health.cur_shares)
    k = np.arange(len(rs))
    fig, ax = plt.subplots(figsize=(11, 3.6))
    ax.bar(k - 0.2, rs, width=0.4, color="#9ab", label="reference (fit window)")
    ax.bar(k + 0.2, cs, width=0.4, color="#d62", label="current window")
    top = max(rs.max(), cs.max()) if len(rs) else 1.0
    if health.dead_codes:
        ax.plot(health.dead_codes, [top * 1.04] * len(health.dead_codes), "kx", ms=8, label="dead")
    if health.overloaded_codes:
        ax.plot(health.overloaded_codes, [top * 1.04] * len(health.overloaded_codes), "r^", ms=8,
                label="overloaded")
    step = max(1, len(k) // 16)
    ax.set_xticks(k[::step])
    ax.set_xticklabels([f"{i}\n{c:.3g}" for i, c in zip(k[::step], np.asarray(centroids)[::step])], fontsize=7)
    ax.set_xlabel("layer-1 code (centroid value, GMV)")
    ax.set_ylabel("share of lines")
    ax.set_title(f"Layer-1 code occupancy: Jensen-Shannon {health.occupancy_js:.3f}, PSI {health.occupancy_psi:.3f}",
                 fontsize=10)
    ax.legend(fontsize=8)
    return fig


def price_point_figure(health: Any) -> Any:
    """Horizontal bars: share of lines at each reference top price point, ref vs current."""
    plt = _plt()
    v = np.asarray(health.top_values)
    y = np.arange(len(v))
    fig, ax = plt.subplots(figsize=(8, 0.28 * len(v) + 1.2))
    ax.barh(y - 0.2, health.ref_top_shares, height=0.4, color="#9ab", label="reference")
    ax.barh(y + 0.2, health.cur_top_shares, height=0.4, color="#d62", label="current")
    ax.set_yticks(y)
    ax.set_yticklabels([f"{x:.4g}" for x in v], fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("share of lines with exactly this GMV")
    ax.set_title(f"Top price points: mass {health.top_mass_ref:.3f} at fit, {health.top_mass_cur:.3f} now "
                 f"(total variation {health.top_price_point_tv:.3f})", fontsize=10)
    ax.legend(fontsize=8)
    return fig


def distribution_figure(provenance: Any, current: pd.DataFrame, clip: float) -> Any:
    """Density of log1p(GMV): the sketch's histogram vs the current window on the same
    edges (current values beyond the last edge are counted in the last bin)."""
    plt = _plt()
    sk = provenance.sketch
    edges = np.asarray(sk.log_gmv_edges)
    ref = np.asarray(sk.log_gmv_counts, np.float64)
    cur_v = np.clip(current["log_gmv"].to_numpy(), edges[0], edges[-1])
    cur, _ = np.histogram(cur_v, bins=edges)
    width = np.diff(edges)
    fig, ax = plt.subplots(figsize=(10, 3.2))
    ax.stairs(ref / ref.sum() / width, edges, color="#579", lw=1.5, label="reference (fit window)")
    ax.stairs(cur / max(cur.sum(), 1) / width, edges, color="#d62", lw=1.5, label="current window")
    ax.axvline(np.log1p(clip), color="k", ls="--", lw=0.8, label=f"clip {clip:.4g}")
    ticks = np.array([0, 1, 3, 10, 30, 100, 300, 1000, 3000, 10000, 30000])
    ticks = ticks[np.log1p(ticks) <= edges[-1]]
    ax.set_xticks(np.log1p(ticks))
    ax.set_xticklabels([f"{t:g}" for t in ticks])
    ax.set_xlabel("GMV per line (log1p axis)")
    ax.set_ylabel("density")
    ax.legend(fontsize=8)
    return fig


def quantile_table(provenance: Any, current: pd.DataFrame) -> pd.DataFrame:
    """Reference (sketch) vs current quantiles of each drift column."""
    sk = provenance.sketch
    ref = sk.reference_frame()
    rows = []
    for col in ref.columns:
        if col not in current.columns:
            continue
        r = np.quantile(ref[col].to_numpy(), QUANTILE_PROBS, method="inverted_cdf")
        c = np.quantile(current[col].to_numpy(), QUANTILE_PROBS, method="inverted_cdf")
        rows.append({"column": col, "side": "reference", **{f"p{p * 100:g}": v for p, v in zip(QUANTILE_PROBS, r)}})
        rows.append({"column": "", "side": "current", **{f"p{p * 100:g}": v for p, v in zip(QUANTILE_PROBS, c)}})
    return pd.DataFrame(rows)


def evidently_iframe(snapshot: Any) -> str:
    """Evidently's standalone HTML inside a collapsed section (iframe srcdoc)."""
    doc = snapshot.get_html_str(as_iframe=False)
    return ("<details><summary>Evidently's report (click to open; about 3-4 MB, interactive)</summary>"
            f'<iframe style="width:100%;height:1100px;border:1px solid #ccc" srcdoc="{html.escape(doc, quote=True)}">'
            "</iframe></details>")


def write_review_page(path: str, outcome: Any, embed_evidently: bool = True) -> str:
    """Write the page for a ``monitoring.run.MonitorOutcome`` (an error outcome gives a
    page with the verdict and the error only)."""
    rec = outcome.recommendation
    page = HtmlReport(f"GMV codebook drift review: {rec.context.get('run_date', '?')}")
    page.add("Verdict", verdict_html(rec))
    if rec.rules:
        page.add_table("Rules (voting rules first)", rules_table(rec))
    cand = outcome.candidate
    if cand is not None:
        if np.isnan(cand.gain):
            body = f"<p>{escape(cand.note)}</p>"
        else:
            body = (f"<p>A rebuild now (the same kind of codebook refitted on {escape(cand.fit_window[0])} .. "
                    f"{escape(cand.fit_window[1])}, {cand.n_train:,} labels) would change the reconstruction error "
                    f"of the current labels (within both clips) from <b>{cand.mae_kept:.4g}</b> to "
                    f"<b>{cand.mae_candidate:.4g}</b> GMV: a gain of <b>{cand.gain:.1%}</b>.</p>")
        page.add("What a rebuild would change", body)
    h, prov = outcome.health, outcome.provenance
    if h is not None and prov is not None:
        cents = np.asarray(outcome.centroids if outcome.centroids is not None else np.arange(len(h.ref_shares)),
                           np.float64)
        page.add("Layer-1 code occupancy", figure_to_html(occupancy_figure(h, cents), "occupancy") +
                 f"<p class='note'>Dead codes (expected lines, none seen): {h.dead_codes or 'none'}; "
                 f"overloaded codes: {h.overloaded_codes or 'none'}.</p>")
        body = figure_to_html(price_point_figure(h), "price points")
        if h.new_top_values:
            new = pd.DataFrame({"GMV": h.new_top_values, "current share": h.new_top_shares})
            body += "<p>Popular now, not among the reference's top price points:</p>" + table_to_html(new)
        page.add("Top price points", body)
        hm = h.metrics()
        health_rows = pd.DataFrame([
            {"measure": "reconstruction MAE within the clip (GMV)", "fit time": hm["recon_mae_within_clip_ref"],
             "current": hm["recon_mae_within_clip_cur"], "ratio": hm["recon_ratio"]},
            {"measure": "reconstruction MAE, all labels (GMV)", "fit time": hm["recon_mae_ref"],
             "current": hm["recon_mae_cur"], "ratio": hm["recon_mae_ratio"]},
            {"measure": "share above the clip", "fit time": hm["share_above_clip_ref"],
             "current": hm["share_above_clip_cur"], "ratio": hm["above_clip_ratio"]},
            {"measure": "share beyond the last layer-1 centroid", "fit time": hm["share_beyond_last_centroid_ref"],
             "current": hm["share_beyond_last_centroid_cur"], "ratio": hm["beyond_last_centroid_ratio"]},
            {"measure": "mass at the top price points", "fit time": hm["top_mass_ref"],
             "current": hm["top_mass_cur"], "ratio": hm["top_mass_cur"] / max(hm["top_mass_ref"], 1e-12)},
        ])
        page.add_table("Codebook health", health_rows)
    if outcome.current is not None and prov is not None:
        clip = float(rec.context.get("codebook", {}).get("clip", np.expm1(prov.sketch.log_gmv_edges[-1])))
        page.add("Label distribution", figure_to_html(distribution_figure(prov, outcome.current, clip), "log GMV") +
                 table_to_html(quantile_table(prov, outcome.current)) +
                 "<p class='note'>Reference = the codebook's training labels (quantile sketch saved with it); "
                 "current = the window's cleaned purchase lines.</p>")
    if outcome.drift:
        df = pd.DataFrame([d.to_dict() for d in outcome.drift])[["column", "method", "value", "threshold", "drifted"]]
        body = table_to_html(df) + ("<p class='note'>Methods and thresholds are explicit (monitoring config); "
                                    "wasserstein = Wasserstein distance / std of the reference.</p>")
        if embed_evidently and outcome.snapshot is not None:
            body += evidently_iframe(outcome.snapshot)
        page.add("Evidently drift (GMV, log GMV, unit price, quantity)", body)
    return page.write(path)
