"""DMQN on the real purchase task: AUC / GAUC / logloss on val and eval, training time
per epoch, codeword usage / perplexity and attention entropy, over several seeds.

The tables come from ``prepare_run(run_date)`` with the default TaskConfig (or from a
folder written by ``quantrec tasks --out DIR``: ``--tables DIR``). Context rows, not
models: the AUC of the item's popularity (``i_lines``) and of the user's earlier count
of the same item (``ui_lines``), both from the purchase table's leakage-free features.

    .venv/bin/python benchmarks/dmqn_quality.py [--run-date 2011-12-10] [--tables DIR]
        [--seeds 0 1 2] [--preset small|paper] [--set '{"codewords": 25}'] [--quick]
        [--json out.json]

``--quick``: the most recent 300 training requests, 1 epoch (a smoke run).
``--serving``: after the first seed, time the cache path: ``user_states`` of every user
with events as of the run date, the state size, and ``score`` per eval request.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from quantrec.data import schema as S  # noqa: E402
from quantrec.dataclass_io import build_dataclass  # noqa: E402
from quantrec.evaluation.metrics import auc, gauc, logloss  # noqa: E402
from quantrec.models.dmqn import DMQNConfig, DMQNModel  # noqa: E402


class _Inputs:
    """What ``fit`` / ``predict`` read from ModelInputs: the events table."""

    def __init__(self, events: pd.DataFrame) -> None:
        self.events = events


def load_tables(run_date: str, tables: str | None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(purchase, events) of a run."""
    from quantrec.data.tasks import prepare_run, read_table
    if tables:
        return read_table(f"{tables}/purchase.parquet"), read_table(f"{tables}/events.parquet")
    t = prepare_run(run_date).tables
    return t["purchase"], t["events"]


def metrics(frame: pd.DataFrame, p: np.ndarray) -> dict[str, float]:
    groups = frame[S.USER].astype(str) + "|" + frame[S.DAY].astype(str)
    y = frame[S.LABEL].to_numpy()
    return {"AUC": auc(y, p), "GAUC": gauc(y, p, groups), "logloss": logloss(y, p)}


def context_rows(purchase: pd.DataFrame) -> list[dict]:
    rows = []
    for name, col in (("popularity i_lines", "i_lines"), ("repeat count ui_lines", "ui_lines")):
        r = {"model": name}
        for split in ("val", "eval"):
            f = purchase[purchase[S.SPLIT] == split]
            x = f[col].fillna(0).to_numpy(dtype=np.float64)
            groups = f[S.USER].astype(str) + "|" + f[S.DAY].astype(str)
            r[f"{split} AUC"] = auc(f[S.LABEL], x)
            r[f"{split} GAUC"] = gauc(f[S.LABEL], x, groups)
        rows.append(r)
    return rows


def serving_figures(model: DMQNModel, purchase: pd.DataFrame, events: pd.DataFrame, run_date: str) -> dict:
    """Cache refresh (all users as of run_date) and scoring from cached states."""
    users = np.unique(events[S.USER].astype(str).to_numpy())
    t0 = time.time()
    got, states = model.user_states(events, users, run_date, progress=True)
    refresh_s = time.time() - t0
    ev = purchase[purchase[S.SPLIT] == "eval"]
    day = ev[S.DAY].max()
    req = ev[ev[S.DAY] == day]
    pos = pd.Series(np.arange(len(got)), index=got)
    times = []
    for _, rows in req.groupby(S.USER, sort=False):
        st = states[int(pos[str(rows[S.USER].iloc[0])])]
        t1 = time.perf_counter()
        model.score(st, rows[S.ITEM].to_numpy())
        times.append(time.perf_counter() - t1)
    return {"users": int(len(got)), "refresh_s": refresh_s, "users_per_s": len(got) / refresh_s,
            "state_shape": list(states.shape[1:]), "state_bytes": int(states[0].numel() * 4),
            "score_ms_median": 1000 * float(np.median(times)), "score_ms_p95": 1000 * float(np.quantile(times, 0.95)),
            "candidates_per_request_median": float(req.groupby(S.USER).size().median())}


