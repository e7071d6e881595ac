"""Whole user behaviour histories as jagged arrays (values + offsets).

The events table (cleaned purchase lines before run_date) is sorted ONCE by
(user, ts) into an ``EventLog`` of flat numpy columns. Because every user's events are
contiguous and time-ordered there, the history of a request (user u, request day D),
i.e. all of u's events with day < D, is one contiguous slice ``[start, end)`` of the
log: a request costs two integers, whatever its length, and memory is O(events +
requests), never O(sum of history lengths) (heavy Online Retail II customers have
more than 12,000 lines before a request, and the same user requests on many days).

``Histories`` holds those slices for a table's requests; ``Histories.batch(idx)``
packs a batch of them into ``(sum_len,)`` value tensors plus ``(B + 1,)`` offsets, the
layout a model consumes. Nothing is truncated unless ``max_len`` > 0 is configured;
then the oldest events beyond it are dropped, counted per request and reported by
``cap_report()``.

Item ids are mapped through an ``ItemIndex`` fitted on the training window (rows
1..V; 0 = unknown / too rare). Item attributes known to the index: the price level
(log-bucketed median unit price in the fit window). Each history event also carries
its own price level (the unit price paid) and quantity level, both log-bucketed, and
its timestamp in seconds (for HSTU's time-gap bias).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import torch

from quantrec.data import schema as S

# log-bucketing of prices / quantities: half-octave steps.
PRICE_BUCKETS = 32       # 0 = unknown; 1 = price <= PRICE_UNIT; 31 = >= ~PRICE_UNIT * 2^15
PRICE_UNIT = 0.01        # currency units
QTY_BUCKETS = 24         # 0 = unknown; 1 = quantity 1; 23 = >= 2^11
STEPS_PER_OCTAVE = 2


class HistoryError(ValueError):
    """An events or request table cannot be turned into histories (named column / value)."""


def log_bucket(x: np.ndarray, unit: float, n_buckets: int, steps_per_octave: int = STEPS_PER_OCTAVE) -> np.ndarray:
    """(n,) float -> (n,) int64 in [0, n_buckets): 0 for NaN / <= 0, else
    1 + floor(steps_per_octave * log2(x / unit)) clipped to [1, n_buckets - 1]."""
    x = np.asarray(x, dtype=np.float64)
    ok = np.isfinite(x) & (x > 0)
    b = np.zeros(x.shape, dtype=np.int64)
    lv = np.floor(steps_per_octave * np.log2(np.where(ok, x, unit) / unit))
    b[ok] = 1 + np.clip(lv[ok], 0, n_buckets - 2).astype(np.int64)
    return b


def price_bucket(price: np.ndarray) -> np.ndarray:
    """Unit price (currency units) -> price level in [0, PRICE_BUCKETS)."""
    return log_bucket(price, PRICE_UNIT, PRICE_BUCKETS)


def quantity_bucket(qty: np.ndarray) -> np.ndarray:
    """Quantity (units) -> quantity level in [0, QTY_BUCKETS)."""
    return log_bucket(qty, 1.0, QTY_BUCKETS)


def to_seconds(values: Any) -> np.ndarray:
    """datetime-like (n,) -> (n,) int64 seconds since the epoch (naive = UTC)."""
    return pd.to_datetime(pd.Series(values)).to_numpy(dtype="datetime64[s]").astype(np.int64)


def _require(frame: pd.DataFrame, columns: list[str], what: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise HistoryError(f"{what} lacks the column(s) {missing}")


# ---- item index ------------------------------------------------------------------------
@dataclass
class ItemIndex:
    """item id -> row 1..V (0 = unknown), fitted on events with day < ``cutoff``.

    ids: the V known item ids, row i + 1 = ids[i] (sorted: deterministic).
    price: (V + 1,) int64 price level of each row (median unit price in the fit
        window, log-bucketed; row 0 = 0 unknown).
    """

    ids: list[str]
    price: np.ndarray
    cutoff: str
    min_count: int = 1
    _lookup: dict[str, int] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self.price = np.asarray(self.price, dtype=np.int64)
        self._lookup = {v: i + 1 for i, v in enumerate(self.ids)}

    @property
    def size(self) -> int:
        """Embedding rows including row 0 (unknown)."""
        return len(self.ids) + 1

    @classmethod
    def fit(cls, events: pd.DataFrame, cutoff: Any, min_count: int = 1) -> "ItemIndex":
        """Items with >= ``min_count`` lines among ``events`` with day < ``cutoff``."""
        _require(events, [S.ITEM, S.DAY, S.UNIT_PRICE], "events table")
        cut = pd.Timestamp(cutoff).normalize()
        win = events[events[S.DAY] < cut]
        g = win.groupby(win[S.ITEM].astype(str), observed=True)
        stats = pd.DataFrame({"n": g.size(), "price": g[S.UNIT_PRICE].median()})
        stats = stats[stats["n"] >= min_count].sort_index()
        price = np.concatenate([[0], price_bucket(stats["price"].to_numpy())])
        return cls(ids=[str(i) for i in stats.index], price=price, cutoff=str(cut.date()), min_count=min_count)

    def lookup(self, items: Any) -> np.ndarray:
        """(n,) item ids -> (n,) int64 rows (0 for unknown)."""
        arr = pd.Series(items, dtype="object").astype(str).to_numpy()
        get = self._lookup.get
        return np.fromiter((get(v, 0) for v in arr), dtype=np.int64, count=len(arr))

    def to_json(self) -> dict[str, Any]:
        return {"ids": self.ids, "price": self.price.tolist(), "cutoff": self.cutoff, "min_count": self.min_count}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> "ItemIndex":
        try:
            return cls(ids=list(d["ids"]), price=np.asarray(d["price"]), cutoff=d["cutoff"],
                       min_count=int(d.get("min_count", 1)))
        except KeyError as e:
            raise HistoryError(f"item index JSON lacks the key {e.args[0]!r}") from None


# ---- the event log ---------------------------------------------------------------------
def _day_number(seconds: np.ndarray) -> np.ndarray:
    return np.floor_divide(seconds, 86_400)


@dataclass
class EventLog:
    """Events sorted by (user, ts) as flat columns of length E.

    users: (U,) sorted unique user ids; user_start: (U + 1,) offsets, user u's events
    are rows [user_start[u], user_start[u + 1]). Columns (E,) int64: item (index row),
    ts (seconds), day (day number since the epoch), price, qty (levels).
    """

    users: np.ndarray
    user_start: np.ndarray
    item: np.ndarray
    ts: np.ndarray
    day: np.ndarray
    price: np.ndarray
    qty: np.ndarray

    @property
    def n_events(self) -> int:
        return int(self.item.shape[0])

    @classmethod
    def from_events(cls, events: pd.DataFrame, index: ItemIndex) -> "EventLog":
        """Build from an events table (user_id, item_id, ts, day, unit_price, quantity)."""
        _require(events, [S.USER, S.ITEM, S.TS, S.DAY, S.UNIT_PRICE, S.QUANTITY], "events table")
        if events[S.USER].isna().any():
            raise HistoryError(f"events table has {int(events[S.USER].isna().sum())} rows without {S.USER}")
        user = events[S.USER].astype(str).to_numpy()
        ts = to_seconds(events[S.TS])
        users, code = np.unique(user, return_inverse=True)
        order = np.lexsort((ts, code))               # by user, then time (stable)
        code = code[order]
        counts = np.bincount(code, minlength=len(users))
        return cls(users=users, user_start=np.concatenate([[0], np.cumsum(counts)]).astype(np.int64),
                   item=index.lookup(events[S.ITEM].to_numpy()[order]),
                   ts=ts[order],
                   day=_day_number(to_seconds(events[S.DAY])[order]),
                   price=price_bucket(events[S.UNIT_PRICE].to_numpy(dtype=np.float64)[order]),
                   qty=quantity_bucket(events[S.QUANTITY].to_numpy(dtype=np.float64)[order]))

    def bounds(self, users: Any, days: Any) -> tuple[np.ndarray, np.ndarray]:
        """Requests (users (R,), days (R,) datetime-like) -> (start, end) (R,) int64:
        the rows of the user's events with day < the request's day (empty for a user
        without events). One vectorised search, no loop over requests."""
        u = pd.Series(users, dtype="object").astype(str).to_numpy()
        d = _day_number(to_seconds(days))
        if len(self.users) == 0:
            zero = np.zeros(len(u), dtype=np.int64)
            return zero, zero.copy()
        pos_c = np.minimum(np.searchsorted(self.users, u), len(self.users) - 1)
        known = self.users[pos_c] == u
        start = np.where(known, self.user_start[pos_c], 0)
        stop = np.where(known, self.user_start[pos_c + 1], 0)
        # composite key (user code, day) is sorted along the log: search it once
        code = np.repeat(np.arange(len(self.users), dtype=np.int64), np.diff(self.user_start))
        key = code * 1_000_000 + self.day
        end = np.searchsorted(key, pos_c.astype(np.int64) * 1_000_000 + d, side="left")
        end = np.where(known, np.clip(end, start, stop), 0)
        return start.astype(np.int64), end.astype(np.int64)


# ---- requests and their histories -----------------------------------------------------
@dataclass
class Requests:
    """Unique (user, day) requests of a table and the request of every row.

    users (R,), days (R,) datetime64[ns] (midnight), row_request (n,) int64 in [0, R).
    Requests are ordered by (day, user).
    """

    users: np.ndarray
    days: np.ndarray
    row_request: np.ndarray

    @property
    def n(self) -> int:
        return int(len(self.users))

    @classmethod
    def of(cls, frame: pd.DataFrame) -> "Requests":
        """Group a task table's rows (user_id, day) into requests."""
        _require(frame, [S.USER, S.DAY], "request table")
        day = pd.to_datetime(frame[S.DAY]).dt.normalize()
        keys = pd.DataFrame({"u": frame[S.USER].astype(str).to_numpy(), "d": day.to_numpy()})
        uniq = keys.drop_duplicates().sort_values(["d", "u"], kind="stable").reset_index(drop=True)
        uniq["r"] = np.arange(len(uniq), dtype=np.int64)
        row = keys.merge(uniq, on=["u", "d"], how="left")["r"].to_numpy(dtype=np.int64)
        return cls(users=uniq["u"].to_numpy(dtype=object), days=uniq["d"].to_numpy(), row_request=row)


