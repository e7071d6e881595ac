"""Shared fixtures: the real default dataset (loaded once per session) and small frames."""

from __future__ import annotations

import os

import pandas as pd
import pytest

os.environ.setdefault("DO_NOT_TRACK", "1")  # Evidently telemetry off
os.environ.setdefault("NO_GCE_CHECK", "true")  # no metadata-server probe in tests



@pytest.fixture(scope="session")
def default_spec():
    from quantrec.data.spec import load_spec
    return load_spec()


@pytest.fixture(scope="session")
def real_raw(default_spec) -> pd.DataFrame:
    """All canonical raw transactions of the default (real) dataset."""
    from quantrec.data.load import load_transactions
    from quantrec.data.spec import resolve_data_url
    return load_transactions(resolve_data_url(default_spec), default_spec)


@pytest.fixture(scope="session")
def real_lines(real_raw, default_spec) -> pd.DataFrame:
    """Cleaned purchase lines of the default dataset."""
    from quantrec.data.clean import clean_transactions
    return clean_transactions(real_raw, default_spec.cleaning)[0]