def run_one(purchase: pd.DataFrame, events: pd.DataFrame, cfg: DMQNConfig, serving_date: str | None = None) -> dict:
    split = {s: purchase[purchase[S.SPLIT] == s].reset_index(drop=True) for s in ("train", "val", "eval")}
    model = DMQNModel(cfg)
    t0 = time.time()
    res = model.fit(split["train"], split["val"], _Inputs(events))
    fit_s = time.time() - t0
    out = {"seed": cfg.train.seed, "epochs_run": res.epochs_run, "best_epoch": res.best_epoch,
           "fit_s": fit_s, "s_per_epoch": float(np.mean([h["seconds"] for h in res.history])),
           "train_requests": model.state["train_requests"], "train_rows": model.state["train_rows"]}
    for s in ("val", "eval"):
        t1 = time.time()
        p = model.predict(split[s], _Inputs(events))
        out[f"{s}_predict_s"] = time.time() - t1
        out.update({f"{s} {k}": v for k, v in metrics(split[s], p).items()})
    d = model.diagnostics()
    out["perplexity min"] = min(d["codeword_perplexity"])
    out["usage min"] = min(d["codeword_usage"])
    out["clusters/user"] = d["clusters_per_user_mean"]
    out["CTAM entropy"] = d["ctam_attention_entropy"]
    out["history"] = res.history
    if "item_memory" in model.state:     # what the item memory's cap dropped (train / val requests)
        out["item_memory"] = model.state["item_memory"]
    out["diagnostics"] = d
    if serving_date:
        out["serving"] = serving_figures(model, purchase, events, serving_date)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run-date", default="2011-12-10")
    ap.add_argument("--tables", default=None, help="folder with purchase.parquet + events.parquet")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--preset", choices=("small", "paper"), default="small")
    ap.add_argument("--set", default="{}", help="JSON field overrides of DMQNConfig")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--serving", action="store_true", help="time user_states / score after the first seed")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()

    purchase, events = load_tables(args.run_date, args.tables)
    overrides = json.loads(args.set)
    if args.quick:
        overrides = {"max_train_requests": 300, **overrides}
        overrides.setdefault("train", {})["epochs"] = 1
    runs = []
    for seed in args.seeds:
        base = DMQNConfig.paper() if args.preset == "paper" else DMQNConfig.small()
        raw = json.loads(json.dumps(__import__("dataclasses").asdict(base)))
        for k, v in overrides.items():
            if isinstance(v, dict):
                raw[k].update(v)
            else:
                raw[k] = v
        raw["train"]["seed"] = seed
        raw["train"]["progress"] = False
        cfg = build_dataclass(DMQNConfig, raw)
        r = run_one(purchase, events, cfg, args.run_date if args.serving and not runs else None)
        runs.append(r)
        print(json.dumps({k: v for k, v in r.items() if k not in ("history", "diagnostics")}, default=float), flush=True)

    cols = ["seed", "epochs_run", "best_epoch", "s_per_epoch", "fit_s", "val AUC", "val GAUC", "val logloss",
            "eval AUC", "eval GAUC", "eval logloss", "perplexity min", "usage min", "clusters/user", "CTAM entropy"]
    table = pd.DataFrame([{c: r[c] for c in cols} for r in runs])
    pd.set_option("display.width", 250)
    print(f"\nDMQN {args.preset} on run {args.run_date}, overrides {overrides}: "
          f"{runs[0]['train_requests']} training requests / {runs[0]['train_rows']} rows")
    print(table.to_string(index=False, float_format=lambda x: f"{x:.4f}"))
    num = table.drop(columns=["seed"])
    print("\nmean / std over seeds")
    print(pd.DataFrame({"mean": num.mean(), "std": num.std(ddof=1) if len(num) > 1 else 0.0}).T
          .to_string(float_format=lambda x: f"{x:.4f}"))
    if "serving" in runs[0]:
        print("\nserving (seed %d): " % runs[0]["seed"] + json.dumps(runs[0]["serving"]))
    ctx = pd.DataFrame(context_rows(purchase))
    print("\ncontext (single features of the purchase table, not models)")
    print(ctx.to_string(index=False, float_format=lambda x: f"{x:.4f}"))
    if args.json:
        Path(args.json).write_text(json.dumps({"run_date": args.run_date, "preset": args.preset,
                                               "overrides": overrides, "runs": runs,
                                               "context": ctx.to_dict("records")}, indent=2, default=float))


if __name__ == "__main__":
    main()