def ranges_to_index(start: np.ndarray, end: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Concatenate the ranges [start_i, end_i) -> (index (sum_len,), offsets (B + 1,)).

    Vectorised (no Python loop): the packed gather of a jagged batch."""
    start = np.asarray(start, dtype=np.int64)
    lens = np.asarray(end, dtype=np.int64) - start
    if (lens < 0).any():
        raise HistoryError("a range has end < start")
    offsets = np.concatenate([[0], np.cumsum(lens)]).astype(np.int64)
    idx = np.arange(offsets[-1], dtype=np.int64) - np.repeat(offsets[:-1] - start, lens)
    return idx, offsets


HISTORY_KEYS = ("item", "ts", "price", "qty")


@dataclass
class Histories:
    """Whole histories of R requests over one ``EventLog``.

    start, end (R,): request r's events are log rows [start[r], end[r]) (after the cap).
    request_ts (R,) int64: the request day's midnight in seconds (the "as of" time).
    full_len (R,): history length before any cap; max_len: the cap (0 = none).
    """

    log: EventLog
    start: np.ndarray
    end: np.ndarray
    request_ts: np.ndarray
    full_len: np.ndarray
    max_len: int = 0

    @property
    def n(self) -> int:
        return int(self.start.shape[0])

    @property
    def lengths(self) -> np.ndarray:
        """(R,) int64 events per request as served to the model."""
        return self.end - self.start

    def cap_report(self) -> dict[str, Any]:
        """What the cap (if any) removed: requests truncated and events dropped."""
        dropped = self.full_len - self.lengths
        return {"max_len": int(self.max_len), "requests": self.n,
                "events": int(self.full_len.sum()), "longest": int(self.full_len.max(initial=0)),
                "truncated_requests": int((dropped > 0).sum()), "dropped_events": int(dropped.sum())}

    def batch(self, idx: Any) -> dict[str, torch.Tensor]:
        """Requests ``idx`` (B,) -> packed tensors: item, ts, price, qty (sum_len,) int64,
        offsets (B + 1,) int64, request_ts (B,) int64. Request b's events are
        values[offsets[b]:offsets[b + 1]], oldest first."""
        idx = np.asarray(idx, dtype=np.int64).reshape(-1)
        rows, offsets = ranges_to_index(self.start[idx], self.end[idx])
        log = self.log
        out = {k: torch.from_numpy(np.ascontiguousarray(getattr(log, k)[rows])) for k in HISTORY_KEYS}
        out["offsets"] = torch.from_numpy(offsets)
        out["request_ts"] = torch.from_numpy(self.request_ts[idx].copy())
        return out


def build_histories(log: EventLog, users: Any, days: Any, max_len: int = 0) -> Histories:
    """Histories of requests (users (R,), days (R,)): all of the user's events with
    day < the request day, oldest first. ``max_len`` > 0 keeps the most recent
    ``max_len`` (explicit, counted in ``cap_report``); 0 keeps the WHOLE history."""
    if max_len < 0:
        raise HistoryError(f"max_len must be >= 0 (0 = whole history), got {max_len}")
    start, end = log.bounds(users, days)
    full = end - start
    if max_len > 0:
        start = np.maximum(start, end - max_len)
    request_ts = _day_number(to_seconds(days)) * 86_400
    return Histories(log=log, start=start, end=end, request_ts=request_ts, full_len=full, max_len=max_len)


def histories_for(frame: pd.DataFrame, events: pd.DataFrame, index: ItemIndex,
                  max_len: int = 0, log: EventLog | None = None) -> tuple[Requests, Histories]:
    """A task table's requests and their histories from the events table (built once)."""
    req = Requests.of(frame)
    log = log if log is not None else EventLog.from_events(events, index)
    return req, build_histories(log, req.users, req.days, max_len)


def history_length_summary(hist: Histories) -> dict[str, float]:
    """Quantiles of the history length per request (for reports)."""
    lens = hist.full_len
    if lens.size == 0:
        return {"requests": 0}
    q = np.quantile(lens, [0.5, 0.9, 0.99])
    return {"requests": int(lens.size), "mean": float(lens.mean()), "p50": float(q[0]),
            "p90": float(q[1]), "p99": float(q[2]), "max": int(lens.max()),
            "empty": int((lens == 0).sum())}
