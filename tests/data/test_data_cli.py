from __future__ import annotations

import pandas as pd
import pytest

from pipelines.cli import main
from quantrec.data import schema as S
from quantrec.data.load import load_transactions


def _sheet(days: list[str], start_invoice: int) -> pd.DataFrame:
    return pd.DataFrame({
        "Invoice": [str(start_invoice + i) for i in range(len(days))],
        "StockCode": ["85123A"] * len(days), "Description": ["HEART"] * len(days),
        "Quantity": [2] * len(days), "InvoiceDate": pd.to_datetime(days),
        "Price": [2.55] * len(days), "Customer ID": [17850.0] * len(days),
        "Country": ["United Kingdom"] * len(days)})


def test_import_uci_workbook_drops_the_overlap_and_loads_with_the_default_spec(tmp_path, default_spec):
    book = tmp_path / "online_retail_II.xlsx"
    with pd.ExcelWriter(book) as xw:
        _sheet(["2010-11-30 10:00", "2010-12-01 09:00", "2010-12-09 12:00"], 1).to_excel(xw, "Year 2009-2010", index=False)
        _sheet(["2010-12-01 09:00", "2010-12-09 12:00", "2010-12-10 08:00"], 1).to_excel(xw, "Year 2010-2011", index=False)
    out = tmp_path / "retail.parquet"
    assert main(["import-uci", str(book), str(out)]) == 0
    df = load_transactions(str(out), default_spec)
    assert len(df) == 4  # 3 + 3, less the 2 rows of the overlapping days
    assert df[S.DAY].dt.strftime("%Y-%m-%d").tolist() == ["2010-11-30", "2010-12-01", "2010-12-09", "2010-12-10"]
    assert (df[S.VALUE] == 5.1).all() and (df[S.USER] == "17850").all()


def test_import_uci_refuses_another_workbook(tmp_path):
    book = tmp_path / "other.xlsx"
    pd.DataFrame({"a": [1]}).to_excel(book, sheet_name="Sheet1", index=False)
    with pytest.raises(ValueError, match="Online Retail II workbook"):
        from quantrec.data.uci_import import import_uci_workbook
        import_uci_workbook(str(book), str(tmp_path / "x.parquet"))


def test_cli_errors_are_one_clear_line(tmp_path, capsys):
    assert main(["tasks", "--out", str(tmp_path), "--date", "2009-01-01"]) == 2
    err = capsys.readouterr().err
    assert "no rows before 2009-01-01" in err and "2009-12-01" in err and "Traceback" not in err


def test_cli_validate_exit_codes(tmp_path, capsys):
    ok = main(["validate", "--date", "2011-12-10", "--out", str(tmp_path / "ok")])
    assert ok == 0 and "passed" in capsys.readouterr().out
    assert (tmp_path / "ok" / "validation.html").exists()
    stale = main(["validate", "--date", "2012-03-01", "--out", str(tmp_path / "stale")])
    out = capsys.readouterr().out
    assert stale == 1 and "FAILED" in out and "newest data at most 14 days" in out and "83" in out
