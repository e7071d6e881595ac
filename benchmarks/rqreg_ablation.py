"""RQ-Reg ablations on the GMV task of any dataset: the paper's Table 3 (components),
Table 4 (backbones) and Table 5 (quantizers, incl. RQ with L = 2 vs 3), plus our
target-transform and decoding choices. Train = the ``--max-train-rows`` most recent
rows of the train split, early stopping on val MAE; metrics on val and eval (read the
val column for conclusions).

    .venv/bin/python benchmarks/rqreg_ablation.py [--quick] [--seeds 0 1] [--json out.json]
        [--data URL --spec YAML --run-date D --eval-days N --val-days N --train-days N]
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

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (ResultLog, add_data_args, load_tables, resolve_choice, run_main,  # noqa: E402
                    split_frames)
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


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_data_args(ap, run_date="2011-11-08", eval_days=6)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--max-train-rows", type=int, default=200_000, help="most recent train rows (0 = all)")
    ap.add_argument("--only", nargs="*", default=None)
    ap.add_argument("--quick", action="store_true", help="5k train rows, 1 epoch, 4 variants")
    ap.add_argument("--json", default=None)
    a = ap.parse_args(argv)
    torch.set_num_threads(1)
    variants = dict(VARIANTS)
    if a.quick:
        a.epochs, a.max_train_rows, a.seeds = 1, 5_000, a.seeds[:1]
        variants = {k: variants[k] for k in ["RQ-Reg (full)", "w/o RnC", "RNN", "RQ K-means L=2"]}
    if a.only:
        variants = {k: v for k, v in variants.items() if any(o.lower() in k.lower() for o in a.only)}
    choice = resolve_choice(a)
    bundle = load_tables(choice, ("gmv",), a.cache_dir)
    if "gmv" not in bundle.tables:
        print(f"nothing to run: {bundle.skipped['gmv']}", file=sys.stderr)
        return 0
    tr, va, ev = split_frames(bundle.tables["gmv"], a.max_train_rows)
    log = ResultLog(a.json, {"key": bundle.key, **choice.describe(), "n_train": len(tr), "epochs": a.epochs})
    print(f"{choice.describe()}, train n = {len(tr)}", flush=True)
    for name, (table, change) in variants.items():
        for seed in a.seeds:
            if log.done(variant=name, seed=seed):
                continue
            cfg = dataclasses.replace(BASE, **change,
                                      train=TrainConfig(epochs=a.epochs, batch_size=256, lr=1e-3, patience=3,
                                                        progress=False, num_threads=1, seed=seed))
            t0 = time.time()
            m = RQRegModel(cfg)
            m.fit(tr, va)
            val = regression_metrics(va.gmv.to_numpy(), m.predict(va))
            met = regression_metrics(ev.gmv.to_numpy(), m.predict(ev))
            rec = {"table": table, "variant": name, "seed": seed, "fit_seconds": round(time.time() - t0, 1),
                   "epochs_run": m.train_result.epochs_run, "best_epoch": m.train_result.best_epoch,
                   "val_MAE": float(val["MAE"]), "val_XAUC": float(val["XAUC"]),
                   "MAE": float(met["MAE"]), "XAUC": float(met["XAUC"]), "Spearman": float(met["Spearman"])}
            log.add(rec)
            print(json.dumps(rec), flush=True)
    df = pd.DataFrame(log.records)
    if df.empty:
        return 0
    print("\n| table | variant | val MAE | val XAUC | MAE | XAUC | Spearman | epochs (best) | fit s |\n"
          "|---|---|---|---|---|---|---|---|---|")
    for (table, name), gm in df.groupby(["table", "variant"], sort=False):
        print(f"| {table} | {name} | {gm.val_MAE.mean():.3f} | {gm.val_XAUC.mean():.4f} | {gm.MAE.mean():.3f} | "
              f"{gm.XAUC.mean():.4f} | {gm.Spearman.mean():.4f} | {gm.epochs_run.mean():.0f} "
              f"({gm.best_epoch.mean() + 1:.0f}) | {gm.fit_seconds.mean():.0f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(run_main(main))
