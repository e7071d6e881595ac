"""Stage ``refresh_cache``: write a promoted version's serving values into the cache and flip
the cache's pointer to it (``quantrec.serving``).

Runs after ``promote``, only for a blessed version. The registry champion is the source
of truth of what serves; the cache pointer follows it: this stage refreshes only the
version that IS the champion (a version that is not, e.g. because another run promoted
since, is skipped with a reason), so the pointer may lag the champion (between the
promotion and this flip, or after a failure here) but never leads it. A refresh of the
version already active is a no-op, so a retried task does nothing twice.

Report (a JSON artifact, written whatever the outcome, before an error is raised):
status ("refreshed" | "noop" | "skipped" | "failed"), reason, version, as_of, the cache
server (redacted), counts (users, items, pairs), bytes, seconds (features, states,
write, verify, collect, total), verification (key counts, sampled checksums, a read
back through the serving reader) and the versions retained / collected.
"""

from __future__ import annotations

import json
import time
from typing import Any

import fsspec
import numpy as np

from quantrec.redact import redact, redact_exception, redact_obj


def _write(report_path: str, report: dict[str, Any]) -> None:
    if report_path:
        with fsspec.open(report_path, "w") as f:
            json.dump(redact_obj(report), f, indent=2, sort_keys=True, default=str)


def _read_back(client: Any, prefix: str, values: Any, n: int = 8) -> dict[str, Any]:
    """Read ``n`` written users (with their pairs) and items through ``CacheReader`` (what
    the service uses) and compare with what was computed: the end-to-end check that the
    active version serves these values."""
    from quantrec.serving.cache import CacheReader

    reader = CacheReader(client, prefix=prefix)
    blocks = values.blocks
    rng = np.random.default_rng(0)
    picks = rng.choice(len(blocks.user_ids), size=min(n, len(blocks.user_ids)), replace=False) \
        if len(blocks.user_ids) else []
    aggs = values.user_aggregates()
    checked, bad = 0, []
    for k in picks:
        user = blocks.user_ids[k]
        mine = blocks.pair_items[blocks.pair_users == user][:20]
        items = list(mine) + list(blocks.item_ids[:5])
        read = reader.read(user, items, pairs=True)
        if read.version != values.version or read.user is None:
            bad.append(f"user {user}: read {read.version!r}, value {'missing' if read.user is None else 'present'}")
            continue
        if not np.array_equal(read.user.aggregates, aggs[k], equal_nan=True):
            bad.append(f"user {user}: aggregates differ")
        if values.states is not None:
            want = np.asarray(values.states[k], dtype=np.float32).astype(values.user_schema.np_dtype)
            if not np.array_equal(read.user.array, want):
                bad.append(f"user {user}: state differs")
        if any(p is None for p in read.pairs[:len(mine)]):
            bad.append(f"user {user}: a pair value is missing")
        checked += 1
    return {"users_read_back": checked, "read_back_errors": bad[:10]}


