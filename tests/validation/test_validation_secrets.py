"""Issue 7 §3: no secret reaches the gate's message, summary, JSON or HTML; hosts that
cannot be reached are said to be unreachable, not "data file not found"."""

from __future__ import annotations

import json

import pytest

from validation.runner import run_validation

TOKEN = "ya29.a0-super-secret-token"
PASSWORD = "pw-S3CRET-77"


def _outputs(res, tmp_path) -> dict[str, str]:
    jpath, hpath = res.write(str(tmp_path / "out" / "v.json"), str(tmp_path / "out" / "v.html"))
    return {"message": res.message(), "summary": json.dumps(res.summary()), "error": str(res.error),
            "json": open(jpath).read(), "html": open(hpath).read()}


@pytest.mark.parametrize("url, fragment", [
    (f"https://alice:{PASSWORD}@no-such-host.invalid/x.parquet",
     "cannot reach host no-such-host.invalid for https://alice:***@no-such-host.invalid/x.parquet"),
    (f"gs://alice:{PASSWORD}@some-bucket/x.parquet", "gs://alice:***@some-bucket/x.parquet"),
])
def test_credentials_in_data_urls_and_the_gcs_token_never_reach_outputs(url, fragment, monkeypatch, tmp_path,
                                                                      run_date):
    monkeypatch.setenv("QUANTREC_GCS_TOKEN", TOKEN)  # gcsfs is handed it for gs:// URLs
    res = run_validation(run_date, data=url)
    assert not res.passed and fragment in res.message()
    for name, text in _outputs(res, tmp_path).items():
        assert PASSWORD not in text and TOKEN not in text, name


def test_the_token_is_masked_wherever_it_appears_also_in_a_passing_report(raw, tmp_path, run_date, monkeypatch):
    monkeypatch.setenv("QUANTREC_GCS_TOKEN", TOKEN)
    folder = tmp_path / f"data-{TOKEN}"  # a secret echoed back in a path, say by a library
    folder.mkdir()
    raw.to_parquet(folder / "t.parquet", index=False)
    res = run_validation(run_date, data=str(folder / "t.parquet"))
    assert res.passed, res.message()
    outputs = _outputs(res, tmp_path)
    for name, text in outputs.items():
        assert TOKEN not in text, name
    assert "data-***" in outputs["html"] and "data-***" in outputs["summary"]


def test_an_unresolvable_host_is_not_a_missing_file(run_date):
    res = run_validation(run_date, data="https://no-such-host.invalid/x.parquet")
    assert "cannot reach host no-such-host.invalid" in res.message()
    assert "not found" not in res.message()
