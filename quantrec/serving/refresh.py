"""What the serving cache holds for one registry version, computed from the events table.

For a version whose models serve requests from day ``as_of`` on (its run_date: the
events table holds every purchase line before it), the cache holds:

* per user: the purchase model's candidate-independent state (DMQN ``user_states``:
  (C, d + 1), float16 by default) and the user block of the GMV features
  (``schema.USER_FEATURES``) plus the user's last country;
* per item: the item block (``schema.ITEM_FEATURES``);
* per user-item pair the user bought before: the pair block
  (``schema.USER_ITEM_FEATURES``), one Redis hash per user.

No train/serve skew: every feature value is computed HERE by the offline feature path
itself, ``join_features(build_aggregates(lines, as_of).latest(), queries on day
as_of)`` (``quantrec.data.features``; the task tables use the same two functions), and
stored in float64. The scorer does no feature arithmetic of its own except two things
it cannot know in advance, both checked against ``join_features``:

* the request's day D >= as_of: a feature may shift with D. Which ones do is not
  assumed but measured here, per refresh: every block is joined at as_of and at
  as_of + ``shift_check_days``; a feature must be unchanged (a total, a mean) or move
  by exactly the elapsed days (a recency, a tenure), else the refresh refuses it
  (``FeatureLayoutError``). The scorer adds (D - as_of) days to the second kind: for a
  query day >= as_of ``join_features`` matches the same latest row whatever D is, so
  this equals joining at D (``latest()``'s contract);
* the context block (weekday, hour, month of the request time): ``scorer.context_features``,
  compared with ``join_features`` on a spread of timestamps at every refresh and every
  model load (``check_context``).

Why precomputed values and not the aggregates' raw rows joined per request: one
``join_features`` call costs 30-80 ms on this machine whatever the row count (pandas
merge_asof and frame assembly), so a request could not meet the 10 ms p99 goal;
values computed by the same function once per refresh cost nothing per request.

Cold users (no history before as_of) are not written: no user value means a cold
start at serving time. ``CacheConfig.active_days`` > 0 writes only the users active
in the last N days before as_of; the service computes the others from the events
table on a miss (``user_values_from_history``) when it has one.
"""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass, field
from typing import Any, Iterator

import numpy as np
import pandas as pd

from quantrec.data import schema as S
from quantrec.data.features import FeatureAggregates, build_aggregates, join_features
from quantrec.dataclass_io import ConfigError, build_dataclass
from quantrec.serving.codec import EncodedRows, ValueSchema

COUNTRY_FIELD = "country_code"   # user value: index into the layout's countries (-1 = unknown)
BLOCKS = ("user", "item", "pair")


class FeatureLayoutError(ValueError):
    """The GMV features cannot be served from precomputed blocks (names the feature and why)."""


class RefreshInputError(ValueError):
    """Bad input to a cache refresh: the events table, the as-of day or the purchase model."""


# ---- config ------------------------------------------------------------------------------
@dataclass(frozen=True)
class CacheConfig:
    """The run config's ``cache`` section (how the refresh stage writes the serving cache).

    prefix: key prefix in Redis (several caches may share a server).
    keep: versions kept after a flip (the active one + rollback targets).
    batch_size / depth: values per pipelined write and batches in flight.
    sample_size: values per kind whose checksum is read back before the flip.
    state_dtype: storage of the purchase model's user states: "float16" (half the bytes;
        scores move by ~1e-3 relative) or "float32" (bit-equal to offline scoring).
    active_days: 0 = cache every user with history; N > 0 = only users with a purchase in
        the N days before as_of (the service computes the others from history on a miss).
    shift_check_days: days between the two joins that detect day-dependent features.
    lock_ttl_s: the cache lock's expiry (a killed refresh blocks others at most this long).
    """

    prefix: str = "quantrec"
    keep: int = 2
    batch_size: int = 500
    depth: int = 4
    sample_size: int = 256
    state_dtype: str = "float16"
    active_days: int = 0
    shift_check_days: int = 7
    lock_ttl_s: float = 60.0

    def __post_init__(self) -> None:
        if self.state_dtype not in ("float16", "float32"):
            raise ConfigError("state_dtype", f"must be 'float16' or 'float32', got {self.state_dtype!r}")
        for key, low in (("keep", 1), ("batch_size", 1), ("depth", 1), ("sample_size", 0), ("active_days", 0),
                         ("shift_check_days", 1)):
            if getattr(self, key) < low:
                raise ConfigError(key, f"must be at least {low}, got {getattr(self, key)}")
        if self.lock_ttl_s <= 0:
            raise ConfigError("lock_ttl_s", f"must be positive, got {self.lock_ttl_s}")

    @classmethod
    def from_dict(cls, raw: dict[str, Any] | None) -> "CacheConfig":
        """From the ``cache`` section (unknown keys are errors naming ``cache.<key>``)."""
        return build_dataclass(cls, raw or {}, prefix="cache.")

    @classmethod
    def from_run_config(cls, raw: dict[str, Any] | None) -> "CacheConfig":
        """The ``cache`` section of a raw run config dict (absent = defaults)."""
        section = (raw or {}).get("cache") or {}
        if not isinstance(section, dict):
            raise ConfigError("cache", f"must be a mapping, got {section!r}")
        return cls.from_dict(section)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


