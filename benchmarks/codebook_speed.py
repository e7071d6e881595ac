"""Fit time and reconstruction error of RQ codebooks (L layers x K) on resampled real GMV.

Methods, all with the same L and K, each fitted on the same N labels:
  (a) ours:     quantrec RQCodebook.fit (exact 1-D DP on weighted distinct values;
                default criteria: K-means, K-means, K-medians last layer), plus two
                variants: layer 1 K-medians, and every layer K-means (the paper's)
  (b) sklearn:  sklearn.cluster.KMeans per layer on the raw residuals (defaults:
                k-means++ init, n_init=1, max_iter 300, tol 1e-4, random_state=seed)
  (c) authors:  re-implementation of the RQ-Reg authors' per-layer K-means on the raw
                residuals: k-means++ init (D^2 sampling), Lloyd with a full point x
                centroid distance matrix (chunked), max_iter 2000, stop when the
                squared centroid shift < tol 1e-10; an empty cluster keeps its centroid.
Reconstruction error: mean |y - sum of the nearest centroids per layer on the running
residual| over the N labels (computed on distinct values weighted by counts: exact).

Labels: the GMV of every cleaned purchase line of the dataset (``--data`` / ``--spec``,
default Online Retail II; lines before ``--run-date``, default all); N resampled with
replacement (seed). ``--report-dir`` with ``--run-date``: the training labels of that
run's windows instead (``--eval-days / --val-days / --train-days``), what the
pipeline's fit_codebook stage sees.

    .venv/bin/python benchmarks/codebook_speed.py [--quick] [--json PATH] [--data URL --spec YAML]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import add_data_args, load_tables, resolve_choice, run_main  # noqa: E402
from quantrec.codebook import RQCodebook  # noqa: E402
from quantrec.codebook.cluster1d import assign_sorted, collapse  # noqa: E402


def load_gmv(choice) -> np.ndarray:
    """GMV of every cleaned purchase line before the run date (the spec's cleaning)."""
    from quantrec.data.clean import clean_transactions
    from quantrec.data.load import load_transactions
    raw = load_transactions(choice.data_url, choice.spec, before=choice.run_date)
    lines, _ = clean_transactions(raw, choice.spec.cleaning)
    return lines["gmv"].to_numpy(np.float64)


def run_train_labels(choice, cache_dir: str) -> np.ndarray:
    """GMV labels of the training split of a run (cleaned, windowed: what fit_codebook sees)."""
    gmv = load_tables(choice, ("gmv",), cache_dir).tables["gmv"]
    return gmv.loc[gmv["split"] == "train", "gmv"].to_numpy(np.float64)


def reconstruction_mae(y: np.ndarray, centroids: list[np.ndarray]) -> float:
    """Mean |y - RQ reconstruction| with nearest-centroid encoding per layer."""
    u, w = collapse(y)
    r = u.copy()
    for c in centroids:
        c = np.sort(np.asarray(c, np.float64))
        r = r - c[assign_sorted(r, c)]
    return float(np.sum(w * np.abs(r)) / w.sum())


def own_mae(cb: RQCodebook, y: np.ndarray) -> float:
    """Mean |y - decode(encode(y))| with the codebook's own encode (finish rule included)."""
    u, w = collapse(y)
    return float(np.sum(w * np.abs(u - cb.decode(cb.encode(u)))) / w.sum())


def fit_sklearn(y: np.ndarray, layers: int, k: int, seed: int) -> list[np.ndarray]:
    from sklearn.cluster import KMeans
    r = y.copy()
    cents = []
    for layer in range(layers):
        km = KMeans(n_clusters=k, n_init=1, random_state=seed + layer).fit(r[:, None])
        c = km.cluster_centers_[:, 0]
        cents.append(c)
        r = r - c[km.labels_]
    return cents


def _nearest(x: np.ndarray, c: np.ndarray, chunk: int = 1 << 18) -> np.ndarray:
    """argmin_k |x_i - c_k| through an explicit (chunk, K) distance matrix, as the
    authors' code computes it (no sorted-centroid shortcut)."""
    out = np.empty(len(x), dtype=np.int64)
    for s in range(0, len(x), chunk):
        d = (x[s:s + chunk, None] - c[None, :]) ** 2
        out[s:s + chunk] = d.argmin(axis=1)
    return out


def authors_kmeans(x: np.ndarray, k: int, rng: np.random.Generator, max_iter: int = 2000,
                   tol: float = 1e-10, deadline: float = np.inf) -> tuple[np.ndarray, np.ndarray, int, bool]:
    """k-means++ + Lloyd on raw 1-D points. Returns (centroids, labels, iterations,
    stopped_by_deadline)."""
    c = np.empty(k)
    c[0] = x[rng.integers(len(x))]
    d2 = (x - c[0]) ** 2
    for j in range(1, k):
        s = d2.sum()
        c[j] = x[rng.choice(len(x), p=d2 / s)] if s > 0 else x[rng.integers(len(x))]
        d2 = np.minimum(d2, (x - c[j]) ** 2)
    it = 0
    labels = _nearest(x, c)
    for it in range(1, max_iter + 1):
        sums = np.bincount(labels, weights=x, minlength=k)
        cnt = np.bincount(labels, minlength=k)
        new = np.where(cnt > 0, sums / np.maximum(cnt, 1), c)
        shift = float(np.sum((new - c) ** 2))
        c = new
        labels = _nearest(x, c)
        if shift < tol:
            break
        if time.perf_counter() > deadline:
            return c, labels, it, True
    return c, labels, it, False


def fit_authors(y: np.ndarray, layers: int, k: int, seed: int, budget_s: float):
    rng = np.random.default_rng(seed)
    deadline = time.perf_counter() + budget_s
    r = y.copy()
    cents, iters, stopped = [], [], False
    for _ in range(layers):
        c, labels, it, cut = authors_kmeans(r, k, rng, deadline=deadline)
        cents.append(c)
        iters.append(it)
        r = r - c[labels]
        stopped |= cut
    return cents, iters, stopped


def write_table6(y: np.ndarray, layers: int, k: int, out: Path) -> int:
    """Reconstruction report of every method on the real labels (JSON + HTML)."""
    from quantrec.codebook import fit_codebook, reconstruction_report, write_reconstruction_report
    cbs = {f"rq_kmeans_L{layers}": fit_codebook(y, "rq", layers=layers, size=k),
           f"rq_all_kmeans_L{layers}": fit_codebook(y, "rq", layers=layers, size=k, last_layer="kmeans"),
           f"rq_kmedians_L{layers}": fit_codebook(y, "rq", layers=layers, size=k, first_layer="kmedians"),
           "rq_kmeans_L2": fit_codebook(y, "rq", layers=2, size=k),
           f"kmeans_{layers * k}": fit_codebook(y, "kmeans", layers=layers, size=k),
           "dynamic_quantile": fit_codebook(y, "dynamic_quantile")}
    rep = reconstruction_report(y, cbs)
    out.mkdir(parents=True, exist_ok=True)
    write_reconstruction_report(rep, str(out / "reconstruction.json"), str(out / "reconstruction.html"), y, cbs)
    print(f"{'method':<20} {'tokens':>7} {'MAE':>9} {'MRE':>9} {'max_abs':>9} {'tail MAE':>9} {'tail MRE':>9}  MAE per layer")
    for name, m in rep["methods"].items():
        o, tail = m["overall"], m["per_bucket"][-1]
        per = " ".join(f"{r['mae']:.4g}" for r in m["per_layer"][:4]) + (" ..." if len(m["per_layer"]) > 4 else "")
        print(f"{name:<20} {m['layers'] * m['size'] if m['method'] != 'dynamic_quantile' else m['size']:>7} "
              f"{o['mae']:>9.4g} {o['mre']:>9.4g} {o['max_abs']:>9.4g} {tail['mae']:>9.4g} {tail['mre']:>9.4g}  {per}")
    print(f"long tail = {rep['methods'][next(iter(cbs))]['per_bucket'][-1]['bucket']} "
          f"(>= {rep['buckets'][-1]['lo']:g}); wrote {out}/reconstruction.json and .html")
    return 0


def timed(fn, *a, **kw):
    t = time.perf_counter()
    out = fn(*a, **kw)
    return out, time.perf_counter() - t


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_data_args(ap, eval_days=1)
    ap.add_argument("--quick", action="store_true", help="N = 1e4, 1e5 (about a minute)")
    ap.add_argument("--sizes", type=float, nargs="*", help="override the N list")
    ap.add_argument("--layers", type=int, default=3)
    ap.add_argument("--size", type=int, default=48)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--authors-budget", type=float, default=600.0,
                    help="wall-time cap (s) for (c) per N; if hit, its row is marked 'stopped'")
    ap.add_argument("--skip-authors-above", type=float, default=float("inf"),
                    help="do not run (c) for N above this")
    ap.add_argument("--json", type=Path, help="also write the table as JSON here")
    ap.add_argument("--report-dir", type=Path,
                    help="only write the reconstruction report (Table 6 on all real GMV lines: "
                         "RQ L=2/3 K-means/K-medians, flat K-means L*K, dynamic quantile) here")
    args = ap.parse_args(argv)
    explicit_date = args.run_date is not None
    choice = resolve_choice(args)  # a missing data file / bad spec: one line, exit 2 (run_main)
    if args.report_dir:
        labels = run_train_labels(choice, args.cache_dir) if explicit_date else load_gmv(choice)
        return write_table6(labels, args.layers, args.size, args.report_dir)
    sizes = [int(s) for s in (args.sizes or ([1e4, 1e5] if args.quick else [1e5, 1e6, 1e7]))]
    gmv = load_gmv(choice)
    L, K = args.layers, args.size
    print(f"GMV lines: {len(gmv):,} ({len(np.unique(gmv)):,} distinct); L={L}, K={K}; "
          f"cpus={os.cpu_count()}; numpy {np.__version__}", flush=True)
    rows = []
    header = (f"{'N':>10} {'method':<16} {'fit_s':>9} {'MAE':>10} {'x slower than ours':>19}  note")
    print(header)
    for n in sizes:
        y = np.random.default_rng(args.seed).choice(gmv, size=n, replace=True)
        res = {}
        cb, t = timed(RQCodebook.fit, y, layers=L, size=K, seed=args.seed)
        res["ours"] = (t, own_mae(cb, y), "")
        cbm, t = timed(RQCodebook.fit, y, layers=L, size=K, first_layer="kmedians", seed=args.seed)
        res["ours_kmedians"] = (t, own_mae(cbm, y), "layer 1 K-medians")
        cbp, t = timed(RQCodebook.fit, y, layers=L, size=K, last_layer="kmeans", seed=args.seed)
        res["ours_all_kmeans"] = (t, own_mae(cbp, y), "paper's criteria: every layer K-means")
        cs, t = timed(fit_sklearn, y, L, K, args.seed)
        res["sklearn"] = (t, reconstruction_mae(y, cs), "")
        if n <= args.skip_authors_above:
            (ca, iters, stopped), t = timed(fit_authors, y, L, K, args.seed, args.authors_budget)
            note = f"iters/layer {iters}" + (f"; STOPPED at {args.authors_budget:.0f}s budget" if stopped else "")
            res["authors"] = (t, reconstruction_mae(y, ca), note)
        base = res["ours"][0]
        for name, (t, mae, note) in res.items():
            row = {"n": n, "method": name, "fit_seconds": t, "mae": mae, "ratio_vs_ours": t / base, "note": note}
            rows.append(row)
            print(f"{n:>10,} {name:<16} {t:>9.3f} {mae:>10.5f} {t / base:>19.1f}  {note}", flush=True)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"layers": L, "size": K, "seed": args.seed,
                                         "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
                                         "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(run_main(main))
