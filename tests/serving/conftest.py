"""Real Redis servers for the cache tests (never a mock: fakeredis proves nothing about a cache).

``redis_server`` (session): one system ``redis-server`` on a free loopback port with a
pidfile, stopped by its pid at the end. Each test gets it empty (``redis_client``).
``own_server`` (function): a private server for tests that stop, pause or starve it.
If the ``redis-server`` binary is missing these fixtures FAIL (CI installs it, see .ci/run).
"""

from __future__ import annotations

import pytest

from quantrec.serving.redis_server import LocalRedisServer, RedisServerNotFound


def start_server(**kwargs) -> LocalRedisServer:
    try:
        return LocalRedisServer(**kwargs).start()
    except RedisServerNotFound as e:
        missing = str(e)
    pytest.fail(f"the cache tests need a real Redis (never skipped): {missing}", pytrace=False)


@pytest.fixture(scope="session")
def redis_server():
    server = start_server()
    yield server
    server.stop()
    assert not server.is_running()


@pytest.fixture
def redis_client(redis_server):
    client = redis_server.client()
    client.flushall()
    client.config_resetstat()
    yield client
    client.close()


@pytest.fixture
def own_server():
    """A private server per test (for stop / pause / maxmemory); always stopped afterwards."""
    servers: list[LocalRedisServer] = []

    def make(**kwargs) -> LocalRedisServer:
        servers.append(start_server(**kwargs))
        return servers[-1]

    yield make
    for server in servers:
        server.stop()
