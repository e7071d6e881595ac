"""Model selection on the VAL split: a fixed list of trials per model family, the same
budget for RQ-Reg and its peers (issue 13). Every trial trains on the train split
(the ``--max-train-rows`` most recent rows), early-stops on val, and is scored on val
only; the eval split is never read here. The selection (lowest val MAE per family) is
what ``gmv_quality.py --selection`` trains for the final table.

    .venv/bin/python benchmarks/gmv_tuning.py --family lgbm --json benchmarks/results/tuning_2011-11-08.json
    .venv/bin/python benchmarks/gmv_tuning.py --family rqreg --trial "d128:d_model=128,train.lr=0.002" ...
    .venv/bin/python benchmarks/gmv_tuning.py --quick          # 2 trials per family, 5k rows, smoke run

Data / windows: ``--data --spec --run-date --eval-days --val-days --train-days``
(benchmarks/common.py); default run 2011-11-08 with 6 eval days (the issue's window).
Resumable: a trial already in the ``--json`` file (same data key, family, trial name
and seed) is not run again.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (ResultLog, add_data_args, fit_record, load_tables, parse_overrides,  # noqa: E402
                    resolve_choice, run_main, split_frames)

NO_IDS = {"categorical": ["country"]}
ITEM_ONLY = {"categorical": ["item_id", "country"]}
LGBM_BASE = {"num_boost_round": 5000, "early_stopping_rounds": 100}


def _lgbm(ids: bool, objective: str, leaves: int, lr: float) -> dict:
    return {**LGBM_BASE, **({} if ids else NO_IDS), "objective": objective,
            "params": {"num_leaves": leaves, "learning_rate": lr, "min_data_in_leaf": 50}}


#: family -> [(trial name, config overrides of the family's small() preset)]
SPACES: dict[str, list[tuple[str, dict]]] = {
    # ids as categoricals or not x objective (L1 / Tweedie / L2 on log1p) x leaves x lr
    "lgbm": [(f"{'ids' if ids else 'no ids'}, {obj}, {leaves} leaves, lr {lr}", _lgbm(ids, obj, leaves, lr))
             for ids in (True, False) for obj in ("l1", "tweedie", "l2_log") for leaves, lr in
             ((63, 0.05), (255, 0.05), (63, 0.1))] + [
        ("no ids, l1, 31 leaves, lr 0.03", _lgbm(False, "l1", 31, 0.03)),
        ("no ids, l2_log, 127 leaves, lr 0.03", _lgbm(False, "l2_log", 127, 0.03)),
    ],
    "mlp": [
        ("small()", {}),
        ("no ids", NO_IDS),
        ("item ids only", ITEM_ONLY),
        ("no ids, d 128", {**NO_IDS, "d_model": 128}),
        ("no ids, d 256, dropout 0.2", {**NO_IDS, "d_model": 256, "dropout": 0.2}),
        ("no ids, lr 1e-3, batch 256, 10 epochs", {**NO_IDS, "train": {"lr": 1e-3, "batch_size": 256,
                                                                       "epochs": 10}}),
        ("no ids, mse on log1p", {**NO_IDS, "loss": "mse"}),
        ("no ids, huber delta 0.3", {**NO_IDS, "huber_delta": 0.3}),
        ("no ids, d 128, lr 1e-3, 10 epochs", {**NO_IDS, "d_model": 128, "train": {"lr": 1e-3, "epochs": 10}}),
        ("no ids, d 128, min_count 20 item", {**ITEM_ONLY, "d_model": 128, "min_count": 20}),
    ],
    "rqreg": [
        ("small()", {}),
        ("small(), median decode", {"decode": "median"}),
        ("no ids", NO_IDS),
        ("no ids, median decode", {**NO_IDS, "decode": "median"}),
        ("no ids, median, 20 epochs", {**NO_IDS, "decode": "median", "train": {"epochs": 20}}),
        ("no ids, median, d 128, 20 epochs", {**NO_IDS, "decode": "median", "d_model": 128,
                                              "train": {"epochs": 20}}),
        ("no ids, median, 20 epochs, lr 2e-3", {**NO_IDS, "decode": "median", "train": {"epochs": 20, "lr": 2e-3}}),
        ("no ids, median, 20 epochs, dropout 0.2", {**NO_IDS, "decode": "median", "dropout": 0.2,
                                                    "train": {"epochs": 20}}),
        ("item ids, median, 20 epochs", {**ITEM_ONLY, "decode": "median", "train": {"epochs": 20}}),
        ("no ids, median, 20 epochs, RnC 0.3", {**NO_IDS, "decode": "median", "lambda2": 0.3,
                                                "train": {"epochs": 20}}),
        ("no ids, median, 20 epochs, SS paper", {**NO_IDS, "decode": "median", "schedule": "paper",
                                                 "train": {"epochs": 20}}),
        ("no ids, median, 20 epochs, K-medians layer 1", {**NO_IDS, "decode": "median", "first_layer": "kmedians",
                                                          "train": {"epochs": 20}}),
    ],
    "gr": [
        ("small()", {}),
        ("no ids", NO_IDS),
        ("no ids, expected decode", {**NO_IDS, "decode": "expected"}),
        ("no ids, raw target", {**NO_IDS, "target": "raw", "huber_delta": 10.0}),
    ],
    "wlr": [
        ("small()", {}),
        ("no ids", NO_IDS),
        ("no ids, d 128", {**NO_IDS, "d_model": 128}),
    ],
    "ziln": [
        ("small() (mean)", {}),
        ("median point", {"point": "median"}),
        ("no ids, median point", {**NO_IDS, "point": "median"}),
    ],
}


def select(records: list[dict], family: str) -> dict | None:
    """The family's trial with the lowest val MAE (None if it has none)."""
    rows = [r for r in records if r["family"] == family and "val" in r]
    return min(rows, key=lambda r: r["val"]["MAE"]) if rows else None


