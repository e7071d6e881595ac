"""`quantrec cache status|rollback|activate|gc|refresh`: look after the serving cache.

The registry champion is the source of truth of what serves; the cache pointer follows
it (``quantrec.serving.cache``). ``status`` exits 1 when the pointer disagrees with the
champion. ``rollback`` rolls the REGISTRY back first (the source of truth), then points
the cache at the new champion; ``--cache-only`` moves the cache pointer alone (it then
lags the champion, which ``status`` reports). ``activate VERSION|--champion`` repairs a
gap (e.g. a crash between the promotion and the flip); ``gc`` deletes the versions
beyond ``--keep``; ``refresh`` writes a version from an events table (what the pipeline's
refresh_cache task does).

Where the cache is: --cache (a redis:// URL or a folder), else $QUANTREC_REDIS_URL /
$REDIS_URL, else the embedded Redis of local runs in <pipeline root>/cache. Every
message is redacted: no password reaches the terminal.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

# pipelines.cli's exit codes (not imported: cli imports this module)
EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def _cache_errors(func):
    """A cache that cannot do what was asked (down, locked, version missing) is exit 1 with
    one redacted line, under `quantrec cache` as under `python -m pipelines.cache_cli`."""
    import functools

    @functools.wraps(func)
    def run(args: argparse.Namespace) -> int:
        from quantrec.redact import redact
        from quantrec.serving.cache import CacheError
        try:
            return func(args)
        except CacheError as exc:
            print(f"quantrec cache {args.cache_action}: error: {redact(' '.join(str(exc).split()))}",
                  file=sys.stderr)
            return EXIT_FAILED
    return run


def _root(args: argparse.Namespace) -> Path:
    from pipelines.local import DEFAULT_ROOT
    return Path(args.pipeline_root or DEFAULT_ROOT).resolve()


def cache_setting(args: argparse.Namespace) -> str:
    """--cache, else the env URL, else the local runs' embedded folder."""
    from quantrec.serving.cache import cache_url_from_env
    return args.cache or cache_url_from_env() or str(_root(args) / "cache")


def registry_url(args: argparse.Namespace, required: bool = False) -> str | None:
    """--registry, else <pipeline root>/registry when it exists (None otherwise)."""
    if args.registry:
        return args.registry
    local = _root(args) / "registry"
    if (local / "registry.json").exists():
        return str(local)
    if required:
        raise ValueError(f"no model registry: pass --registry (there is none at {local})")
    return None


def _store(args: argparse.Namespace):
    from quantrec.serving.cache import CacheStore, connect
    from quantrec.serving.service import cache_target
    url, folder = cache_target(cache_setting(args))
    client = connect(url, embedded_dir=folder)
    return CacheStore(client, prefix=args.prefix, keep=args.keep, progress=False)


def _close(store: Any) -> None:
    from quantrec.serving.redis_server import close_client
    close_client(store.client)


@_cache_errors
def cmd_status(args: argparse.Namespace) -> int:
    from quantrec.registry import Registry
    url = registry_url(args)
    champion = Registry(url).champion_name() if url else None
    store = _store(args)
    try:
        status = store.status(champion=champion)
    finally:
        _close(store)
    print(json.dumps(status, indent=2, default=str))
    if url is None:
        print(f"cache active version: {status['active']} (no registry to compare with: pass --registry)")
        return EXIT_OK
    if status["agrees_with_champion"]:
        print(f"cache active version {status['active']} agrees with the registry champion")
        return EXIT_OK
    print(f"cache active version {status['active']} DISAGREES with the registry champion {champion}: "
          f"`quantrec cache activate --champion` (or a refresh of {champion}) repairs it")
    return EXIT_FAILED


@_cache_errors
def cmd_rollback(args: argparse.Namespace) -> int:
    from quantrec.registry import Registry
    from quantrec.serving.cache import VersionNotFoundError
    store = _store(args)
    try:
        if args.cache_only:
            target = store.rollback(args.steps)
            print(f"cache rolled back to {target} (the registry champion is unchanged: "
                  f"`quantrec cache status` shows the gap)")
            return EXIT_OK
        reg = Registry(registry_url(args, required=True))
        entry = reg.rollback(args.steps, expected_current=reg.champion_name(),
                             reason=args.reason or "quantrec cache rollback")
        print(f"registry rolled back to {entry['version']} (was {entry['previous']})")
        try:
            store.activate(entry["version"], reason=f"rollback {args.steps} (registry)")
        except VersionNotFoundError:
            print(f"the cache no longer holds {entry['version']}: it still serves {store.active_version()} "
                  f"(behind the champion); refresh it: `quantrec cache refresh {entry['version']} --events ...`")
            return EXIT_FAILED
        print(f"cache now serves {entry['version']}")
        return EXIT_OK
    finally:
        _close(store)


