"""Helpers the stages share: task-table splits and the run key of resumable work."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pandas as pd

from quantrec.data import schema as S
from quantrec.data.tasks import read_table


def train_val_frames(table_path: str, max_train_rows: int, label: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(train, val) rows of a task table; train keeps the most recent ``max_train_rows``
    (0 = all) in time order, since prices and customers drift."""
    frame = read_table(table_path)
    if label not in frame.columns:
        raise ValueError(f"{table_path} has no label column {label!r}")
    tr = frame[frame[S.SPLIT] == "train"].sort_values(S.TS, kind="stable")
    va = frame[frame[S.SPLIT] == "val"]
    if tr.empty or va.empty:
        raise ValueError(f"{table_path}: training needs train and val rows (has {len(tr)} train, {len(va)} val)")
    if max_train_rows < 0:
        raise ValueError(f"max_train_rows must be >= 0 (0 = all rows), got {max_train_rows}")
    if max_train_rows and len(tr) > max_train_rows:
        tr = tr.iloc[-max_train_rows:]
    return tr.reset_index(drop=True), va.reset_index(drop=True)


def config_digest(config: dict[str, Any]) -> str:
    """sha256 of a JSON-able config (sorted keys): equal configs, equal digests."""
    return hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode()).hexdigest()


def run_key(run_date: str, data_digest: str, config: dict[str, Any]) -> str:
    """Name of a run's resumable work (checkpoints): the same day, data and config give
    the same key, so a re-run after a kill resumes; anything else starts fresh."""
    return f"{run_date}-{data_digest[:12]}-{config_digest(config)[:8]}"
