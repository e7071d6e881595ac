"""Turn the official UCI Online Retail II workbook into the parquet the default spec reads.

The workbook (DOI 10.24432/C5CG6D) has two sheets, "Year 2009-2010" and "Year 2010-2011",
whose days 2010-12-01..09 overlap with identical rows; those are kept once. Columns are
renamed to the layout of ``specs/online_retail_ii.yaml``. Nothing is downloaded here:
the user fetches the workbook from UCI and passes its path.
"""

from __future__ import annotations

import zipfile

import fsspec
import pandas as pd

from quantrec.data.load import DataError

RENAME = {"Invoice": "InvoiceNo", "Price": "UnitPrice", "Customer ID": "CustomerID"}
COLUMNS = ["InvoiceNo", "StockCode", "Description", "Quantity", "InvoiceDate", "UnitPrice",
           "CustomerID", "Country", "source_sheet"]


def import_uci_workbook(workbook: str, out: str) -> dict[str, int]:
    """Read both sheets, drop the overlap of the second, write zstd parquet; returns counts.

    A missing or unreadable workbook raises DataError (a ValueError) naming the path:
    the CLI prints it as one line.
    """
    try:
        with fsspec.open(workbook, "rb") as f:
            sheets = pd.read_excel(f, sheet_name=None, dtype={"Invoice": str, "StockCode": str})
    except FileNotFoundError:
        raise DataError(f"workbook not found: {workbook}. Download online_retail_II.xlsx from UCI "
                        "(DOI 10.24432/C5CG6D) and pass its path") from None
    except IsADirectoryError:
        raise DataError(f"{workbook} is a directory, not the UCI workbook (.xlsx)") from None
    except (zipfile.BadZipFile, ValueError) as exc:  # not an xlsx: "File is not a zip file", format unknown
        raise DataError(f"{workbook} is not a readable Excel workbook ({exc})") from None
    frames = []
    for name, df in sheets.items():
        df = df.rename(columns=RENAME)
        missing = [c for c in COLUMNS[:-1] if c not in df.columns]
        if missing:
            raise DataError(f"{workbook}: sheet {name!r} lacks the columns {missing}; is this "
                             "the Online Retail II workbook from UCI?")
        df["source_sheet"] = name.replace("Year ", "")
        frames.append(df[COLUMNS])
    frames.sort(key=lambda d: d["InvoiceDate"].min())
    out_frames, overlap = [frames[0]], 0
    for df in frames[1:]:
        last = out_frames[-1]["InvoiceDate"].max().normalize() + pd.Timedelta(days=1)
        first_days = df["InvoiceDate"] < last
        overlap += int(first_days.sum())
        out_frames.append(df[~first_days])
    table = pd.concat(out_frames, ignore_index=True)
    table["CustomerID"] = table["CustomerID"].astype("float64")
    with fsspec.open(out, "wb") as f:
        table.to_parquet(f, compression="zstd", index=False)
    return {"sheets": len(frames), "rows": len(table), "overlap_rows_dropped": overlap}
