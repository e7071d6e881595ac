"""The scoring service's state: a cache reader, the models of the version the cache points
at, the events table for cache misses, and the service's metrics. No HTTP here (``app``).

Which version serves: the cache's active pointer, read with the request's values in ONE
server-side script (``CacheReader.read``), so the values of a request always come from
one version, and the models that score them are loaded from the registry under THAT
version name: a model of one version never meets values of another. The registry
champion is the source of truth of what *should* serve (``cache.py``): a refresh flips the
pointer only after the promotion, so the pointer may lag the champion, never lead it;
``quantrec cache status`` reports a gap and ``quantrec cache activate --champion``
repairs it. When the pointer moves (a refresh, a rollback), the next request reads the
new name and the service loads that version's models (once, under a lock; requests of
the old version in flight keep their models: the last ``versions_kept`` stay loaded).

Request time: the optional ``ts`` of the request (ISO 8601; an aware time is converted
to UTC and made naive, like the data's timestamps), else the server's clock in UTC.

Users: cached -> scored from the cache; not cached but in the events table (configured
``events``) -> a cache MISS, computed from their history with the refresh's own
functions (counted); neither -> a COLD START: the purchase model's empty-history state
and undefined (NaN) user features, like a new user's task-table row (counted). Without an
events table a miss cannot be told from a new user and is served as a cold start.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import pandas as pd

from quantrec.data import schema as S
from quantrec.redact import redact, redact_exception
from quantrec.serving.cache import (DEFAULT_PREFIX, CacheError, CacheReader, CacheStore, CacheUnavailableError,
                                   VersionNotFoundError, cache_url_from_env, connect)
from quantrec.serving.refresh import (FeatureLayout, UserValues, check_context, cold_state, has_state_api,
                                      user_values_from_history)
from quantrec.serving.scorer import (Scored, ScoringInputError, ServingModels, item_matrix, score_request,
                                     user_from_value)


class ServiceError(RuntimeError):
    """The service cannot score now (no cache version, a version it cannot load, ...)."""


class ModelLoadError(ServiceError):
    """The models of the version the cache points at could not be loaded."""


@dataclass(frozen=True)
class ServiceConfig:
    """How the service finds its cache, models and history.

    cache: a redis:// / rediss:// / unix:// URL, or a folder for the embedded Redis;
        "" = $QUANTREC_REDIS_URL / $REDIS_URL (never printed unredacted).
    prefix: the cache's key prefix. registry: the model registry URL (models of a version).
    events: URL of an events table (parquet) for cache misses; "" = misses are cold starts.
    max_candidates: longest candidate list a request may carry.
    torch_threads: intra-op threads per request (1: concurrent requests share the cores).
    socket_timeout: seconds before a stalled Redis fails a request.
    versions_kept: loaded versions kept in memory (the current one and the one before).
    """

    cache: str = ""
    prefix: str = DEFAULT_PREFIX
    registry: str = ""
    events: str = ""
    max_candidates: int = 1000
    torch_threads: int = 1
    socket_timeout: float = 1.0
    versions_kept: int = 2

    def __post_init__(self) -> None:
        if self.max_candidates < 1 or self.versions_kept < 1 or self.torch_threads < 0 or self.socket_timeout <= 0:
            raise ValueError("ServiceConfig: max_candidates and versions_kept must be >= 1, torch_threads >= 0, "
                             "socket_timeout > 0")


def cache_target(cache: str) -> tuple[str | None, str | None]:
    """(url, embedded folder) of a ``cache`` setting: a URL, a folder, or "" = the env URL.
    Raises ValueError when "" and no env URL is set."""
    if not cache:
        url = cache_url_from_env()
        if not url:
            raise ValueError("no cache given: pass a redis:// URL or a folder for the embedded Redis, or set "
                             "QUANTREC_REDIS_URL")
        return url, None
    if "://" in cache:
        return cache, None
    return None, cache


def calibrator_from_decision(decision: dict[str, Any] | None, version: str, gmv_name: str) -> Any:
    """The calibrator the shadow stage fitted for the challenger (``quantrec.shadow.calibration``),
    rebuilt from the knots in the version's decision; None for calibration "none"."""
    from quantrec.shadow.calibration import IsotonicCalibrator

    challenger = (decision or {}).get("challenger") or {}
    cal = challenger.get("calibration")
    if not cal:
        raise ModelLoadError(f"version {version} has no shadow decision with the challenger's calibration: "
                             f"its expected GMV cannot be computed as the shadow stage did")
    gmv_id = str((challenger.get("model_ids") or {}).get("gmv", ""))
    if gmv_id and gmv_id.split("@", 1)[0] != gmv_name:
        raise ModelLoadError(f"version {version}: the decision's challenger GMV model is {gmv_id!r}, its roles "
                             f"name {gmv_name!r}")
    if "knots_x" in cal:
        x, y = np.asarray(cal["knots_x"], dtype=np.float64), np.asarray(cal["knots_y"], dtype=np.float64)
        if x.ndim != 1 or x.shape != y.shape or x.size == 0 or np.any(np.diff(x) <= 0):
            raise ModelLoadError(f"version {version}: the challenger's calibration knots are malformed")
        return IsotonicCalibrator(knots_x=x, knots_y=y, n_fit=int(cal.get("n_fit", 0)))
    if cal.get("method") == "none":
        return None
    raise ModelLoadError(f"version {version}: unknown calibration {cal.get('method')!r} in its decision")


