"""Issue 7 probes at the loading layer: future rows, ragged CSV, unreachable hosts, the UCI import."""

from __future__ import annotations

import pandas as pd
import pytest
import yaml

from raw_frames import make_raw
from quantrec.data.load import DataError, latest_day, load_transactions
from quantrec.data.spec import DatasetSpec

NOW = pd.Timestamp("2011-01-10 12:00")


def _table(tmp_path, days: list[str]) -> str:
    path = tmp_path / "t.parquet"
    make_raw([{"InvoiceNo": str(i), "InvoiceDate": pd.Timestamp(d)} for i, d in enumerate(days)]).to_parquet(path)
    return str(path)


def test_rows_after_now_are_an_error_and_do_not_move_the_latest_day(tmp_path, default_spec):
    path = _table(tmp_path, ["2011-01-03 10:00", "2011-01-10 09:00", "2012-02-14 08:00", "2013-02-13 08:00"])
    with pytest.raises(DataError, match=r"2 row\(s\) are dated in the future: after 2011-01-10 12:00 UTC") as e:
        load_transactions(path, default_spec, now=NOW)
    assert "order_id=2" in str(e.value) and "up to 2013-02-13 08:00:00" in str(e.value)
    with pytest.raises(DataError, match=r"2 row\(s\) are dated in the future"):
        latest_day(path, default_spec, now=NOW)


def test_clock_skew_tolerance(tmp_path, default_spec):
    # 20 h ahead of "now" is within the default 24 h (time zones, clock skew); 30 h is not
    path = _table(tmp_path, ["2011-01-03 10:00", "2011-01-11 08:00"])
    assert latest_day(path, default_spec, now=NOW) == pd.Timestamp("2011-01-11")
    assert len(load_transactions(path, default_spec, now=NOW)) == 2
    later = _table(tmp_path, ["2011-01-03 10:00", "2011-01-11 18:00"])
    with pytest.raises(DataError, match=r"1 row\(s\) are dated in the future"):
        latest_day(later, default_spec, now=NOW)


def test_tz_aware_timestamps_are_compared_in_utc(tmp_path, default_spec):
    # 2011-01-11 02:00+14:00 is 2011-01-10 12:00 UTC: not in the future of NOW + 0 h
    df = make_raw([{"InvoiceDate": pd.Timestamp("2011-01-11 02:00", tz="Pacific/Kiritimati")}])
    df.to_parquet(tmp_path / "tz.parquet")
    spec = DatasetSpec.from_dict({**yaml.safe_load(open(default_spec.source_file)),
                                  "validation": {"clock_skew_hours": 0}})
    assert latest_day(str(tmp_path / "tz.parquet"), spec, now=NOW) == pd.Timestamp("2011-01-10")


def test_ragged_csv_names_the_file_and_line(tmp_path, default_spec):
    csv_spec = DatasetSpec.from_dict({**yaml.safe_load(open(default_spec.source_file)), "format": "csv"})
    path = tmp_path / "t.csv"
    lines = make_raw([{}, {}, {}]).to_csv(index=False).splitlines()
    lines[2] += ",1,2"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match=r"t.csv is not a readable CSV file: .*Expected 8 fields in line 3, saw 10"):
        load_transactions(str(path), csv_spec)


def test_binary_bytes_as_csv(tmp_path, default_spec):
    csv_spec = DatasetSpec.from_dict({**yaml.safe_load(open(default_spec.source_file)), "format": "csv"})
    path = tmp_path / "t.csv"
    path.write_bytes(b"\xff\xfe\x00\x81" * 100)
    with pytest.raises(DataError, match="not a readable CSV file"):
        load_transactions(str(path), csv_spec)


def test_unresolvable_host(default_spec):
    with pytest.raises(DataError, match="cannot reach host no-such-host.invalid") as e:
        load_transactions("https://u:secretpw1@no-such-host.invalid/t.parquet", default_spec)
    assert "secretpw1" not in str(e.value) and "not found" not in str(e.value)
    with pytest.raises(DataError, match="cannot reach host no-such-host.invalid"):
        latest_day("https://no-such-host.invalid/t.parquet", default_spec)


def test_import_uci_with_a_missing_workbook_is_one_clear_line(tmp_path, capsys):
    from pipelines.cli import main
    from quantrec.data.uci_import import import_uci_workbook

    missing = tmp_path / "online_retail_II.xlsx"
    with pytest.raises(DataError, match=f"workbook not found: {missing}"):
        import_uci_workbook(str(missing), str(tmp_path / "out.parquet"))
    assert main(["import-uci", str(missing), str(tmp_path / "out.parquet")]) != 0
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "workbook not found" in err and "Traceback" not in err
    not_excel = tmp_path / "notes.xlsx"
    not_excel.write_text("hello")
    with pytest.raises(DataError, match="is not a readable Excel workbook"):
        import_uci_workbook(str(not_excel), str(tmp_path / "out.parquet"))
