from __future__ import annotations

import pandas as pd
import pytest

from slice_config import SLICE_END, SLICE_START

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
