"""Load a transactions table through fsspec and map it onto canonical columns.

Local paths, ``file://`` and ``gs://`` URLs all go through ``fsspec.open`` (pandas hands
``file://`` to urllib, so we never pass URLs to pandas directly). Every way a table can
be unusable (absent, empty, corrupt or ragged, missing or mistyped columns, no
credentials for gs://, an unreachable host, rows dated in the future of the wall
clock) raises ``DataError`` with a message naming the file and the problem. Messages
are redacted (``quantrec.redact``): credentials in a URL never reach a report.
"""

from __future__ import annotations

import socket
from urllib.parse import urlsplit

import fsspec
import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from quantrec.data import schema
from quantrec.data.spec import UCI_HINT, DatasetSpec, default_spec_path
from quantrec.redact import redact
from quantrec.storage import StorageError, storage_options

MAX_FUTURE_EXAMPLES = 3


class DataError(ValueError):
    """The data cannot be used: the message says which file and what is wrong (redacted)."""

    def __init__(self, message: str) -> None:
        super().__init__(redact(message))


def _unreachable_host(url: str, exc: BaseException) -> str | None:
    """"cannot reach host ..." when ``exc`` (or what caused it) is a network failure, else None.

    fsspec's HTTP filesystem turns a DNS failure or a refused connection into
    FileNotFoundError, and gcsfs raises requests' ConnectionError (an OSError) when
    Google's token service cannot be reached; the cause chain still holds the socket
    error. "data file not found" for an unresolvable host sends the user to the wrong place.
    """
    parts = urlsplit(url) if "://" in url else None
    host = parts.hostname if parts is not None and parts.scheme in ("http", "https") else None
    where = f"host {host}" if host else "the storage service"
    chain: list[BaseException] = []
    cause: BaseException | None = exc
    while cause is not None and all(cause is not c for c in chain):
        chain.append(cause)
        cause = cause.__cause__ or cause.__context__
    # The deepest reason first: a DNS failure hides under ConnectionError wrappers.
    if any(isinstance(c, socket.gaierror) or "NameResolutionError" in type(c).__name__ for c in chain):
        return f"cannot reach {where} for {url}: a host name does not resolve (no network or DNS?)"
    for c in chain:
        if isinstance(c, (ConnectionError, TimeoutError)) or type(c).__name__ in (
                "ConnectionError", "ClientConnectorError", "ConnectTimeout", "ReadTimeout"):
            detail = str(c).splitlines()[0][:200] if str(c) else ""
            return f"cannot reach {where} for {url}: {type(c).__name__} {detail}".rstrip()
    return None


def _not_found(url: str, exc: BaseException, is_default: bool) -> DataError:
    network = _unreachable_host(url, exc)
    if network:
        return DataError(network)
    hint = f" {UCI_HINT}" if is_default else ""
    return DataError(f"data file not found: {url}.{hint}")


def _read_csv(f, url: str, **kwargs) -> pd.DataFrame:
    """``pd.read_csv`` with every parse failure as a DataError naming the file."""
    try:
        return pd.read_csv(f, **kwargs)
    except pd.errors.EmptyDataError:
        raise DataError(f"{url} is empty") from None
    except pd.errors.ParserError as exc:  # ragged rows: "Expected 8 fields in line 5, saw 9"
        raise DataError(f"{url} is not a readable CSV file: {str(exc).strip().splitlines()[-1]}") from None
    except UnicodeDecodeError:
        raise DataError(f"{url} is not a readable CSV file: it is not UTF-8 text") from None
    except ValueError as exc:  # e.g. usecols naming a column the header lacks
        raise DataError(f"{url}: cannot read it as CSV ({exc})") from None


def _storage_options(url: str) -> dict:
    """``quantrec.storage.storage_options`` with its error as a DataError."""
    try:
        return storage_options(url)
    except StorageError as exc:
        raise DataError(str(exc)) from None


