"""GMV (and LTV) prediction quality: RQ-Reg against tuned peers on any dataset.

Rows: global median, the item-history heuristic (benchmarks/common.py), LightGBM, MLP,
WLR, ZILN, GR and RQ-Reg. Each neural / boosted model is trained on the train split
(the ``--max-train-rows`` most recent rows, as the daily pipeline takes them),
early-stopped on the val split's MAE and scored on the eval split with
``quantrec.evaluation.metrics.regression_metrics``, for every seed.

Configurations: each family's ``small()`` preset, replaced by its selection from the
val-only tuning runs when ``--selection`` names their JSON files
(``benchmarks/gmv_tuning.py``: the trial with the lowest val MAE per family and task).
RQ-Reg's other decodings of the same trained model (``decode`` expected / median /
mean) are recorded too (``by_decode``), the row uses the selected one.

    .venv/bin/python benchmarks/gmv_quality.py --run-date 2011-11-08 --eval-days 6 \\
        --selection benchmarks/results/tuning_2011-11-08_*.json --json benchmarks/results/gmv_quality_2011-11-08.json
    .venv/bin/python benchmarks/gmv_quality.py --quick          # 1 seed, 5k rows, 2 epochs: a smoke run
    .venv/bin/python benchmarks/gmv_quality.py --summary a.json b.json   # tables of runs made in parallel

Data / windows: ``--data --spec --run-date --eval-days --val-days --train-days``
(common.py). A task whose table cannot be built on the data (e.g. LTV on a short
history) is skipped with a message; the other task still runs and is written.
Resumable: records already in ``--json`` (same tables, task, model, seed) are kept.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (HEURISTICS, LABELS, BenchmarkError, ResultLog, add_data_args, fit_record,  # noqa: E402
                    fmt_mean_std, load_tables, mean_std, resolve_choice, run_main, split_frames)

FAMILIES = ("median", "item_history", "lgbm", "mlp", "wlr", "ziln", "gr", "rqreg")
DISPLAY = {"median": "global median", "item_history": "item-history heuristic", "lgbm": "LightGBM",
           "mlp": "MLP", "wlr": "WLR", "ziln": "ZILN", "gr": "GR", "rqreg": "RQ-Reg"}
#: configuration of a family without a selection (per task): small() + these overrides
DEFAULTS: dict[str, dict[str, dict]] = {
    "gmv": {"lgbm": {"num_boost_round": 5000, "early_stopping_rounds": 100}},
    "ltv": {"lgbm": {"num_boost_round": 5000, "early_stopping_rounds": 100, "objective": "tweedie"},
            "ziln": {"point": "mean"}},
}
COLUMNS = {"gmv": ["MAE", "XAUC", "Norm-Gini", "Spearman"],
           "ltv": ["MAE", "Norm-Gini", "Spearman", "Norm-Gini(+)", "Spearman(+)"]}


def read_selection(paths: list[str]) -> dict[tuple[str, str], dict]:
    """(task, family) -> the tuning record with the best val metric over the files (the
    metric each file was selected by: its ``select_by``, MAE when absent)."""
    from gmv_tuning import SELECT_BY
    best: dict[tuple[str, str], dict] = {}
    for p in paths:
        if not Path(p).exists():
            raise BenchmarkError(f"selection file not found: {p} (a gmv_tuning.py --json output)")
        d = json.loads(Path(p).read_text())
        by = d.get("select_by", "MAE")
        for r in d.get("records", []):
            k = (d.get("task", "gmv"), r["family"])
            score = SELECT_BY[by] * r["val"][by] if "val" in r else None
            if score is not None and (k not in best or score < best[k]["_score"]):
                best[k] = {**r, "file": p, "select_by": by, "_score": score}
    return best


def decodes(model, frame: pd.DataFrame, label: str) -> dict:
    """RQ-Reg: eval metrics of every decoding of the same trained model."""
    from quantrec.evaluation.metrics import regression_metrics
    from quantrec.models.rqreg import DECODES
    keep, out = model.config.decode, {}
    for dec in DECODES:
        model.config.decode = dec
        m = regression_metrics(frame[label].to_numpy(), model.predict(frame))
        out[dec] = {k: float(v) for k, v in m.items()}
    model.config.decode = keep
    return out


def summarise(records: list[dict], task: str) -> str:
    """Markdown table of one task: mean ± std (ddof 0) over seeds per model (each row's
    own train rows: a family run with another ``--max-train-rows`` says so), then RQ-Reg's
    decodings of the same trained models."""
    rows = [r for r in records if r["task"] == task]
    if not rows:
        return ""
    df = pd.DataFrame(rows)
    cols = COLUMNS[task]
    head = rows[0]
    out = [f"\n{task.upper()} task: eval n = {head['n_eval']:,}, val n = {head['n_val']:,}, "
           f"seeds {sorted(df.seed.unique().tolist())}\n",
           "| model | config | train rows | seeds | val MAE | " + " | ".join(cols) + " | fit s |",
           "|---" * (len(cols) + 6) + "|"]
    for family, g in df.groupby("family", sort=False):
        cells = [fmt_mean_std(r[c] for r in g["eval"]) for c in cols]
        vm, _ = mean_std(r["MAE"] for r in g["val"])
        out.append(f"| {DISPLAY.get(family, family)} | {g.config.iloc[0]} | {int(g.n_train.iloc[0]):,} | {len(g)} "
                   f"| {vm:.3f} | " + " | ".join(cells) + f" | {g.fit_seconds.mean():.0f} |")
    dec = [r for r in rows if r.get("by_decode")]
    if dec:
        out += [f"\nRQ-Reg decodings of the same trained models (eval, {len(dec)} seeds)\n",
                "| decode | " + " | ".join(cols) + " |", "|---" * (len(cols) + 1) + "|"]
        for name in dec[0]["by_decode"]:
            out.append(f"| {name} | " + " | ".join(fmt_mean_std(r["by_decode"][name][c] for r in dec)
                                                  for c in cols) + " |")
    return "\n".join(out)


def merge_results(paths: list[str]) -> tuple[list[dict], list[dict]]:
    """(records, headers) of several results files of the same tables (e.g. families run
    in parallel processes); different tables or one (task, family, seed) twice is a
    BenchmarkError naming the files."""
    records: list[dict] = []
    headers: list[dict] = []
    seen: dict[tuple, str] = {}
    for p in paths:
        if not Path(p).exists():
            raise BenchmarkError(f"results file not found: {p}")
        d = json.loads(Path(p).read_text())
        if headers and d.get("key") != headers[0].get("key"):
            raise BenchmarkError(f"{p} holds tables {d.get('key')}, {paths[0]} holds {headers[0].get('key')}")
        headers.append({**{k: v for k, v in d.items() if k != "records"}, "file": p})
        for r in d.get("records", []):
            k = (r["task"], r["family"], r["seed"])
            if k in seen:
                raise BenchmarkError(f"{k} is in both {seen[k]} and {p}")
            seen[k] = p
            records.append(r)
    return records, headers


def selection_table(headers: list[dict]) -> str:
    """Markdown table of the val selections the runs used (family, trial, val metric)."""
    sel: dict[str, dict] = {}
    for h in headers:
        for k, v in h.get("selection", {}).items():
            sel.setdefault(k, v)
    out = ["| task/family | selected trial (val) | selected by | val value | tuning file |", "|---|---|---|---|---|"]
    for k, v in sorted(sel.items()):
        by = v["select_by"]
        out.append(f"| {k} | {v['trial']} | {by} | {v[f'val_{by}']:.4f} | {Path(v['file']).name} |")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_data_args(ap)
    ap.add_argument("--tasks", nargs="+", default=["gmv", "ltv"], choices=list(LABELS))
    ap.add_argument("--models", nargs="+", default=list(FAMILIES), choices=list(FAMILIES))
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--max-train-rows", type=int, default=200_000, help="most recent train rows (0 = all)")
    ap.add_argument("--selection", nargs="*", default=[], help="gmv_tuning.py JSON files (val-only selection)")
    ap.add_argument("--quick", action="store_true", help="1 seed, 5k train rows, 2 epochs / 50 rounds")
    ap.add_argument("--json", default=None, help="records (written after every run; resumable)")
    ap.add_argument("--summary", nargs="*", default=None, metavar="JSON",
                    help="only print the tables of these results files (merged: same tables)")
    a = ap.parse_args(argv)
    if a.summary is not None:
        records, headers = merge_results(a.summary)
        print(selection_table(headers))
        for task in dict.fromkeys(r["task"] for r in records):
            print(summarise(records, task))
        return 0
    import torch
    torch.set_num_threads(1)  # the machine is shared; every model gets one thread
    if a.quick:
        a.seeds, a.max_train_rows = a.seeds[:1], 5_000
    choice = resolve_choice(a)
    bundle = load_tables(choice, tuple(a.tasks), a.cache_dir)
    selection = read_selection(a.selection)
    log = ResultLog(a.json, {"key": bundle.key, **choice.describe(), "max_train_rows": a.max_train_rows,
                             "quick": a.quick, "skipped": bundle.skipped,
                             "selection": {f"{t}/{f}": {"trial": r["trial"], "overrides": r["overrides"],
                                                         "select_by": r["select_by"],
                                                         f"val_{r['select_by']}": r["val"][r["select_by"]],
                                                         "file": r["file"]}
                                           for (t, f), r in selection.items()}})
    for task, frame in bundle.tables.items():
        tr, va, ev = split_frames(frame, a.max_train_rows)
        label = LABELS[task]
        print(f"{task}: train {len(tr):,} (most recent), val {len(va):,}, eval {len(ev):,}", flush=True)
        for family in a.models:
            if family == "item_history" and task != "gmv":
                continue
            sel = selection.get((task, family))
            overrides = dict(sel["overrides"]) if sel else dict(DEFAULTS.get(task, {}).get(family, {}))
            name = sel["trial"] if sel else ("-" if family in HEURISTICS else "small()")
            if a.quick and family not in HEURISTICS:
                overrides = {**overrides, **({"num_boost_round": 50} if family == "lgbm" else
                                             {"train": {**overrides.get("train", {}), "epochs": 2}})}
            for seed in (a.seeds if family not in HEURISTICS else a.seeds[:1]):
                if log.done(task=task, family=family, seed=seed):
                    continue
                rec, model = fit_record(family, task, overrides, seed, tr, va, {"val": va, "eval": ev})
                if family == "rqreg":
                    rec["by_decode"] = decodes(model, ev, label)
                rec = {"task": task, "family": family, "config": name, "overrides": overrides, "seed": seed,
                       "n_train": len(tr), "n_val": len(va), "n_eval": len(ev), **rec}
                log.add(rec)
                print(f"{task} {family:12s} seed {seed}: val MAE {rec['val']['MAE']:.3f}  eval MAE "
                      f"{rec['eval']['MAE']:.3f}  XAUC {rec['eval']['XAUC']:.4f}  ({rec['fit_seconds']:.0f}s)",
                      flush=True)
    for task in bundle.tables:
        print(summarise(log.records, task))
    for task, reason in bundle.skipped.items():
        print(f"\n{task.upper()} task skipped: {reason}")
    return 0


if __name__ == "__main__":
    raise SystemExit(run_main(main))
