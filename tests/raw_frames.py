"""Small raw frames in the default spec's column names, for unit tests."""

from __future__ import annotations

import pandas as pd


def make_raw(rows: list[dict]) -> pd.DataFrame:
    """A raw frame in the default spec's column names (Online Retail II layout)."""
    base = {"InvoiceNo": "1", "StockCode": "85123A", "Description": "x", "Quantity": 1,
            "InvoiceDate": pd.Timestamp("2011-01-03 10:00"), "UnitPrice": 1.0,
            "CustomerID": 12345.0, "Country": "United Kingdom"}
    return pd.DataFrame([{**base, **r} for r in rows])