def _read_raw(url: str, spec: DatasetSpec) -> pd.DataFrame:
    wanted = list(dict.fromkeys(spec.columns.values()))
    opts = _storage_options(url)
    is_default = spec.source_file == default_spec_path()
    try:
        with fsspec.open(url, "rb", **opts) as f:
            if spec.format == "parquet":
                try:
                    pf = pq.ParquetFile(f)
                except Exception as exc:  # pyarrow raises ArrowInvalid for non-parquet bytes
                    raise DataError(f"{url} is not a readable parquet file ({exc})") from None
                available = pf.schema_arrow.names
                missing = [c for c in wanted if c not in available]
                if missing:
                    raise DataError(
                        f"{url} lacks the column(s) {missing} that the dataset spec "
                        f"'{spec.name}' maps; the file has {available}")
                return pf.read(columns=wanted).to_pandas()
            df = _read_csv(f, url)
            missing = [c for c in wanted if c not in df.columns]
            if missing:
                raise DataError(f"{url} lacks the column(s) {missing} that the dataset spec "
                                f"'{spec.name}' maps; the file has {list(df.columns)}")
            return df[wanted]
    except FileNotFoundError as exc:
        raise _not_found(url, exc, is_default) from None
    except OSError as exc:
        network = _unreachable_host(url, exc)
        if network is None:
            raise
        raise DataError(network) from None


def _as_numeric(df: pd.DataFrame, col: str, role: str, url: str) -> pd.Series:
    s = df[col]
    if pd.api.types.is_bool_dtype(s) or not (pd.api.types.is_numeric_dtype(s) or s.dtype == object):
        raise DataError(f"{url}: column {col!r} (role {role}) has dtype {s.dtype}, expected numbers")
    try:
        return pd.to_numeric(s, errors="raise").astype("float64")
    except (ValueError, TypeError):
        bad = s[pd.to_numeric(s, errors="coerce").isna() & s.notna()].head(3).tolist()
        raise DataError(f"{url}: column {col!r} (role {role}) has non-numeric values, e.g. {bad}") from None


def _as_id(s: pd.Series) -> pd.Series:
    """Ids as strings; float ids like 13085.0 (pandas' NaN-able ints) become '13085'.

    Converted once per distinct id and spread back by code: a million rows hold a few
    thousand ids, and per-row string conversion is most of the load time.
    """
    codes, uniques = pd.factorize(s, use_na_sentinel=True)
    u = pd.Series(uniques)
    if pd.api.types.is_float_dtype(u) and np.isfinite(u).all() and (u == np.floor(u)).all():
        u = u.astype("Int64")
    text = u.astype("string").array
    return pd.Series(text.take(codes, allow_fill=True), index=s.index, dtype="string")


def _starts_with(ids: pd.Series, prefix: str) -> pd.Series:
    """``ids.str.startswith(prefix)`` (null -> False), evaluated once per distinct id."""
    codes, uniques = pd.factorize(ids, use_na_sentinel=True)
    hit = pd.Series(uniques, dtype="string").str.startswith(prefix).fillna(False).to_numpy(dtype=bool)
    return pd.Series(np.where(codes >= 0, hit[np.maximum(codes, 0)], False), index=ids.index)


def _naive_utc(ts: pd.Series) -> pd.Series:
    """Timestamps as naive UTC (tz-aware ones converted; naive ones taken as they are)."""
    if getattr(ts.dt, "tz", None) is not None:
        return ts.dt.tz_convert("UTC").dt.tz_localize(None)
    return ts


def parse_timestamps(ts: pd.Series, spec: DatasetSpec, url: str, errors: str = "raise") -> pd.Series:
    """The spec's timestamp column as naive UTC datetime64[ns].

    Dates, date strings and tz-aware values are read as they are (tz-aware ones
    converted to UTC); numbers are epoch time in the spec's ``ts_unit`` and without one
    are an error (pandas would read unix seconds as nanoseconds: every row in January
    1970). ``errors="coerce"``: unreadable values become NaT instead of a DataError.
    """
    col = spec.columns[schema.TS]
    numeric = pd.api.types.is_numeric_dtype(ts) and not pd.api.types.is_bool_dtype(ts)
    if numeric and spec.ts_unit is None:
        raise DataError(f"{url}: column {col!r} (role ts) holds numbers, e.g. {ts.dropna().head(2).tolist()}: "
                        "set ts_unit (s, ms, us or ns) in the dataset spec to read them as epoch time")
    try:
        if numeric:
            ts = pd.to_datetime(ts, unit=spec.ts_unit, errors=errors)
        elif not pd.api.types.is_datetime64_any_dtype(ts):
            ts = pd.to_datetime(ts, errors=errors)
        return _naive_utc(ts).astype("datetime64[ns]")
    except (ValueError, TypeError, AttributeError, OverflowError):
        raise DataError(f"{url}: column {col!r} (role ts) has dtype {ts.dtype} "
                        "and cannot be read as timestamps") from None


