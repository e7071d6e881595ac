"""Shadow backtest: the daily pipeline over N consecutive run dates (warm starts, one
registry, promotions as the shadow decisions say), then how often RQ-Reg is blessed over
WLR and what it would have earned.

    .venv/bin/python benchmarks/shadow_backtest.py --days 30 --end 2011-12-10 \
        --json benchmarks/results/shadow_backtest.json --plot benchmarks/results/shadow_backtest.png

Run dates are the day after each of the last N trading days before ``--end`` (a store
that does not trade on Saturdays would otherwise replay Friday twice). Each day runs
through ``pipelines.backfill.run_backfill`` (resumable: re-running the command skips the
days already published with the same config). The table reads every day's shadow
decision from its registry manifest: the paired-bootstrap delta of the challenger
(RQ-Reg + DMQN) vs the production arm (WLR + the same DMQN) on that day's replayed
requests. The cumulative delta sums the days' absolute GMV@10 deltas (currency); its CI
adds their bootstrap variances (days are disjoint request sets).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

QUICK_CONFIG = {  # smoke run: tiny models, short windows (not the figures RESULTS.md reports)
    "tasks": {"windows": {"eval_days": 1, "val_days": 3, "train_days": 60}, "purchase_train_days": 7},
    "models": {"max_train_rows": 5000, "models": {
        "rqreg": {"d_model": 16, "train": {"epochs": 1}}, "wlr": {"d_model": 16, "train": {"epochs": 1}},
        "dmqn": {"max_train_requests": 300, "train": {"epochs": 1}}}},
}


def run_dates(data: str | None, spec: str | None, end: str, days: int) -> list[str]:
    """The day after each of the last ``days`` trading days before ``end``."""
    from quantrec.data.load import load_transactions
    from quantrec.data.spec import load_spec, resolve_data_url
    from quantrec.data.windows import parse_run_date
    spec_obj = load_spec(spec)
    raw = load_transactions(resolve_data_url(spec_obj, data), spec_obj, before=parse_run_date(end))
    trading = np.sort(raw["day"].unique())[-days:]
    return [str((pd.Timestamp(d) + pd.Timedelta(days=1)).date()) for d in trading]


def _delta(decision: dict, reference: str, metric: str, change: str) -> dict | None:
    for d in decision.get("deltas", []):
        if (d["reference"], d["slice"], d["metric"], d["change"]) == (reference, "all", metric, change):
            return d
    return None


def day_rows(registry: str, results: list) -> pd.DataFrame:
    """One row per run date: verdict, blessed, champion after, the decision's deltas."""
    from quantrec.registry import Registry
    reg = Registry(registry)
    rows = []
    for r in results:
        row = {"run_date": r.run_date, "status": r.status, "version": r.version, "blessed": r.blessed,
               "champion_after": r.champion_after, "codebook": r.codebook}
        decision = reg.get(r.version).manifest.get("decision") or {} if r.version else {}
        row["n_requests"] = (decision.get("data") or {}).get("requests")
        for ref in ("baseline", "champion"):
            for metric, change in (("GMV@10", "relative"), ("GMV@10", "absolute"), ("AUC", "absolute")):
                d = _delta(decision, ref, metric, change)
                tag = f"{ref}/{metric}/{'rel' if change == 'relative' else 'abs'}"
                for stat in ("point", "ci_low", "ci_high", "std"):
                    row[f"{tag}/{stat}"] = None if d is None else d.get(stat)
        row["reasons"] = " | ".join(decision.get("reasons", []))[:300]
        rows.append(row)
    return pd.DataFrame(rows)


def cumulative(table: pd.DataFrame, ref: str = "baseline") -> dict:
    """Sum of the days' absolute GMV@10 deltas with a normal CI from the summed variances."""
    pt = table[f"{ref}/GMV@10/abs/point"].astype(float)
    sd = table[f"{ref}/GMV@10/abs/std"].astype(float)
    ok = pt.notna() & sd.notna()
    total, se = float(pt[ok].sum()), float(math.sqrt((sd[ok] ** 2).sum()))
    rel = table[f"{ref}/GMV@10/rel/point"].astype(float)
    return {"days": int(ok.sum()), "sum_abs_delta": total, "ci_low": total - 1.96 * se, "ci_high": total + 1.96 * se,
            "mean_rel_delta": float(rel[rel.notna()].mean()) if rel.notna().any() else None,
            "days_rel_delta_positive": int((rel > 0).sum()), "blessed_days": int(table["blessed"].fillna(False).sum())}


