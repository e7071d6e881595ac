"""When does the codebook monitor recommend a rebuild, and does following it pay off?

Replays the monitor over the default data's history, one run every week (Mondays),
through the same code the daily_monitoring pipeline runs (``monitoring.run.evaluate``:
health statistics, the rebuild candidate, Evidently tests, rules), with the codebooks
the daily pipeline fits (``RQRegModel(RQRegConfig.small()).fit_target_codebook`` on the
training split of the run's windows: the 365 days before the val window).

Per week D:
  F_D      the codebook a training run on D fits (what a rebuild gives).
  null     the monitor's statistics of F_D itself on D's current window: how far a JUST
           rebuilt codebook is from the current labels (season, week-to-week noise).
  policies the codebook used for the labels of the following week [D, D+7):
    keep     F_{D0} forever (fitted at the first week, never rebuilt);
    follow   the monitor runs on D with the codebook in use; on "rebuild" it becomes F_D;
    fixed-k  rebuilt every k weeks (k matched to follow's rebuild count, and a few more);
    always   F_D every week.
Error of a policy, pooled over its weeks: mean |y - decode(encode(y))| within the clip
(GMV; the quantization error proper), mean relative error over all labels (MRE; the
clipped tail counts at most 1 per line) and MAE over all labels (dominated by the few
lines above the clip: it rewards a high clip, not a good clustering).

Calibration. Non-voting rules (Evidently columns, occupancy, price points, clip shares):
threshold = the ``--quantile`` (0.9) quantile of the rule's null statistic, i.e. "more
unusual than a just-rebuilt codebook in 90% of weeks". The voting rule, rebuild_gain:
swept over ``--gains``; the recorded default is chosen on 2010 weeks only (the
fewest-rebuilds threshold within 1% of the best 2010 error) and reported on 2011 weeks
(out of sample) as well as on all weeks. A "drift votes" policy (rebuild
when >= 2 of the calibrated distribution-shift rules fire) shows how a monitor driven
by distribution drift alone does.

Optional RQ-Reg check (``--rqreg-weeks N``, ``--rqreg-at WEEK ...``): on N weeks where
"follow" (the default threshold) rebuilt, train the daily RQ-Reg (small preset,
``--rqreg-epochs``, the ``--rqreg-rows`` most recent training rows, ``--rqreg-seeds``)
once with the kept codebook and once with the rebuilt one, same rows and seeds; MAE on
the val split and on the following week's lines.

    .venv/bin/python benchmarks/drift_history.py [--quick] [--json PATH] [--plot PNG]
        [--quantile 0.9] [--gains 0 0.01 0.02 0.03 0.05 0.08] [--rqreg-weeks 3]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("DO_NOT_TRACK", "1")

from monitoring.config import DRIFT_COLUMNS, DriftConfig, DriftTest, MonitorConfig  # noqa: E402
from monitoring.recommend import evaluate_rules, recommend  # noqa: E402
from monitoring.run import evaluate  # noqa: E402
from quantrec.codebook.provenance import build_provenance, codebook_label_stats, dataset_fingerprint  # noqa: E402
from quantrec.data import schema as S  # noqa: E402

#: rule -> metrics key of the statistics whose null quantile becomes the threshold
NULL_CALIBRATED = ("occupancy_js", "occupancy_psi", "recon_ratio", "recon_mae_ratio", "above_clip_ratio",
                   "beyond_last_centroid_ratio", "top_price_point_tv")
DRIFT_VOTES = ("drift:log_gmv", "drift:unit_price", "occupancy_js", "recon_ratio", "above_clip_ratio",
               "top_price_point_tv")
SPLIT_DAY = pd.Timestamp("2011-01-01")


def load_lines():
    from quantrec.data.clean import clean_transactions
    from quantrec.data.load import load_transactions
    from quantrec.data.spec import load_spec, resolve_data_url
    spec = load_spec()
    raw = load_transactions(resolve_data_url(spec), spec)
    return clean_transactions(raw, spec.cleaning)[0], spec


class History:
    """Codebooks F_D, monitor outcomes (codebook of week a judged on week d) and
    next-week errors, each computed once."""

    def __init__(self, lines: pd.DataFrame, fingerprint: str, config: MonitorConfig):
        from quantrec.data.windows import WindowConfig
        from quantrec.models.rqreg import RQRegConfig, RQRegModel
        self.lines, self.fp, self.config = lines, fingerprint, config
        self.days = lines[S.DAY]
        self.model = RQRegModel(RQRegConfig.small())
        self.wc = WindowConfig()
        self._books: dict = {}
        self._outcomes: dict = {}
        self._errors: dict = {}

    def book(self, d: pd.Timestamp):
        """F_d: the daily pipeline's codebook on run date d, with provenance."""
        from quantrec.data.windows import compute_windows
        if d not in self._books:
            w = compute_windows(self.days, d, self.wc)
            tr = self.lines[(self.days >= w.train_start) & (self.days < w.val_start)]
            y = tr[S.VALUE].to_numpy(np.float64)
            book = self.model.fit_target_codebook(y)
            prov = build_provenance(y, book, (w.train_start, w.val_start), self.fp,
                                    unit_price=tr[S.UNIT_PRICE].to_numpy(np.float64),
                                    quantity=tr[S.QUANTITY].to_numpy(np.float64))
            self._books[d] = book.with_provenance(prov)
        return self._books[d]

    def outcome(self, a: pd.Timestamp, d: pd.Timestamp) -> dict:
        """Metrics + Evidently column results of F_a monitored on run date d."""
        if (a, d) not in self._outcomes:
            o = evaluate(d, self.book(a), self.lines, self.fp, self.config)
            self._outcomes[(a, d)] = {"metrics": o.recommendation.metrics, "drift": o.drift}
        return self._outcomes[(a, d)]

    def error(self, a: pd.Timestamp, d: pd.Timestamp) -> np.ndarray:
        """[lines, sum |err|, lines within clip, sum |err| within clip, sum rel err] of F_a on [d, d+7)."""
        if (a, d) not in self._errors:
            m = (self.days >= d) & (self.days < d + pd.Timedelta(days=7))
            y = self.lines.loc[m, S.VALUE].to_numpy(np.float64)
            if y.size == 0:
                self._errors[(a, d)] = np.zeros(5)
            else:
                st = codebook_label_stats(y, self.book(a))
                nw = round(st["n"] * (1 - st["share_above_clip"]))
                self._errors[(a, d)] = np.array([st["n"], st["recon_mae"] * st["n"], nw,
                                                 st["recon_mae_within_clip"] * nw, st["recon_mre"] * st["n"]])
        return self._errors[(a, d)]