def to_canonical(raw: pd.DataFrame, spec: DatasetSpec, url: str = "<frame>") -> pd.DataFrame:
    """Rename and type a raw frame: canonical columns of ``schema`` plus day and gmv.

    Returns a frame with ORDER, USER, ITEM (string), TS, DAY (datetime64[ns]),
    QUANTITY, UNIT_PRICE, GMV (float64), COUNTRY (string), sorted by TS; with a mapped
    ``label`` column also LABEL_VALUE (float64). An interaction table (no prices) gets
    quantity 1 where unmapped, unit price 1 and gmv = quantity.
    """
    if len(raw) == 0:
        raise DataError(f"{url} has no rows")
    cols = spec.columns
    out = pd.DataFrame(index=raw.index)
    out[schema.ORDER] = _as_id(raw[cols[schema.ORDER]]) if schema.ORDER in cols else pd.Series("", index=raw.index, dtype="string")
    out[schema.USER] = _as_id(raw[cols[schema.USER]])
    out[schema.ITEM] = _as_id(raw[cols[schema.ITEM]])
    out[schema.TS] = parse_timestamps(raw[cols[schema.TS]], spec, url)
    out[schema.QUANTITY] = (_as_numeric(raw, cols[schema.QUANTITY], schema.QUANTITY, url)
                            if schema.QUANTITY in cols else 1.0)   # an interaction without a count is one
    if schema.UNIT_PRICE in cols:
        out[schema.UNIT_PRICE] = _as_numeric(raw, cols[schema.UNIT_PRICE], schema.UNIT_PRICE, url)
        out[schema.VALUE] = out[schema.QUANTITY] * out[schema.UNIT_PRICE]
    elif "value" in cols:
        out[schema.VALUE] = _as_numeric(raw, cols["value"], "value", url)
        with np.errstate(divide="ignore", invalid="ignore"):
            out[schema.UNIT_PRICE] = (out[schema.VALUE] / out[schema.QUANTITY]).where(out[schema.QUANTITY] != 0)
    else:  # interaction table: no prices (schema.LABEL_VALUE's comment)
        out[schema.UNIT_PRICE] = 1.0
        out[schema.VALUE] = out[schema.QUANTITY]
    if "label" in cols:
        out[schema.LABEL_VALUE] = _as_numeric(raw, cols["label"], "label", url)
    out[schema.COUNTRY] = (_as_id(raw[cols[schema.COUNTRY]]).fillna("") if schema.COUNTRY in cols
                           else pd.Series("", index=raw.index, dtype="string"))
    if out[schema.TS].isna().any():
        n = int(out[schema.TS].isna().sum())
        raise DataError(f"{url}: {n} rows have no timestamp in column {cols[schema.TS]!r}")
    if out[schema.USER].isna().all():
        raise DataError(f"{url}: every value of the user id column {cols[schema.USER]!r} is null")
    out[schema.DAY] = out[schema.TS].dt.normalize()
    prefix = spec.cleaning.cancellation_prefix
    is_cancel = out[schema.QUANTITY] < 0
    if prefix:
        is_cancel |= _starts_with(out[schema.ORDER], prefix)
    out[schema.IS_CANCELLATION] = is_cancel.astype(bool)
    return out.sort_values(schema.TS, kind="stable").reset_index(drop=True)