def plot(table: pd.DataFrame, path: str) -> None:
    from matplotlib.figure import Figure
    fig = Figure(figsize=(9, 6))
    ax1, ax2 = fig.subplots(2, 1, sharex=True)
    x = np.arange(len(table))
    pt = table["baseline/GMV@10/rel/point"].astype(float) * 100
    lo = table["baseline/GMV@10/rel/ci_low"].astype(float) * 100
    hi = table["baseline/GMV@10/rel/ci_high"].astype(float) * 100
    colors = ["#176c2c" if b else "#7a8ca3" for b in table["blessed"].fillna(False)]
    ax1.errorbar(x, pt, yerr=[pt - lo, hi - pt], fmt="none", ecolor="#bbb")
    ax1.scatter(x, pt, c=colors, zorder=3)
    ax1.axhline(0, color="#333", lw=0.8)
    ax1.set_ylabel("GMV@10 vs WLR, % (95% CI)")
    ax1.set_title("RQ-Reg + DMQN vs WLR + DMQN per run date (green: blessed)")
    cum = table["baseline/GMV@10/abs/point"].astype(float).fillna(0).cumsum()
    var = (table["baseline/GMV@10/abs/std"].astype(float).fillna(0) ** 2).cumsum()
    ax2.plot(x, cum, color="#1f5fa8")
    ax2.fill_between(x, cum - 1.96 * np.sqrt(var), cum + 1.96 * np.sqrt(var), color="#1f5fa8", alpha=0.2)
    ax2.axhline(0, color="#333", lw=0.8)
    ax2.set_ylabel("cumulative GMV@10 delta\n(per request mean, summed)")
    ax2.set_xticks(x)
    ax2.set_xticklabels(table["run_date"], rotation=60, ha="right", fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=96)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data")
    ap.add_argument("--spec")
    ap.add_argument("--end", default="2011-12-10", help="the backtest's last run date (exclusive end of the data read)")
    ap.add_argument("--days", type=int, default=30, help="consecutive trading days")
    ap.add_argument("--config", default=None, help="run config JSON (default: the daily defaults)")
    ap.add_argument("--pipeline-root", default=str(ROOT / "benchmarks" / "out" / "shadow_backtest"))
    ap.add_argument("--quick", action="store_true", help="3 days, tiny models (a smoke run)")
    ap.add_argument("--json", default=None)
    ap.add_argument("--plot", default=None)
    a = ap.parse_args(argv)
    from pipelines.backfill import run_backfill
    from quantrec.config import RunConfig
    from quantrec.registry import Registry

    config = json.loads(a.config) if a.config else (QUICK_CONFIG if a.quick else {})
    RunConfig.from_dict(config)
    days = 3 if a.quick else a.days
    dates = run_dates(a.data, a.spec, a.end, days)
    root = Path(a.pipeline_root)
    root.mkdir(parents=True, exist_ok=True)
    registry = str(root / "registry")
    Registry(registry, create=not (root / "registry" / "registry.json").exists())
    print(f"shadow backtest: {len(dates)} run dates {dates[0]} .. {dates[-1]} under {root}", flush=True)
    t0 = time.perf_counter()
    results = run_backfill(dates, registry=registry, pipeline_root=root, config=config, data=a.data, spec=a.spec,
                           out_dir=str(root / "summary"))
    table = day_rows(registry, results)
    summary = {"dates": [dates[0], dates[-1]], "config": config, "seconds": round(time.perf_counter() - t0, 1),
               "baseline": cumulative(table, "baseline"), "champion": cumulative(table, "champion")}
    cols = ["run_date", "blessed", "champion_after", "n_requests", "baseline/GMV@10/rel/point",
            "baseline/GMV@10/rel/ci_low", "baseline/GMV@10/rel/ci_high", "baseline/AUC/abs/point",
            "champion/GMV@10/rel/point"]
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        print(table[cols].to_string(index=False, float_format=lambda v: f"{v:+.4f}"))
    print(json.dumps({k: v for k, v in summary.items() if k != "config"}, indent=1))
    if a.json:
        Path(a.json).write_text(json.dumps({"summary": summary, "days": json.loads(table.to_json(orient="records"))},
                                           indent=1))
    if a.plot:
        plot(table, a.plot)
    return 0 if all(r.status != "failed" for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
