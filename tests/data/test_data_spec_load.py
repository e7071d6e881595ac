from __future__ import annotations

import pandas as pd
import pytest
import yaml

from raw_frames import make_raw
from quantrec.data import schema as S
from quantrec.data.load import DataError, load_transactions, to_canonical
from quantrec.data.spec import DatasetSpec, SpecError, load_spec, resolve_data_url


def test_default_spec_resolves_the_shared_dataset(default_spec):
    url = resolve_data_url(default_spec)
    assert url.endswith("shared/data/online_retail_ii/online_retail_ii.parquet")
    assert default_spec.columns[S.USER] == "CustomerID"


def test_data_url_overrides_by_argument_and_env(default_spec, monkeypatch):
    assert resolve_data_url(default_spec, "gs://b/x.parquet") == "gs://b/x.parquet"
    monkeypatch.setenv("QUANTREC_DATA", "/elsewhere/t.parquet")
    assert resolve_data_url(default_spec) == "/elsewhere/t.parquet"


@pytest.mark.parametrize("raw, message", [
    ({"name": "x", "columns": {"user_id": "u", "item_id": "i", "quantity": "q"}}, "required roles"),
    # without unit_price or value a spec is an interaction table (tests/data/test_data_interactions.py);
    # a unit price needs a quantity to make a line's GMV
    ({"name": "x", "columns": {"user_id": "u", "item_id": "i", "ts": "t", "unit_price": "p"}}, "unit_price"),
    ({"name": "x", "columns": {"user_id": "u", "item_id": "i", "ts": "t", "quantity": "q",
                               "unit_price": "p", "colour": "c"}}, "unknown roles"),
    ({"columns": {}}, "lacks the key 'name'"),
])
def test_malformed_specs_are_named(raw, message):
    with pytest.raises(SpecError, match=message):
        DatasetSpec.from_dict(raw)


def test_spec_file_errors(tmp_path):
    with pytest.raises(SpecError, match="not found"):
        load_spec(str(tmp_path / "absent.yaml"))
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [unclosed")
    with pytest.raises(SpecError, match="not valid YAML"):
        load_spec(str(bad))


def test_canonical_types_and_derived_columns(default_spec):
    raw = make_raw([{"Quantity": 3, "UnitPrice": 2.5},
                    {"InvoiceNo": "C9", "Quantity": -3, "UnitPrice": 2.5},
                    {"CustomerID": None}])
    df = to_canonical(raw, default_spec)
    assert df[S.USER].tolist()[:2] == ["12345", "12345"] and pd.isna(df[S.USER].iloc[2])
    assert df[S.VALUE].tolist() == [7.5, -7.5, 1.0]
    assert df[S.IS_CANCELLATION].tolist() == [False, True, False]
    assert (df[S.DAY] == pd.Timestamp("2011-01-03")).all()


def test_file_url_and_csv_load_the_same(tmp_path, default_spec):
    raw = make_raw([{"Quantity": q} for q in (1, 2, 3)])
    raw.to_parquet(tmp_path / "t.parquet")
    via_url = load_transactions(f"file://{tmp_path}/t.parquet", default_spec)
    csv_spec = DatasetSpec.from_dict({**yaml.safe_load(open(default_spec.source_file)), "format": "csv"})
    raw.to_csv(tmp_path / "t.csv", index=False)
    via_csv = load_transactions(str(tmp_path / "t.csv"), csv_spec)
    pd.testing.assert_frame_equal(via_url, via_csv)


def test_before_keeps_only_earlier_days(tmp_path, default_spec):
    raw = make_raw([{"InvoiceDate": pd.Timestamp(d)} for d in ("2011-01-03 09:00", "2011-01-04 23:59", "2011-01-05 00:00")])
    raw.to_parquet(tmp_path / "t.parquet")
    df = load_transactions(str(tmp_path / "t.parquet"), default_spec, before=pd.Timestamp("2011-01-05"))
    assert len(df) == 2


@pytest.mark.parametrize("mutate, message", [
    (lambda r: r.drop(columns=["StockCode"]), r"lacks the column\(s\) \['StockCode'\]"),
    (lambda r: r.assign(Quantity=["a", "b"]), "non-numeric values"),
    (lambda r: r.assign(CustomerID=[None, None]), "every value of the user id column"),
    (lambda r: r.assign(InvoiceDate=["yesterday", "today"]), "cannot be read as timestamps"),
    (lambda r: r.iloc[:0], "has no rows"),
])
def test_bad_tables_get_named_errors(tmp_path, default_spec, mutate, message):
    raw = mutate(make_raw([{}, {"Quantity": 2}]))
    path = tmp_path / "t.parquet"
    raw.to_parquet(path)
    with pytest.raises(DataError, match=message):
        load_transactions(str(path), default_spec)


def test_corrupt_and_missing_files(tmp_path, default_spec):
    path = tmp_path / "t.parquet"
    path.write_bytes(b"this is not parquet at all")
    with pytest.raises(DataError, match="not a readable parquet file"):
        load_transactions(str(path), default_spec)
    with pytest.raises(DataError, match="not found.*DOI 10.24432/C5CG6D"):
        load_transactions(str(tmp_path / "absent.parquet"), default_spec)


def test_gs_url_without_credentials_fails_fast(default_spec, monkeypatch):
    monkeypatch.delenv("GOOGLE_APPLICATION_CREDENTIALS", raising=False)
    monkeypatch.delenv("QUANTREC_GCS_TOKEN", raising=False)
    monkeypatch.setenv("CLOUDSDK_CONFIG", "/nonexistent-gcloud-config")
    with pytest.raises(DataError, match="no Google Cloud credentials"):
        load_transactions("gs://quantrec-missing-bucket/t.parquet", default_spec)
