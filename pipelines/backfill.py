"""``quantrec backfill --from D1 --to D2``: the daily pipeline run locally for every day
of a range, in date order, against one registry, so each day warm-starts from (and is
shadow-compared with) the champion the previous days promoted.

Resumable after a kill. Before a day runs, the registry is asked for a complete version
of that run_date whose manifest config is the backfill's config (same config digest): such
a day is skipped. "Complete" includes the promotion: a day killed between ``publish`` and
``promote`` has a blessed version that never became champion; the resume finishes that
promotion (a compare-and-swap against the champion the day started from) instead of
re-running the day. A day killed earlier re-runs with the same ``checkpoints`` root, so
training resumes from its checkpoints, and publishing is idempotent by content digest:
no duplicate versions either way.

The summary (one row per day: verdict, version, blessed, champion after, codebook fitted
or reused, key metrics of every model) is printed, written as CSV after every day (a
killed backfill leaves the rows it finished) and as an HTML page with plots over days.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import pandas as pd

from quantrec.redact import redact

#: metrics shown per task (overall values of every model of that task in the manifest)
KEY_METRICS = {"gmv": ("MAE", "XAUC"), "purchase": ("AUC",)}
SUMMARY_CSV, SUMMARY_HTML = "backfill_summary.csv", "backfill_summary.html"


class BackfillError(ValueError):
    """A backfill cannot start (bad range, missing registry...); the message says why."""


@dataclass
class DayResult:
    """One day of a backfill."""

    run_date: str
    status: str                     # "ran" | "skipped" (already published) | "failed"
    verdict: str = ""
    version: str = ""
    blessed: bool | None = None
    champion_after: str = ""
    codebook: str = ""              # fitted | reused | ... (manifest codebook_source)
    seconds: float = 0.0
    note: str = ""
    metrics: dict[str, float] = field(default_factory=dict)

    def row(self) -> dict[str, Any]:
        out = {k: v for k, v in asdict(self).items() if k != "metrics"}
        out.update(self.metrics)
        return out


def date_range(start: str, end: str) -> list[str]:
    """Every calendar day from ``start`` to ``end`` inclusive, as YYYY-MM-DD."""
    from quantrec.data.windows import parse_run_date
    a, b = parse_run_date(start), parse_run_date(end)
    if b < a:
        raise BackfillError(f"--to {end} is before --from {start}")
    return [d.strftime("%Y-%m-%d") for d in pd.date_range(a, b, freq="D")]


def key_metrics(metrics: dict[str, Any]) -> dict[str, float]:
    """``{"<task>/<model>/<metric>": value}`` of the overall KEY_METRICS (slices dropped),
    whatever models the run trained."""
    out = {}
    for key, value in sorted(metrics.items()):
        parts = key.split("/")
        if len(parts) == 3 and parts[2] in KEY_METRICS.get(parts[0], ()):
            out[key] = float(value)
    return out


def _blessed(manifest: dict[str, Any]) -> bool | None:
    decision = manifest.get("decision")
    return None if not decision else bool(decision.get("blessed"))


def _canonical(obj: Any) -> Any:
    """A JSON-like tree with integral floats as ints: KFP passes the config through a
    protobuf Struct, so the manifest's free-form override dicts hold 16.0 where the user
    wrote 16 (the typed fields are converted back, those dicts are not)."""
    if isinstance(obj, float) and obj.is_integer():
        return int(obj)
    if isinstance(obj, dict):
        return {k: _canonical(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_canonical(v) for v in obj]
    return obj


def config_key(config: dict[str, Any]) -> str:
    """Digest of a run config as a backfill compares them (numbers canonical)."""
    from quantrec.stages.common import config_digest
    return config_digest(_canonical(json.loads(json.dumps(config, default=str))))


def find_complete_version(registry: Any, run_date: str, config: dict[str, Any]) -> Any | None:
    """The newest version of ``run_date`` whose manifest config is ``config`` (the
    backfill's validated RunConfig as a dict; compared by ``config_key``), or None."""
    want = config_key(config)
    found = []
    for name in registry.versions():
        if not name.startswith(run_date):  # names are <run_date>-<digest>: skip reading the rest
            continue
        version = registry.get(name)
        m = version.manifest
        if m.get("run_date") == run_date and config_key(m.get("config") or {}) == want:
            found.append(version)
    return max(found, key=lambda v: v.manifest.get("published_at", "")) if found else None


def finish_promotion(registry: Any, version: Any) -> str:
    """Complete a day whose blessed version was published but never promoted (killed in
    between): promote it if the champion is still the one the day started from. Returns
    what was done ("" when nothing was due)."""
    m = version.manifest
    if not _blessed(m) or any(e["action"] == "promote" and e["version"] == version.name
                              for e in registry.history()):
        return ""
    start = m.get("champion_at_start") or None
    current = registry.champion_name()
    if current != start:
        return (f"blessed {version.name} was never promoted and the champion moved on "
                f"({start} -> {current}): left as is")
    registry.promote(version.name, expected_current=start,
                     reason="backfill resume: finishing the promotion of a blessed version interrupted by a kill")
    return f"finished the interrupted promotion of {version.name}"


def champion_after(registry: Any, run_date: str) -> str:
    """The champion once the backfill had done ``run_date``, replayed from the promotion
    log: entries whose version (promote) or previous champion (rollback) is of a day up
    to ``run_date`` (version names start with their run_date)."""
    stack: list[str] = []
    for e in registry.history():
        day_of = e["version"] if e["action"] == "promote" else (e.get("previous") or "")
        if day_of[:10] > run_date:
            break
        stack = stack + [e["version"]] if e["action"] == "promote" else stack[: len(stack) - int(e["steps"])]
    return stack[-1] if stack else ""


def _day_from_version(run_date: str, status: str, registry: Any, version: Any, note: str = "") -> DayResult:
    m = version.manifest
    return DayResult(run_date=run_date, status=status, verdict="PASSED", version=version.name,
                     blessed=_blessed(m), champion_after=champion_after(registry, run_date),
                     codebook=str(m.get("codebook_source") or ""), note=note,
                     metrics=key_metrics(m.get("metrics") or {}))


def run_backfill(dates: list[str], *, registry: str, pipeline_root: str | Path, config: dict[str, Any] | None = None,
                 data: str | None = "", spec: str | None = "", rebuild_codebook: str = "auto", cache: str = "",
                 out_dir: str | Path | None = None,
                 verbose: bool = False, say: Callable[[str], None] = print,
                 progress: Callable[[Any], None] | None = None) -> list[DayResult]:
    """Run the daily pipeline locally for each of ``dates`` in order (see the module
    docstring). ``registry`` must exist; ``cache``: as `quantrec run --cache` (default: the
    embedded Redis under ``<pipeline_root>/cache``). Writes the summary CSV after every day and the
    HTML page at the end into ``out_dir`` (default ``<pipeline_root>/backfills/<first>_<last>``).
    """
    from pipelines.daily import local_daily_pipeline
    from pipelines.local import run_pipeline_locally
    from pipelines.verdict import daily_verdict
    from quantrec.config import RunConfig
    from quantrec.registry import Registry

    raw = config or {}
    cfg_dict = RunConfig.from_dict(raw).to_dict()
    reg = Registry(registry)
    root = Path(pipeline_root).resolve()
    out = Path(out_dir or root / "backfills" / f"{dates[0]}_{dates[-1]}")
    out.mkdir(parents=True, exist_ok=True)
    results: list[DayResult] = []
    for i, day in enumerate(dates, start=1):
        say(f"[{i}/{len(dates)}] {day}")
        done = find_complete_version(reg, day, cfg_dict)
        if done is not None:
            note = finish_promotion(reg, done)
            results.append(_day_from_version(day, "skipped", reg, done,
                                             note or "already published by an earlier run of this backfill"))
            say(redact(f"  skipped: version {done.name} is published" + (f"; {note}" if note else "")))
        else:
            t0 = time.perf_counter()
            run = run_pipeline_locally(local_daily_pipeline, {
                "run_date": day, "data": data or "", "spec": spec or "", "config": raw, "registry": registry,
                "rebuild_codebook": rebuild_codebook, "checkpoints": str(root / "checkpoints"),
                "cache": cache or str(root / "cache")},
                pipeline_root=root, label=f"backfill-{day}", verbose=verbose, progress=progress)
            code, lines = daily_verdict(run)
            verdict = next((ln[len("verdict: "):] for ln in lines if ln.startswith("verdict: ")), "")
            version = run.parameter("publish") or ""
            if code == 0 and version:
                res = _day_from_version(day, "ran", reg, reg.get(version), note=str(run.run_dir or ""))
                res.champion_after = reg.champion_name() or ""
            else:
                res = DayResult(day, "ran" if code == 0 else "failed", note=str(run.run_dir or ""),
                                champion_after=reg.champion_name() or "")
            res.verdict, res.seconds = verdict, round(time.perf_counter() - t0, 1)
            results.append(res)
            say(redact(f"  {verdict}; version {res.version or '-'}; "
                       f"{'blessed' if res.blessed else 'not blessed' if res.blessed is False else 'no decision'}; "
                       f"champion {res.champion_after or 'none'}; {res.seconds:.0f} s"))
        summary_frame(results).to_csv(out / SUMMARY_CSV, index=False)
    write_report(results, out / SUMMARY_HTML)
    return results


def summary_frame(results: list[DayResult]) -> pd.DataFrame:
    """One row per day; metric columns ``<task>/<model>/<metric>`` as present."""
    return pd.DataFrame([r.row() for r in results])


def write_report(results: list[DayResult], path: str | Path) -> str:
    """The HTML summary: the table and plots over days (key metrics per model, blessed
    days and codebook rebuilds marked)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from quantrec.reports import HtmlReport

    frame = summary_frame(results)
    report = HtmlReport(f"quantrec backfill {results[0].run_date} .. {results[-1].run_date}")
    n_fail = int((frame["status"] == "failed").sum())
    report.add_text("Outcome", f"{len(frame)} days: {int((frame['status'] == 'ran').sum())} ran, "
                               f"{int((frame['status'] == 'skipped').sum())} skipped (already published), "
                               f"{n_fail} failed; {sum(r.blessed is True for r in results)} blessed; "
                               f"codebook fitted on {int((frame['codebook'] == 'fitted').sum())} days.")
    metric_cols = [c for c in frame.columns if c.count("/") == 2]
    by_metric: dict[tuple[str, str], list[str]] = {}
    for c in metric_cols:
        task, _model, metric = c.split("/")
        by_metric.setdefault((task, metric), []).append(c)
    if by_metric:
        days = pd.to_datetime(frame["run_date"])
        fig, axes = plt.subplots(len(by_metric), 1, figsize=(9, 2.6 * len(by_metric)), sharex=True, squeeze=False)
        for ax, ((task, metric), cols) in zip(axes[:, 0], sorted(by_metric.items())):
            for c in cols:
                ax.plot(days, frame[c], marker="o", label=c.split("/")[1])
            for d, fitted, blessed in zip(days, frame["codebook"] == "fitted", frame["blessed"] == True):  # noqa: E712
                if fitted:
                    ax.axvline(d, color="#999", ls=":", lw=1)
                if blessed:
                    ax.axvspan(d - pd.Timedelta(hours=8), d + pd.Timedelta(hours=8), color="#2a7", alpha=0.12)
            ax.set_ylabel(f"{task} {metric}")
            ax.legend(fontsize=8, loc="best")
        axes[-1, 0].set_xlabel("run date")
        fig.autofmt_xdate()
        fig.tight_layout()
        report.add_figure("Key metrics over days", fig, caption="Green band: the day's challenger was blessed "
                                                                "(promoted); dotted line: the codebook was refitted.")
        plt.close(fig)
    shown = frame.drop(columns=["note"])
    report.add_table("Days", shown)
    return report.write(str(path))


# ---- command line ------------------------------------------------------------------------
def cmd_backfill(args: argparse.Namespace) -> int:
    from pipelines.cli import _load_config
    from pipelines.local import DEFAULT_ROOT
    from pipelines.verdict import print_progress
    from quantrec.registry import Registry

    dates = date_range(args.date_from, args.date_to)
    raw = _load_config(args.config)
    from quantrec.config import RunConfig
    RunConfig.from_dict(raw)  # a typo fails before the first day
    root = Path(args.pipeline_root or DEFAULT_ROOT).resolve()
    registry = args.registry or str(root / "registry")
    if not args.registry and not (Path(registry) / "registry.json").exists():
        Registry(registry, create=True)
        print(f"created the local model registry {registry}")
    else:
        Registry(registry, create=args.create_registry)
    print(redact(f"quantrec backfill: {len(dates)} day(s) {dates[0]} .. {dates[-1]}, registry {registry}"))
    t0 = dt.datetime.now()
    results = run_backfill(dates, registry=registry, pipeline_root=root, config=raw, data=args.data or "",
                           spec=args.spec or "", rebuild_codebook=args.rebuild_codebook, out_dir=args.out,
                           verbose=args.verbose, progress=print_progress)
    frame = summary_frame(results)
    cols = ["run_date", "status", "version", "blessed", "champion_after", "codebook"] + \
        [c for c in frame.columns if c.count("/") == 2]
    print(redact(frame[cols].to_string(index=False, float_format=lambda v: f"{v:.4g}")))
    out = Path(args.out or root / "backfills" / f"{dates[0]}_{dates[-1]}")
    print(f"summary: {out / SUMMARY_CSV}\nreport (HTML): {out / SUMMARY_HTML}")
    print(f"took {(dt.datetime.now() - t0).total_seconds():.0f} s")
    return 1 if any(r.status == "failed" for r in results) else 0


def register(subparsers: Any) -> None:
    """Add ``quantrec backfill`` to the CLI."""
    sp = subparsers.add_parser("backfill", help="run the daily pipeline for every day of a range (resumable)")
    sp.add_argument("--from", dest="date_from", required=True, help="first run date YYYY-MM-DD")
    sp.add_argument("--to", dest="date_to", required=True, help="last run date YYYY-MM-DD (inclusive)")
    sp.add_argument("--data", help="transactions table: path, file:// or gs:// URL (default: the spec's path)")
    sp.add_argument("--spec", help="dataset spec YAML (default: the embedded Online Retail II spec)")
    sp.add_argument("--config", help="run config: inline JSON or a JSON/YAML file; the same for every day "
                                     "(a re-run with another config does not skip the days done)")
    sp.add_argument("--pipeline-root", help="artifact folder (default: ./pipeline_root in the repo)")
    sp.add_argument("--registry", help="model registry URL (default: <pipeline root>/registry)")
    sp.add_argument("--create-registry", action="store_true", help="create the --registry if it does not exist")
    sp.add_argument("--rebuild-codebook", default="auto", choices=["auto", "true", "false"],
                    help="as for `quantrec run` (auto: when monitoring recommended it)")
    sp.add_argument("--out", help="summary folder (default: <pipeline root>/backfills/<from>_<to>)")
    sp.add_argument("--verbose", action="store_true", help="show KFP's full log (it always goes to each run's run.log)")
    sp.set_defaults(func=cmd_backfill)


def main(argv: list[str] | None = None) -> int:
    """``python -m pipelines.backfill ...`` (the same as ``quantrec backfill ...``)."""
    import sys
    parser = argparse.ArgumentParser(prog="quantrec")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["backfill", *(sys.argv[1:] if argv is None else argv)])
    try:
        return args.func(args)
    except (ValueError, OSError) as exc:
        print(f"quantrec backfill: error: {redact(' '.join(str(exc).split()))}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
