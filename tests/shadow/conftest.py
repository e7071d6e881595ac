"""Fixtures: the real replay slice (built once per session) and synthetic frames."""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from shadow_data import SLICE_END, SLICE_RUN_DATE, SLICE_START  # noqa: E402


@pytest.fixture(scope="session")
def real_replay(tmp_path_factory) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(replay rows, purchase val rows) of a run on the real data slice 2011-01-04..2011-05-01,
    run date 2011-04-28, 2 eval days (about 110 requests, 107 users, 9.6k candidate rows)."""
    from quantrec.data.spec import load_spec, resolve_data_url
    from quantrec.data.tasks import TaskConfig, prepare_run
    from quantrec.data.windows import WindowConfig

    df = pd.read_parquet(resolve_data_url(load_spec()))
    df = df[(df["InvoiceDate"] >= SLICE_START) & (df["InvoiceDate"] < SLICE_END)]
    path = tmp_path_factory.mktemp("shadow_slice") / "retail_slice.parquet"
    df.to_parquet(path, index=False)
    tables = prepare_run(SLICE_RUN_DATE, data=str(path),
                         config=TaskConfig(windows=WindowConfig(eval_days=2, val_days=3, train_days=45),
                                           purchase_train_days=7))
    purchase = tables.tables["purchase"]
    return tables.tables["replay"], purchase[purchase["split"] == "val"].reset_index(drop=True)