def load_serving_models(registry: Any, version: str, meta: dict[str, Any]) -> ServingModels:
    """The models of ``version`` (a ``Registry``) for the cache values described by ``meta``
    (the version's cache manifest meta: its feature layout and purchase model)."""
    from quantrec.models import load_model

    def model_key(name: str) -> str:  # the registry's layout: versions/<version>/models/<name>
        return f"models/{name}"

    v = registry.get(version)
    roles = v.manifest.get("roles") or {}
    gmv_names = roles.get("gmv") or []
    if not gmv_names:
        raise ModelLoadError(f"version {version} names no GMV model in its roles {roles}")
    gmv_name = gmv_names[0]
    purchase_name = (roles.get("purchase") or [None])[0]
    if (meta.get("purchase_model") or None) != purchase_name:
        raise ModelLoadError(f"version {version}: the cache holds states of purchase model "
                             f"{meta.get('purchase_model')!r}, the registry version's is {purchase_name!r}")
    layout = FeatureLayout.from_dict(meta.get("layout") or {})
    check_context(layout.as_of)
    gmv = load_model(v.artifact(model_key(gmv_name)))
    calibrator = calibrator_from_decision(v.manifest.get("decision"), version, gmv_name)
    purchase = cold = None
    if purchase_name:
        purchase = load_model(v.artifact(model_key(purchase_name)))
        if not has_state_api(purchase):
            raise ModelLoadError(f"version {version}: purchase model {purchase_name!r} has no user_states/score API")
        cold = cold_state(purchase, layout.as_of)
    return ServingModels(version, layout, gmv, calibrator, purchase, cold, gmv_name, purchase_name)


class ServiceMetrics:
    """Prometheus metrics of one service (its own registry: several services per process in tests)."""

    def __init__(self) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.registry = CollectorRegistry()
        self.latency = Histogram("quantrec_score_seconds", "Time to score one request (cache read + models)",
                                 buckets=(.001, .002, .003, .004, .005, .0075, .01, .015, .02, .03, .05, .1, .25,
                                          .5, 1.0, 2.5), registry=self.registry)
        self.requests = Counter("quantrec_score_requests_total", "Score requests by outcome",
                                ["outcome"], registry=self.registry)
        self.cold_starts = Counter("quantrec_cold_starts_total", "Requests of users without history",
                                   registry=self.registry)
        self.misses = Counter("quantrec_cache_misses_total", "Users missing from the cache, computed from history",
                              registry=self.registry)
        self.unknown_items = Counter("quantrec_unknown_items_total", "Candidates without cached item features",
                                     registry=self.registry)
        self.errors = Counter("quantrec_errors_total", "Failed requests by kind", ["kind"], registry=self.registry)
        self.loads = Counter("quantrec_model_loads_total", "Model loads by outcome", ["outcome"],
                             registry=self.registry)
        self.version = Gauge("quantrec_serving_version_info", "1 for the version serving the last request",
                             ["version"], registry=self.registry)
        for outcome in ("ok", "bad_request", "unavailable", "error"):
            self.requests.labels(outcome)  # exported at 0 from the start

    def render(self) -> tuple[bytes, str]:
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
        return generate_latest(self.registry), CONTENT_TYPE_LATEST


