"""Reconstruction error of quantizers on a label sample (the paper's Table 6, our data).

For every codebook: mean absolute error |y - decode(encode(y))| and mean relative error
|y - decode| / y (over y > 0), overall, after each layer / token position, and per
label bucket (quantile ranges of the sample; the top bucket, above p99, is the long
tail). JSON-able dict + an HTML page (``quantrec.reports``) with the label histogram
on log axes and each codebook's first-layer centroids / vocabulary marked.
"""

from __future__ import annotations

import json
from typing import Any

import fsspec
import numpy as np
import pandas as pd

from quantrec.codebook.cluster1d import collapse
from quantrec.codebook.rq import validate_values

# Quantile edges of the value buckets; the last bucket (>= p99) is the long tail.
BUCKET_QUANTILES = (0.0, 0.5, 0.9, 0.99, 1.0)


def _errors(y: np.ndarray, recon: np.ndarray, w: np.ndarray) -> dict[str, float]:
    """MAE, mean relative error (y > 0 only), max abs error, RMSE of a reconstruction.

    y, recon: distinct labels and their reconstructions (m,); w: counts (m,). The error
    is a function of the label value, so weighting distinct values by their counts
    gives exactly the per-line statistics at a fraction of the cost.
    """
    n = float(w.sum())
    if n == 0:
        return {"n": 0, "mae": float("nan"), "mre": float("nan"), "max_abs": float("nan"),
                "rmse": float("nan")}
    err = np.abs(y - recon)
    pos = y > 0
    return {"n": int(n), "mae": float(np.sum(w * err) / n),
            "mre": float(np.sum(w[pos] * err[pos] / y[pos]) / w[pos].sum()) if pos.any() else float("nan"),
            "max_abs": float(err.max()),
            "rmse": float(np.sqrt(np.sum(w * err ** 2) / n))}


def value_buckets(y: np.ndarray) -> list[tuple[str, float, float]]:
    """(name, lo, hi) buckets at the sample's quantiles; lo inclusive, hi exclusive
    except the last, which includes the maximum."""
    qs = np.quantile(y, BUCKET_QUANTILES)
    out = []
    for i in range(len(qs) - 1):
        name = f"p{BUCKET_QUANTILES[i] * 100:g}-p{BUCKET_QUANTILES[i + 1] * 100:g}"
        if i == len(qs) - 2:
            name += " (long tail)"
        out.append((name, float(qs[i]), float(qs[i + 1])))
    return out


def reconstruction_report(values: Any, codebooks: dict[str, Any]) -> dict[str, Any]:
    """Errors of each codebook on ``values`` (n,). codebooks: name -> fitted codebook
    (anything with encode / decode / decode_partial / layers / size / config)."""
    if not codebooks:
        raise ValueError("reconstruction_report: no codebooks given")
    y = validate_values(values, allow_negative=True)
    buckets = value_buckets(y)
    u, w = collapse(y)
    report: dict[str, Any] = {
        "n": int(y.size),
        "labels": {"min": float(y.min()), "median": float(np.median(y)),
                   "p99": float(np.quantile(y, 0.99)), "max": float(y.max()),
                   "mean": float(y.mean()), "distinct": int(np.unique(y).size)},
        "buckets": [{"name": n, "lo": lo, "hi": hi} for n, lo, hi in buckets],
        "methods": {},
    }
    for name, cb in codebooks.items():
        codes = cb.encode(u)
        partial = cb.decode_partial(codes)
        recon = cb.decode(codes)
        entry: dict[str, Any] = {
            "method": cb.config.get("method"), "layers": int(cb.layers), "size": int(cb.size),
            "config": cb.config, "overall": _errors(u, recon, w),
            "per_layer": [{"layer": i + 1, **_errors(u, partial[:, i], w)} for i in range(partial.shape[1])],
            "per_bucket": [],
        }
        for i, (bname, lo, hi) in enumerate(buckets):
            m = (u >= lo) & ((u < hi) if i < len(buckets) - 1 else (u <= hi))
            entry["per_bucket"].append({"bucket": bname, "lo": lo, "hi": hi, **_errors(u[m], recon[m], w[m])})
        if hasattr(cb, "lengths"):
            lengths = cb.lengths(codes)
            entry["sequence_length"] = {"mean": float(np.sum(w * lengths) / w.sum()),
                                        "max": int(lengths.max())}
        report["methods"][name] = entry
    return report


