"""Daily windows of a run: what a run on ``run_date`` D trains, validates and evaluates on.

A run on day D sees only data before D. On the store's trading calendar (days with
data; the default store never trades on Saturdays):
- eval window: the last ``eval_days`` trading days before D,
- val window: the ``val_days`` trading days before the eval window,
- train window: the ``train_days`` calendar days before the val window.
A backtest is the same run with D in the past.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd


class WindowError(ValueError):
    """run_date and the data do not allow the requested windows."""


@dataclass(frozen=True)
class WindowConfig:
    eval_days: int = 1
    val_days: int = 7
    train_days: int = 365

    def __post_init__(self) -> None:
        from quantrec.dataclass_io import ConfigError
        for key, low in (("eval_days", 1), ("val_days", 0), ("train_days", 1)):
            if getattr(self, key) < low:
                raise ConfigError(key, f"must be at least {low}, got {getattr(self, key)}")


@dataclass(frozen=True)
class Windows:
    """Half-open day ranges [start, end) as midnight timestamps."""

    run_date: pd.Timestamp
    train_start: pd.Timestamp
    val_start: pd.Timestamp
    eval_start: pd.Timestamp
    end: pd.Timestamp  # == run_date

    def split_of(self, days: pd.Series) -> pd.Series:
        """'train' / 'val' / 'eval' per day; None outside [train_start, end)."""
        d = pd.to_datetime(days).to_numpy()
        out = np.full(len(d), None, dtype=object)
        out[(d >= self.train_start.to_datetime64()) & (d < self.val_start.to_datetime64())] = "train"
        out[(d >= self.val_start.to_datetime64()) & (d < self.eval_start.to_datetime64())] = "val"
        out[(d >= self.eval_start.to_datetime64()) & (d < self.end.to_datetime64())] = "eval"
        return pd.Series(out, index=getattr(days, "index", None), dtype="object")

    def to_dict(self) -> dict[str, str]:
        return {k: str(pd.Timestamp(v).date()) for k, v in asdict(self).items()}


def parse_run_date(value: Any) -> pd.Timestamp:
    """The run date as a naive midnight timestamp; WindowError (a ValueError) when it is not one.

    A run date is a calendar day on the data's clock (naive, or UTC for tz-aware data,
    see ``load.to_canonical``). Accepted: ``YYYY-MM-DD`` (a time of day is dropped)
    and UTC timestamps (``...Z`` / ``+00:00``, what a KFP schedule passes). Refused
    with a clear message: empty values, non-dates, and timestamps with another UTC
    offset (``2011-12-10T00:00:00+05:00`` is 2011-12-09 19:00 UTC: which day was
    meant is ambiguous, so the user says it).
    """
    if value is None or (isinstance(value, str) and not value.strip()):
        raise WindowError(f"run_date is empty ({value!r}): pass the day to run for as YYYY-MM-DD")
    if not isinstance(value, (str, pd.Timestamp)):
        raise WindowError(f"run_date {value!r} is a {type(value).__name__}, not a date (expected YYYY-MM-DD)")
    try:
        ts = pd.Timestamp(value.strip() if isinstance(value, str) else value)
    except (ValueError, TypeError, OverflowError):
        raise WindowError(f"run_date {value!r} is not a date (expected YYYY-MM-DD)") from None
    if pd.isna(ts):
        raise WindowError(f"run_date {value!r} is not a date (expected YYYY-MM-DD)")
    if ts.tzinfo is not None:
        offset = ts.utcoffset()
        if offset is not None and offset != pd.Timedelta(0):
            raise WindowError(
                f"run_date {value!r} carries the UTC offset {ts.strftime('%z')}: a run date is a "
                "calendar day of the data's clock; pass YYYY-MM-DD (or a UTC time ending in Z)")
        ts = ts.tz_localize(None)
    return ts.normalize()


def compute_windows(trading_days: pd.Series | np.ndarray, run_date: str | pd.Timestamp,
                    config: WindowConfig = WindowConfig()) -> Windows:
    """Windows for ``run_date`` on the trading calendar ``trading_days`` (any order).

    Raises WindowError when run_date is outside the data: no trading day before it,
    or fewer trading days before it than eval_days + val_days + 1.
    """
    if config.eval_days < 1 or config.val_days < 0 or config.train_days < 1:
        raise WindowError(f"window sizes must be positive: {config}")
    d = parse_run_date(run_date)
    days = np.unique(pd.to_datetime(pd.Series(trading_days)).dt.normalize().to_numpy())
    if len(days) == 0:
        raise WindowError("the data has no trading days")
    before = days[days < d.to_datetime64()]
    first, last = pd.Timestamp(days[0]).date(), pd.Timestamp(days[-1]).date()
    need = config.eval_days + config.val_days + 1
    if len(before) < need:
        raise WindowError(
            f"run_date {d.date()} is outside the data ({first} .. {last}): it needs at least "
            f"{need} trading days before it (eval {config.eval_days} + val {config.val_days} "
            f"+ 1 training day), the data has {len(before)}")
    eval_start = pd.Timestamp(before[-config.eval_days])
    val_start = pd.Timestamp(before[-(config.eval_days + config.val_days)]) if config.val_days else eval_start
    train_start = val_start - pd.Timedelta(days=config.train_days)
    return Windows(run_date=d, train_start=train_start, val_start=val_start,
                   eval_start=eval_start, end=d)