def decide(outcome: dict, cfg: MonitorConfig):
    """The recommendation under ``cfg``'s thresholds from a recorded outcome. Evidently's
    values are re-thresholded with its own rule for distance methods (drift iff value >=
    threshold) instead of re-running Evidently for every threshold set."""
    drift = [replace(d, threshold=getattr(cfg.drift, d.column).threshold,
                     drifted=d.value >= getattr(cfg.drift, d.column).threshold) for d in outcome["drift"]]
    return recommend(evaluate_rules(outcome["metrics"], drift, cfg), cfg, metrics=outcome["metrics"])


def calibrated(null: pd.DataFrame, q: float, base: MonitorConfig) -> tuple[MonitorConfig, dict[str, float]]:
    """Non-voting thresholds = the q-quantile of each null statistic."""
    th = {rule: float(np.quantile(null[rule].dropna(), q)) for rule in NULL_CALIBRATED}
    drift = DriftConfig(**{c: DriftTest(getattr(base.drift, c).method, float(np.quantile(null[f"drift_{c}"], q)))
                           for c in DRIFT_COLUMNS})
    th.update({f"drift:{c}": getattr(drift, c).threshold for c in DRIFT_COLUMNS})
    return replace(base, health=replace(base.health, **{k: th[k] for k in NULL_CALIBRATED}), drift=drift), th


def simulate(h: History, weeks: list, rule, desc: str | None = None) -> list:
    """Codebook week in use for each week: start with F_{weeks[0]}; ``rule(a, d)`` -> rebuild?"""
    a, used = weeks[0], []
    for i, d in enumerate(tqdm(weeks, desc=desc, disable=desc is None)):
        if i > 0 and rule(a, d):
            a = d
        used.append(a)
    return used


def score(h: History, weeks: list, used: list, since=None, until=None) -> dict:
    tot = np.zeros(5)
    for a, d in zip(used, weeks):
        if (since is None or d >= since) and (until is None or d < until):
            tot += h.error(a, d)
    rebuilds = sum(1 for i in range(1, len(weeks)) if used[i] != used[i - 1]
                   and (since is None or weeks[i] >= since) and (until is None or weeks[i] < until))
    return {"rebuilds": rebuilds, "mae_within_clip": tot[3] / tot[2], "mre": tot[4] / tot[0],
            "mae_all": tot[1] / tot[0], "lines": int(tot[0])}