def request_time(ts: dt.datetime | str | None) -> pd.Timestamp:
    """The request's time as a naive timestamp: aware -> UTC; None -> the server clock (UTC)."""
    if ts is None:
        return pd.Timestamp(dt.datetime.now(dt.timezone.utc).replace(tzinfo=None))
    try:
        t = pd.Timestamp(ts)
    except (ValueError, TypeError) as e:
        raise ScoringInputError(f"request time {ts!r} is not a time: {e}") from None
    if pd.isna(t):
        raise ScoringInputError(f"request time {ts!r} is not a time")
    if t.tzinfo is not None:
        t = t.tz_convert("UTC").tz_localize(None)
    return t


class ScoringService:
    """See the module docstring. ``client``/``registry`` may be passed in (tests hand in
    real local ones); otherwise they are built from ``config``."""

    def __init__(self, config: ServiceConfig, client: Any = None, registry: Any = None) -> None:
        from quantrec.registry import Registry

        self.config = config
        if config.torch_threads:
            import torch
            torch.set_num_threads(config.torch_threads)
        if client is None:
            url, folder = cache_target(config.cache)
            client = connect(url, embedded_dir=folder, socket_timeout=config.socket_timeout,
                             connect_timeout=config.socket_timeout, retries=1, check=False)
        self.client = client
        self.reader = CacheReader(client, prefix=config.prefix, max_items=config.max_candidates)
        self.store = CacheStore(client, prefix=config.prefix, progress=False)
        if registry is None:
            if not config.registry:
                raise ValueError("the scoring service needs the model registry URL (the models of the "
                                 "version the cache points at are loaded from it)")
            registry = Registry(config.registry)
        self.registry = registry
        self.metrics = ServiceMetrics()
        self._loaded: OrderedDict[str, ServingModels] = OrderedDict()
        self._fields: dict[str, tuple[str, ...]] = {}
        self._load_lock = threading.Lock()
        self._load_errors: dict[str, str] = {}
        self._serving: str | None = None
        self._events: pd.DataFrame | None = None
        self._event_rows: dict[str, np.ndarray] = {}
        if config.events:
            self._load_events(config.events)

    # -- history for cache misses -------------------------------------------------------------
    def _load_events(self, url: str) -> None:
        from quantrec.data.tasks import read_table
        events = read_table(url)
        codes, users = pd.factorize(events[S.USER].astype(str), sort=False)
        order = np.argsort(codes, kind="stable")
        bounds = np.r_[0, np.cumsum(np.bincount(codes, minlength=len(users)))]
        self._events = events
        self._event_rows = {u: order[bounds[i]:bounds[i + 1]] for i, u in enumerate(users)}

    def _history(self, user_id: str) -> pd.DataFrame | None:
        rows = self._event_rows.get(user_id)
        return None if rows is None else self._events.iloc[rows]

    # -- models ----------------------------------------------------------------------------------
    def models_for(self, version: str) -> ServingModels:
        """The loaded models of ``version`` (loaded now if needed; one load at a time)."""
        got = self._loaded.get(version)
        if got is not None:
            return got
        with self._load_lock:
            got = self._loaded.get(version)
            if got is not None:
                return got
            try:
                manifest = self.store.manifest(version)
                if manifest is None:
                    raise ModelLoadError(f"cache version {version} has no manifest")
                models = load_serving_models(self.registry, version, manifest.get("meta") or {})
                fields = tuple((manifest.get("user_schema") or {}).get("fields", ()))
            except CacheUnavailableError:
                raise
            except Exception as e:  # noqa: BLE001 (any failure to load is reported, redacted, and counted)
                self.metrics.loads.labels("failed").inc()
                message = redact(f"cannot load the models of version {version} from registry "
                                 f"{getattr(self.registry, 'root', '?')}: {redact_exception(e)}")
                self._load_errors[version] = message
                raise ModelLoadError(message) from None
            self._loaded[version] = models
            self._fields[version] = fields
            self._load_errors.pop(version, None)
            while len(self._loaded) > self.config.versions_kept:
                old, _ = self._loaded.popitem(last=False)
                self._fields.pop(old, None)
            self.metrics.loads.labels("ok").inc()
            return models

    def active_version(self) -> str:
        """The version the cache pointer names (one round trip)."""
        return self.reader.read(None, []).version

    def ready(self) -> tuple[bool, dict[str, Any]]:
        """(ready, details): the pointer is readable and the models of its version are loaded
        (if not, a load starts in the background and the service reports not ready)."""
        try:
            version = self.active_version()
        except CacheError as e:
            return False, {"reason": redact(str(e))}
        loaded = list(self._loaded)
        if version in self._loaded:
            return True, {"version": version, "models": version, "loaded": loaded}
        if version in self._load_errors:
            return False, {"version": version, "reason": self._load_errors[version], "loaded": loaded}
        if not self._load_lock.locked():
            threading.Thread(target=self._load_quietly, args=(version,), daemon=True).start()
        return False, {"version": version, "reason": f"loading the models of version {version}", "loaded": loaded}

    def _load_quietly(self, version: str) -> None:
        try:
            self.models_for(version)
        except (ServiceError, CacheError):
            pass  # recorded in _load_errors / reported by ready()

    # -- scoring -----------------------------------------------------------------------------
    def score(self, user_id: str, candidates: Sequence[str], ts: dt.datetime | str | None = None,
              country: str | None = None) -> Scored:
        """Rank ``candidates`` for ``user_id`` (see the module docstring). Raises
        ``ScoringInputError`` (a bad request), ``CacheError`` / ``ServiceError`` (cannot score now)."""
        t0 = time.perf_counter()
        try:
            when = request_time(ts)
            read = self.reader.read(user_id, list(candidates), pairs=True)
            models = self.models_for(read.version)
            fields = self._fields[read.version] if read.version in self._fields else ()
            user: UserValues | None = user_from_value(read.user, read.pairs, list(candidates), models.layout, fields)
            miss = False
            if user is None and self._events is not None:
                history = self._history(user_id)
                if history is not None and (history[S.DAY] < models.layout.as_of_day).any():
                    user = user_values_from_history(history, user_id, models.layout, models.purchase)
                    miss = True
            items = item_matrix(read.items, len(models.layout.item))
            result = score_request(models, user_id, list(candidates), when, user, items, country, cache_miss=miss)
        except ScoringInputError:
            self.metrics.requests.labels("bad_request").inc()
            raise
        except (CacheUnavailableError, VersionNotFoundError, ServiceError) as e:
            self.metrics.requests.labels("unavailable").inc()
            self.metrics.errors.labels(type(e).__name__).inc()
            raise
        except Exception as e:
            self.metrics.requests.labels("error").inc()
            self.metrics.errors.labels(type(e).__name__).inc()
            raise
        self.metrics.latency.observe(time.perf_counter() - t0)
        self.metrics.requests.labels("ok").inc()
        if result.cold_start:
            self.metrics.cold_starts.inc()
        if result.cache_miss:
            self.metrics.misses.inc()
        if result.unknown_items:
            self.metrics.unknown_items.inc(result.unknown_items)
        if result.version != self._serving:  # the gauge names the version that served last
            self._serving = result.version
            self.metrics.version.clear()
            self.metrics.version.labels(result.version).set(1)
        return result

    def close(self) -> None:
        from quantrec.serving.redis_server import close_client
        close_client(self.client)
