"""Recurring runs of the compiled pipelines on a KFP cluster, through ``kfp.Client``
(API v2beta1): ``quantrec schedule create|list|pause|resume|delete --host URL``.

``create`` makes sure the experiment exists, uploads the checked-in compiled YAML as a
pipeline version named after the package version and the YAML's digest (re-creating a
schedule from the same YAML reuses that version: nothing is uploaded twice), and creates
the recurring run with ``max_concurrency=1`` (two daily trainings must never race for the
champion) and the catch-up choice. The scheduled run's ``run_date`` is ``""``: the
pipeline's first task takes the day of KFP's schedule time.

KFP's cron has SIX fields, seconds first: ``10 10 * * *`` given to KFP as is would run
at minute 10 of EVERY hour (second 10). A five-field expression (the usual crontab form)
is converted by putting ``0`` seconds in front, and the command says so.

An auth token for the KFP API comes from $QUANTREC_KFP_TOKEN (never a command-line
argument, never printed: quantrec.redact masks it).
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import io
import json
import os
import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

from quantrec import __version__
from quantrec.redact import redact

COMPILED_DIR = Path(__file__).parent / "compiled"
TOKEN_ENV = "QUANTREC_KFP_TOKEN"
HOST_ENV = "KF_PIPELINES_ENDPOINT"  # kfp.Client's own variable
DEFAULT_EXPERIMENT = "quantrec"
_CRON_FIELD = re.compile(r"^[0-9A-Za-z*/,\-?#]+$")


@dataclass(frozen=True)
class SchedulablePipeline:
    name: str          # the pipeline's name in KFP (its @dsl.pipeline name)
    package: Path      # the compiled YAML uploaded as a pipeline version
    description: str


PIPELINES = {
    "daily": SchedulablePipeline("quantrec-daily", COMPILED_DIR / "daily.yaml",
                                 "quantrec daily training: validate, train, shadow A/B, publish, promote"),
    "monitoring": SchedulablePipeline("quantrec-daily-monitoring", COMPILED_DIR / "monitoring.yaml",
                                      "quantrec daily drift review of the GMV codebook"),
}


class ScheduleError(ValueError):
    """A schedule cannot be made or changed; the message names the cause (redacted)."""

    def __init__(self, message: str) -> None:
        super().__init__(redact(message))


# ---- cron --------------------------------------------------------------------------------
def kfp_cron(expression: str) -> tuple[str, str]:
    """(KFP's six-field cron, a sentence saying what was done) for a five-field crontab
    expression (seconds ``0`` put in front) or a six-field one (seconds first, kept).
    Descriptors such as ``@daily`` pass unchanged. Anything else: ScheduleError."""
    expr = " ".join(expression.split())
    if expr.startswith("@"):
        return expr, f"cron descriptor {expr!r} passed to KFP unchanged"
    fields = expr.split(" ") if expr else []
    bad = [f for f in fields if not _CRON_FIELD.match(f)]
    if bad or len(fields) not in (5, 6):
        raise ScheduleError(f"--cron {expression!r} is not a cron expression: give five fields "
                            "(minute hour day-of-month month day-of-week, e.g. '0 2 * * *' = 02:00 UTC daily) "
                            "or KFP's six (seconds first)")
    if len(fields) == 5:
        six = "0 " + expr
        return six, (f"five-field cron {expr!r} (minute hour day month weekday) converted to KFP's six-field "
                     f"form with seconds first: {six!r}")
    return expr, f"six-field cron {expr!r} (seconds first, KFP's form) used as given"


# ---- parameters --------------------------------------------------------------------------
def declared_parameters(package: Path) -> dict[str, Any]:
    """The pipeline parameters a compiled YAML declares (name -> default or None)."""
    import yaml
    try:
        doc = yaml.safe_load(package.read_text())
    except FileNotFoundError:
        raise ScheduleError(f"compiled pipeline {package} not found: run `quantrec compile`") from None
    params = doc.get("root", {}).get("inputDefinitions", {}).get("parameters", {})
    return {name: spec.get("defaultValue") for name, spec in params.items()}


def schedule_parameters(pipeline: str, *, data: str = "", spec: str = "", config: dict | None = None,
                        registry: str = "", checkpoints: str = "", rebuild_codebook: str = "auto",
                        codebook: str = "") -> dict[str, Any]:
    """The runtime parameters of a scheduled run of ``pipeline`` ("daily" | "monitoring").

    ``run_date`` is always ``""`` (the first task resolves it from the schedule time).
    The config is validated here (a typo fails now, not at 02:00 on the cluster), and
    every key must be a parameter the compiled pipeline declares.
    """
    config = config or {}
    if pipeline == "daily":
        from quantrec.config import RunConfig
        RunConfig.from_dict(config)
        if rebuild_codebook not in ("auto", "true", "false"):
            raise ScheduleError(f"rebuild_codebook must be auto, true or false, got {rebuild_codebook!r}")
        params = {"run_date": "", "data": data, "spec": spec, "config": config, "registry": registry,
                  "rebuild_codebook": rebuild_codebook, "checkpoints": checkpoints}
    elif pipeline == "monitoring":
        from monitoring.config import MonitorConfig
        MonitorConfig.from_dict(config)
        params = {"run_date": "", "data": data, "spec": spec, "registry": registry, "codebook": codebook,
                  "config": config}
    else:
        raise ScheduleError(f"unknown pipeline {pipeline!r}: one of {sorted(PIPELINES)}")
    declared = declared_parameters(PIPELINES[pipeline].package)
    unknown = sorted(set(params) - set(declared))
    if unknown:
        raise ScheduleError(f"{PIPELINES[pipeline].package.name} declares no parameter(s) {unknown}: "
                            "run `quantrec compile`")
    return params


def pipeline_version_name(package: Path) -> str:
    """``v<package version>-<sha256 of the YAML, 12 hex>``: the same YAML, the same name."""
    digest = hashlib.sha256(package.read_bytes()).hexdigest()[:12]
    return f"v{__version__}-{digest}"


# ---- the KFP client ------------------------------------------------------------------------
def _api_message(exc: Exception) -> str:
    status, reason, body = getattr(exc, "status", None), getattr(exc, "reason", ""), getattr(exc, "body", "")
    detail = body
    try:
        parsed = json.loads(body or "")
        detail = parsed.get("message") or parsed.get("error") or body
    except (TypeError, ValueError, AttributeError):
        pass
    return f"{status} {reason}".strip() + (f": {str(detail).strip()[:300]}" if detail else "")


@contextlib.contextmanager
def api_errors(host: str, doing: str) -> Iterator[None]:
    """Turn the KFP client's exceptions into one-line ScheduleErrors; kfp's own prints
    (links to the UI) are swallowed: the command prints its own summary."""
    import kfp_server_api
    import urllib3
    try:
        with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # "This client only works with ..."
            yield
    except kfp_server_api.ApiException as exc:
        raise ScheduleError(f"KFP API at {host} refused to {doing}: {_api_message(exc)}") from None
    except urllib3.exceptions.HTTPError as exc:
        raise ScheduleError(f"cannot reach the KFP API at {host} to {doing}: {type(exc).__name__}") from None


def connect(host: str | None, namespace: str | None = None) -> Any:
    """A ``kfp.Client`` for ``host`` (or $KF_PIPELINES_ENDPOINT), with the bearer token
    of $QUANTREC_KFP_TOKEN when set."""
    import kfp
    host = host or os.environ.get(HOST_ENV)
    if not host:
        raise ScheduleError(f"no KFP API host: pass --host URL (or set {HOST_ENV})")
    kwargs: dict[str, Any] = {"host": host, "existing_token": os.environ.get(TOKEN_ENV) or None}
    if namespace:
        kwargs["namespace"] = namespace
    with api_errors(host, "connect"):
        return kfp.Client(**kwargs)


def _host(client: Any) -> str:
    return redact(client._existing_config.host)


def _equals(key: str, value: str) -> str:
    return json.dumps({"predicates": [{"operation": "EQUALS", "key": key, "stringValue": value}]})


def ensure_experiment(client: Any, name: str, namespace: str | None = None) -> str:
    """The id of experiment ``name``, created if absent."""
    with api_errors(_host(client), f"create experiment {name!r}"):
        return client.create_experiment(name, namespace=namespace).experiment_id


def ensure_pipeline_version(client: Any, pipeline: SchedulablePipeline) -> tuple[str, str, bool]:
    """(pipeline id, version id, uploaded?) for the compiled YAML: the pipeline is created
    if absent (without a version), the version is uploaded only if no version of that
    name (package version + YAML digest) exists yet."""
    import kfp_server_api
    version_name = pipeline_version_name(pipeline.package)
    host = _host(client)
    with api_errors(host, f"look up pipeline {pipeline.name!r}"):
        pipeline_id = client.get_pipeline_id(pipeline.name)
    if pipeline_id is None:
        with api_errors(host, f"create pipeline {pipeline.name!r}"):
            pipeline_id = client.pipelines.pipeline_service_create_pipeline(
                pipeline=kfp_server_api.V2beta1Pipeline(display_name=pipeline.name,
                                                        description=pipeline.description)).pipeline_id
    with api_errors(host, f"list versions of pipeline {pipeline.name!r}"):
        found = client.list_pipeline_versions(pipeline_id, page_size=2,
                                              filter=_equals("display_name", version_name)).pipeline_versions
    if found:
        return pipeline_id, found[0].pipeline_version_id, False
    with api_errors(host, f"upload {pipeline.package.name} as version {version_name!r}"):
        version = client.upload_pipeline_version(str(pipeline.package), version_name, pipeline_id=pipeline_id,
                                                 description=f"{pipeline.package.name} of quantrec {__version__}")
    return pipeline_id, version.pipeline_version_id, True


def list_schedules(client: Any, experiment_id: str | None = None) -> list[Any]:
    """Every recurring run (of one experiment when given), all pages."""
    out, token = [], ""
    while True:
        with api_errors(_host(client), "list recurring runs"):
            page = client.list_recurring_runs(page_token=token, page_size=100, experiment_id=experiment_id)
        out += page.recurring_runs or []
        token = page.next_page_token or ""
        if not token:
            return out


def create_schedule(client: Any, pipeline: str, cron: str, params: dict[str, Any], *,
                    experiment: str = DEFAULT_EXPERIMENT, job_name: str | None = None, catchup: bool = False,
                    start_time: str | None = None, enabled: bool = True, namespace: str | None = None,
                    service_account: str | None = None, pipeline_root: str | None = None) -> dict[str, Any]:
    """Create a recurring run of ``pipeline`` ("daily" | "monitoring"). Returns a summary
    {recurring_run_id, name, cron, cron_note, experiment_id, pipeline_id, version_id,
    version_name, uploaded}. A recurring run of the same name in the experiment is an
    error (two schedules of one training would double-train and race for the champion)."""
    if pipeline not in PIPELINES:
        raise ScheduleError(f"unknown pipeline {pipeline!r}: one of {sorted(PIPELINES)}")
    target = PIPELINES[pipeline]
    six, note = kfp_cron(cron)
    name = job_name or target.name
    experiment_id = ensure_experiment(client, experiment, namespace)
    clash = [r for r in list_schedules(client, experiment_id) if r.display_name == name]
    if clash:
        raise ScheduleError(f"experiment {experiment!r} already has a recurring run named {name!r} "
                            f"(id {clash[0].recurring_run_id}); delete it first or pass --name")
    pipeline_id, version_id, uploaded = ensure_pipeline_version(client, target)
    with api_errors(_host(client), f"create recurring run {name!r}"):
        run = client.create_recurring_run(
            experiment_id=experiment_id, job_name=name, description=f"{target.description} ({cron!r})",
            start_time=start_time, cron_expression=six, max_concurrency=1, no_catchup=not catchup,
            params=params, pipeline_id=pipeline_id, version_id=version_id, enabled=enabled,
            service_account=service_account, pipeline_root=pipeline_root)
    return {"recurring_run_id": run.recurring_run_id, "name": name, "cron": six, "cron_note": note,
            "experiment_id": experiment_id, "pipeline_id": pipeline_id, "version_id": version_id,
            "version_name": pipeline_version_name(target.package), "uploaded": uploaded}


def resolve_schedule(client: Any, ref: str, experiment_id: str | None = None) -> Any:
    """The recurring run whose id or display name is ``ref`` (a name must be unique)."""
    runs = list_schedules(client, experiment_id)
    by_id = [r for r in runs if r.recurring_run_id == ref]
    if by_id:
        return by_id[0]
    by_name = [r for r in runs if r.display_name == ref]
    if len(by_name) > 1:
        raise ScheduleError(f"{len(by_name)} recurring runs are named {ref!r} "
                            f"({', '.join(r.recurring_run_id for r in by_name)}): give the id")
    if not by_name:
        raise ScheduleError(f"no recurring run with id or name {ref!r}")
    return by_name[0]


def schedule_row(run: Any) -> dict[str, Any]:
    """What ``list`` shows of a recurring run."""
    trigger = run.trigger
    cron = trigger.cron_schedule.cron if trigger and trigger.cron_schedule else None
    periodic = trigger.periodic_schedule.interval_second if trigger and trigger.periodic_schedule else None
    ref = run.pipeline_version_reference
    return {"id": run.recurring_run_id, "name": run.display_name, "mode": str(run.mode or ""),
            "cron": cron or (f"every {periodic} s" if periodic else ""),
            "max_concurrency": run.max_concurrency, "catchup": not run.no_catchup,
            "pipeline_version": ref.pipeline_version_id if ref else run.pipeline_version_id}


# ---- command line ------------------------------------------------------------------------
def _experiment_id(client: Any, name: str | None, namespace: str | None) -> str | None:
    if not name:
        return None
    with api_errors(_host(client), f"find experiment {name!r}"):
        try:
            return client.get_experiment(experiment_name=name, namespace=namespace).experiment_id
        except ValueError as exc:  # kfp: "No experiment is found with name ..."
            raise ScheduleError(f"KFP at {_host(client)}: {exc}") from None


def cmd_create(args: argparse.Namespace) -> int:
    from pipelines.cli import _load_config
    params = schedule_parameters(args.pipeline, data=args.data or "", spec=args.spec or "",
                                 config=_load_config(args.config), registry=args.registry or "",
                                 checkpoints=args.checkpoints or "", rebuild_codebook=args.rebuild_codebook,
                                 codebook=args.codebook or "")
    kfp_cron(args.cron)  # a bad cron fails before any request
    client = connect(args.host, args.namespace)
    out = create_schedule(client, args.pipeline, args.cron, params, experiment=args.experiment,
                          job_name=args.name, catchup=args.catchup, start_time=args.start_time,
                          enabled=not args.paused, namespace=args.namespace,
                          service_account=args.service_account, pipeline_root=args.pipeline_root)
    print(redact(out["cron_note"]))
    print(redact(f"pipeline version {out['version_name']} "
                 + ("uploaded" if out["uploaded"] else "already uploaded: reused")))
    print(redact(f"created recurring run {out['name']} (id {out['recurring_run_id']}): cron {out['cron']!r} UTC, "
                 f"max_concurrency 1, catch-up {'on' if args.catchup else 'off'}, "
                 f"{'paused' if args.paused else 'enabled'}; run_date = the day of each scheduled time"))
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    client = connect(args.host, args.namespace)
    rows = [schedule_row(r) for r in list_schedules(client, _experiment_id(client, args.experiment, args.namespace))]
    if not rows:
        print("no recurring runs")
        return 0
    cols = ["id", "name", "mode", "cron", "max_concurrency", "catchup", "pipeline_version"]
    widths = {c: max(len(c), *(len(str(r[c])) for r in rows)) for c in cols}
    print("  ".join(c.ljust(widths[c]) for c in cols))
    for r in rows:
        print(redact("  ".join(str(r[c]).ljust(widths[c]) for c in cols)))
    return 0


def _change(action: str) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        client = connect(args.host, args.namespace)
        target = resolve_schedule(client, args.schedule, _experiment_id(client, args.experiment, args.namespace))
        rid = target.recurring_run_id
        call = {"pause": client.disable_recurring_run, "resume": client.enable_recurring_run,
                "delete": client.delete_recurring_run}[action]
        with api_errors(_host(client), f"{action} recurring run {rid}"):
            call(rid)
        done = {"pause": "paused", "resume": "resumed", "delete": "deleted"}[action]
        print(redact(f"{done} recurring run {target.display_name} (id {rid})"))
        return 0
    return run


def register(subparsers: Any) -> None:
    """Add ``quantrec schedule create|list|pause|resume|delete`` to the CLI."""
    sp = subparsers.add_parser("schedule", help="KFP recurring runs of the daily / monitoring pipelines")
    actions = sp.add_subparsers(dest="schedule_action", required=True)

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("--host", help=f"KFP API endpoint URL (default: ${HOST_ENV}); a bearer token is read "
                                      f"from ${TOKEN_ENV}")
        p.add_argument("--namespace", help="Kubernetes namespace (multi-user KFP)")

    p = actions.add_parser("create", help="create a recurring run (max_concurrency 1)")
    common(p)
    p.add_argument("--pipeline", choices=sorted(PIPELINES), default="daily", help="which pipeline (default daily)")
    p.add_argument("--cron", required=True, help="when, in UTC: five fields 'minute hour day month weekday' "
                                                 "(converted to KFP's six-field form, seconds first) or six fields")
    p.add_argument("--name", help="recurring run name (default: the pipeline's name)")
    p.add_argument("--experiment", default=DEFAULT_EXPERIMENT, help="KFP experiment (created if absent)")
    p.add_argument("--data", help="transactions table URL (gs://...) the runs read")
    p.add_argument("--spec", help="dataset spec URL")
    p.add_argument("--config", help="run config: inline JSON or a JSON/YAML file (validated now)")
    p.add_argument("--registry", help="model registry URL (gs://...)")
    p.add_argument("--checkpoints", help="daily: checkpoint URL root (gs://...)")
    p.add_argument("--rebuild-codebook", default="auto", choices=["auto", "true", "false"], help="daily only")
    p.add_argument("--codebook", help="monitoring only: judge this codebook instead of the champion's")
    p.add_argument("--catchup", action="store_true",
                   help="run every interval missed while paused or behind (default: only the latest; "
                        "use `quantrec backfill` for missed days)")
    p.add_argument("--start-time", help="RFC3339 time the schedule starts (default: now)")
    p.add_argument("--paused", action="store_true", help="create the recurring run disabled")
    p.add_argument("--service-account", help="Kubernetes service account of the runs")
    p.add_argument("--pipeline-root", help="artifact root of the runs (gs://...)")
    p.set_defaults(func=cmd_create)

    p = actions.add_parser("list", help="list recurring runs")
    common(p)
    p.add_argument("--experiment", default=DEFAULT_EXPERIMENT, help="KFP experiment ('' = all)")
    p.set_defaults(func=cmd_list)

    for action, text in (("pause", "disable"), ("resume", "enable"), ("delete", "delete")):
        p = actions.add_parser(action, help=f"{text} a recurring run (by id or name)")
        common(p)
        p.add_argument("schedule", help="recurring run id or name")
        p.add_argument("--experiment", default=DEFAULT_EXPERIMENT, help="KFP experiment of a name ('' = all)")
        p.set_defaults(func=_change(action))
