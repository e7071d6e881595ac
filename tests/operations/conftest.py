"""Fixtures of the operations tests: the real-data slice (tests/pipelines/slice_config.py),
a GCS server on loopback, fake KFP / Kubernetes API servers (their own modules)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "pipelines"))  # slice_config
from slice_config import SLICE_END, SLICE_START  # noqa: E402

from gcs_server import GcsServer  # noqa: E402


@pytest.fixture(scope="session")
def ops_slice(tmp_path_factory) -> str:
    """The real default data restricted to SLICE_START..SLICE_END, as a parquet file."""
    from quantrec.data.spec import load_spec, resolve_data_url
    df = pd.read_parquet(resolve_data_url(load_spec()))
    df = df[(df["InvoiceDate"] >= SLICE_START) & (df["InvoiceDate"] < SLICE_END)]
    path = tmp_path_factory.mktemp("ops_slice") / "retail_slice.parquet"
    df.to_parquet(path, index=False)
    return str(path)


@pytest.fixture(scope="module")
def gcs(tmp_path_factory):
    """A fake-gcs-server on loopback; this process's environment points gs:// at it for
    the module (restored afterwards)."""
    server = GcsServer(tmp_path_factory.mktemp("gcs") / "fake-gcs-server.log")
    saved = {k: os.environ.get(k) for k in server.env()}
    os.environ.update(server.env())
    try:
        yield server
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        server.stop()
        import gcsfs.core
        gcsfs.core.GCSFileSystem.clear_instance_cache()  # cached instances talk to this server
