"""Failure semantics against real servers: a refresh killed mid-write, Redis stopped, Redis
stalled mid-write, Redis out of memory. In every case the old version stays active and
readable, the partial namespace is collectable, and messages never show the password."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
from cache_helpers import ITEM_SCHEMA, USER_SCHEMA, item_values, namespace_keys, user_values

from quantrec.serving.cache import (CacheBusyError, CacheError, CacheReader, CacheStore, CacheUnavailableError,
                                    connect)
from quantrec.serving.codec import ValueSchema

HERE = Path(__file__).parent


def _wait_until(condition, timeout_s=20.0, what="condition"):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


def _seed_v1(store):
    store.refresh("v1", user_values("v1", 300), item_values("v1", 40),
                  user_schema=USER_SCHEMA, item_schema=ITEM_SCHEMA)


def test_a_refresh_killed_mid_write_leaves_the_old_version_active_and_the_partial_collectable(own_server):
    server = own_server()
    client = server.client()
    store = CacheStore(client, progress=False)
    _seed_v1(store)
    child = textwrap.dedent(f"""
        import sys, time
        sys.path.insert(0, {str(HERE)!r})
        from cache_helpers import USER_SCHEMA, user_values
        from quantrec.serving.cache import CacheStore, connect
        store = CacheStore(connect({server.url!r}), batch_size=20, depth=1, lock_ttl_s=2.0, progress=False)
        values = user_values("v2", 5000)
        def slow():
            for i, pair in enumerate(values):
                if i >= 100:
                    time.sleep(0.01)  # slow after a few batches: the parent kills it mid-write
                yield pair
        store.refresh("v2", slow(), user_schema=USER_SCHEMA)
        print("finished: the test should have killed this refresh", flush=True)
    """)
    proc = subprocess.Popen([sys.executable, "-c", child], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        _wait_until(lambda: namespace_keys(client, "v2") >= 150 or proc.poll() is not None,
                    what="the child to write part of v2")
        assert proc.poll() is None, proc.communicate()
        proc.kill()  # SIGKILL: no cleanup code of the child runs
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    partial = namespace_keys(client, "v2")
    assert 150 <= partial < 5001

    assert store.active_version() == "v1"
    read = CacheReader(client).read(7, ["SKU2"])
    assert read.version == "v1" and read.user is not None and read.items[0] is not None
    status = {v["version"]: v["status"] for v in store.status()["versions"]}
    assert status == {"v1": "complete", "v2": "writing"}

    # the dead writer's lock still blocks GC until it expires (lock_ttl_s=2 in the child) ...
    if client.exists("quantrec:lock"):
        with pytest.raises(CacheBusyError, match="expires in"):
            store.collect_garbage()
    _wait_until(lambda: not client.exists("quantrec:lock"), 5.0, "the dead writer's lock to expire")
    # ... then the partial namespace is collected whole and v1 is untouched
    assert store.collect_garbage() == {"collected": ["v2"], "keys_unlinked": partial, "retained": ["v1"]}
    assert namespace_keys(client, "v2") == 0 and namespace_keys(client, "v1") == 341
    report = store.refresh("v2", user_values("v2", 200), user_schema=USER_SCHEMA)
    assert report.active == "v2" and CacheReader(client).read(7).version == "v2"


def test_redis_stopped_gives_a_clear_error_with_the_redacted_url_and_no_flip(own_server):
    server = own_server(password="s3cret-pw-4711")
    client = connect(server.url, socket_timeout=2.0)
    store = CacheStore(client, progress=False)
    _seed_v1(store)
    reader = CacheReader(client)
    server.stop()

    with pytest.raises(CacheUnavailableError) as err:
        store.refresh("v2", user_values("v2", 50), user_schema=USER_SCHEMA)
    message = str(err.value)
    assert f"redis://127.0.0.1:{server.port}/0" in message and "nothing was written or flipped" in message
    with pytest.raises(CacheUnavailableError, match=f"127.0.0.1:{server.port}") as err_connect:
        connect(server.url)
    with pytest.raises(CacheUnavailableError, match="unreachable") as err_read:
        reader.read(1)
    for text in (message, str(err_connect.value), str(err_read.value)):
        assert "s3cret-pw-4711" not in text


def test_redis_stalling_mid_write_times_out_and_nothing_flips(own_server):
    server = own_server()
    client = connect(server.url, socket_timeout=0.5, retries=0)
    store = CacheStore(client, batch_size=25, depth=1, lock_ttl_s=1.0, progress=False)
    _seed_v1(store)

    def stall_after(pairs, n):
        for i, pair in enumerate(pairs):
            if i == n:
                os.kill(server.pid, signal.SIGSTOP)  # the server hangs (a network partition, a long fork)
            yield pair

    try:
        with pytest.raises(CacheUnavailableError, match="nothing was flipped"):
            store.refresh("v2", stall_after(user_values("v2", 2000), 300), user_schema=USER_SCHEMA)
    finally:
        os.kill(server.pid, signal.SIGCONT)
    observer = server.client()
    _wait_until(lambda: not observer.exists("quantrec:lock"), 5.0, "the lock to expire")
    assert observer.get("quantrec:active") == b"v1"
    assert observer.hget("quantrec:v:v2:manifest", "status") in (b"writing", b"failed")
    assert CacheReader(observer).read(3).version == "v1"
    assert CacheStore(observer, progress=False).collect_garbage()["collected"] == ["v2"]
    assert namespace_keys(observer, "v2") == 0


def test_redis_out_of_memory_fails_the_refresh_and_keeps_the_old_version(own_server):
    server = own_server(maxmemory="4mb")
    client = server.client()
    store = CacheStore(client, batch_size=200, progress=False)
    _seed_v1(store)
    big = ValueSchema("user", (100, 32), ("a",))  # 6.4 kB per user: 2,000 users = 13 MB > 4 MB
    values = list(enumerate(big.encode_many(np.zeros((2000, 100, 32)), np.zeros((2000, 1)), "v2")))
    with pytest.raises(CacheError, match="OutOfMemoryError: command not allowed") as err:
        store.refresh("v2", values, user_schema=big)
    assert "nothing was flipped (the active version is still 'v1')" in str(err.value)
    assert store.active_version() == "v1" and CacheReader(client).read(3).version == "v1"
    assert store.collect_garbage()["collected"] == ["v2"]  # UNLINK works when memory is full
    assert namespace_keys(client, "v2") == 0