# ---- the layout ------------------------------------------------------------------------------
@dataclass(frozen=True)
class FeatureLayout:
    """Which GMV feature lives in which cached block, and how a request uses it.

    user / item / pair: feature names stored (in order) in the user / item / pair values;
    context: computed from the request time; day_shift: features that grow by the days
    between as_of and the request day (measured, see the module docstring); as_of:
    YYYY-MM-DD, the first day the values are valid for; countries: the code list of the
    users' last country.
    """

    user: tuple[str, ...]
    item: tuple[str, ...]
    pair: tuple[str, ...]
    context: tuple[str, ...]
    day_shift: tuple[str, ...]
    as_of: str
    countries: tuple[str, ...] = ()

    @property
    def numeric(self) -> list[str]:
        """Every numeric feature, in ``schema.NUMERIC_FEATURES`` order."""
        have = set(self.user) | set(self.item) | set(self.pair) | set(self.context)
        return [c for c in S.NUMERIC_FEATURES if c in have]

    @property
    def as_of_day(self) -> pd.Timestamp:
        return pd.Timestamp(self.as_of)

    def to_dict(self) -> dict[str, Any]:
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in dataclasses.asdict(self).items()}

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> "FeatureLayout":
        try:
            return cls(**{f.name: (tuple(raw[f.name]) if f.name != "as_of" else str(raw[f.name]))
                          for f in dataclasses.fields(cls) if f.name in raw})
        except (KeyError, TypeError) as e:
            raise FeatureLayoutError(f"invalid feature layout in the cache manifest ({e}): {raw!r}") from None


def feature_groups() -> dict[str, list[str]]:
    """The schema's GMV features by block; every numeric feature must be in one."""
    groups = {"user": list(S.USER_FEATURES), "item": list(S.ITEM_FEATURES), "pair": list(S.USER_ITEM_FEATURES),
              "context": list(S.CONTEXT_FEATURES)}
    placed = [c for cols in groups.values() for c in cols]
    missing = [c for c in S.NUMERIC_FEATURES if c not in placed]
    if missing:
        raise FeatureLayoutError(f"GMV feature(s) {missing} belong to no block of schema.USER_FEATURES / "
                                 f"ITEM_FEATURES / USER_ITEM_FEATURES / CONTEXT_FEATURES: the cache cannot serve them")
    return groups


# ---- blocks from join_features -------------------------------------------------------------
def _ns_days(day: pd.Timestamp, n: int) -> np.ndarray:
    # join_features merges on datetime64[ns]: a scalar Timestamp would be [s] in pandas 2
    return np.full(n, np.datetime64(pd.Timestamp(day).normalize().to_datetime64(), "ns"))


def _queries(users: np.ndarray, items: np.ndarray, day: pd.Timestamp) -> pd.DataFrame:
    n = len(users)
    d = _ns_days(day, n)
    return pd.DataFrame({S.USER: pd.array(users, dtype="string"), S.ITEM: pd.array(items, dtype="string"),
                         S.DAY: d, S.TS: d})


