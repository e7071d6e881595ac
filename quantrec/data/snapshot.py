"""The validated-data snapshot: the canonical rows the gate judged, frozen for the run.

The validation stage loads the table, validates it and writes exactly those rows here;
task building reads this file instead of loading the source again, so what trains is
what was validated (the source may change between two stages of a run). The digest is
the sha256 of the file's bytes: it identifies the run's data in lineage, cache keys and
checkpoint locations, and ``read_snapshot`` refuses a file whose bytes changed.
"""

from __future__ import annotations

import hashlib
from typing import Any

import fsspec
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from quantrec.data import schema as S


class SnapshotError(ValueError):
    """The snapshot file is missing, unreadable or not the one the run validated."""


def file_digest(path: str) -> str:
    """sha256 (hex) of a file's bytes, read through fsspec in 1 MiB blocks."""
    h = hashlib.sha256()
    with fsspec.open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def write_snapshot(frame: pd.DataFrame, path: str) -> dict[str, Any]:
    """Write canonical rows (``load.to_canonical`` columns) as parquet; returns
    {"digest", "rows", "first_day", "last_day"} for the artifact's metadata."""
    table = pa.Table.from_pandas(frame.reset_index(drop=True), preserve_index=False)
    with fsspec.open(path, "wb") as f:
        pq.write_table(table, f, compression="zstd")
    days = frame[S.DAY] if len(frame) else pd.Series(dtype="datetime64[ns]")
    return {"digest": file_digest(path), "rows": int(len(frame)),
            "first_day": str(days.min().date()) if len(frame) else None,
            "last_day": str(days.max().date()) if len(frame) else None}


def read_snapshot(path: str, digest: str | None = None) -> pd.DataFrame:
    """Read a snapshot; with ``digest``, fail unless the file is byte-identical to it."""
    try:
        if digest is not None and file_digest(path) != digest:
            raise SnapshotError(f"snapshot {path} changed since validation (digest mismatch): "
                                "refusing to train on data the gate did not see")
        with fsspec.open(path, "rb") as f:
            return pq.read_table(f).to_pandas()
    except FileNotFoundError:
        raise SnapshotError(f"snapshot {path} does not exist") from None
