"""The `quantrec` command line: validate data, build task tables, run or compile pipelines,
and look after the model registry.

This module lives beside the library (not in ``quantrec/``) because it drives KFP;
the library itself never imports kfp.

Exit codes: 0 success; 1 the data failed a gate or the run failed (a report says why);
2 the command could not start (bad arguments, config, spec, data location, registry).
Every message goes through ``quantrec.redact`` first: no secret reaches the terminal.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

os.environ.setdefault("DO_NOT_TRACK", "1")

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def _load_config(value: str | None) -> dict:
    """--config: inline JSON, or a path to a JSON/YAML file; errors name the file."""
    if not value:
        return {}
    if value.lstrip().startswith("{"):
        try:
            raw = json.loads(value)
        except json.JSONDecodeError as exc:
            raise ValueError(f"--config is not valid JSON: {exc}") from None
    else:
        import fsspec
        import yaml
        try:
            with fsspec.open(value, "r") as f:
                raw = yaml.safe_load(f)
        except FileNotFoundError:
            raise ValueError(f"config file not found: {value}") from None
        except yaml.YAMLError as exc:
            raise ValueError(f"config file {value} is not valid JSON/YAML: {exc}") from None
        except (IsADirectoryError, UnicodeDecodeError) as exc:
            raise ValueError(f"config file {value} cannot be read: {exc}") from None
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ValueError(f"the run config must be a JSON object, got {type(raw).__name__}")
    return raw


def _run_config(value: str | None):
    """The validated run config (the whole tree: a typo fails here, before any stage)."""
    from quantrec.config import RunConfig
    raw = _load_config(value)
    return raw, RunConfig.from_dict(raw)


def _default_run_date(data: str | None, spec_path: str | None) -> str:
    """The day after the last day in the data: `make run` scores 'tomorrow'."""
    import pandas as pd
    from quantrec.data.load import latest_day
    from quantrec.data.spec import load_spec, resolve_data_url
    spec = load_spec(spec_path)
    return str((latest_day(resolve_data_url(spec, data), spec) + pd.Timedelta(days=1)).date())


def _default_root() -> Path:
    from pipelines.local import DEFAULT_ROOT
    return DEFAULT_ROOT


def cmd_validate(args: argparse.Namespace) -> int:
    from quantrec.redact import redact
    from validation.runner import run_validation
    _, cfg = _run_config(args.config)
    res = run_validation(args.date, data=args.data, spec_path=args.spec, window_config=cfg.tasks.windows)
    out = Path(args.out or _default_root() / "validation" / (res.run_date or "invalid-date"))
    out.mkdir(parents=True, exist_ok=True)
    res.write(str(out / "validation.json"), str(out / "validation.html"))
    print(redact(res.message()))
    print(f"report: {out / 'validation.html'}")
    return EXIT_OK if res.passed else EXIT_FAILED


def cmd_tasks(args: argparse.Namespace) -> int:
    from quantrec.data.spec import load_spec
    from quantrec.data.tasks import prepare_run, write_table
    from quantrec.redact import redact_obj
    _, cfg = _run_config(args.config)
    date = args.date or _default_run_date(args.data, args.spec)
    tt = prepare_run(date, data=args.data, spec=load_spec(args.spec), config=cfg.tasks)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for name, df in tt.tables.items():
        write_table(df, str(out / f"{name}.parquet"), name)
    summary = redact_obj({"run_date": date, "windows": tt.windows.to_dict(), "rows": tt.sizes(),
                          "skipped": tt.skipped, "cleaning": tt.cleaning.to_dict(), "config": cfg.to_dict()})
    (out / "tasks.json").write_text(json.dumps(summary, indent=2))
    print(json.dumps(summary, indent=2))
    return EXIT_OK


def _registry_for_run(args: argparse.Namespace, root: Path) -> str:
    """The registry a local run publishes to: --registry (must exist unless
    --create-registry), none with --no-registry, else <pipeline root>/registry (created
    on first use: it is the local default, not a typo)."""
    from quantrec.registry import Registry
    if args.no_registry:
        return ""
    if args.registry:
        Registry(args.registry, create=args.create_registry)
        return args.registry
    path = root / "registry"
    if not (path / "registry.json").exists():
        Registry(str(path), create=True)
        print(f"created the local model registry {path}")
    return str(path)


def cmd_run(args: argparse.Namespace) -> int:
    from pipelines.daily import local_daily_pipeline
    from pipelines.local import run_pipeline_locally
    from pipelines.verdict import daily_verdict, print_progress
    from quantrec.redact import redact

    raw, cfg = _run_config(args.config)
    date = args.date or _default_run_date(args.data, args.spec)
    root = Path(args.pipeline_root or _default_root()).resolve()
    registry = _registry_for_run(args, root)
    print(f"quantrec: daily pipeline for run_date {date} (local KFP SubprocessRunner)")
    run = run_pipeline_locally(local_daily_pipeline, {
        "run_date": date, "data": args.data or "", "spec": args.spec or "", "config": raw,
        "registry": registry, "rebuild_codebook": args.rebuild_codebook,
        "checkpoints": str(root / "checkpoints"), "cache": args.cache or str(root / "cache")},
        pipeline_root=root, label=date, verbose=args.verbose, progress=print_progress)
    code, lines = daily_verdict(run)
    for line in lines:
        print(redact(line))
    return code


def cmd_monitor(args: argparse.Namespace) -> int:
    from pipelines.local import run_pipeline_locally
    from pipelines.monitoring import local_monitoring_pipeline
    from pipelines.verdict import monitoring_verdict, print_progress
    from quantrec.redact import redact

    raw = _load_config(args.config)
    from monitoring.config import MonitorConfig
    MonitorConfig.from_dict(raw)  # a bad key fails here, before the run
    date = args.date or _default_run_date(args.data, args.spec)
    root = Path(args.pipeline_root or _default_root()).resolve()
    registry = "" if args.codebook and not args.registry else (args.registry or str(root / "registry"))
    if registry:
        from quantrec.registry import Registry
        Registry(registry)  # must exist: a typo must not look like "no champion"
    print(f"quantrec: monitoring pipeline for run_date {date} (local KFP SubprocessRunner)")
    run = run_pipeline_locally(local_monitoring_pipeline, {
        "run_date": date, "data": args.data or "", "spec": args.spec or "", "registry": registry,
        "codebook": args.codebook or "", "config": raw}, pipeline_root=root, label=f"monitor-{date}",
        verbose=args.verbose, progress=print_progress)
    code, lines = monitoring_verdict(run)
    for line in lines:
        print(redact(line))
    return code


def cmd_compile(args: argparse.Namespace) -> int:
    from pipelines.compile import COMPILED_DIR, compile_all
    for path in compile_all(args.out or COMPILED_DIR):
        print(path)
    return EXIT_OK


def cmd_import_uci(args: argparse.Namespace) -> int:
    from quantrec.data.uci_import import import_uci_workbook
    print(json.dumps(import_uci_workbook(args.workbook, args.out)))
    return EXIT_OK


def cmd_registry(args: argparse.Namespace) -> int:
    from quantrec.registry import Registry
    if args.action == "init":
        reg = Registry(args.url, create=True)
        print(f"created registry {reg.root}")
        return EXIT_OK
    from quantrec.redact import redact
    from quantrec.registry import RegistryError
    reg = Registry(args.url)
    if args.action == "history":
        # no champion lookup: the log is what an operator reads when the pointer is broken
        for e in reg.history():
            print(f"{e['seq']:>4} {e['at']}  {e['action']:<8} {e['version']}  (was {e.get('previous')})  {e.get('reason', '')}")
        return EXIT_OK
    if args.action == "list":
        try:
            champion, broken = reg.champion_name(), ""
        except RegistryError as e:  # still list the versions: they are what a repair needs
            champion, broken = None, redact(str(e))
        for name in reg.versions():
            m = reg.get(name).manifest
            decision = m.get("decision") or {}
            blessed = "blessed" if decision.get("blessed") else ("not blessed" if decision else "no decision")
            print(f"{'*' if name == champion else ' '} {name}  run_date {m.get('run_date')}  {blessed}")
        if broken:
            print(f"champion: unreadable: {broken}")
            return EXIT_FAILED
        print(f"champion: {champion or 'none'}")
        return EXIT_OK
    champion = reg.champion_name()
    if args.action == "show":
        name = args.version or champion
        if not name:
            print("the registry has no champion yet; name a version")
            return EXIT_FAILED
        manifest = reg.get(name).manifest
        decision = manifest.get("decision") or {}
        print(f"version {name}{' (champion)' if name == champion else ''}, run_date {manifest.get('run_date')}")
        if decision:
            print(f"shadow decision: {decision.get('verdict')}")
            for reason in decision.get("reasons", []):
                print(f"  - {reason}")
        else:
            print("shadow decision: none recorded")
        print(json.dumps(manifest, indent=2, sort_keys=True))
    elif args.action == "promote":
        entry = reg.promote(args.version, expected_current=champion, reason=args.reason or "manual promotion")
        print(f"promoted {entry['version']} (was {entry['previous']})")
    elif args.action == "rollback":
        entry = reg.rollback(args.steps, expected_current=champion, reason=args.reason or "")
        print(f"rolled back to {entry['version']} (was {entry['previous']})")
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="quantrec", description=(
        "Daily-retrained GMV / purchase ranking workflow on Kubeflow Pipelines. "
        "Data defaults to the embedded Online Retail II dataset (UCI, DOI 10.24432/C5CG6D, CC BY 4.0)."))
    sub = p.add_subparsers(dest="command", required=True)

    def data_args(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("--data", help="transactions table: path, file:// or gs:// URL "
                                       "(default: the spec's path, or $QUANTREC_DATA)")
        sp.add_argument("--spec", help="dataset spec YAML (default: the embedded Online Retail II spec, "
                                       "or $QUANTREC_SPEC)")
        sp.add_argument("--config", help="run config: inline JSON or a JSON/YAML file (default: built-in); "
                                         "its tasks.windows decide what is validated and trained")

    sp = sub.add_parser("validate", help="run the Great Expectations gate; exit 0 if the data passes")
    data_args(sp)
    sp.add_argument("--date", required=True, help="run date YYYY-MM-DD (the run sees data before it)")
    sp.add_argument("--out", default=None, help="folder for validation.json / .html "
                                                "(default: pipeline_root/validation/<date>)")
    sp.set_defaults(func=cmd_validate)

    sp = sub.add_parser("tasks", help="build the task tables (parquet) for a run date")
    data_args(sp)
    sp.add_argument("--date", help="run date YYYY-MM-DD (default: the day after the data ends)")
    sp.add_argument("--out", required=True, help="output folder")
    sp.set_defaults(func=cmd_tasks)

    sp = sub.add_parser("run", help="run the daily pipeline locally (KFP SubprocessRunner)")
    data_args(sp)
    sp.add_argument("--date", help="run date YYYY-MM-DD (default: the day after the data ends)")
    sp.add_argument("--pipeline-root", help="artifact folder (default: ./pipeline_root in the repo)")
    reg = sp.add_mutually_exclusive_group()
    reg.add_argument("--registry", help="model registry URL (default: <pipeline root>/registry): its champion's "
                                        "codebook is reused, its models warm-start training, the run is published")
    reg.add_argument("--no-registry", action="store_true", help="cold start, publish nothing")
    sp.add_argument("--create-registry", action="store_true", help="create the --registry if it does not exist")
    sp.add_argument("--rebuild-codebook", default="auto", choices=["auto", "true", "false"],
                    help="auto: when monitoring recommended it (default); true: always; false: reuse the champion's")
    sp.add_argument("--cache", help="serving cache a blessed version is written to: a redis:// URL (password "
                                    "from REDIS_PASSWORD) or a folder for an embedded Redis "
                                    "(default: <pipeline root>/cache)")
    sp.add_argument("--verbose", action="store_true", help="show KFP's full log (it always goes to run.log)")
    sp.set_defaults(func=cmd_run)

    sp = sub.add_parser("monitor", help="drift review of the GMV codebook; exit 0 keep, 3 rebuild, 1 error")
    sp.add_argument("--data", help="transactions table: path, file:// or gs:// URL (default: the spec's path)")
    sp.add_argument("--spec", help="dataset spec YAML (default: the embedded Online Retail II spec)")
    sp.add_argument("--config", help="monitoring config (monitoring.config.MonitorConfig): inline JSON or a file")
    sp.add_argument("--date", help="run date YYYY-MM-DD (default: the day after the data ends)")
    sp.add_argument("--registry", help="model registry URL: its champion's codebook is judged and the "
                                       "recommendation recorded (default: <pipeline root>/registry)")
    sp.add_argument("--codebook", help="judge this codebook file instead of the champion's")
    sp.add_argument("--pipeline-root", help="artifact folder (default: ./pipeline_root in the repo)")
    sp.add_argument("--verbose", action="store_true", help="show KFP's full log (it always goes to run.log)")
    sp.set_defaults(func=cmd_monitor)

    sp = sub.add_parser("compile", help="compile the pipelines to KFP YAML")
    sp.add_argument("--out", default=None, help="output folder (default: pipelines/compiled)")
    sp.set_defaults(func=cmd_compile)

    sp = sub.add_parser("import-uci", help="convert the official UCI workbook to the default parquet")
    sp.add_argument("workbook", help="online_retail_II.xlsx as downloaded from UCI")
    sp.add_argument("out", help="output parquet path")
    sp.set_defaults(func=cmd_import_uci)

    sp = sub.add_parser("registry", help="the model registry: init, list, show, history, promote, rollback")
    sp.add_argument("action", choices=["init", "list", "show", "history", "promote", "rollback"])
    sp.add_argument("version", nargs="?", help="version name (show, promote)")
    sp.add_argument("--url", default=str(_default_root() / "registry"),
                    help="registry URL (default: the local one under pipeline_root)")
    sp.add_argument("--steps", type=int, default=1, help="rollback: how many promotions to undo")
    sp.add_argument("--reason", help="promote / rollback: why (kept in the promotion log)")
    sp.set_defaults(func=cmd_registry)

    # command groups that live in their own modules (each adds its sub-commands)
    from pipelines import backfill, cache_cli, schedule, serve
    for group in (schedule, backfill, serve, cache_cli):
        group.register(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    from quantrec.redact import redact
    args = build_parser().parse_args(argv)
    if args.command == "registry" and args.action == "promote" and not args.version:
        print("quantrec registry promote: error: name the version to promote", file=sys.stderr)
        return EXIT_USAGE
    try:
        return args.func(args)
    except (ValueError, OSError) as exc:  # our DataError / SpecError / ConfigError / RegistryError, I/O
        detail = str(exc) if isinstance(exc, ValueError) else f"{type(exc).__name__}: {exc}"
        detail = " ".join(part.strip() for part in detail.splitlines())  # one line, always
        print(f"quantrec {args.command}: error: {redact(detail)}", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
