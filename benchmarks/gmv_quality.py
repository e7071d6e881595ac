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


def parse_variant(text: str) -> tuple[str, dict]:
    """'NAME:key=value,key=value' -> (NAME, {key: value}) for an extra RQ-Reg row
    (values parsed as Python literals, e.g. huber_delta=0.1,layer_mask=True)."""
    import ast
    name, _, kv = text.rpartition(":")
    out = {}
    for item in filter(None, kv.split(",")):
        k, _, v = item.partition("=")
        try:
            out[k.strip()] = ast.literal_eval(v.strip())
        except (ValueError, SyntaxError):
            out[k.strip()] = v.strip()
    return name, out


def model_grid(task: str, epochs: int, quick: bool, extra: list[str] | None = None,
               batch_size: int = 256, lr: float = 1e-3) -> dict[str, tuple[str, object]]:
    """name -> (registry key, config). Neural models share width / optimiser settings;
    ``extra``: additional RQ-Reg rows as 'NAME:key=value,...' (see parse_variant; the
    keys batch_size / lr / epochs go to the TrainConfig)."""
    def tc(**kw):
        base = dict(epochs=epochs, batch_size=batch_size, lr=lr, patience=3, progress=False, num_threads=1)
        return TrainConfig(**{**base, **kw})
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
    # the daily default's loss / decoding (RQRegConfig.small()), with the shared train settings
    grid["RQ-Reg (small(): delta 1, layer mask, w/o regressor)"] = ("rqreg", RQRegConfig.small(task=task, train=tc()))
    if not quick:
        grid["LightGBM (Tweedie)"] = ("lgbm", LGBMConfig(task=task, objective="tweedie", num_boost_round=rounds,
                                                             params={**LGBMConfig().params, "num_threads": 1}))
    for text in extra or []:
        name, kw = parse_variant(text)
        train_kw = {k: kw.pop(k) for k in ("batch_size", "lr", "epochs") if k in kw}
        grid[name] = ("rqreg", RQRegConfig(task=task, **kw, train=tc(**train_kw)))
    return grid


def run_task(task: str, frame: pd.DataFrame, seeds: list[int], epochs: int, quick: bool,
             max_train_rows: int | None, only: list[str] | None, extra: list[str] | None = None,
             score_split: str = "eval", batch_size: int = 256, lr: float = 1e-3,
             peer_rows: int = 0) -> list[dict]:
    label = "gmv" if task == "gmv" else "ltv"
    tr = frame[frame.split == "train"].reset_index(drop=True)
    va = frame[frame.split == "val"].reset_index(drop=True)
    ev = frame[frame.split == score_split].reset_index(drop=True)  # "val" for model selection
    if max_train_rows and len(tr) > max_train_rows:
        tr = tr.sample(max_train_rows, random_state=0).reset_index(drop=True)
    records = []
    grid = model_grid(task, epochs, quick, extra, batch_size, lr)
    subsets = {name: tr for name in grid}
    if peer_rows and len(tr) > peer_rows:  # peers also on a subsample (their val-preferred size)
        sub = tr.sample(peer_rows, random_state=0).reset_index(drop=True)
        for name in ("LightGBM (L1)", "MLP (Huber on log1p)", "WLR"):
            grid[f"{name}, {peer_rows // 1000}k train rows"] = grid[name]
            subsets[f"{name}, {peer_rows // 1000}k train rows"] = sub
    for name, (key, cfg) in grid.items():
        tr = subsets[name]
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
                   "score_split": score_split,
                   "n_train": len(tr), "n_eval": len(ev), **{k: float(v) for k, v in m.items()}}
            if key == "rqreg":
                rec["target"] = cfg.target
                rec["epochs_run"] = model.train_result.epochs_run
            if hasattr(model, "train_result") and hasattr(model.train_result, "best_metric"):
                rec["best_val_mae"] = float(model.train_result.best_metric)
                rec["best_epoch"] = int(model.train_result.best_epoch)
            elif key == "lgbm":
                rec["best_val_mae"] = float(model.booster.best_score["valid_0"]["l1"])
                rec["best_iteration"] = int(model.booster.best_iteration)
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
    ap.add_argument("--rqreg", nargs="*", default=None, metavar="NAME:key=value,...",
                    help="extra RQ-Reg rows, e.g. 'RQ-Reg (d0.1):huber_delta=0.1,layer_mask=True'")
    ap.add_argument("--score-split", default="eval", choices=["eval", "val"],
                    help="split the metrics are computed on ('val' for model selection)")
    ap.add_argument("--batch-size", type=int, default=256, help="neural models' batch")
    ap.add_argument("--lr", type=float, default=1e-3, help="neural models' AdamW lr")
    ap.add_argument("--peer-rows", type=int, default=0,
                    help="also run LightGBM (L1) / MLP / WLR on a subsample of this many train rows")
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
        records += run_task(task, tables[task], a.seeds, a.epochs, a.quick, a.max_train_rows, a.only,
                            a.rqreg, a.score_split, a.batch_size, a.lr, a.peer_rows)
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