def _block(aggs: FeatureAggregates, users: np.ndarray, items: np.ndarray, day: pd.Timestamp,
           columns: list[str]) -> np.ndarray:
    """(n, len(columns)) float64 features of the queries (users, items) on ``day``."""
    if len(users) == 0:
        return np.zeros((0, len(columns)))
    return join_features(aggs, _queries(users, items, day))[columns].to_numpy(dtype=np.float64)


def _shifting(name: str, block: str, at: np.ndarray, later: np.ndarray, days: int) -> bool:
    """Whether a feature grows by the elapsed days (True) or stays (False); else refuse."""
    if not np.array_equal(np.isnan(at), np.isnan(later)):
        raise FeatureLayoutError(f"{block} feature {name!r} becomes defined or undefined with the request day: "
                                 f"the cache cannot precompute it")
    ok = ~np.isnan(at)
    diff = later[ok] - at[ok]
    if not diff.size or np.all(diff == 0):
        return False
    if np.allclose(diff, days, rtol=0, atol=1e-9):
        return True
    raise FeatureLayoutError(f"{block} feature {name!r} changes with the request day other than by the elapsed "
                             f"days ({days} days later it moved by {np.unique(diff)[:5]}): the cache cannot "
                             f"precompute it")


@dataclass
class FeatureBlocks:
    """The GMV feature blocks of one as-of day (float64, NaN = undefined).

    user_ids (U,), user (U, len(layout.user)), user_country (U,) str ("" unknown);
    item_ids (I,), item (I, len(layout.item)); pair_users / pair_items (P,) sorted by
    user, pair (P, len(layout.pair)); day_shift: the features measured to shift.
    """

    as_of: pd.Timestamp
    user_ids: np.ndarray
    user: np.ndarray
    user_country: np.ndarray
    item_ids: np.ndarray
    item: np.ndarray
    pair_users: np.ndarray
    pair_items: np.ndarray
    pair: np.ndarray
    day_shift: tuple[str, ...] = ()


def _last_country(lines: pd.DataFrame) -> pd.Series:
    """Each user's country on their latest line (ties: the last line in file order)."""
    if S.COUNTRY not in lines.columns or lines.empty:
        return pd.Series(dtype=object)
    last = lines.sort_values(S.TS, kind="stable").groupby(S.USER, sort=False, observed=True)[S.COUNTRY].last()
    return last.astype(str)


def feature_blocks(lines: pd.DataFrame, as_of: Any, users: Any = None, with_items: bool = True,
                   shift_check_days: int | None = 7) -> FeatureBlocks:
    """The user, item and pair blocks for requests from day ``as_of`` on.

    lines: cleaned purchase lines (the events table); only days < as_of are used.
    users: restrict the user and pair blocks to these ids (None = every user with history).
    with_items: compute the item block (a cache-miss recomputation takes items from the cache).
    shift_check_days: measure which features shift with the request day (None = skip:
        the caller already knows the layout).
    """
    as_of = pd.Timestamp(as_of).normalize()
    missing = [c for c in (S.USER, S.ITEM, S.ORDER, S.DAY, S.TS, S.QUANTITY, S.UNIT_PRICE, S.VALUE)
               if c not in lines.columns]
    if missing:
        raise RefreshInputError(f"the events table lacks the column(s) {missing}")
    lines = lines[lines[S.DAY] < as_of]
    if users is not None:
        wanted = pd.Index(pd.Series(users, dtype="object").astype(str))
        lines = lines[lines[S.USER].astype(str).isin(wanted)]
    aggs = build_aggregates(lines, as_of=as_of).latest()
    groups = feature_groups()
    user_ids = aggs.user[S.USER].astype(str).to_numpy(dtype=object)
    item_ids = aggs.item[S.ITEM].astype(str).to_numpy(dtype=object) if with_items else np.zeros(0, dtype=object)
    ui = aggs.user_item.sort_values([S.USER, S.ITEM], kind="stable")
    pair_users = ui[S.USER].astype(str).to_numpy(dtype=object)
    pair_items = ui[S.ITEM].astype(str).to_numpy(dtype=object)
    queries = {"user": (user_ids, np.full(len(user_ids), "", dtype=object)),
               "item": (np.full(len(item_ids), "", dtype=object), item_ids),
               "pair": (pair_users, pair_items)}
    values = {b: _block(aggs, *queries[b], as_of, groups[b]) for b in BLOCKS}
    shifts: list[str] = []
    if shift_check_days:
        later = as_of + pd.Timedelta(days=shift_check_days)
        for b in BLOCKS:
            moved = _block(aggs, *queries[b], later, groups[b])
            shifts += [c for j, c in enumerate(groups[b])
                       if _shifting(c, b, values[b][:, j], moved[:, j], shift_check_days)]
    country = _last_country(lines).reindex(user_ids).fillna("").to_numpy(dtype=object)
    return FeatureBlocks(as_of, user_ids, values["user"], country, item_ids, values["item"],
                         pair_users, pair_items, values["pair"], tuple(shifts))