def _marks(cb: Any) -> np.ndarray:
    """Values to mark on the histogram: first-layer centroids or the vocabulary."""
    if hasattr(cb, "centroids"):
        return np.asarray(cb.centroids[0])
    return np.asarray(cb.vocab)


def write_reconstruction_report(report: dict[str, Any], json_path: str, html_path: str,
                                values: Any, codebooks: dict[str, Any]) -> tuple[str, str]:
    """Write the report as JSON and as an HTML page (tables + marked log histogram)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from quantrec.reports import HtmlReport

    with fsspec.open(json_path, "w", encoding="utf-8") as f:
        json.dump(report, f, indent=1)

    y = validate_values(values, allow_negative=True)
    page = HtmlReport("Codebook reconstruction error")
    lab = report["labels"]
    page.add_text("Labels", f"n={report['n']:,}, distinct={lab['distinct']:,}, min={lab['min']:g}, "
                            f"median={lab['median']:g}, p99={lab['p99']:g}, max={lab['max']:g}. "
                            "MAE = mean |y - decode(encode(y))|; MRE = mean of that / y over y > 0.")
    overall = pd.DataFrame([{"method": name, "kind": m["method"], "layers": m["layers"],
                             "size": m["size"], **{k: m["overall"][k] for k in ("mae", "mre", "max_abs", "rmse")}}
                            for name, m in report["methods"].items()])
    page.add_table("Overall", overall)
    rows = []
    for name, m in report["methods"].items():
        for r in m["per_layer"]:
            rows.append({"method": name, "layer": r["layer"], "mae": r["mae"], "mre": r["mre"],
                         "max_abs": r["max_abs"]})
    layer_df = pd.DataFrame(rows)
    # Variable-length vocabularies can have dozens of positions; show the first 8.
    page.add_table("Error after each layer / token position (first 8)", layer_df[layer_df.layer <= 8])
    brows = [{"method": name, "bucket": b["bucket"], "lo": b["lo"], "hi": b["hi"], "n": b["n"],
              "mae": b["mae"], "mre": b["mre"]}
             for name, m in report["methods"].items() for b in m["per_bucket"]]
    page.add_table("Per value bucket", pd.DataFrame(brows))

    pos = y[y > 0]
    n_cb = len(codebooks)
    fig, axes = plt.subplots(n_cb, 1, figsize=(10, 2.6 * n_cb), sharex=True, squeeze=False)
    if pos.size:
        bins = np.logspace(np.log10(pos.min()), np.log10(pos.max()) + 1e-9, 120)
        for ax, (name, cb) in zip(axes[:, 0], codebooks.items()):
            ax.hist(pos, bins=bins, color="#9ab", log=True)
            marks = _marks(cb)
            marks = marks[marks > 0]
            ax.vlines(marks, 0, 1, transform=ax.get_xaxis_transform(), color="#c33", lw=0.6, alpha=0.7)
            ax.set_xscale("log")
            ax.set_xlim(bins[0] / 1.5, bins[-1] * 1.5)  # marks outside the labels' range say nothing
            ax.set_ylabel("count (log)")
            what = "layer-1 centroids" if hasattr(cb, "centroids") else "vocabulary"
            ax.set_title(f"{name}: {len(marks)} positive {what} (red)", fontsize=9)
        axes[-1, 0].set_xlabel("label value (log scale)")
    page.add_figure("Label histogram with centroids", fig,
                    caption="Histogram of the positive labels on log-log axes; red lines mark each "
                            "codebook's first-layer centroids (RQ, K-means) or vocabulary (dynamic quantile).")
    page.write(html_path)
    return json_path, html_path
