"""Write the default data as an interaction table (no prices) for benchmarks/specs/retail_interactions.yaml.

    .venv/bin/python benchmarks/derive_interactions.py --out /tmp/inter/retail_interactions.csv --start 2011-06-01

Keeps CustomerID -> visitor, StockCode -> sku, InvoiceDate -> time, Quantity -> units
(the spec's label: cancellations have negative units) for the lines from ``--start`` on
(and before ``--end``). Real data, only fewer columns: what a shop without prices in
its logs would hand over.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from quantrec.data.spec import load_spec, resolve_data_url  # noqa: E402

COLUMNS = {"CustomerID": "visitor", "StockCode": "sku", "InvoiceDate": "time", "Quantity": "units"}


def derive(source: str, start: str | None = None, end: str | None = None) -> pd.DataFrame:
    """The interaction table of the default-format parquet at ``source``, lines in [start, end)."""
    df = pd.read_parquet(source, columns=list(COLUMNS))
    if start:
        df = df[df["InvoiceDate"] >= pd.Timestamp(start)]
    if end:
        df = df[df["InvoiceDate"] < pd.Timestamp(end)]
    return df.rename(columns=COLUMNS).reset_index(drop=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True, help="CSV file to write")
    ap.add_argument("--data", default=None, help="source parquet (default: the default dataset)")
    ap.add_argument("--start", default=None, help="first day kept (YYYY-MM-DD)")
    ap.add_argument("--end", default=None, help="first day dropped (YYYY-MM-DD)")
    a = ap.parse_args(argv)
    table = derive(a.data or resolve_data_url(load_spec()), a.start, a.end)
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(a.out, index=False)
    print(f"{len(table):,} interactions, {table['visitor'].nunique():,} visitors, {table['sku'].nunique():,} skus "
          f"-> {a.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