def refresh_cache_stage(registry: str, version: str, events_path: str, cache: str, config: Any,
                        report_path: str = "", as_of: str | None = None, client: Any = None,
                        progress: bool = True) -> dict[str, Any]:
    """Refresh the serving cache with ``version`` of ``registry`` and write the report.

    Args:
        registry / version: the promoted version ("" = nothing to refresh: skipped).
        events_path: the run's events table (cleaned purchase lines before run_date).
        cache: a redis:// URL, a folder for the embedded Redis, or "" = $QUANTREC_REDIS_URL /
            $REDIS_URL (skipped when none is set: no cache configured).
        config: a ``serving.refresh.CacheConfig`` (the run config's ``cache`` section).
        as_of: first request day the values serve (default: the version's run_date).
        client: a redis client to use instead of connecting (tests pass real local servers).
    Returns the report. Raises (after writing the report) on a failed refresh; the
    pointer then still names the version it named before.
    """
    from quantrec.data.tasks import read_table
    from quantrec.models import load_model
    from quantrec.registry import Registry
    from quantrec.serving.cache import CacheStore, connect
    from quantrec.serving.redis_server import close_client
    from quantrec.serving.refresh import build_cache_values
    from quantrec.serving.service import cache_target
    from quantrec.stages.champion import model_key

    t0 = time.perf_counter()
    report: dict[str, Any] = {"status": "skipped", "version": version, "registry": redact(registry),
                              "config": config.to_dict()}
    if not registry or not version:
        report["reason"] = "no registry or no published version: nothing to refresh"
        _write(report_path, report)
        return report
    if client is None:
        try:
            url, folder = cache_target(cache)
        except ValueError:
            report["reason"] = "no cache configured (no cache parameter and no QUANTREC_REDIS_URL / REDIS_URL)"
            _write(report_path, report)
            return report
    reg = Registry(registry)
    champion = reg.champion_name()
    if champion != version:
        report["reason"] = (f"{version} is not the registry champion ({champion or 'none'}): refreshing it would "
                            f"point the cache at a version the registry does not serve")
        _write(report_path, report)
        return report
    v = reg.get(version)
    as_of = as_of or str(v.manifest["run_date"])
    report["as_of"] = as_of
    own_client = client is None
    try:
        if own_client:
            client = connect(url, embedded_dir=folder)
        store = CacheStore(client, prefix=config.prefix, keep=config.keep, batch_size=config.batch_size,
                           depth=config.depth, sample_size=config.sample_size, lock_ttl_s=config.lock_ttl_s,
                           progress=progress)
        report["server"] = store.where
        if store.active_version() == version:
            report.update(status="noop", reason=f"{version} is already the active cache version",
                          seconds={"total": round(time.perf_counter() - t0, 3)})
            _write(report_path, report)
            return report
        purchase_name = ((v.manifest.get("roles") or {}).get("purchase") or [None])[0]
        purchase = load_model(v.artifact(model_key(purchase_name))) if purchase_name else None
        events = read_table(events_path)
        values = build_cache_values(version, events, as_of, purchase, config, purchase_name=purchase_name,
                                    progress=progress, meta={"registry": redact(registry),
                                                             "run_date": v.manifest.get("run_date")})
        done = store.refresh(version, values.users(), values.items(), user_schema=values.user_schema,
                             item_schema=values.item_schema, pairs=values.pairs(), pair_schema=values.pair_schema,
                             meta=values.meta())
        verification = {"key_counts_checked": not done.noop, "sampled_checksums": done.sample_checked,
                        **_read_back(client, config.prefix, values)}
        if verification["read_back_errors"]:
            # the flip happened: point back (the pointer may lag the champion, never serve bad values)
            if done.previous:
                store.activate(done.previous, reason=f"read-back of {version} failed")
            raise RuntimeError(f"read-back of the refreshed cache failed: {verification['read_back_errors'][:3]}; "
                               f"the cache points at {done.previous!r} again")
        report.update(status="noop" if done.noop else "refreshed", reason=done.reason or "refreshed and flipped",
                      previous=done.previous, active=done.active, users=done.users, items=done.items,
                      pairs=done.pairs, pair_users=done.pair_users, bytes=done.bytes,
                      purchase_model=purchase_name, state_shape=list(values.user_schema.shape),
                      day_shift_features=list(values.layout.day_shift),
                      seconds={**{k: round(s, 3) for k, s in values.seconds.items()},
                               "write": round(done.write_seconds, 3), "verify": round(done.verify_seconds, 3),
                               "collect": round(done.collect_seconds, 3),
                               "total": round(time.perf_counter() - t0, 3)},
                      verification=verification, retained=done.retained, collected=done.collected)
    except Exception as e:
        report.update(status="failed", reason=redact_exception(e),
                      seconds={"total": round(time.perf_counter() - t0, 3)})
        _write(report_path, report)
        raise
    finally:
        if own_client and client is not None:
            close_client(client)
    _write(report_path, report)
    return report
