"""GMV (and LTV) prediction quality: RQ-Reg vs WLR vs MLP vs LightGBM on the default data.

Data: Online Retail II through ``quantrec.data.tasks.prepare_run(run_date)`` with the
windows below (train 365 calendar days, val 7 and eval 14 trading days before
run_date; the daily pipeline's eval window is 1 day, too small for a benchmark).
Every model is trained on the train split, early-stopped on the val split's MAE and
scored on the eval split with ``quantrec.evaluation.metrics.regression_metrics``.
Several seeds: mean and standard deviation.

    .venv/bin/python benchmarks/gmv_quality.py                 # full (tens of minutes)
    .venv/bin/python benchmarks/gmv_quality.py --quick         # ~1 minute smoke run
    .venv/bin/python benchmarks/gmv_quality.py --json out.json # same table as JSON
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from quantrec.evaluation.metrics import regression_metrics  # noqa: E402
from quantrec.models import MODELS  # noqa: E402
from quantrec.models.lgbm import LGBMConfig  # noqa: E402
from quantrec.models.mlp import MLPConfig  # noqa: E402
from quantrec.models.rqreg import RQRegConfig  # noqa: E402
from quantrec.models.wlr import WLRConfig  # noqa: E402
from quantrec.training.trainer import TrainConfig  # noqa: E402

RUN_DATE = "2011-12-01"
WINDOWS = dict(eval_days=14, val_days=7, train_days=365)


def load_tables(run_date: str, cache_dir: str) -> dict[str, pd.DataFrame]:
    """GMV and LTV task tables of ``run_date`` (cached as parquet in ``cache_dir``)."""
    key = f"{run_date}_e{WINDOWS['eval_days']}_v{WINDOWS['val_days']}_t{WINDOWS['train_days']}"
    paths = {n: Path(cache_dir) / f"{n}_{key}.parquet" for n in ("gmv", "ltv")}
    if all(p.exists() for p in paths.values()):
        return {n: pd.read_parquet(p) for n, p in paths.items()}
    from quantrec.data.tasks import TaskConfig, prepare_run
    from quantrec.data.windows import WindowConfig
    tt = prepare_run(run_date, config=TaskConfig(windows=WindowConfig(**WINDOWS)))
    Path(cache_dir).mkdir(parents=True, exist_ok=True)
    for n, p in paths.items():
        tt.tables[n].to_parquet(p)
    return {n: tt.tables[n] for n in paths}


def model_grid(task: str, epochs: int, quick: bool) -> dict[str, tuple[str, object]]:
    """name -> (registry key, config). Neural models share width / optimiser settings."""
    tc = lambda: TrainConfig(epochs=epochs, batch_size=256, lr=1e-3, patience=3, progress=False,  # noqa: E731
                             num_threads=1)
    rounds = 100 if quick else 1000
    grid = {
        "RQ-Reg": ("rqreg", RQRegConfig(task=task, target="log1p", train=tc())),
        "WLR": ("wlr", WLRConfig(task=task, train=tc())),
        "MLP (Huber on log1p)": ("mlp", MLPConfig(task=task, train=tc())),
        "LightGBM (L1)": ("lgbm", LGBMConfig(task=task, objective="l1", num_boost_round=rounds,
                                             params={**LGBMConfig().params, "num_threads": 1})),
    }
    grid["RQ-Reg (delta 1, layer mask)"] = ("rqreg", RQRegConfig(task=task, huber_delta=1.0, layer_mask=True,
                                                                 train=tc()))
    if not quick:
        grid["LightGBM (Tweedie)"] = ("lgbm", LGBMConfig(task=task, objective="tweedie", num_boost_round=rounds,
                                                             params={**LGBMConfig().params, "num_threads": 1}))
    return grid


def run_task(task: str, frame: pd.DataFrame, seeds: list[int], epochs: int, quick: bool,
             max_train_rows: int | None, only: list[str] | None) -> list[dict]:
    label = "gmv" if task == "gmv" else "ltv"
    tr = frame[frame.split == "train"].reset_index(drop=True)
    va = frame[frame.split == "val"].reset_index(drop=True)
    ev = frame[frame.split == "eval"].reset_index(drop=True)
    if max_train_rows and len(tr) > max_train_rows:
        tr = tr.sample(max_train_rows, random_state=0).reset_index(drop=True)
    records = []
    for name, (key, cfg) in model_grid(task, epochs, quick).items():
        if only and not any(o.lower() in name.lower() for o in only):
            continue
        for seed in seeds:
            if hasattr(cfg, "train"):
                cfg.train.seed = seed
            else:
                cfg.seed = seed
            t0 = time.time()
            model = MODELS[key](cfg)
            model.fit(tr, va)
            fit_s = time.time() - t0
            pred = model.predict(ev)
            m = regression_metrics(ev[label].to_numpy(), pred)
            rec = {"task": task, "model": name, "seed": seed, "fit_seconds": round(fit_s, 1),
                   "n_train": len(tr), "n_eval": len(ev), **{k: float(v) for k, v in m.items()}}
            if key == "rqreg":
                rec["target"] = cfg.target
                rec["epochs_run"] = model.train_result.epochs_run
            records.append(rec)
            print(json.dumps(rec), flush=True)
    return records


def summarise(records: list[dict], cols: list[str]) -> str:
    """Markdown table: mean ± std over seeds per (task, model)."""
    df = pd.DataFrame(records)
    lines = []
    for task, g in df.groupby("task", sort=False):
        lines.append(f"\n{task.upper()} task (eval split, n = {int(g.n_eval.iloc[0])}; "
                     f"train n = {int(g.n_train.iloc[0])}; seeds = {sorted(g.seed.unique().tolist())})\n")
        lines.append("| model | " + " | ".join(cols) + " | fit s |")
        lines.append("|---" * (len(cols) + 2) + "|")
        for name, gm in g.groupby("model", sort=False):
            cells = [f"{gm[c].mean():.4f} ± {gm[c].std(ddof=0):.4f}" for c in cols]
            lines.append(f"| {name} | " + " | ".join(cells) + f" | {gm.fit_seconds.mean():.0f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run-date", default=RUN_DATE)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--epochs", type=int, default=6)
    ap.add_argument("--max-train-rows", type=int, default=100_000,
                    help="subsample the train split (CPU budget); 0 = all rows")
    ap.add_argument("--tasks", nargs="+", default=["gmv", "ltv"])
    ap.add_argument("--only", nargs="*", default=None, help="substrings of model names to run")
    ap.add_argument("--quick", action="store_true", help="1 seed, 10k train rows, 2 epochs")
    ap.add_argument("--json", default=None, help="write the records as JSON here")
    ap.add_argument("--cache-dir", default=os.environ.get("QUANTREC_BENCH_CACHE", "/tmp/quantrec_bench"))
    a = ap.parse_args(argv)
    if a.quick:
        a.seeds, a.epochs, a.max_train_rows = a.seeds[:1], 2, 10_000
    import torch
    torch.set_num_threads(1)  # the machine is shared; every model gets one thread
    tables = load_tables(a.run_date, a.cache_dir)
    print(f"run_date {a.run_date}, windows {WINDOWS}", flush=True)
    records = []
    for task in a.tasks:
        records += run_task(task, tables[task], a.seeds, a.epochs, a.quick, a.max_train_rows, a.only)
    gmv_cols = ["MAE", "XAUC", "Norm-Gini", "Spearman"]
    ltv_cols = ["MAE", "Norm-Gini", "Spearman", "Norm-Gini(+)", "Spearman(+)"]
    for task, cols in (("gmv", gmv_cols), ("ltv", ltv_cols)):
        sub = [r for r in records if r["task"] == task]
        if sub:
            print(summarise(sub, cols))
    if a.json:
        Path(a.json).parent.mkdir(parents=True, exist_ok=True)
        with open(a.json, "w") as f:
            json.dump({"run_date": a.run_date, "windows": WINDOWS, "records": records}, f, indent=1)


if __name__ == "__main__":
    main()
