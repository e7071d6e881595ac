"""`quantrec serve`: the scoring service over HTTP (FastAPI on uvicorn).

It serves the version the cache points at, with that version's models from the registry
(``quantrec.serving.service``). Defaults fit a local run: the embedded Redis in
<pipeline root>/cache and the registry in <pipeline root>/registry; production passes the
cache in $QUANTREC_REDIS_URL (never on the command line: a password there is visible to
every user of the machine) and --registry gs://... . ``--check`` loads the models, prints
the readiness and exits (0 ready, 1 not).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2  # pipelines.cli's exit codes


def service_config(args: argparse.Namespace) -> Any:
    from pipelines.local import DEFAULT_ROOT
    from quantrec.serving.cache import cache_url_from_env
    from quantrec.serving.service import ServiceConfig
    root = Path(args.pipeline_root or DEFAULT_ROOT).resolve()
    return ServiceConfig(cache=args.cache or cache_url_from_env() or str(root / "cache"), prefix=args.prefix,
                         registry=args.registry or str(root / "registry"), events=args.events or "",
                         max_candidates=args.max_candidates, torch_threads=args.torch_threads)


def cmd_serve(args: argparse.Namespace) -> int:
    import dataclasses

    from quantrec.redact import redact
    from quantrec.serving.app import CONFIG_ENV, create_app, warm_up
    from quantrec.serving.service import ScoringService

    config = service_config(args)
    if args.workers > 1 and not args.check:
        import uvicorn
        # each worker process builds its own service from the config in the environment
        os.environ[CONFIG_ENV] = json.dumps(dataclasses.asdict(config))
        print(f"quantrec serve: {args.workers} workers on http://{args.host}:{args.port} "
              f"(registry {redact(config.registry)})", flush=True)
        uvicorn.run("quantrec.serving.app:app_from_env", factory=True, host=args.host, port=args.port,
                    workers=args.workers, log_level=args.log_level)
        return EXIT_OK
    service = ScoringService(config)
    line = warm_up(service)
    print(f"quantrec serve: {line} (cache {service.reader.where}, registry {redact(config.registry)})", flush=True)
    if args.check:
        ok, details = service.ready()
        print(json.dumps({"ready": ok, **details}, default=str))
        service.close()
        return EXIT_OK if ok else EXIT_FAILED
    import uvicorn
    try:
        uvicorn.run(create_app(service), host=args.host, port=args.port, log_level=args.log_level)
    finally:
        service.close()
    return EXIT_OK


def register(subparsers: Any) -> None:
    """Add `serve` to the `quantrec` sub-commands."""
    from quantrec.serving.cache import DEFAULT_PREFIX
    sp = subparsers.add_parser("serve", help="run the scoring service: POST /score, /healthz, /readyz, /metrics")
    sp.add_argument("--host", default="127.0.0.1", help="interface to listen on (default: loopback only)")
    sp.add_argument("--port", type=int, default=8000)
    sp.add_argument("--cache", help="redis:// URL or a folder of the embedded Redis (default: "
                                    "$QUANTREC_REDIS_URL / $REDIS_URL, else <pipeline root>/cache)")
    sp.add_argument("--prefix", default=DEFAULT_PREFIX, help="the cache's key prefix")
    sp.add_argument("--registry", help="model registry URL (default: <pipeline root>/registry)")
    sp.add_argument("--events", help="events table (parquet URL) to compute users missing from the cache; "
                                     "without it they are cold starts")
    sp.add_argument("--max-candidates", type=int, default=1000, help="longest candidate list of a request")
    sp.add_argument("--torch-threads", type=int, default=1, help="torch threads per request")
    sp.add_argument("--workers", type=int, default=1, help="uvicorn worker processes (each loads the models)")
    sp.add_argument("--log-level", default="warning", help="uvicorn log level")
    sp.add_argument("--pipeline-root", help="artifact folder of local runs (default: ./pipeline_root)")
    sp.add_argument("--check", action="store_true", help="load the models, print the readiness and exit")
    sp.set_defaults(func=cmd_serve)


def main(argv: list[str] | None = None) -> int:
    """`python -m pipelines.serve ...` (the same as `quantrec serve ...`)."""
    from quantrec.redact import redact
    os.environ.setdefault("DO_NOT_TRACK", "1")
    parser = argparse.ArgumentParser(prog="quantrec")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["serve"] + list(sys.argv[1:] if argv is None else argv))
    try:
        return args.func(args)
    except (ValueError, OSError) as exc:
        print(f"quantrec serve: error: {redact(' '.join(str(exc).split()))}", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