def extra_decodes(model, frame: pd.DataFrame, label: str) -> dict:
    """RQ-Reg: val MAE / XAUC of every decoding of the same trained model."""
    from quantrec.evaluation.metrics import regression_metrics
    from quantrec.models.rqreg import DECODES
    out, keep = {}, model.config.decode
    for dec in DECODES:
        model.config.decode = dec
        m = regression_metrics(frame[label].to_numpy(), model.predict(frame))
        out[dec] = {"MAE": float(m["MAE"]), "XAUC": float(m["XAUC"])}
    model.config.decode = keep
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_data_args(ap, run_date="2011-11-08", eval_days=6)
    ap.add_argument("--task", default="gmv", choices=["gmv", "ltv"])
    ap.add_argument("--family", nargs="+", default=list(SPACES), choices=list(SPACES))
    ap.add_argument("--only", nargs="*", default=None, help="substrings of trial names to run")
    ap.add_argument("--trial", nargs="*", default=[], metavar="NAME:key=value,...",
                    help="run these trials of the (single) --family instead of its list, "
                         "e.g. 'd128:d_model=128,train.lr=0.002'")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--max-train-rows", type=int, default=200_000, help="most recent train rows (0 = all)")
    ap.add_argument("--quick", action="store_true", help="5k train rows, 2 epochs, 2 trials per family")
    ap.add_argument("--json", default=None, help="results file (written after every trial; resumable)")
    a = ap.parse_args(argv)
    import torch
    torch.set_num_threads(1)
    choice = resolve_choice(a)
    bundle = load_tables(choice, (a.task,), a.cache_dir)
    if a.task not in bundle.tables:
        print(f"nothing to tune: {bundle.skipped[a.task]}", file=sys.stderr)
        return 0
    tr, va, _ = split_frames(bundle.tables[a.task], 5_000 if a.quick else a.max_train_rows)
    log = ResultLog(a.json, {"key": bundle.key, **choice.describe(), "task": a.task,
                             "max_train_rows": a.max_train_rows, "quick": a.quick})
    print(f"{choice.describe()}: train {len(tr):,} rows, val {len(va):,} rows", flush=True)
    spaces = {f: list(SPACES[f]) for f in a.family}
    if a.trial:
        if len(a.family) != 1:
            raise SystemExit("--trial needs exactly one --family")
        spaces[a.family[0]] = [parse_overrides(t) for t in a.trial]
    for family, trials in spaces.items():
        if a.quick:
            trials = trials[:2]
        for name, overrides in trials:
            if a.only and not any(o.lower() in name.lower() for o in a.only):
                continue
            if a.quick:
                overrides = {**overrides, **({"train": {**overrides.get("train", {}), "epochs": 2}}
                                             if family != "lgbm" else {"num_boost_round": 50})}
            if log.done(family=family, trial=name, seed=a.seed):
                continue
            rec, model = fit_record(family, a.task, overrides, a.seed, tr, va, {"val": va})
            if family == "rqreg":
                rec["val_by_decode"] = extra_decodes(model, va, "gmv" if a.task == "gmv" else "ltv")
            rec = {"family": family, "trial": name, "seed": a.seed, "overrides": overrides,
                   "n_train": len(tr), **rec}
            log.add(rec)
            print(f"{family:6s} {name:45s} val MAE {rec['val']['MAE']:.4f}  XAUC {rec['val']['XAUC']:.4f}  "
                  f"epochs {rec.get('epochs_run', '-')}  {rec['fit_seconds']:.0f}s", flush=True)
    print("\n| family | trials | selected (lowest val MAE) | val MAE | val XAUC |\n|---|---|---|---|---|")
    for family in a.family:
        best = select(log.records, family)
        if best:
            n = sum(r["family"] == family for r in log.records)
            print(f"| {family} | {n} | {best['trial']} | {best['val']['MAE']:.3f} | {best['val']['XAUC']:.4f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(run_main(main))
