"""The refresh_cache stage and component on a real redis-server (and the embedded one): only
the registry champion is written, the report (counts, bytes, seconds, verification) is an
artifact, the pointer then agrees with the champion, a retry is a no-op, a down server
fails with the report written and nothing flipped, and no password reaches any output."""

from __future__ import annotations

import json

import pytest
from kfp.dsl import Artifact, Dataset

from components.refresh_cache import refresh_cache
from quantrec.dataclass_io import ConfigError
from quantrec.serving.cache import CacheStore, CacheUnavailableError, connect
from quantrec.serving.redis_server import close_client
from quantrec.serving.refresh import CacheConfig
from quantrec.stages.refresh_cache import refresh_cache_stage


def test_the_component_refreshes_the_champion_and_reports(own_server, tmp_path, served_version, capsys):
    server = own_server(password="pw-not-to-print")
    report = Artifact(uri=str(tmp_path / "report.json"))
    status = refresh_cache.python_func(registry=served_version["registry"], version=served_version["version"],
                                       events=Dataset(uri=served_version["paths"]["events"]),
                                       config={"cache": {"keep": 2, "sample_size": 64}}, cache=server.url,
                                       report=report)
    assert status == "refreshed"
    out = json.loads((tmp_path / "report.json").read_text())
    assert out["version"] == out["active"] == served_version["version"] and out["previous"] is None
    assert out["as_of"] == served_version["run_date"] and out["purchase_model"] == "dmqn"
    assert out["users"] > 500 and out["items"] > 1000 and out["pairs"] > out["users"]
    assert out["bytes"] > 0 and set(out["seconds"]) >= {"features", "states", "write", "verify", "collect", "total"}
    ver = out["verification"]
    assert ver["key_counts_checked"] and ver["sampled_checksums"] == 3 * 64
    assert ver["users_read_back"] == 8 and ver["read_back_errors"] == []
    assert set(out["day_shift_features"]) == {"u_recency_days", "u_tenure_days", "i_recency_days"}
    assert report.metadata["status"] == "refreshed" and report.metadata["users"] == out["users"]
    printed = capsys.readouterr().out
    assert "cache refreshed" in printed
    for text in (printed, (tmp_path / "report.json").read_text(), json.dumps(report.metadata)):
        assert "pw-not-to-print" not in text
    client = server.client()
    status_now = CacheStore(client, progress=False).status(champion=served_version["version"])
    assert status_now["agrees_with_champion"] and status_now["versions"][0]["pairs"] == out["pairs"]
    # a retried task does nothing twice
    again = refresh_cache_stage(served_version["registry"], served_version["version"],
                                served_version["paths"]["events"], server.url, CacheConfig(), "")
    assert again["status"] == "noop" and "already the active" in again["reason"]


def test_the_embedded_cache_of_a_local_run(tmp_path, served_version):
    """cache = a folder: the embedded Redis a local run uses; active_days keeps the recent
    users only (the service computes the others from history)."""
    folder = tmp_path / "cache"
    out = refresh_cache_stage(served_version["registry"], served_version["version"],
                              served_version["paths"]["events"], str(folder), CacheConfig(active_days=2),
                              str(tmp_path / "r.json"), progress=False)
    assert out["status"] == "refreshed" and 0 < out["users"] < 200 and "embedded" in out["server"]
    client = connect(None, embedded_dir=folder)
    try:
        assert CacheStore(client, progress=False).active_version() == served_version["version"]
    finally:
        close_client(client)


def test_only_the_champion_is_written(redis_client, served_version, tmp_path):
    out = refresh_cache_stage(served_version["registry"], "2011-02-25-notchampion", served_version["paths"]["events"],
                              "", CacheConfig(), str(tmp_path / "r.json"), client=redis_client)
    assert out["status"] == "skipped" and "is not the registry champion" in out["reason"]
    assert CacheStore(redis_client, progress=False).active_version() is None
    assert json.loads((tmp_path / "r.json").read_text())["status"] == "skipped"
    assert refresh_cache_stage("", "", "", "", CacheConfig(), "")["reason"].startswith("no registry")


def test_no_cache_configured_is_skipped_with_a_reason(served_version, monkeypatch):
    monkeypatch.delenv("QUANTREC_REDIS_URL", raising=False)
    monkeypatch.delenv("REDIS_URL", raising=False)
    out = refresh_cache_stage(served_version["registry"], served_version["version"],
                              served_version["paths"]["events"], "", CacheConfig(), "")
    assert out["status"] == "skipped" and "no cache configured" in out["reason"]


def test_a_down_server_fails_with_the_report_written(own_server, served_version, tmp_path):
    server = own_server(password="pw-not-to-print")
    url = server.url
    server.stop()
    with pytest.raises(CacheUnavailableError, match="cannot reach"):
        refresh_cache_stage(served_version["registry"], served_version["version"],
                            served_version["paths"]["events"], url, CacheConfig(), str(tmp_path / "r.json"))
    text = (tmp_path / "r.json").read_text()
    assert json.loads(text)["status"] == "failed" and "pw-not-to-print" not in text


def test_cache_config_errors_name_the_key():
    with pytest.raises(ConfigError, match="cache.bogus"):
        CacheConfig.from_run_config({"cache": {"bogus": 1}})
    with pytest.raises(ConfigError, match="state_dtype"):
        CacheConfig.from_run_config({"cache": {"state_dtype": "int8"}})
    assert CacheConfig.from_run_config({"models": {}}) == CacheConfig()
    assert CacheConfig.from_run_config({"cache": {"keep": 3.0}}).keep == 3  # KFP sends floats
