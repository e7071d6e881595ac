"""Shadow A/B comparison on real replay windows: time of the paired user bootstrap and
the width of the CIs the default blessing rules test.

Replay tables are built from the real Online Retail II parquet with the project's task
code (run date 2011-12-10, the day after the data ends): the 1-day eval window of the
daily default and a 14-day window. Three arms, from real features and no training (so
the benchmark measures the comparison, not a model):
  challenger "signal": p = logistic(-2.5 + 1.5 min(ui_lines, 3) + 0.3 log1p(i_lines)),
                       value = expm1(i_log_gmv_mean) (the item's typical line GMV);
  baseline   "weak":   p = 0.2, value = expm1(u_log_gmv_mean) (constant inside a request);
  champion   "signal-noisy": the challenger's p, value x lognormal(0, 0.3) noise (seeded):
                       a near-equivalent model, the stand-in for yesterday's retrain.
Values are calibrated (centred isotonic) on the purchase table's val-split bought lines.
Timing: wall seconds (median of --repeats, after one untimed warm-up run that pays the
imports) and the process CPU seconds of the same run with one BLAS thread, which does
not depend on other jobs sharing the machine.

    .venv/bin/python benchmarks/shadow_bootstrap.py [--quick] [--repeats 3] [--json PATH]
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
import pandas as pd
from threadpoolctl import threadpool_limits

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from quantrec.data.tasks import TaskConfig, prepare_run  # noqa: E402
from quantrec.data.windows import WindowConfig  # noqa: E402
from quantrec.shadow.compare import Arm, ShadowConfig, run_shadow  # noqa: E402

RUN_DATE = "2011-12-10"
RULE_DELTAS = [("champion", "GMV@10", "relative"), ("champion", "AUC", "absolute"),
               ("baseline", "GMV@10", "relative"), ("baseline", "AUC", "absolute")]


def signal_arm(df: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    ui = np.minimum(df["ui_lines"].fillna(0.0).to_numpy(), 3.0)
    pop = np.log1p(df["i_lines"].fillna(0.0).to_numpy())
    p = 1.0 / (1.0 + np.exp(-(-2.5 + 1.5 * ui + 0.3 * pop)))
    v = np.expm1(df["i_log_gmv_mean"].fillna(df["i_log_gmv_mean"].median()).to_numpy())
    return p, v


def weak_arm(df: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    return np.full(len(df), 0.2), np.expm1(df["u_log_gmv_mean"].fillna(2.5).to_numpy())


def arms(replay: pd.DataFrame, val: pd.DataFrame, seed: int = 1) -> tuple[Arm, Arm, Arm]:
    ps, vs = signal_arm(replay)
    pw, vw = weak_arm(replay)
    _, vs_val = signal_arm(val)
    _, vw_val = weak_arm(val)
    rng = np.random.default_rng(seed)
    noise = np.exp(rng.normal(0.0, 0.3, size=len(replay)))
    noise_val = np.exp(rng.normal(0.0, 0.3, size=len(val)))
    return (Arm("signal", ps, vs, calibration_value=vs_val),
            Arm("weak", pw, vw, calibration_value=vw_val),
            Arm("signal-noisy", ps, vs * noise, calibration_value=vs_val * noise_val))


def build_window(eval_days: int) -> tuple[pd.DataFrame, pd.DataFrame, float]:
    t = time.perf_counter()
    tables = prepare_run(RUN_DATE, config=TaskConfig(windows=WindowConfig(eval_days=eval_days, val_days=7,
                                                                          train_days=30),
                                                     purchase_train_days=7))
    purchase = tables.tables["purchase"]
    return tables.tables["replay"], purchase[purchase["split"] == "val"].reset_index(drop=True), \
        time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="1-day window, 200 resamples, 1 repeat")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--resamples", type=int, default=1000)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    windows = [1] if args.quick else [1, 14]
    resamples = 200 if args.quick else args.resamples
    repeats = 1 if args.quick else args.repeats
    timing_rows, ci_rows = [], []
    warmed = False
    for days in windows:
        replay, val, build_s = build_window(days)
        ch, base, champ = arms(replay, val)
        cfg = ShadowConfig(resamples=resamples)
        if not warmed:  # first call pays the imports (sklearn, scipy.sparse, tqdm): not timed
            run_shadow(replay, ch, base, champ, config=cfg, calibration_frame=val, progress=False)
            warmed = True
        runs, cpu = [], []
        for _ in range(repeats):
            res = run_shadow(replay, ch, base, champ, config=cfg, calibration_frame=val, progress=False)
            runs.append(res.timings)
            # CPU seconds with one BLAS thread: the work itself, independent of the
            # other jobs sharing the machine (wall time is not, on a shared box)
            with threadpool_limits(1):
                c0 = time.process_time()
                run_shadow(replay, ch, base, champ, config=cfg, calibration_frame=val, progress=False)
                cpu.append(time.process_time() - c0)
        t = pd.DataFrame(runs).median()
        timing_rows.append({"window": f"{days}-day", "rows": res.data["rows"], "requests": res.data["requests"],
                            "users": res.data["users"], "bought": res.data["bought_lines"],
                            "arms": 3, "resamples": resamples, "repeats": repeats,
                            "total_s": float(t["total_s"]), "replay_bootstrap_s": float(t["replay_bootstrap_s"]),
                            "calibration_s": float(t["calibration_s"]), "cpu_1thread_s": float(np.median(cpu)),
                            "build_tables_s": build_s,
                            "blessed": res.blessed})
        for ref, metric, change in RULE_DELTAS:
            e = res.estimate("deltas", reference=ref, slice="all", metric=metric, change=change)
            ci_rows.append({"window": f"{days}-day", "reference": ref, "metric": metric, "change": change,
                            "point": e.point, "ci_low": e.ci_low, "ci_high": e.ci_high,
                            "half_width": (e.ci_high - e.ci_low) / 2})
    pd.set_option("display.width", 200)
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cpus, "
          f"load {os.getloadavg()[0]:.1f}")
    print(pd.DataFrame(timing_rows).to_string(index=False, float_format=lambda v: f"{v:.3g}"))
    print()
    print(pd.DataFrame(ci_rows).to_string(index=False, float_format=lambda v: f"{v:+.4f}"))
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        with open(args.json, "w") as f:
            json.dump({"timings": timing_rows, "ci": ci_rows, "load": os.getloadavg()[0]}, f, indent=1)


if __name__ == "__main__":
    main()