def check_context(as_of: Any, n: int = 96, seed: int = 0) -> None:
    """Raise ``FeatureLayoutError`` unless ``scorer.context_features`` equals the context
    block of ``join_features`` on ``n`` request times spread over a year from ``as_of``
    (every weekday, hour and month)."""
    from quantrec.serving.scorer import context_features

    rng = np.random.default_rng(seed)
    start = np.datetime64(pd.Timestamp(as_of).normalize().to_datetime64(), "ns")
    ts = start + rng.integers(0, 366 * 86400, n).astype("timedelta64[s]").astype("timedelta64[ns]")
    queries = pd.DataFrame({S.USER: pd.array([""] * n, dtype="string"), S.ITEM: pd.array([""] * n, dtype="string"),
                            S.DAY: ts.astype("datetime64[D]").astype("datetime64[ns]"), S.TS: ts})
    # aggregates of one synthetic line the queries never match: only their context is read
    day = np.datetime64((pd.Timestamp(as_of).normalize() - pd.Timedelta(days=1)).to_datetime64(), "ns")
    line = pd.DataFrame({S.USER: pd.array(["~ctx"], dtype="string"), S.ITEM: pd.array(["~ctx"], dtype="string"),
                         S.ORDER: pd.array(["~ctx"], dtype="string"), S.DAY: [day], S.TS: [day],
                         S.QUANTITY: [1.0], S.UNIT_PRICE: [1.0], S.VALUE: [1.0]})
    offline = join_features(build_aggregates(line), queries)
    ours = context_features(ts)
    for name in S.CONTEXT_FEATURES:
        if name not in ours:
            raise FeatureLayoutError(f"context feature {name!r} of join_features is not computed by "
                                     f"quantrec.serving.scorer.context_features")
        if not np.array_equal(offline[name].to_numpy(dtype=np.float64), ours[name]):
            raise FeatureLayoutError(f"context feature {name!r}: quantrec.serving.scorer.context_features "
                                     f"disagrees with join_features (train/serve skew)")


# ---- the values of a version ---------------------------------------------------------------
def has_state_api(model: Any) -> bool:
    """Whether a purchase model splits into a cacheable user state and a per-candidate score
    (DMQN: ``user_states(events, users, as_of)`` and ``score(states, items, state_index)``)."""
    return callable(getattr(model, "user_states", None)) and callable(getattr(model, "score", None))


def cold_state(model: Any, as_of: Any) -> np.ndarray:
    """The purchase model's state of a user with no history (C, d + 1) float32."""
    empty = pd.DataFrame({S.USER: pd.Series(dtype="string"), S.ITEM: pd.Series(dtype="string"),
                          S.ORDER: pd.Series(dtype="string"), S.TS: pd.Series(dtype="datetime64[ns]"),
                          S.DAY: pd.Series(dtype="datetime64[ns]"), S.QUANTITY: pd.Series(dtype="float64"),
                          S.UNIT_PRICE: pd.Series(dtype="float64"), S.VALUE: pd.Series(dtype="float64"),
                          S.COUNTRY: pd.Series(dtype="string")})
    _, states = model.user_states(empty, ["__cold_start__"], as_of)
    return np.asarray(states[0], dtype=np.float32)


