"""The `quantrec` command line: validate data, build task tables, run or compile pipelines.

This module lives beside the library (not in ``quantrec/``) because it drives KFP;
the library itself never imports kfp.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

os.environ.setdefault("DO_NOT_TRACK", "1")


def _load_config(value: str | None) -> dict:
    """--config: inline JSON, or a path to a JSON/YAML file."""
    if not value:
        return {}
    if value.lstrip().startswith("{"):
        return json.loads(value)
    import fsspec
    import yaml
    with fsspec.open(value, "r") as f:
        return yaml.safe_load(f) or {}


def _default_run_date(data: str | None, spec_path: str | None) -> str:
    """The day after the last day in the data: `make run` scores 'tomorrow'."""
    import pandas as pd
    from quantrec.data.load import latest_day
    from quantrec.data.spec import load_spec, resolve_data_url
    spec = load_spec(spec_path)
    return str((latest_day(resolve_data_url(spec, data), spec) + pd.Timedelta(days=1)).date())


def cmd_validate(args: argparse.Namespace) -> int:
    from quantrec.config import RunConfig
    from validation.runner import run_validation
    cfg = RunConfig.from_dict(_load_config(args.config))
    res = run_validation(args.date, data=args.data, spec_path=args.spec, window_config=cfg.tasks.windows)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    res.write(str(out / "validation.json"), str(out / "validation.html"))
    print(res.message())
    print(f"report: {out / 'validation.html'}")
    return 0 if res.passed else 1


def cmd_tasks(args: argparse.Namespace) -> int:
    from quantrec.config import RunConfig
    from quantrec.data.spec import load_spec
    from quantrec.data.tasks import prepare_run, write_table
    cfg = RunConfig.from_dict(_load_config(args.config))
    date = args.date or _default_run_date(args.data, args.spec)
    tt = prepare_run(date, data=args.data, spec=load_spec(args.spec), config=cfg.tasks)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for name, df in tt.tables.items():
        write_table(df, str(out / f"{name}.parquet"), name)
    summary = {"run_date": date, "windows": tt.windows.to_dict(), "rows": tt.sizes(),
               "cleaning": tt.cleaning.to_dict(), "config": cfg.to_dict()}
    (out / "tasks.json").write_text(json.dumps(summary, indent=2))
    print(json.dumps(summary, indent=2))
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from pipelines.daily import daily_pipeline
    from pipelines.local import DEFAULT_ROOT, run_pipeline_locally
    date = args.date or _default_run_date(args.data, args.spec)
    print(f"quantrec: daily pipeline for run_date {date} (local SubprocessRunner)")
    run = run_pipeline_locally(daily_pipeline, {"run_date": date, "data": args.data or "",
                                                "spec": args.spec or "",
                                                "config": _load_config(args.config),
                                                "registry": args.registry or "",
                                                "rebuild_codebook": bool(args.rebuild_codebook)},
                               pipeline_root=args.pipeline_root or DEFAULT_ROOT)
    tasks = run.task_dirs()
    passed = "build-tasks" in tasks
    print(f"\nrun folder: {run.run_dir}")
    print(f"stages run: {', '.join(tasks)}")
    print("validation: " + ("passed" if passed else "FAILED: nothing was published (see the report)"))
    print("reports (HTML, open in a browser):")
    for path in run.reports():
        print(f"  {path}")
    return 0 if passed else 1


def cmd_compile(args: argparse.Namespace) -> int:
    from pipelines.compile import COMPILED_DIR, compile_all
    for path in compile_all(args.out or COMPILED_DIR):
        print(path)
    return 0


def cmd_import_uci(args: argparse.Namespace) -> int:
    from quantrec.data.uci_import import import_uci_workbook
    print(json.dumps(import_uci_workbook(args.workbook, args.out)))
    return 0


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
        sp.add_argument("--config", help="run config: inline JSON or a JSON/YAML file (default: built-in)")

    sp = sub.add_parser("validate", help="run the Great Expectations gate; exit 0 if the data passes")
    data_args(sp)
    sp.add_argument("--date", required=True, help="run date YYYY-MM-DD (the run sees data before it)")
    sp.add_argument("--out", default="validation_report", help="folder for validation.json / .html")
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
    sp.add_argument("--registry", help="model registry URL: reuse its champion's codebook and warm start "
                                       "from its models (default: none, cold start)")
    sp.add_argument("--rebuild-codebook", action="store_true",
                    help="fit a new codebook even when the champion has one")
    sp.set_defaults(func=cmd_run)

    sp = sub.add_parser("compile", help="compile the pipelines to KFP YAML")
    sp.add_argument("--out", default=None, help="output folder (default: pipelines/compiled)")
    sp.set_defaults(func=cmd_compile)

    sp = sub.add_parser("import-uci", help="convert the official UCI workbook to the default parquet")
    sp.add_argument("workbook", help="online_retail_II.xlsx as downloaded from UCI")
    sp.add_argument("out", help="output parquet path")
    sp.set_defaults(func=cmd_import_uci)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except ValueError as exc:  # our DataError / SpecError / WindowError / config errors
        print(f"quantrec {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
