from __future__ import annotations

import pandas as pd
import pytest

# A small run on a slice of the real data: four months, short windows.
SLICE_START, SLICE_END = "2011-01-04", "2011-05-01"
SLICE_RUN_DATE = "2011-04-28"
SLICE_CONFIG = {"tasks": {"windows": {"eval_days": 2, "val_days": 3, "train_days": 45},
                          "purchase_days": 7}}


@pytest.fixture(scope="session")
def real_slice(tmp_path_factory) -> str:
    """The real default data restricted to SLICE_START..SLICE_END, as a parquet file."""
    from quantrec.data.spec import load_spec, resolve_data_url
    src = resolve_data_url(load_spec())
    df = pd.read_parquet(src)
    df = df[(df["InvoiceDate"] >= SLICE_START) & (df["InvoiceDate"] < SLICE_END)]
    path = tmp_path_factory.mktemp("slice") / "retail_slice.parquet"
    df.to_parquet(path, index=False)
    return str(path)