@_cache_errors
def cmd_activate(args: argparse.Namespace) -> int:
    from quantrec.registry import Registry
    if bool(args.version) == bool(args.champion):
        raise ValueError("name the VERSION to activate, or pass --champion")
    url = registry_url(args, required=bool(args.champion))
    reg = Registry(url) if url else None
    champion = reg.champion_name() if reg else None
    version = champion if args.champion else args.version
    if args.champion and not champion:
        raise ValueError("the registry has no champion to activate")
    if reg is not None and version not in reg.versions():
        raise ValueError(f"the registry has no version {version!r}: the service could not load its models")
    store = _store(args)
    try:
        changed = store.activate(version, reason="quantrec cache activate")
    finally:
        _close(store)
    print(f"cache {'now serves' if changed else 'already served'} {version}")
    if champion and version != champion:
        print(f"note: the registry champion is {champion}; the cache now disagrees with it")
    return EXIT_OK


@_cache_errors
def cmd_gc(args: argparse.Namespace) -> int:
    store = _store(args)
    try:
        out = store.collect_garbage()
    finally:
        _close(store)
    print(json.dumps(out, indent=2))
    return EXIT_OK


@_cache_errors
def cmd_refresh(args: argparse.Namespace) -> int:
    from quantrec.registry import Registry
    from quantrec.serving.refresh import CacheConfig
    from quantrec.stages.refresh_cache import refresh_cache_stage
    url = registry_url(args, required=True)
    version = args.version or Registry(url).champion_name()
    if not version:
        raise ValueError("the registry has no champion: name the version to refresh")
    raw: dict[str, Any] = {}
    if args.config:
        from pipelines.cli import _load_config
        raw = _load_config(args.config)
    config = CacheConfig.from_run_config(raw)
    if args.prefix != config.prefix or args.keep != config.keep:
        import dataclasses
        config = dataclasses.replace(config, prefix=args.prefix, keep=args.keep)
    out = refresh_cache_stage(url, version, args.events, cache_setting(args), config, args.report or "",
                              as_of=args.as_of)
    print(json.dumps({k: out.get(k) for k in ("status", "reason", "version", "as_of", "users", "items", "pairs",
                                              "bytes", "seconds", "verification")}, indent=2, default=str))
    return EXIT_OK if out["status"] in ("refreshed", "noop") else EXIT_FAILED


def register(subparsers: Any) -> None:
    """Add `cache` with its actions to the `quantrec` sub-commands."""
    from quantrec.serving.cache import DEFAULT_PREFIX
    sp = subparsers.add_parser("cache", help="the serving cache: status, rollback, activate, gc, refresh")
    actions = sp.add_subparsers(dest="cache_action", required=True)

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("--cache", help="redis:// URL or a folder of the embedded Redis (default: "
                                       "$QUANTREC_REDIS_URL / $REDIS_URL, else <pipeline root>/cache)")
        p.add_argument("--prefix", default=DEFAULT_PREFIX, help="the cache's key prefix")
        p.add_argument("--keep", type=int, default=2, help="versions kept (active + rollback targets)")
        p.add_argument("--registry", help="model registry URL (default: <pipeline root>/registry if present)")
        p.add_argument("--pipeline-root", help="artifact folder of local runs (default: ./pipeline_root)")

    p = actions.add_parser("status", help="active version, versions, last flips; exit 1 if it disagrees "
                                          "with the registry champion")
    common(p)
    p.set_defaults(func=cmd_status)
    p = actions.add_parser("rollback", help="roll the registry back, then point the cache at the new champion")
    common(p)
    p.add_argument("--steps", type=int, default=1, help="promotions to undo")
    p.add_argument("--cache-only", action="store_true", help="move the cache pointer only (the registry "
                                                             "keeps its champion)")
    p.add_argument("--reason", help="why (kept in the promotion log)")
    p.set_defaults(func=cmd_rollback)
    p = actions.add_parser("activate", help="point the cache at a version it holds (repair a gap)")
    common(p)
    p.add_argument("version", nargs="?", help="the version to activate")
    p.add_argument("--champion", action="store_true", help="activate the registry champion")
    p.set_defaults(func=cmd_activate)
    p = actions.add_parser("gc", help="delete the cache versions beyond --keep (and partial ones)")
    common(p)
    p.set_defaults(func=cmd_gc)
    p = actions.add_parser("refresh", help="write a version's serving values from an events table and flip")
    common(p)
    p.add_argument("version", nargs="?", help="the version (default: the registry champion; only the "
                                              "champion is refreshed)")
    p.add_argument("--events", required=True, help="the events table (parquet URL) of the version's run")
    p.add_argument("--as-of", help="first request day the values serve (default: the version's run_date)")
    p.add_argument("--config", help="run config (inline JSON or a file): its 'cache' section")
    p.add_argument("--report", help="write the JSON report here")
    p.set_defaults(func=cmd_refresh)


def main(argv: list[str] | None = None) -> int:
    """`python -m pipelines.cache_cli ACTION ...` (the same as `quantrec cache ACTION ...`)."""
    from quantrec.redact import redact
    os.environ.setdefault("DO_NOT_TRACK", "1")
    parser = argparse.ArgumentParser(prog="quantrec")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["cache"] + list(sys.argv[1:] if argv is None else argv))
    try:
        return args.func(args)
    except (ValueError, OSError) as exc:  # what pipelines.cli.main reports the same way
        print(f"quantrec cache {args.cache_action}: error: {redact(' '.join(str(exc).split()))}", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