def run(args) -> dict:
    t0 = time.time()
    lines, spec = load_lines()
    fp = dataset_fingerprint(spec, lines)
    base = MonitorConfig(current_days=args.current_days, embed_evidently=False)
    h = History(lines, fp, base)
    weeks = list(pd.date_range(args.start, args.end, freq="W-MON"))
    if args.quick:
        weeks = weeks[::4]

    null = pd.DataFrame([{"week": d, **h.outcome(d, d)["metrics"]} for d in tqdm(weeks, desc="null (fresh codebook)")])
    cfg, thresholds = calibrated(null.set_index("week"), args.quantile, base)

    policies: dict[str, list] = {"keep": simulate(h, weeks, lambda a, d: False),
                                 "always": simulate(h, weeks, lambda a, d: True)}
    drift_cfg = replace(cfg, vote=DRIFT_VOTES, min_votes=2)
    policies["drift votes >= 2"] = simulate(
        h, weeks, lambda a, d: decide(h.outcome(a, d), drift_cfg).action == "rebuild", "drift votes")
    for g in args.gains:
        gcfg = replace(cfg, health=replace(cfg.health, rebuild_gain=g))
        policies[f"follow gain > {g:g}"] = simulate(
            h, weeks, lambda a, d, c=gcfg: decide(h.outcome(a, d), c).action == "rebuild", f"follow gain > {g:g}")
    default = f"follow gain > {MonitorConfig().health.rebuild_gain:g}"
    if default not in policies:
        raise SystemExit(f"--gains must include the config default {MonitorConfig().health.rebuild_gain:g}")
    n_follow = score(h, weeks, policies[default])["rebuilds"]
    for k in sorted({max(1, round((len(weeks) - 1) / max(n_follow, 1))), 4, 13}):
        policies[f"fixed every {k} weeks"] = [weeks[(i // k) * k] for i in range(len(weeks))]

    summary = []
    for name, used in policies.items():
        for period, since, until in (("all", None, None), ("2010", None, SPLIT_DAY), ("2011", SPLIT_DAY, None)):
            summary.append({"policy": name, "period": period, **score(h, weeks, used, since, until)})
    summary = pd.DataFrame(summary)
    # choice on 2010 only: the fewest-rebuilds threshold within 1% of the best 2010 error
    # (a rebuild is not free: RQ-Reg loses its warm start), then read on 2011
    gains = summary[summary.policy.str.startswith("follow") & (summary.period == "2010")].copy()
    gains["threshold"] = gains.policy.str.split(">").str[1].astype(float)
    near = gains[gains.mae_within_clip <= 1.01 * gains.mae_within_clip.min()]
    chosen_2010 = near.sort_values("threshold").iloc[-1].policy

    weekly = []
    used = policies[default]
    for i, d in enumerate(weeks):
        o = h.outcome(used[i - 1], d) if i > 0 else h.outcome(d, d)
        rec = decide(o, replace(cfg, health=replace(cfg.health, rebuild_gain=MonitorConfig().health.rebuild_gain)))
        row = {"week": str(d.date()), "action": "rebuild" if i > 0 and used[i] != used[i - 1] else "keep",
               "codebook_of": str(used[i].date()), "rebuild_gain": o["metrics"]["rebuild_gain"],
               "fired": [r.rule for r in rec.rules if r.fired], "n_next": int(h.error(used[i], d)[0])}
        for p in ("keep", "always"):
            e = h.error(policies[p][i], d)
            row[f"{p}_mae_within"] = e[3] / e[2] if e[2] else float("nan")
        e = h.error(used[i], d)
        row["follow_mae_within"] = e[3] / e[2] if e[2] else float("nan")
        weekly.append(row)
    fire = {name: score(h, weeks, used)["rebuilds"] / (len(weeks) - 1) for name, used in policies.items()}
    predictors = predictive_power(h)
    fresh_fires = float(np.mean([decide(h.outcome(d, d), drift_cfg).action == "rebuild" for d in weeks]))
    out = {"args": vars(args), "weeks": len(weeks), "first_week": str(weeks[0].date()),
           "last_week": str(weeks[-1].date()), "thresholds": thresholds, "default_policy": default,
           "chosen_on_2010": chosen_2010, "summary": summary.to_dict("records"), "fire_rate": fire,
           "drift_votes_fire_rate_on_fresh_codebooks": fresh_fires, "weekly": weekly,
           "null": null.assign(week=null.week.astype(str)).to_dict("records"), "seconds": time.time() - t0,
           "evaluations": len(h._outcomes), "codebooks": len(h._books), "predictive_power": predictors}
    if args.json:  # the history is the expensive part: keep it even if the RQ-Reg check fails
        save(out, args.json)
    if args.rqreg_weeks:
        out["rqreg"] = rqreg_check(h, weeks, used, args)
    out["seconds"] = time.time() - t0
    return out


def save(out: dict, path: str) -> None:
    with open(path, "w") as f:
        json.dump(out, f, indent=1, default=str)


#: statistics whose link with the realised benefit of a rebuild is measured
STATISTICS = ("rebuild_gain", "occupancy_js", "occupancy_psi", "recon_ratio", "recon_mae_ratio", "above_clip_ratio",
              "beyond_last_centroid_ratio", "dead_codes", "overloaded_codes", "top_price_point_tv", "drift_gmv",
              "drift_log_gmv", "drift_unit_price", "drift_quantity")


def predictive_power(h: History) -> dict:
    """Over every (codebook of week a, run week d != a) the monitor judged: Spearman
    correlation of each statistic with the realised benefit of rebuilding at d, i.e.
    1 - MAE(F_d) / MAE(F_a) on the following week's labels (within clip; and MRE)."""
    from scipy.stats import spearmanr
    rows = []
    for (a, d), o in h._outcomes.items():
        ea, ed = h.error(a, d), h.error(d, d)
        if a == d or ea[2] == 0 or ed[2] == 0:
            continue
        rows.append({"benefit_within": 1 - (ed[3] / ed[2]) / (ea[3] / ea[2]), "benefit_mre": 1 - ed[4] / ea[4],
                     **{k: o["metrics"][k] for k in STATISTICS}})
    df = pd.DataFrame(rows)
    out = {"pairs": len(df), "mean_benefit_within": float(df.benefit_within.mean()), "spearman": {}}
    for k in STATISTICS:
        ok = df[k].notna()
        out["spearman"][k] = {b: float(spearmanr(df.loc[ok, k], df.loc[ok, b])[0]) for b in ("benefit_within",
                                                                                              "benefit_mre")}
    return out


def rqreg_check(h: History, weeks: list, used: list, args) -> list[dict]:
    """RQ-Reg MAE on the week after a rebuild: the kept codebook vs the rebuilt one."""
    from quantrec.data.features import build_aggregates
    from quantrec.data.tasks import build_gmv_task
    from quantrec.data.windows import WindowConfig, compute_windows
    from quantrec.evaluation.metrics import mae
    from quantrec.models.base import ModelInputs
    from quantrec.models.rqreg import RQRegConfig, RQRegModel

    lines = h.lines
    todo = [(used[i - 1], weeks[i]) for i in range(1, len(weeks)) if used[i] != used[i - 1]]
    if args.rqreg_at:
        at = {pd.Timestamp(x) for x in args.rqreg_at}
        todo = [t for t in todo if t[1] in at]
    todo = todo[: args.rqreg_weeks]
    out = []
    for kept_week, d in tqdm(todo, desc="RQ-Reg kept vs rebuilt"):
        d_end = d + pd.Timedelta(days=7)
        n_eval = int(lines.loc[(lines[S.DAY] >= d) & (lines[S.DAY] < d_end), S.DAY].nunique())
        w = compute_windows(lines[S.DAY], d_end, WindowConfig(eval_days=n_eval, val_days=7, train_days=365))
        past = lines[lines[S.DAY] < d_end].reset_index(drop=True)
        task = build_gmv_task(past, w, build_aggregates(past, d_end))
        tr = task[task[S.SPLIT] == "train"].sort_values(S.TS, kind="stable").tail(args.rqreg_rows)
        va, ev = task[task[S.SPLIT] == "val"], task[task[S.SPLIT] == "eval"]
        row = {"week": str(d.date()), "kept_codebook_of": str(kept_week.date()), "train_rows": len(tr),
               "val_rows": len(va), "eval_rows": len(ev)}
        for name, book in (("kept", h.book(kept_week)), ("rebuilt", h.book(d))):
            vals, nexts = [], []
            for seed in args.rqreg_seeds:
                cfg = RQRegConfig.small()
                cfg = replace(cfg, train=replace(cfg.train, epochs=args.rqreg_epochs, seed=seed))
                model = RQRegModel(cfg)
                model.fit(tr, va, inputs=ModelInputs(codebook=book))
                vals.append(float(mae(va[S.VALUE].to_numpy(), model.predict(va))))
                nexts.append(float(mae(ev[S.VALUE].to_numpy(), model.predict(ev))))
            row[f"{name}_val_mae"] = float(np.mean(vals))
            row[f"{name}_next_week_mae"] = float(np.mean(nexts))
            row[f"{name}_next_week_mae_seeds"] = nexts
        out.append(row)
    return out


def plot(out: dict, path: str) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    w = pd.DataFrame(out["weekly"])
    w["week"] = pd.to_datetime(w["week"])
    fig, axes = plt.subplots(2, 1, figsize=(12, 7), sharex=True)
    for p, c, lbl in (("keep", "#999", "keep (never rebuild)"), ("always", "#2a2", "rebuild every week"),
                      ("follow", "#d62", "follow the monitor")):
        axes[0].plot(w.week, w[f"{p}_mae_within"], color=c, lw=1.3, label=lbl)
    for d in w.week[w.action == "rebuild"]:
        for ax in axes:
            ax.axvline(d, color="#d62", alpha=0.25, lw=4)
    axes[0].set_ylabel("next-week reconstruction\nMAE within clip (GMV)")
    axes[0].legend(ncol=3, fontsize=8)
    axes[0].set_title(f"{out['default_policy']}: shaded weeks = rebuild recommended "
                      f"({int((w.action == 'rebuild').sum())} of {len(w) - 1} weeks)", fontsize=10)
    axes[1].plot(w.week, 100 * w.rebuild_gain, "o-", color="#d62", ms=3, lw=1)
    axes[1].axhline(100 * float(out["default_policy"].split(">")[1]), color="k", ls="--", lw=0.8,
                    label="threshold")
    axes[1].set_ylabel("rebuild gain on the\ncurrent window (%)")
    axes[1].set_xlabel("run date (weekly, Mondays)")
    axes[1].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=85)
    plt.close(fig)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--start", default="2010-03-01")
    ap.add_argument("--end", default="2011-12-05")
    ap.add_argument("--current-days", type=int, default=MonitorConfig().current_days)
    ap.add_argument("--quantile", type=float, default=0.9)
    ap.add_argument("--gains", type=float, nargs="+", default=[0.0, 0.01, 0.02, 0.03, 0.05, 0.08])
    ap.add_argument("--rqreg-weeks", type=int, default=0)
    ap.add_argument("--rqreg-rows", type=int, default=30000)
    ap.add_argument("--rqreg-epochs", type=int, default=3)
    ap.add_argument("--rqreg-seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--rqreg-at", nargs="+", default=None, help="rebuild weeks to check (default: the first ones)")
    ap.add_argument("--quick", action="store_true", help="every 4th week only")
    ap.add_argument("--json", default=None)
    ap.add_argument("--plot", default=None)
    args = ap.parse_args(argv)
    out = run(args)
    print(f"\n{out['weeks']} weekly runs {out['first_week']} .. {out['last_week']}, {out['evaluations']} monitor "
          f"evaluations, {out['codebooks']} codebooks, {out['seconds']:.0f} s")
    print(f"null-calibrated thresholds (q={args.quantile}):")
    for k, v in out["thresholds"].items():
        print(f"  {k:28s} {v:.4g}")
    s = pd.DataFrame(out["summary"])
    print("\npolicies (pooled next-week errors):")
    print(s.pivot(index="policy", columns="period", values=["rebuilds", "mae_within_clip", "mre"]).to_string(
        float_format=lambda v: f"{v:.5g}"))
    print(f"\nthreshold chosen on 2010 weeks (fewest rebuilds within 1% of the best error): "
          f"{out['chosen_on_2010']}; config default: {out['default_policy']}")
    print(f"drift-votes policy fires on {out['drift_votes_fire_rate_on_fresh_codebooks']:.0%} of weeks even "
          "with a just-rebuilt codebook")
    w = pd.DataFrame(out["weekly"])
    print("\nrebuilds recommended (default):")
    print(w[w.action == "rebuild"][["week", "codebook_of", "rebuild_gain", "keep_mae_within", "follow_mae_within",
                                    "always_mae_within"]].to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    pp = out["predictive_power"]
    print(f"\nSpearman correlation with the realised benefit of a rebuild ({pp['pairs']} codebook x week pairs, "
          f"mean benefit within clip {pp['mean_benefit_within']:.3f}):")
    print(pd.DataFrame(pp["spearman"]).T.to_string(float_format=lambda v: f"{v:+.3f}"))
    if "rqreg" in out:
        print("\nRQ-Reg, kept vs rebuilt codebook:")
        print(pd.DataFrame(out["rqreg"]).to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    if args.json:
        save(out, args.json)
    if args.plot:
        plot(out, args.plot)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