@dataclass
class CacheValues:
    """Everything one refresh writes for ``version`` (see the module docstring).

    states: (U, C, d + 1) float32 (numpy or torch) aligned with ``blocks.user_ids``, or
    None without a purchase model. ``users()`` / ``items()`` / ``pairs()`` are the
    iterables ``CacheStore.refresh`` takes, encoded lazily; ``meta()`` goes into the
    version's manifest (the layout the service reads back).
    """

    version: str
    layout: FeatureLayout
    blocks: FeatureBlocks
    states: Any
    user_schema: ValueSchema
    item_schema: ValueSchema
    pair_schema: ValueSchema
    purchase_model: str | None = None
    seconds: dict[str, float] = field(default_factory=dict)
    extra_meta: dict[str, Any] = field(default_factory=dict)

    def user_aggregates(self) -> np.ndarray:
        """(U, len(user fields)) float64: the user block + the country code."""
        codes = {c: i for i, c in enumerate(self.layout.countries)}
        country = np.array([codes.get(c, -1) for c in self.blocks.user_country], dtype=np.float64)
        return np.column_stack([self.blocks.user, country]) if len(country) else np.zeros((0, len(self.user_schema.fields)))

    def users(self) -> EncodedRows:
        return EncodedRows(self.user_schema, self.version, self.blocks.user_ids, self.states, self.user_aggregates())

    def items(self) -> EncodedRows:
        return EncodedRows(self.item_schema, self.version, self.blocks.item_ids, None, self.blocks.item)

    def pairs(self, chunk: int = 65536) -> "PairValues":
        return PairValues(self.pair_schema, self.version, self.blocks.pair_users, self.blocks.pair_items,
                          self.blocks.pair, chunk)

    def meta(self) -> dict[str, Any]:
        return {"layout": self.layout.to_dict(), "purchase_model": self.purchase_model,
                "state_shape": list(self.user_schema.shape), "state_dtype": self.user_schema.dtype,
                "compute_seconds": {k: round(v, 3) for k, v in self.seconds.items()}, **self.extra_meta}


class PairValues:
    """(user id, [(item id, value), ...]) per user for ``CacheStore.refresh(pairs=...)``,
    encoded chunk by chunk; pairs must be sorted by user (``feature_blocks`` sorts them)."""

    def __init__(self, schema: ValueSchema, version: str, users: np.ndarray, items: np.ndarray,
                 values: np.ndarray, chunk: int = 65536) -> None:
        if not (len(users) == len(items) == len(values)):
            raise RefreshInputError(f"{len(users)} pair users, {len(items)} pair items, {len(values)} rows")
        self.schema, self.version, self.chunk = schema, version, max(1, chunk)
        self.users, self.items, self.values = users, items, values
        starts = np.flatnonzero(np.r_[True, users[1:] != users[:-1]]) if len(users) else np.zeros(0, dtype=int)
        self._starts = np.r_[starts, len(users)].astype(np.int64)

    def __len__(self) -> int:
        return len(self._starts) - 1

    def __iter__(self) -> Iterator[tuple[str, list[tuple[str, bytes]]]]:
        n_users = len(self)
        u0 = 0
        while u0 < n_users:  # encode whole users, about ``chunk`` rows at a time
            a = int(self._starts[u0])
            u1 = int(np.searchsorted(self._starts, a + self.chunk, side="right")) - 1
            u1 = min(max(u1, u0 + 1), n_users)
            b = int(self._starts[u1])
            encoded = self.schema.encode_many(None, self.values[a:b], self.version)
            for u in range(u0, u1):
                s, e = int(self._starts[u]), int(self._starts[u + 1])
                yield str(self.users[s]), list(zip(self.items[s:e], encoded[s - a:e - a]))
            u0 = u1


