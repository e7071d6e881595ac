"""Load a transactions table through fsspec and map it onto canonical columns.

Local paths, ``file://`` and ``gs://`` URLs all go through ``fsspec.open`` (pandas hands
``file://`` to urllib, so we never pass URLs to pandas directly). Every way a table can
be unusable (absent, empty, corrupt, missing or mistyped columns, no credentials for
gs://) raises ``DataError`` with a message naming the file and the problem.
"""

from __future__ import annotations

import os

import fsspec
import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from quantrec.data import schema
from quantrec.data.spec import UCI_HINT, DatasetSpec, default_spec_path


class DataError(ValueError):
    """The data cannot be used: the message says which file and what is wrong."""


def _storage_options(url: str) -> dict:
    """fsspec options per protocol; for gs:// resolve credentials up front.

    gcsfs falls back to anonymous access and retries for a long time when no
    credentials exist; we check first and fail with a clear message instead.
    """
    if not url.startswith(("gs://", "gcs://")):
        return {}
    token = os.environ.get("QUANTREC_GCS_TOKEN")  # e.g. "anon" for public buckets
    if token:
        return {"token": token}
    import google.auth
    import google.auth.exceptions

    env = dict(os.environ)
    # Outside a Kubernetes pod the GCE metadata probe only burns ~18 s: skip it there.
    # Inside one (a KFP cluster) it is how workload identity provides credentials.
    if "KUBERNETES_SERVICE_HOST" not in env:
        os.environ.setdefault("NO_GCE_CHECK", "true")
    try:
        google.auth.default()
    except google.auth.exceptions.DefaultCredentialsError:
        raise DataError(
            f"cannot read {url}: no Google Cloud credentials found. Set "
            "GOOGLE_APPLICATION_CREDENTIALS to a service-account key file, run "
            "`gcloud auth application-default login`, or set QUANTREC_GCS_TOKEN=anon "
            "for a public bucket."
        ) from None
    finally:
        if "NO_GCE_CHECK" not in env:
            os.environ.pop("NO_GCE_CHECK", None)
    return {}


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
            try:
                df = pd.read_csv(f)
            except pd.errors.EmptyDataError:
                raise DataError(f"{url} is empty") from None
            missing = [c for c in wanted if c not in df.columns]
            if missing:
                raise DataError(f"{url} lacks the column(s) {missing} that the dataset spec "
                                f"'{spec.name}' maps; the file has {list(df.columns)}")
            return df[wanted]
    except FileNotFoundError:
        hint = f" {UCI_HINT}" if is_default else ""
        raise DataError(f"data file not found: {url}.{hint}") from None


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
    """Ids as strings; float ids like 13085.0 (pandas' NaN-able ints) become '13085'."""
    if pd.api.types.is_float_dtype(s):
        finite = s.dropna()
        if (finite == np.floor(finite)).all():
            return s.astype("Int64").astype("string")
    return s.astype("string")


def to_canonical(raw: pd.DataFrame, spec: DatasetSpec, url: str = "<frame>") -> pd.DataFrame:
    """Rename and type a raw frame: canonical columns of ``schema`` plus day and gmv.

    Returns a frame with ORDER, USER, ITEM (string), TS, DAY (datetime64[ns]),
    QUANTITY, UNIT_PRICE, GMV (float64), COUNTRY (string), sorted by TS.
    """
    if len(raw) == 0:
        raise DataError(f"{url} has no rows")
    cols = spec.columns
    out = pd.DataFrame(index=raw.index)
    out[schema.ORDER] = _as_id(raw[cols[schema.ORDER]]) if schema.ORDER in cols else pd.Series("", index=raw.index, dtype="string")
    out[schema.USER] = _as_id(raw[cols[schema.USER]])
    out[schema.ITEM] = _as_id(raw[cols[schema.ITEM]])
    ts = raw[cols[schema.TS]]
    if not pd.api.types.is_datetime64_any_dtype(ts):
        try:
            ts = pd.to_datetime(ts, errors="raise")
        except (ValueError, TypeError):
            raise DataError(f"{url}: column {cols[schema.TS]!r} (role ts) has dtype {ts.dtype} "
                            "and cannot be read as timestamps") from None
    if getattr(ts.dt, "tz", None) is not None:
        ts = ts.dt.tz_convert("UTC").dt.tz_localize(None)
    out[schema.TS] = ts.astype("datetime64[ns]")
    out[schema.QUANTITY] = _as_numeric(raw, cols[schema.QUANTITY], schema.QUANTITY, url)
    if schema.UNIT_PRICE in cols:
        out[schema.UNIT_PRICE] = _as_numeric(raw, cols[schema.UNIT_PRICE], schema.UNIT_PRICE, url)
        out[schema.VALUE] = out[schema.QUANTITY] * out[schema.UNIT_PRICE]
    else:
        out[schema.VALUE] = _as_numeric(raw, cols["value"], "value", url)
        with np.errstate(divide="ignore", invalid="ignore"):
            out[schema.UNIT_PRICE] = (out[schema.VALUE] / out[schema.QUANTITY]).where(out[schema.QUANTITY] != 0)
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
        is_cancel |= out[schema.ORDER].fillna("").str.startswith(prefix)
    out[schema.IS_CANCELLATION] = is_cancel.astype(bool)
    return out.sort_values(schema.TS, kind="stable").reset_index(drop=True)


def load_transactions(url: str, spec: DatasetSpec, before: pd.Timestamp | None = None) -> pd.DataFrame:
    """Read the table at ``url`` described by ``spec``; canonical columns (see ``to_canonical``).

    ``before``: keep only events strictly before this day (a run on day D sees only
    data before D).
    """
    df = to_canonical(_read_raw(url, spec), spec, url)
    if before is not None:
        cut = pd.Timestamp(before).normalize()
        kept = df[df[schema.TS] < cut].reset_index(drop=True)
        if kept.empty:
            # Say where the data is: "no trading days" alone hides that run_date is too early.
            raise DataError(f"{url} has no rows before {cut.date()}: the data covers "
                            f"{df[schema.DAY].min().date()} .. {df[schema.DAY].max().date()}")
        df = kept
    return df


def latest_day(url: str, spec: DatasetSpec) -> pd.Timestamp:
    """The last day with data, reading only the timestamp column (cheap on parquet)."""
    col = spec.columns[schema.TS]
    try:
        with fsspec.open(url, "rb", **_storage_options(url)) as f:
            if spec.format == "parquet":
                try:
                    ts = pq.read_table(f, columns=[col]).column(col).to_pandas()
                except Exception as exc:
                    raise DataError(f"{url}: cannot read column {col!r} ({exc})") from None
            else:
                ts = pd.read_csv(f, usecols=[col])[col]
    except FileNotFoundError:
        raise DataError(f"data file not found: {url}. {UCI_HINT}") from None
    ts = pd.to_datetime(ts, errors="coerce").dropna()
    if ts.empty:
        raise DataError(f"{url} has no timestamps in column {col!r}")
    return ts.max().normalize()
