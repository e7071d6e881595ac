"""Purchase probability: DMQN against its peers on the same split (issue 9).

Rows (``quantrec.models``): popularity (label rate per bucket of ``i_lines``), ui_lines
(the same on the user's earlier count of the item), lgbm_purchase (LightGBM binary on the
purchase table's history features), mean_pool (mean of the whole history), din (DIN
attention over the last 50 events), sim (top-k of the WHOLE history by learned embedding
similarity + DIN attention), dmqn. Every model fits on the same training requests and is
early-stopped on val logloss.

Selection: every model gets the same small budget: ``TRIALS`` (at most 3 settings, small()
first) fitted with the first seed; the one with the lowest val logloss is run on the other
seeds. The trials and their val logloss are in the JSON and the printed table. DMQN has a
fourth and a fifth trial, the item memory (``item_memory`` 512 / 2048, added after the first
selection: run them with ``--trial-index 3`` / ``4``; one process per seed, ``--seeds K``, then
``--merge``).

Metrics on val and eval: AUC, GAUC (per request user|day, weighted by rows), logloss;
the same by history-length bucket (``hist_len`` = the user's earlier lines).
Cost curve (``--cost``): per request, scoring 100 candidates from DMQN's cached user state
(``DMQNNet.score``) vs the full forward (``user_state`` + ``score``), and the full forward
of DIN / SIM, on synthetic histories of 1e2..1e4 events (cost does not depend on the
weights or the data, only on shapes).

    .venv/bin/python benchmarks/purchase_quality.py --run-date 2011-12-10 --seeds 0 1 2 \\
        --json benchmarks/results/purchase_quality.json --cost
    .venv/bin/python benchmarks/purchase_quality.py --quick      # 300 requests, 1 epoch, 1 seed, no selection

Data / windows: ``--data --spec --run-date --eval-days --val-days --train-days``
(common.py) build the purchase + events tables (cached under ``--cache-dir`` by the same
fingerprint as the other benchmarks); ``--tables DIR`` reads a ``quantrec tasks --out DIR``
folder instead. ``--max-train-requests N`` keeps the N most recent training requests for
EVERY model (0 = all). Resumable: records already in ``--json`` (same tables, model,
trial, seed, cap) are kept.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (DEFAULT_CACHE, BenchmarkError, ResultLog, add_data_args, cache_key, data_fingerprint,  # noqa: E402
                    fmt_mean_std, merge, resolve_choice, run_main)
from quantrec.data import schema as S  # noqa: E402
from quantrec.dataclass_io import build_dataclass  # noqa: E402
from quantrec.evaluation.metrics import auc, gauc, logloss  # noqa: E402
from quantrec.models import MODELS  # noqa: E402
from quantrec.models.base import ModelInputs  # noqa: E402

MODEL_ORDER = ("popularity", "ui_lines", "lgbm_purchase", "mean_pool", "din", "sim", "dmqn")
#: the selection budget: at most 3 settings per model (small() first), fitted on the first seed
TRIALS: dict[str, list[dict[str, Any]]] = {
    "popularity": [{}],
    "ui_lines": [{}],
    "lgbm_purchase": [{}, {"categorical": ["user_id", "item_id", "country"]},
                      {"params": {"num_leaves": 15, "min_data_in_leaf": 200}}],
    "mean_pool": [{}, {"train": {"lr": 3e-3}}],
    "din": [{}, {"train": {"lr": 3e-3}}],
    "sim": [{}, {"train": {"lr": 3e-3}}],
    "dmqn": [{}, {"train": {"lr": 5e-3}}, {"train": {"epochs": 12, "patience": 3}},
             # brief J (issue 9 follow-up), measured after the selection above: the exact-item
             # read of the 512 / 2048 most recent distinct items; run alone with --trial-index 3 / 4
             {"item_memory": 512}, {"item_memory": 2048}],
}
#: history-length buckets (the user's earlier lines): 50 = DIN's window
BUCKETS = ((0, 0, "0"), (1, 49, "1-49"), (50, 199, "50-199"), (200, 999, "200-999"), (1000, 10**12, "1000+"))
COST_LENGTHS = (100, 300, 1000, 3000, 10000)


# ---- tables ------------------------------------------------------------------------------
def load_purchase_tables(args: argparse.Namespace, log=print) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, Any]]:
    """(purchase, events, description): from ``--tables DIR`` or built from the data
    choice and cached under ``<cache-dir>/<key>_purchase/``."""
    from quantrec.data.tasks import prepare_run, read_table
    if args.tables:
        d = Path(args.tables)
        for name in ("purchase", "events"):
            if not (d / f"{name}.parquet").exists():
                raise BenchmarkError(f"--tables {d}: no {name}.parquet (write it with quantrec tasks --out)")
        return (read_table(str(d / "purchase.parquet")), read_table(str(d / "events.parquet")),
                {"tables": str(d), "key": f"tables:{d.resolve()}"})
    choice = resolve_choice(args)
    key = cache_key(data_fingerprint(choice.data_url), choice) + "_purchase"
    folder = Path(args.cache_dir) / key
    if (folder / "purchase.parquet").exists() and (folder / "events.parquet").exists():
        return (pd.read_parquet(folder / "purchase.parquet"), pd.read_parquet(folder / "events.parquet"),
                {**choice.describe(), "key": key})
    log(f"building the purchase and events tables for {choice.describe()} (cache key {key})")
    t = prepare_run(str(choice.run_date.date()), data=choice.data_url, spec=choice.spec,
                    config=choice.task_config).tables
    folder.mkdir(parents=True, exist_ok=True)
    t["purchase"].to_parquet(folder / "purchase.parquet")
    t["events"].to_parquet(folder / "events.parquet")
    return t["purchase"], t["events"], {**choice.describe(), "key": key}


def split_requests(purchase: pd.DataFrame, max_train_requests: int = 0) -> dict[str, pd.DataFrame]:
    """train / val / eval frames; train keeps the rows of the ``max_train_requests`` most
    recent (day, user) requests (0 = all): the SAME rows for every model."""
    out = {s: purchase[purchase[S.SPLIT] == s].reset_index(drop=True) for s in S.SPLITS}
    if max_train_requests > 0:
        tr = out["train"]
        req = tr[[S.DAY, S.USER]].drop_duplicates().sort_values([S.DAY, S.USER], kind="stable")
        keep = req.iloc[-max_train_requests:]
        out["train"] = tr.merge(keep, on=[S.DAY, S.USER], how="inner").reset_index(drop=True)
    if any(len(f) == 0 for f in out.values()):
        raise BenchmarkError(f"a split of the purchase table is empty: { {s: len(f) for s, f in out.items()} }")
    return out


# ---- metrics -------------------------------------------------------------------------------
def history_bucket(hist_len: Any) -> np.ndarray:
    """(n,) earlier-line counts -> (n,) bucket labels of ``BUCKETS``."""
    h = np.asarray(hist_len, dtype=np.float64)
    out = np.full(h.shape, "", dtype=object)
    for lo, hi, name in BUCKETS:
        out[(h >= lo) & (h <= hi)] = name
    return out


def purchase_metrics(frame: pd.DataFrame, p: np.ndarray) -> dict[str, Any]:
    """AUC, GAUC (groups = user|day), logloss, rows; and the same per history bucket
    (``by_history``: bucket -> metrics; a one-class bucket gets NaN AUC)."""
    y = frame[S.LABEL].to_numpy()
    groups = (frame[S.USER].astype(str) + "|" + frame[S.DAY].astype(str)).to_numpy()

    def one(mask: np.ndarray) -> dict[str, float]:
        if not mask.any():
            return {"rows": 0}
        return {"rows": int(mask.sum()), "AUC": auc(y[mask], p[mask]), "GAUC": gauc(y[mask], p[mask], groups[mask]),
                "logloss": logloss(y[mask], p[mask])}

    out: dict[str, Any] = one(np.ones(len(y), dtype=bool))
    hb = history_bucket(frame["hist_len"].fillna(0) if "hist_len" in frame.columns else np.zeros(len(y)))
    out["by_history"] = {name: one(hb == name) for _, _, name in BUCKETS}
    return out


# ---- one fit ----------------------------------------------------------------------------------
def make_config(name: str, overrides: dict[str, Any], seed: int, epochs: int | None = None) -> Any:
    """small() of model ``name`` + overrides, seeded, quiet, one torch thread (and
    ``epochs`` for the models trained by the trainer, when given)."""
    cls = MODELS[name].config_cls
    raw = merge(json.loads(json.dumps(dataclasses.asdict(cls.small()))), overrides)
    if "train" in raw:
        raw["train"] = merge(raw["train"], {"seed": seed, "progress": False, "num_threads": 1,
                                            **({"epochs": epochs} if epochs is not None else {})})
    elif "seed" in raw:
        raw["seed"] = seed
    if "params" in raw:
        raw["params"] = merge(raw["params"], {"num_threads": 1})
    if "categorical" in raw:
        raw["categorical"] = tuple(raw["categorical"])
    return build_dataclass(cls, raw)


def fit_one(name: str, overrides: dict[str, Any], seed: int, split: dict[str, pd.DataFrame],
            events: pd.DataFrame, epochs: int | None = None) -> tuple[dict[str, Any], Any]:
    """Fit model ``name`` on split["train"] (early stopping on val), score val and eval."""
    cfg = make_config(name, overrides, seed, epochs)
    model = MODELS[name](cfg)
    inputs = ModelInputs(events=events)
    t0 = time.time()
    res = model.fit(split["train"], split["val"], inputs)
    rec: dict[str, Any] = {"fit_s": round(time.time() - t0, 1), "epochs_run": int(res.epochs_run),
                           "best_epoch": int(res.best_epoch), "best_val_logloss": float(res.best_metric),
                           "val_history": [round(float(h["val_metric"]), 4) for h in res.history],
                           "s_per_epoch": (float(np.mean([h["seconds"] for h in res.history]))
                                           if res.history else None)}
    for s in ("val", "eval"):
        t1 = time.time()
        p = model.predict(split[s], inputs)
        rec[f"{s}_predict_s"] = round(time.time() - t1, 2)
        rec[s] = purchase_metrics(split[s], p)
    if name == "dmqn":
        d = model.diagnostics()
        rec["dmqn"] = {"perplexity_min": min(d["codeword_perplexity"]), "usage_min": min(d["codeword_usage"]),
                       "codeword_perplexity": d["codeword_perplexity"],
                       "clusters_per_user": d["clusters_per_user_mean"],
                       "ctam_entropy": d["ctam_attention_entropy"]}
        if "item_memory" in model.state:   # what the memory's cap M dropped, train / val requests
            rec["dmqn"]["item_memory"] = model.state["item_memory"]
    return rec, model


# ---- cost curve -------------------------------------------------------------------------------
def synthetic_request(length: int, n_items: int, candidates: int, seed: int = 0) -> dict[str, Any]:
    """One request: a history of ``length`` events over ``n_items`` items (Zipf-like
    repeats, increasing times) and ``candidates`` candidate rows, as RequestBatches packs it."""
    import torch
    rng = np.random.default_rng(seed)
    item = np.minimum(rng.zipf(1.3, length), n_items - 1).astype(np.int64)
    ts = np.sort(rng.integers(0, 300 * 86_400, length)).astype(np.int64) + 1_300_000_000
    return {"hist_item": torch.from_numpy(item), "hist_ts": torch.from_numpy(ts),
            "hist_price": torch.from_numpy(rng.integers(1, 20, length)),
            "hist_qty": torch.from_numpy(rng.integers(1, 10, length)),
            "hist_offsets": torch.tensor([0, length]), "hist_request_ts": torch.tensor([int(ts[-1]) + 86_400]),
            "cand_item": torch.from_numpy(rng.integers(1, n_items, candidates)),
            "cand_price": torch.from_numpy(rng.integers(1, 20, candidates)),
            "row_unit": torch.zeros(candidates, dtype=torch.long)}


def cost_curve(lengths: tuple[int, ...] = COST_LENGTHS, candidates: int = 100, n_items: int = 4500,
               reps: int = 7, memory: int = 0) -> list[dict[str, Any]]:
    """ms per request (1 torch thread; median ``*_ms`` and best ``*_min_ms`` of ``reps``: on
    a loaded machine the minimum is the stable figure): DMQN small() full forward, its
    user state alone, DMQN score from the cached state, DIN and SIM full forwards, at each
    history length; ``memory`` > 0: the same three DMQN figures with ``item_memory`` =
    memory (``dmqn_mem_*``)."""
    import torch
    from quantrec.models.dmqn import DMQNConfig, DMQNNet
    from quantrec.models.purchase_peers import SeqPeerConfig, SeqPeerNet
    torch.set_num_threads(1)
    torch.manual_seed(0)
    dmqn = DMQNNet(n_items, DMQNConfig.small()).eval()
    dmqn_mem = DMQNNet(n_items, DMQNConfig.small(item_memory=memory)).eval() if memory > 0 else None
    peers = {p: SeqPeerNet(n_items, SeqPeerConfig.small(), p).eval() for p in ("din", "sim")}

    def timed(fn) -> tuple[float, float]:
        fn()  # warm-up
        t = []
        for _ in range(reps):
            t0 = time.perf_counter()
            fn()
            t.append(time.perf_counter() - t0)
        return 1000 * float(np.median(t)), 1000 * float(np.min(t))

    rows = []
    with torch.no_grad():
        for n in lengths:
            b = synthetic_request(n, n_items, candidates, seed=n)
            state = dmqn.user_state(b)
            cand = (b["cand_item"], b["cand_price"], b["row_unit"])
            din = {**b, **{k: v[-50:] for k, v in b.items() if k in ("hist_item", "hist_ts", "hist_price", "hist_qty")},
                   "hist_offsets": torch.tensor([0, min(n, 50)])}
            row: dict[str, Any] = {"history": n, "candidates": candidates}
            for key, fn in (("dmqn_full", lambda: dmqn(b)), ("dmqn_state", lambda: dmqn.user_state(b)),
                            ("dmqn_cached_score", lambda: dmqn.score(state, *cand)),
                            ("din_full", lambda: peers["din"](din)), ("sim_full", lambda: peers["sim"](b))):
                row[f"{key}_ms"], row[f"{key}_min_ms"] = timed(fn)
            if dmqn_mem is not None:
                state_mem = dmqn_mem.user_state(b)
                for key, fn in (("dmqn_mem_full", lambda: dmqn_mem(b)),
                                ("dmqn_mem_state", lambda: dmqn_mem.user_state(b)),
                                ("dmqn_mem_cached_score", lambda: dmqn_mem.score(state_mem, *cand))):
                    row[f"{key}_ms"], row[f"{key}_min_ms"] = timed(fn)
            rows.append(row)
    return rows


# ---- tables and report ----------------------------------------------------------------------
def summary_table(records: list[dict[str, Any]], selected: dict[str, dict]) -> pd.DataFrame:
    """One row per model for its selected trial (marked *), plus a row for every other
    trial measured on two or more seeds (e.g. the small() default when a trial won)."""
    rows = []
    for name in MODEL_ORDER:
        if name not in selected:
            continue
        trials = sorted({r["trial"] for r in records if r["model"] == name})
        for t in [selected[name]["trial"]] + [t for t in trials if t != selected[name]["trial"]]:
            recs = [r for r in records if r["model"] == name and r["trial"] == t]
            if t != selected[name]["trial"] and len(recs) < 2:
                continue
            ov = recs[0]["overrides"] or "small()"
            star = "*" if t == selected[name]["trial"] else ""
            row = {"model": MODELS[name].display_name, "trial": f"{star}{t} {json.dumps(ov) if ov != 'small()' else ov}",
                   "seeds": len(recs)}
            for s in ("val", "eval"):
                for m in ("AUC", "GAUC", "logloss"):
                    row[f"{s} {m}"] = fmt_mean_std([r[s][m] for r in recs])
            row["fit s"] = fmt_mean_std([r["fit_s"] for r in recs], 0)
            rows.append(row)
    return pd.DataFrame(rows)


def bucket_table(records: list[dict[str, Any]], selected: dict[str, dict], split: str = "val",
                 metric: str = "AUC") -> pd.DataFrame:
    rows = []
    for name in MODEL_ORDER:
        recs = [r for r in records if r["model"] == name and r["trial"] == selected.get(name, {}).get("trial")]
        if not recs:
            continue
        row = {"model": MODELS[name].display_name}
        for _, _, b in BUCKETS:
            row[f"{b} ({recs[0][split]['by_history'][b]['rows']})"] = fmt_mean_std(
                [r[split]["by_history"][b].get(metric, np.nan) for r in recs], 3)
        rows.append(row)
    return pd.DataFrame(rows)


def select(records: list[dict[str, Any]], first_seed: int) -> dict[str, dict]:
    """Per model: the trial with the lowest val logloss on the first seed."""
    out = {}
    for name in MODEL_ORDER:
        cands = [r for r in records if r["model"] == name and r["seed"] == first_seed]
        if cands:
            best = min(cands, key=lambda r: r["val"]["logloss"])
            out[name] = {"trial": best["trial"], "overrides": best["overrides"],
                         "trials": [{"trial": r["trial"], "overrides": r["overrides"],
                                     "val logloss": r["val"]["logloss"], "val AUC": r["val"]["AUC"]}
                                    for r in sorted(cands, key=lambda r: r["trial"])]}
    return out


def write_report(path: Path, records: list[dict], selected: dict, cost: list[dict] | None, header: dict) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from quantrec.reports import HtmlReport
    rep = HtmlReport("purchase_quality: DMQN vs peers")
    rep.add_text("run", json.dumps({k: v for k, v in header.items() if k != "key"}, default=str))
    rep.add_table("summary (mean ± std over seeds, selected trial)", summary_table(records, selected))
    for split in ("val", "eval"):
        rep.add_table(f"{split} AUC by history length (rows)", bucket_table(records, selected, split))
        rep.add_table(f"{split} GAUC by history length (rows)", bucket_table(records, selected, split, "GAUC"))
    fig, ax = plt.subplots(figsize=(7, 4))
    for name in MODEL_ORDER:
        recs = [r for r in records if r["model"] == name and r["trial"] == selected.get(name, {}).get("trial")]
        if recs:
            ys = [np.nanmean([r["val"]["by_history"][b].get("AUC", np.nan) for r in recs]) for _, _, b in BUCKETS]
            ax.plot([b for _, _, b in BUCKETS], ys, marker="o", label=MODELS[name].display_name)
    ax.set_xlabel("history length (earlier lines)")
    ax.set_ylabel("val AUC")
    ax.legend(fontsize=7)
    fig.savefig(path.with_name(path.stem + "_by_history.png"), dpi=96, bbox_inches="tight")
    rep.add_figure("val AUC by history length", fig)
    if cost:
        df = pd.DataFrame(cost)
        rep.add_table("cost per request, 100 candidates (ms: median and best of the repetitions)", df)
        fig, ax = plt.subplots(figsize=(7, 4))
        for col in ("dmqn_full_min_ms", "dmqn_cached_score_min_ms", "din_full_min_ms", "sim_full_min_ms",
                    "dmqn_mem_full_min_ms", "dmqn_mem_cached_score_min_ms"):
            if col not in df.columns:
                continue
            ax.loglog(df["history"], df[col], marker="o", label=col)
        ax.set_xlabel("history length (events)")
        ax.set_ylabel("ms per request (best of the repetitions)")
        ax.legend(fontsize=7)
        fig.savefig(path.with_name(path.stem + "_cost.png"), dpi=96, bbox_inches="tight")
        rep.add_figure("cost curve", fig)
    rep.write(str(path))


# ---- main -------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_data_args(ap)
    ap.add_argument("--tables", default=None, help="folder with purchase.parquet + events.parquet (quantrec tasks --out)")
    ap.add_argument("--models", nargs="*", default=list(MODEL_ORDER), choices=MODEL_ORDER,
                    help="models to fit (none: e.g. --cost alone)")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--max-train-requests", type=int, default=0, help="most recent N training requests, every model")
    ap.add_argument("--epochs", type=int, default=None, help="override the neural models' epochs (all of them)")
    ap.add_argument("--no-selection", action="store_true", help="small() only (trial 0)")
    ap.add_argument("--trial-index", type=int, nargs="+", default=None,
                    help="run only these selection trials on the first seed (e.g. one per process)")
    ap.add_argument("--cost", action="store_true", help="measure the cost curve")
    ap.add_argument("--cost-reps", type=int, default=15, help="repetitions per cost figure (best and median kept)")
    ap.add_argument("--cost-memory", type=int, default=0,
                    help="also cost DMQN small() with item_memory = N (dmqn_mem_* columns)")
    ap.add_argument("--quick", action="store_true", help="300 requests, 1 epoch, seed 0, no selection, small cost curve")
    ap.add_argument("--json", default=None)
    ap.add_argument("--html", default=None, help="HTML report (default: beside --json)")
    ap.add_argument("--merge", nargs="+", default=None, help="results files to combine (no training)")
    a = ap.parse_args(argv)
    if a.merge:
        return merge_files(a.merge, a.json, a.html)
    if a.quick:
        a.max_train_requests, a.epochs, a.seeds, a.no_selection = a.max_train_requests or 300, 1, a.seeds[:1], True

    purchase, events, desc = load_purchase_tables(a)
    split = split_requests(purchase, a.max_train_requests)
    header = {**desc, "max_train_requests": a.max_train_requests, "epochs": a.epochs,
              "rows": {s: len(f) for s, f in split.items()},
              "requests": {s: int(f.groupby([S.USER, S.DAY]).ngroups) for s, f in split.items()}}
    print(json.dumps({k: v for k, v in header.items()}, default=str), flush=True)
    log = ResultLog(a.json, {**header, "key": json.dumps([desc["key"], a.max_train_requests, a.epochs])})
    first = a.seeds[0]
    for name in [m for m in MODEL_ORDER if m in a.models]:
        trials = TRIALS[name][:1] if a.no_selection else TRIALS[name]
        for t, ov in enumerate(trials):
            if log.done(model=name, trial=t, seed=first) or (a.trial_index is not None and t not in a.trial_index):
                continue
            rec, _ = fit_one(name, ov, first, split, events, a.epochs)
            log.add({"model": name, "trial": t, "overrides": ov, "seed": first, **rec})
            print(f"{name} trial {t} {ov} seed {first}: val AUC {rec['val']['AUC']:.4f} GAUC {rec['val']['GAUC']:.4f} "
                  f"logloss {rec['val']['logloss']:.4f}  ({rec['fit_s']} s)", flush=True)
        chosen = select(log.records, first)[name]
        for seed in a.seeds[1:]:
            if log.done(model=name, trial=chosen["trial"], seed=seed):
                continue
            rec, _ = fit_one(name, chosen["overrides"], seed, split, events, a.epochs)
            log.add({"model": name, "trial": chosen["trial"], "overrides": chosen["overrides"], "seed": seed, **rec})
            print(f"{name} trial {chosen['trial']} seed {seed}: val AUC {rec['val']['AUC']:.4f} "
                  f"GAUC {rec['val']['GAUC']:.4f} logloss {rec['val']['logloss']:.4f}  ({rec['fit_s']} s)", flush=True)
    cost = None
    if a.cost or a.quick:
        cost = cost_curve((100, 1000) if a.quick else COST_LENGTHS, reps=3 if a.quick else a.cost_reps,
                          memory=a.cost_memory)
    log.header.update({"selected": select(log.records, first), "cost": cost})
    log.write()
    print_results(log.records, header, cost, first)
    if a.json or a.html:
        html = Path(a.html) if a.html else Path(a.json).with_suffix(".html")
        write_report(html, log.records, select(log.records, first), cost, log.header)
        print(f"report: {html}")
    return 0


def print_results(records: list[dict], header: dict, cost: list[dict] | None, first: int) -> None:
    """The summary, by-history and selection tables (and the cost curve) on stdout."""
    selected = select(records, first)
    pd.set_option("display.width", 250)
    pd.set_option("display.max_columns", 30)
    print(f"\npurchase_quality {json.dumps({k: header.get(k) for k in ('rows', 'requests', 'max_train_requests')})}")
    print(summary_table(records, selected).to_string(index=False))
    for split_name in ("val", "eval"):
        print(f"\n{split_name} AUC by history length (rows)")
        print(bucket_table(records, selected, split_name).to_string(index=False))
        print(f"\n{split_name} GAUC by history length (rows)")
        print(bucket_table(records, selected, split_name, "GAUC").to_string(index=False))
    print("\nselection (first seed, val logloss)")
    for name, sel in selected.items():
        print(f"  {name}: " + "; ".join(f"{t['overrides'] or 'small()'} {t['val logloss']:.4f}" for t in sel["trials"])
              + f"  -> trial {sel['trial']}")
    if "dmqn" in selected:
        d = [r["dmqn"] for r in records if r["model"] == "dmqn" and r["trial"] == selected["dmqn"]["trial"]]
        print("dmqn codeword perplexity min (of 25) per seed: " + ", ".join(f"{x['perplexity_min']:.1f}" for x in d))
    if cost:
        print("\ncost per request, 100 candidates, ms (1 thread; median and best of the repetitions)")
        print(pd.DataFrame(cost).to_string(index=False, float_format=lambda x: f"{x:.2f}"))


def merge_files(paths: list[str], out_json: str | None, html: str | None) -> int:
    """--merge: the records of results files of the same tables (e.g. model groups run
    in parallel) as one set of tables / one JSON / one HTML report."""
    records, header, cost = [], {}, None
    for p in paths:
        d = json.loads(Path(p).read_text())
        if header and d.get("key") != header.get("key"):
            raise BenchmarkError(f"{p} was measured on other tables / caps than {paths[0]} (key differs)")
        header = header or {k: v for k, v in d.items() if k not in ("records", "selected", "cost")}
        seen = {(r["model"], r["trial"], r["seed"]) for r in records}
        # a file copied to resume other seeds in parallel repeats its first records: keep one
        records += [r for r in d.get("records", []) if (r["model"], r["trial"], r["seed"]) not in seen]
        cost = d.get("cost") or cost
    first = min(r["seed"] for r in records) if records else 0
    print_results(records, header, cost, first)
    if out_json:
        Path(out_json).write_text(json.dumps({**header, "merged_from": paths, "selected": select(records, first),
                                              "cost": cost, "records": records}, indent=1, default=float))
    if out_json or html:
        path = Path(html) if html else Path(out_json).with_suffix(".html")
        write_report(path, records, select(records, first), cost, header)
        print(f"report: {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(run_main(main))
