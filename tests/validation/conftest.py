"""Fixtures for the validation gate: a small synthetic store in the default spec's columns.

The synthetic data carries the real dirt the gate must let through (guest lines,
a cancellation, an exact duplicate, an "Adjust bad debt" line with code B and a
negative price) so that each bad-input test changes exactly one thing.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

FIRST_DAY = pd.Timestamp("2011-01-03")  # a Monday
N_DAYS = 50  # calendar days; Saturdays have no trading like the real store
LAST_DAY = FIRST_DAY + pd.Timedelta(days=N_DAYS - 1)
RUN_DATE = str((LAST_DAY + pd.Timedelta(days=1)).date())


def pytest_configure(config):
    config.addinivalue_line("markers", "real_data: runs on the real default dataset (a few seconds)")


def synthetic_raw(seed: int = 0) -> pd.DataFrame:
    """~40 trading days x 30 lines in Online Retail II layout, with realistic dirt."""
    rng = np.random.default_rng(seed)
    rows = []
    inv = 500000
    for d in range(N_DAYS):
        day = FIRST_DAY + pd.Timedelta(days=d)
        if day.weekday() == 5:
            continue
        for k in range(30):
            inv += 1
            guest = k % 5 == 0  # 20% guest lines, like the real ~22%
            rows.append({"InvoiceNo": str(inv), "StockCode": f"2{rng.integers(1000, 1040)}",
                         "Description": "item", "Quantity": int(rng.integers(1, 12)),
                         "InvoiceDate": day + pd.Timedelta(hours=9, minutes=k),
                         "UnitPrice": float(rng.choice([0.85, 1.25, 2.95, 4.95])),
                         "CustomerID": np.nan if guest else float(12000 + rng.integers(0, 40)),
                         "Country": "United Kingdom"})
    df = pd.DataFrame(rows)
    last = df["InvoiceDate"].dt.normalize() == df["InvoiceDate"].dt.normalize().max()
    i = df.index[last][3]
    cancel = {**df.loc[i].to_dict(), "InvoiceNo": "C" + df.loc[i, "InvoiceNo"],
              "Quantity": -df.loc[i, "Quantity"], "InvoiceDate": df.loc[i, "InvoiceDate"] + pd.Timedelta(hours=1)}
    bad_debt = {**df.loc[i].to_dict(), "InvoiceNo": "A999999", "StockCode": "B", "Quantity": 1,
                "UnitPrice": -1234.5, "CustomerID": np.nan, "Description": "Adjust bad debt"}
    dup = df.loc[df.index[last][5]].to_dict()
    return pd.concat([df, pd.DataFrame([cancel, bad_debt, dup])], ignore_index=True)


def write_parquet(df: pd.DataFrame, path: Path) -> str:
    df.to_parquet(path, index=False)
    return str(path)


def snapshot(folder: Path) -> dict[str, str]:
    """File name -> sha256 of every file under ``folder``: proves a run changed nothing."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(autouse=True)
def _no_env_overrides(monkeypatch):
    """The tests pass data and spec explicitly; a developer's env must not redirect them."""
    for var in ("QUANTREC_DATA", "QUANTREC_SPEC", "QUANTREC_GCS_TOKEN"):
        monkeypatch.delenv(var, raising=False)


@pytest.fixture(scope="session")
def raw() -> pd.DataFrame:
    """Shared by all tests: copy before mutating (``raw.copy()`` / ``assign``)."""
    return synthetic_raw()


@pytest.fixture(scope="session")
def run_date() -> str:
    """The day after the synthetic data's last day: a fresh daily run."""
    return RUN_DATE


@pytest.fixture(scope="session")
def last_day() -> pd.Timestamp:
    return LAST_DAY


@pytest.fixture
def write(tmp_path):
    """write(df, name="t.parquet") -> path of ``df`` as parquet in a fresh data folder."""
    folder = tmp_path / "data"
    folder.mkdir()
    return lambda df, name="t.parquet": write_parquet(df, folder / name)


@pytest.fixture
def unchanged(tmp_path):
    """unchanged(fn): run fn() and assert no file under tmp_path was added or modified."""
    def check(fn):
        before = snapshot(tmp_path)
        out = fn()
        assert snapshot(tmp_path) == before, "validation must not write or modify any file"
        return out
    return check
