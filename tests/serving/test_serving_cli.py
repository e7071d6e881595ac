"""`quantrec cache ...` and `quantrec serve` (through their register() parsers and as a
real process) against a real redis-server and a copy of the served registry."""

from __future__ import annotations

import shutil
import time

import httpx
import pytest

from pipelines import cache_cli, serve
from quantrec.registry import Registry
from quantrec.serving.cache import CacheStore
from quantrec.serving.redis_server import free_port
from serving_fixtures import write_values


@pytest.fixture
def two_versions(tmp_path, served_version, served_values, redis_client):
    """A registry copy where v2 (same content as v1) is the champion after v1, and a cache
    holding both (v2 active)."""
    shutil.copytree(served_version["registry"], tmp_path / "registry")
    reg = Registry(str(tmp_path / "registry"))
    v1 = reg.get(served_version["version"])
    v2 = v1.name + "-b"
    reg.publish({a: v1.artifact(a) for a in v1.manifest["artifacts"]}, v1.manifest["run_date"],
                {k: v1.manifest[k] for k in ("roles", "decision")}, name=v2)
    reg.promote(v2)
    write_values(redis_client, served_values[0])
    write_values(redis_client, served_values[0], version=v2)
    return reg, v1.name, v2


def _cache(args, server, reg):
    base = ["--cache", f"redis://127.0.0.1:{server.port}/0", "--registry", reg.root]
    return cache_cli.main([args[0]] + base + list(args[1:]))


def test_status_rollback_activate_gc(two_versions, redis_server, redis_client, capsys):
    reg, v1, v2 = two_versions
    store = CacheStore(redis_client, progress=False)
    assert _cache(["status"], redis_server, reg) == 0
    assert "agrees with the registry champion" in capsys.readouterr().out
    # rollback: the registry first (the source of truth), then the cache follows
    assert _cache(["rollback"], redis_server, reg) == 0
    out = capsys.readouterr().out
    assert f"registry rolled back to {v1}" in out and f"cache now serves {v1}" in out
    assert reg.champion_name() == v1 and store.active_version() == v1
    # a cache pointed elsewhere than the champion: status says so and exits 1
    assert _cache(["activate", v2], redis_server, reg) == 0
    assert "the cache now disagrees" in capsys.readouterr().out
    assert _cache(["status"], redis_server, reg) == 1
    assert f"DISAGREES with the registry champion {v1}" in capsys.readouterr().out
    assert _cache(["activate", "--champion"], redis_server, reg) == 0 and store.active_version() == v1
    assert _cache(["activate", "no-such-version"], redis_server, reg) == 2
    assert "has no version 'no-such-version'" in capsys.readouterr().err
    # gc keeps --keep versions; a cache-only rollback then has nowhere to go: exit 1, one line
    assert _cache(["gc", "--keep", "1"], redis_server, reg) == 0
    assert f'"collected": [\n    "{v2}"' in capsys.readouterr().out
    assert _cache(["rollback", "--cache-only"], redis_server, reg) == 1
    assert "cannot roll back 1 step(s)" in capsys.readouterr().err
    # the registry cannot roll back further than its first promotion: a usage error
    assert _cache(["rollback"], redis_server, reg) == 2
    assert "cannot roll back 1 step(s)" in capsys.readouterr().err


def test_refresh_of_the_active_champion_is_a_noop_and_a_down_cache_is_exit_1(two_versions, redis_server,
                                                                             served_version, capsys):
    reg, v1, v2 = two_versions
    args = ["refresh", "--events", served_version["paths"]["events"]]
    assert _cache(args, redis_server, reg) == 0 and '"status": "noop"' in capsys.readouterr().out
    dead = ["status", "--cache", f"redis://:hunter22@127.0.0.1:{free_port()}/0", "--registry", reg.root]
    assert cache_cli.main(dead) == 1
    err = capsys.readouterr().err
    assert "cannot reach the cache Redis" in err and "hunter22" not in err


def test_serve_check_and_real_http(two_versions, redis_server, served_version, capsys):
    """`quantrec serve --check` (config, warm-up, readiness), then the app on a real uvicorn
    server over loopback HTTP (in a thread: a new process would cost ~30 s of imports here;
    benchmarks/serve_load.py runs `python -m pipelines.serve` itself)."""
    import threading

    import uvicorn

    from quantrec.serving.app import create_app
    from quantrec.serving.service import ScoringService

    reg, v1, v2 = two_versions
    cache = f"redis://127.0.0.1:{redis_server.port}/0"
    assert serve.main(["--check", "--cache", cache, "--registry", reg.root]) == 0
    out = capsys.readouterr().out
    assert f"serving version {v2}" in out and '"ready": true' in out
    parser = __import__("argparse").ArgumentParser()
    serve.register(parser.add_subparsers())
    args = parser.parse_args(["serve", "--cache", cache, "--registry", reg.root, "--max-candidates", "7"])
    service = ScoringService(serve.service_config(args))
    assert service.config.max_candidates == 7 and service.config.events == ""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(service), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 60
        while not server.started and time.monotonic() < deadline:
            time.sleep(0.05)
        r = httpx.post(f"http://127.0.0.1:{port}/score", json={"user_id": "12877", "candidates": ["22502", "22424"],
                                                                "ts": "2011-02-24T17:14:00"}, timeout=30)
        assert r.status_code == 200 and r.json()["version"] == v2 and len(r.json()["candidates"]) == 2
        r = httpx.post(f"http://127.0.0.1:{port}/score", json={"user_id": "u", "candidates": list("abcdefgh")})
        assert r.status_code == 422 and "at most 7" in r.json()["detail"]
        assert "quantrec_score_seconds_bucket" in httpx.get(f"http://127.0.0.1:{port}/metrics").text
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        service.client.close()
