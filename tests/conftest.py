"""Shared fixtures: the real default dataset (loaded once per session) and small frames."""

from __future__ import annotations

import os

import pandas as pd
import pytest

os.environ.setdefault("DO_NOT_TRACK", "1")  # Evidently telemetry off
os.environ.setdefault("NO_GCE_CHECK", "true")  # no metadata-server probe in tests

from quantrec.data import schema as S  # noqa: E402


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


def make_raw(rows: list[dict]) -> pd.DataFrame:
    """A raw frame in the default spec's column names (Online Retail II layout)."""
    base = {"InvoiceNo": "1", "StockCode": "85123A", "Description": "x", "Quantity": 1,
            "InvoiceDate": pd.Timestamp("2011-01-03 10:00"), "UnitPrice": 1.0,
            "CustomerID": 12345.0, "Country": "United Kingdom"}
    return pd.DataFrame([{**base, **r} for r in rows])