def utc_now() -> pd.Timestamp:
    """The wall clock as a naive UTC timestamp (the canonical ``ts`` convention)."""
    return pd.Timestamp.now(tz="UTC").tz_localize(None)


def check_not_in_future(ts: pd.Series, url: str, spec: DatasetSpec, now: pd.Timestamp | None = None,
                        rows: pd.DataFrame | None = None) -> None:
    """Raise DataError naming the rows dated after ``now`` + ``validation.clock_skew_hours``.

    ``ts``: naive UTC timestamps; ``rows``: the frame to quote examples from (same
    index), else the timestamps alone. Future rows would move the default run date
    and leave its windows empty; a table cannot hold events that did not happen yet.
    """
    now = utc_now() if now is None else pd.Timestamp(now)
    skew = spec.validation.clock_skew_hours
    limit = now + pd.Timedelta(hours=skew)
    future = ts > limit
    if not future.any():
        return
    n = int(future.sum())
    col = spec.columns[schema.TS]
    if rows is not None:
        cols = [c for c in (schema.ORDER, schema.ITEM, schema.TS) if c in rows.columns]
        ex = rows.loc[future[future].index[:MAX_FUTURE_EXAMPLES], cols]
        examples = "; ".join(", ".join(f"{c}={v}" for c, v in r.items()) for r in ex.to_dict("records"))
    else:
        examples = ", ".join(str(t) for t in ts[future].sort_values().head(MAX_FUTURE_EXAMPLES))
    raise DataError(
        f"{url}: {n} row(s) are dated in the future: after {now:%Y-%m-%d %H:%M} UTC (now) + "
        f"{skew:g} h of clock-skew tolerance, up to {ts[future].max()} (column {col!r}); "
        f"e.g. {examples}. Fix their timestamps (wrong year or time zone?): they would move "
        "the default run date past the data")


def load_transactions(url: str, spec: DatasetSpec, before: pd.Timestamp | None = None,
                      now: pd.Timestamp | None = None) -> pd.DataFrame:
    """Read the table at ``url`` described by ``spec``; canonical columns (see ``to_canonical``).

    ``before``: keep only events strictly before this day (a run on day D sees only
    data before D). Rows dated after the wall clock (``now``, UTC; default: the current
    time) plus the spec's ``validation.clock_skew_hours`` raise DataError naming them.
    """
    df = to_canonical(_read_raw(url, spec), spec, url)
    check_not_in_future(df[schema.TS], url, spec, now, rows=df)
    if before is not None:
        cut = pd.Timestamp(before).normalize()
        kept = df[df[schema.TS] < cut].reset_index(drop=True)
        if kept.empty:
            # Say where the data is: "no trading days" alone hides that run_date is too early.
            raise DataError(f"{url} has no rows before {cut.date()}: the data covers "
                            f"{df[schema.DAY].min().date()} .. {df[schema.DAY].max().date()}")
        df = kept
    return df


def latest_day(url: str, spec: DatasetSpec, now: pd.Timestamp | None = None) -> pd.Timestamp:
    """The last day with data, reading only the timestamp column (cheap on parquet).

    Rows dated in the future of the wall clock raise the same DataError as
    ``load_transactions``: they must not move the default run date.
    """
    col = spec.columns[schema.TS]
    is_default = spec.source_file == default_spec_path()
    try:
        with fsspec.open(url, "rb", **_storage_options(url)) as f:
            if spec.format == "parquet":
                try:
                    ts = pq.read_table(f, columns=[col]).column(col).to_pandas()
                except Exception as exc:
                    raise DataError(f"{url}: cannot read column {col!r} ({exc})") from None
            else:
                ts = _read_csv(f, url, usecols=[col])[col]
    except FileNotFoundError as exc:
        raise _not_found(url, exc, is_default) from None
    except OSError as exc:
        network = _unreachable_host(url, exc)
        if network is None:
            raise
        raise DataError(network) from None
    ts = parse_timestamps(ts, spec, url, errors="coerce").dropna()
    if ts.empty:
        raise DataError(f"{url} has no timestamps in column {col!r}")
    check_not_in_future(ts, url, spec, now)
    return ts.max().normalize()
