"""RQ-Reg ablations on the GMV task of the default data: the paper's Table 3
(components), Table 4 (backbones) and Table 5 (quantizers, incl. RQ with L = 2 vs 3),
plus our target-transform choice (log1p vs raw GMV). Same data, windows and training
settings as gmv_quality.py (run_date 2011-12-01; train subsampled to
--max-train-rows rows); metrics on the eval split.

    .venv/bin/python benchmarks/rqreg_ablation.py [--quick] [--seeds 0 1] [--json out.json]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

import pandas as pd
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from gmv_quality import RUN_DATE, WINDOWS, load_tables  # noqa: E402
from quantrec.evaluation.metrics import regression_metrics  # noqa: E402
from quantrec.models.rqreg import RQRegConfig, RQRegModel  # noqa: E402
from quantrec.training.trainer import TrainConfig  # noqa: E402

# base of every row: the daily loss (Huber delta 1 + per-layer softmax mask) WITH the
# paper's regressor, so that "w/o regressor" is the one-change ablation (and equals
# RQRegConfig.small(), which decodes from the expected centroid values since this table)
BASE = RQRegConfig.small(use_regressor=True)

VARIANTS: dict[str, tuple[str, dict]] = {
    "RQ-Reg (full)": ("Table 3", {}),
    "paper loss (delta 10, no layer mask)": ("loss", {"huber_delta": 10.0, "layer_mask": False}),
    "w/o NLL": ("Table 3", {"use_nll": False}),
    "w/o RnC": ("Table 3", {"use_rnc": False}),
    "w/o regressor": ("Table 3", {"use_regressor": False}),
    "w/o SS (always teacher forcing)": ("Table 3", {"schedule": "always_tf"}),
    "w/o SS (never teacher forcing)": ("Table 3", {"schedule": "never_tf"}),
    "SS paper schedule (Bengio inverse sigmoid)": ("Table 3", {"schedule": "paper"}),
    "RNN": ("Table 4", {"backbone": "rnn"}),
    "Transformer": ("Table 4", {"backbone": "transformer"}),
    "K-means (flat, L*K codes)": ("Table 5", {"quantizer": "kmeans"}),
    "Dynamic quantile": ("Table 5", {"quantizer": "dynamic_quantile"}),
    "RQ K-means L=2": ("Table 5", {"layers": 2}),
    "RQ K-medians first layer (L=3)": ("Table 5", {"first_layer": "kmedians"}),
    "raw GMV target": ("target", {"target": "raw"}),
}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run-date", default=RUN_DATE)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--epochs", type=int, default=6)
    ap.add_argument("--max-train-rows", type=int, default=100_000)
    ap.add_argument("--only", nargs="*", default=None)
    ap.add_argument("--quick", action="store_true", help="5k train rows, 1 epoch, 4 variants")
    ap.add_argument("--json", default=None)
    ap.add_argument("--cache-dir", default="/tmp/quantrec_bench")
    a = ap.parse_args(argv)
    torch.set_num_threads(1)
    variants = dict(VARIANTS)
    if a.quick:
        a.epochs, a.max_train_rows, a.seeds = 1, 5_000, a.seeds[:1]
        variants = {k: variants[k] for k in ["RQ-Reg (full)", "w/o RnC", "RNN", "RQ K-means L=2"]}
    if a.only:
        variants = {k: v for k, v in variants.items() if any(o.lower() in k.lower() for o in a.only)}
    g = load_tables(a.run_date, a.cache_dir)["gmv"]
    tr = g[g.split == "train"].sample(min(a.max_train_rows, int((g.split == "train").sum())), random_state=0)
    va, ev = g[g.split == "val"], g[g.split == "eval"]
    print(f"run_date {a.run_date}, windows {WINDOWS}, train n = {len(tr)}", flush=True)
    records = []
    for name, (table, change) in variants.items():
        for seed in a.seeds:
            cfg = dataclasses.replace(BASE, **change,
                                      train=TrainConfig(epochs=a.epochs, batch_size=256, lr=1e-3, patience=3,
                                                        progress=False, num_threads=1, seed=seed))
            t0 = time.time()
            m = RQRegModel(cfg)
            m.fit(tr, va)
            met = regression_metrics(ev.gmv.to_numpy(), m.predict(ev))
            rec = {"table": table, "variant": name, "seed": seed, "fit_seconds": round(time.time() - t0, 1),
                   "epochs_run": m.train_result.epochs_run, "best_epoch": m.train_result.best_epoch,
                   "val_MAE": m.train_result.best_metric,
                   "MAE": met["MAE"], "XAUC": met["XAUC"], "Spearman": met["Spearman"]}
            records.append(rec)
            print(json.dumps(rec), flush=True)
            if a.json:  # after every run, so an interrupted run keeps what finished
                Path(a.json).parent.mkdir(parents=True, exist_ok=True)
                with open(a.json, "w") as f:
                    json.dump({"run_date": a.run_date, "windows": WINDOWS, "n_train": len(tr),
                               "epochs": a.epochs, "records": records}, f, indent=1)
    df = pd.DataFrame(records)
    print("\n| table | variant | val MAE | MAE | XAUC | Spearman | epochs (best) | fit s |\n"
          "|---|---|---|---|---|---|---|---|")
    for (table, name), gm in df.groupby(["table", "variant"], sort=False):
        print(f"| {table} | {name} | {gm.val_MAE.mean():.3f} | {gm.MAE.mean():.3f} | {gm.XAUC.mean():.4f} | "
              f"{gm.Spearman.mean():.4f} | {gm.epochs_run.mean():.0f} ({gm.best_epoch.mean() + 1:.0f}) | "
              f"{gm.fit_seconds.mean():.0f} |")
    if a.json:
        Path(a.json).parent.mkdir(parents=True, exist_ok=True)
        with open(a.json, "w") as f:
            json.dump({"run_date": a.run_date, "windows": WINDOWS, "n_train": len(tr), "epochs": a.epochs,
                       "records": records}, f, indent=1)


if __name__ == "__main__":
    main()
