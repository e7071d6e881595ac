"""GR ablation of curriculum learning with embedding mixup (CLEM), as the GR paper's
Table 4 (rows a-h), on the GMV task of any dataset.

    (a) GR                full CLEM: two passes, embedding mixup, sigmoid decay of p
    (b) w/o CLEM          one teacher-forced pass; inference feeds E[argmax]
    (c) EM with TF        mixup at inference, teacher forcing in training (p = 1)
    (d) CL w/o EM         curriculum with E[argmax] of pass 1 (no mixup)
    (e) linear            p = 1 - tau / steps
    (f) exponential       p = exp(-5 tau / steps)
    (g) p = 0.5           fixed
    (h) p = 0             pass 2 always fed pass 1's predictions

Each row changes one thing of the base config (``--base``: the GR selection of
gmv_tuning.py, default ``GRConfig.small()``); trained on the train split, early-stopped
on val MAE; val and eval metrics (read the val column for conclusions).

    .venv/bin/python benchmarks/gr_ablation.py --run-date 2011-11-08 --eval-days 6 \\
        --json benchmarks/results/gr_ablation_2011-11-08.json
    .venv/bin/python benchmarks/gr_ablation.py --quick
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (ResultLog, add_data_args, fit_record, load_tables, merge, parse_overrides,  # noqa: E402
                    resolve_choice, run_main, split_frames)

VARIANTS: dict[str, dict] = {
    "(a) GR (CLEM)": {},
    "(b) w/o CLEM": {"curriculum": False, "mixup": False},
    "(c) EM with TF": {"curriculum": False, "mixup": True},
    "(d) CL w/o EM": {"mixup": False},
    "(e) linear": {"tf_schedule": "linear"},
    "(f) exponential": {"tf_schedule": "exponential"},
    "(g) p = 0.5": {"tf_schedule": "fixed", "tf_fixed": 0.5},
    "(h) p = 0": {"tf_schedule": "fixed", "tf_fixed": 0.0},
}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_data_args(ap, run_date="2011-11-08", eval_days=6)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--max-train-rows", type=int, default=200_000)
    ap.add_argument("--base", default=None, metavar="NAME:key=value,...",
                    help="overrides of GRConfig.small() shared by every row (e.g. the tuned selection)")
    ap.add_argument("--only", nargs="*", default=None)
    ap.add_argument("--quick", action="store_true", help="5k rows, 2 epochs, rows (a) (b) (c)")
    ap.add_argument("--json", default=None)
    a = ap.parse_args(argv)
    import torch
    torch.set_num_threads(1)
    choice = resolve_choice(a)
    bundle = load_tables(choice, ("gmv",), a.cache_dir)
    if "gmv" not in bundle.tables:
        print(f"nothing to run: {bundle.skipped['gmv']}", file=sys.stderr)
        return 0
    tr, va, ev = split_frames(bundle.tables["gmv"], 5_000 if a.quick else a.max_train_rows)
    base = parse_overrides(a.base)[1] if a.base else {}
    variants = dict(VARIANTS)
    if a.quick:
        a.seeds = a.seeds[:1]
        variants = {k: v for k, v in variants.items() if k[:3] in ("(a)", "(b)", "(c)")}
        base = merge(base, {"train": {"epochs": 2}})
    if a.only:
        variants = {k: v for k, v in variants.items() if any(o.lower() in k.lower() for o in a.only)}
    log = ResultLog(a.json, {"key": bundle.key, **choice.describe(), "base": base, "n_train": len(tr)})
    print(f"{choice.describe()}: train {len(tr):,}, val {len(va):,}, eval {len(ev):,}; base {base}", flush=True)
    for name, change in variants.items():
        for seed in a.seeds:
            if log.done(variant=name, seed=seed):
                continue
            rec, model = fit_record("gr", "gmv", merge(base, change), seed, tr, va, {"val": va, "eval": ev})
            rec = {"variant": name, "seed": seed, "change": change, **rec}
            log.add(rec)
            print(f"{name:20s} seed {seed}: val MAE {rec['val']['MAE']:.3f} XAUC {rec['val']['XAUC']:.4f} | "
                  f"eval MAE {rec['eval']['MAE']:.3f} XAUC {rec['eval']['XAUC']:.4f} ({rec['fit_seconds']:.0f}s)",
                  flush=True)
    df = pd.DataFrame(log.records)
    if df.empty:
        return 0
    print("\n| row | val MAE | val XAUC | eval MAE | eval XAUC | epochs (best) | fit s |\n"
          "|---|---|---|---|---|---|---|")
    for name, g in df.groupby("variant", sort=False):
        val = pd.DataFrame(list(g["val"]))
        evl = pd.DataFrame(list(g["eval"]))
        print(f"| {name} | {val.MAE.mean():.3f} | {val.XAUC.mean():.4f} | {evl.MAE.mean():.3f} | "
              f"{evl.XAUC.mean():.4f} | {g.epochs_run.mean():.0f} ({g.best_epoch.mean() + 1:.0f}) | "
              f"{g.fit_seconds.mean():.0f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(run_main(main))