def build_cache_values(version: str, events: pd.DataFrame, as_of: Any, purchase: Any = None,
                       config: CacheConfig | None = None, purchase_name: str | None = None,
                       progress: bool = True, meta: dict[str, Any] | None = None) -> CacheValues:
    """The values of ``version`` for requests from day ``as_of`` on.

    events: the events table (cleaned purchase lines; days >= as_of are ignored).
    purchase: the version's purchase model with the state API (``has_state_api``), or
        None (the service then ranks by expected GMV alone, p = 1, like the shadow stage).
    """
    config = config or CacheConfig()
    if purchase is not None and not has_state_api(purchase):
        raise RefreshInputError(f"purchase model {purchase_name or type(purchase).__name__!r} has no "
                                f"user_states/score API: the cache cannot hold its user state")
    as_of = pd.Timestamp(as_of).normalize()
    t0 = time.perf_counter()
    users = None
    if config.active_days:
        recent = events[(events[S.DAY] < as_of) & (events[S.DAY] >= as_of - pd.Timedelta(days=config.active_days))]
        users = recent[S.USER].astype(str).unique()
    blocks = feature_blocks(events, as_of, users=users, shift_check_days=config.shift_check_days)
    check_context(as_of)
    seconds = {"features": time.perf_counter() - t0}
    groups = feature_groups()
    layout = FeatureLayout(user=tuple(groups["user"]), item=tuple(groups["item"]), pair=tuple(groups["pair"]),
                           context=tuple(groups["context"]), day_shift=blocks.day_shift,
                           as_of=str(as_of.date()), countries=tuple(sorted(set(blocks.user_country) - {""})))
    states = None
    shape: tuple[int, ...] = ()
    if purchase is not None:
        t = time.perf_counter()
        ids, states = purchase.user_states(events, blocks.user_ids, as_of, progress=progress)
        if list(map(str, ids)) != list(map(str, blocks.user_ids)):
            raise RefreshInputError("the purchase model returned states for other users than asked")
        shape = tuple(states.shape[1:])
        seconds["states"] = time.perf_counter() - t
    fields = layout.user + (COUNTRY_FIELD,)
    user_schema = ValueSchema("user", shape, fields, dtype=config.state_dtype, agg_dtype="float64")
    item_schema = ValueSchema("item", (), layout.item, agg_dtype="float64")
    pair_schema = ValueSchema("pair", (), layout.pair, agg_dtype="float64")
    return CacheValues(version, layout, blocks, states, user_schema, item_schema, pair_schema,
                       purchase_model=purchase_name if purchase is not None else None, seconds=seconds,
                       extra_meta=dict(meta or {}))


# ---- one user from history (a cache miss) ---------------------------------------------------
@dataclass
class UserValues:
    """One user's values as the scorer takes them (decoded from the cache or computed).

    state: (C, d + 1) float32, None = no state (cold start, or no purchase model);
    features: (len(layout.user),) float64, NaN = undefined; country: "" unknown;
    pairs: {item id: (len(layout.pair),) float64} of the items the user bought before.
    """

    state: np.ndarray | None
    features: np.ndarray
    country: str
    pairs: dict[str, np.ndarray]


def user_values_from_history(user_lines: pd.DataFrame, user_id: str, layout: FeatureLayout,
                             purchase: Any = None) -> UserValues:
    """A user missing from the cache, from their own lines (the events table's rows of
    this user): the same blocks a refresh would have written (``feature_blocks``), the
    state from ``purchase.user_states``. ``user_lines`` with no line before as_of gives a
    cold user's values."""
    as_of = layout.as_of_day
    blocks = feature_blocks(user_lines, as_of, users=[user_id], with_items=False, shift_check_days=None)
    if len(blocks.user_ids):
        features, country = blocks.user[0], str(blocks.user_country[0])
    else:
        features, country = np.full(len(layout.user), np.nan), ""
    pairs = {str(i): blocks.pair[k] for k, i in enumerate(blocks.pair_items)}
    state = None
    if purchase is not None and len(blocks.user_ids):
        _, states = purchase.user_states(user_lines, [user_id], as_of)
        state = np.asarray(states[0], dtype=np.float32)
    return UserValues(state, np.asarray(features, dtype=np.float64), country, pairs)


def nan_rows(n: int, width: int) -> np.ndarray:
    return np.full((n, width), math.nan)
