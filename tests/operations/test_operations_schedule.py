"""`quantrec schedule` against a KFP v2beta1 API server on loopback (tests/operations/fake_kfp.py):
the requests kfp.Client sends are asserted (cron, max_concurrency 1, catch-up, parameters,
the pipeline version upload), and the cron conversion is checked on its own."""

from __future__ import annotations

import argparse
import hashlib
import json

import pytest

from fake_kfp import FakeKfp
from pipelines import schedule as S


def _cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="quantrec")
    S.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.func(args)


@pytest.fixture
def kfp_server():
    server = FakeKfp()
    yield server
    server.stop()


def test_five_field_cron_gets_seconds_first_six_field_is_kept():
    assert S.kfp_cron("10 10 * * *")[0] == "0 10 10 * * *"      # 10:10 daily, not hourly
    six, note = S.kfp_cron("0 2 * * 1-5")
    assert six == "0 0 2 * * 1-5" and "converted" in note and "seconds first" in note
    assert S.kfp_cron("30 0 2 * * *") == ("30 0 2 * * *", "six-field cron '30 0 2 * * *' (seconds first, "
                                                            "KFP's form) used as given")
    assert S.kfp_cron("  0   2 * *  * ")[0] == "0 0 2 * * *"
    assert S.kfp_cron("@daily")[0] == "@daily"
    for bad in ("", "0 2 * *", "0 0 2 * * * 2026", "0 2 * * ; rm", "every day"):
        with pytest.raises(S.ScheduleError, match="is not a cron expression"):
            S.kfp_cron(bad)


def test_create_daily_schedule_sends_what_kfp_needs(kfp_server, monkeypatch, capsys):
    monkeypatch.setenv("QUANTREC_KFP_TOKEN", "sekrit-token-123")
    cfg = {"models": {"preset": "small"}}
    code = _cli(["schedule", "create", "--host", kfp_server.url, "--cron", "0 2 * * *", "--data", "gs://b/retail.parquet",
                 "--registry", "gs://b/registry", "--checkpoints", "gs://b/ckpt", "--config", json.dumps(cfg)])
    assert code == 0
    out = capsys.readouterr().out
    assert "converted to KFP's six-field form with seconds first: '0 0 2 * * *'" in out
    assert "sekrit" not in out
    # every request carried the token as a bearer header
    assert all(r.headers.get("authorization") == "Bearer sekrit-token-123" for r in kfp_server.requests)

    exp = kfp_server.calls("POST", "/apis/v2beta1/experiments")
    assert len(exp) == 1 and exp[0].body["display_name"] == "quantrec"
    pipe = kfp_server.calls("POST", "/apis/v2beta1/pipelines")
    assert len(pipe) == 1 and pipe[0].body["display_name"] == "quantrec-daily"
    upload = kfp_server.calls("POST", "/apis/v2beta1/pipelines/upload_version")
    yaml_bytes = S.PIPELINES["daily"].package.read_bytes()
    assert len(upload) == 1 and upload[0].body["uploadfile"] == yaml_bytes
    assert upload[0].query["name"] == f"v{S.__version__}-{hashlib.sha256(yaml_bytes).hexdigest()[:12]}"
    (pipeline_id,) = kfp_server.pipelines
    (experiment_id,) = kfp_server.experiments
    (version_id,) = kfp_server.versions
    assert upload[0].query["pipelineid"] == pipeline_id

    (rr,) = kfp_server.calls("POST", "/apis/v2beta1/recurringruns")
    body = rr.body
    assert body["trigger"]["cron_schedule"]["cron"] == "0 0 2 * * *"
    assert int(body["max_concurrency"]) == 1 and body["no_catchup"] is True and body["mode"] == "ENABLE"
    assert body["display_name"] == "quantrec-daily" and body["experiment_id"] == experiment_id
    assert body["pipeline_version_reference"] == {"pipeline_id": pipeline_id, "pipeline_version_id": version_id}
    assert "pipeline_spec" not in body or body["pipeline_spec"] is None
    assert body["runtime_config"]["parameters"] == {
        "run_date": "", "data": "gs://b/retail.parquet", "spec": "", "config": cfg, "registry": "gs://b/registry",
        "rebuild_codebook": "auto", "checkpoints": "gs://b/ckpt"}


def test_recreating_reuses_the_pipeline_version_and_refuses_a_duplicate_name(kfp_server, capsys):
    base = ["schedule", "create", "--host", kfp_server.url, "--cron", "0 2 * * *"]
    assert _cli(base) == 0
    with pytest.raises(S.ScheduleError, match="already has a recurring run named 'quantrec-daily'"):
        _cli(base)
    assert _cli(base + ["--name", "daily-eu", "--paused"]) == 0
    assert "already uploaded: reused" in capsys.readouterr().out
    assert len(kfp_server.calls("POST", "/apis/v2beta1/pipelines/upload_version")) == 1
    assert len(kfp_server.calls("POST", "/apis/v2beta1/pipelines")) == 1
    assert len(kfp_server.calls("POST", "/apis/v2beta1/experiments")) == 1
    runs = kfp_server.calls("POST", "/apis/v2beta1/recurringruns")
    assert [r.body["mode"] for r in runs] == ["ENABLE", "DISABLE"]
    assert runs[0].body["pipeline_version_reference"] == runs[1].body["pipeline_version_reference"]


def test_monitoring_schedule_with_catchup(kfp_server):
    assert _cli(["schedule", "create", "--host", kfp_server.url, "--pipeline", "monitoring", "--cron",
                 "30 5 * * *", "--catchup", "--registry", "gs://b/registry", "--experiment", "ops"]) == 0
    (rr,) = kfp_server.calls("POST", "/apis/v2beta1/recurringruns")
    assert rr.body["display_name"] == "quantrec-daily-monitoring" and rr.body["no_catchup"] is False
    assert rr.body["trigger"]["cron_schedule"]["cron"] == "0 30 5 * * *"
    assert rr.body["runtime_config"]["parameters"] == {"run_date": "", "data": "", "spec": "",
                                                       "registry": "gs://b/registry", "codebook": "", "config": {}}
    (upload,) = kfp_server.calls("POST", "/apis/v2beta1/pipelines/upload_version")
    assert upload.body["uploadfile"] == S.PIPELINES["monitoring"].package.read_bytes()


def test_list_pause_resume_delete(kfp_server, capsys):
    assert _cli(["schedule", "create", "--host", kfp_server.url, "--cron", "0 2 * * *"]) == 0
    assert _cli(["schedule", "create", "--host", kfp_server.url, "--pipeline", "monitoring", "--cron", "0 3 * * *"]) == 0
    capsys.readouterr()
    assert _cli(["schedule", "list", "--host", kfp_server.url]) == 0
    listing = capsys.readouterr().out.splitlines()
    assert listing[0].split()[:4] == ["id", "name", "mode", "cron"]
    assert any("quantrec-daily " in line and "0 0 2 * * *" in line for line in listing)
    assert any("quantrec-daily-monitoring" in line and "0 0 3 * * *" in line for line in listing)
    daily_id = next(rid for rid, r in kfp_server.recurring.items() if r["display_name"] == "quantrec-daily")

    assert _cli(["schedule", "pause", "--host", kfp_server.url, "quantrec-daily"]) == 0      # by name
    assert kfp_server.calls("POST", f"/apis/v2beta1/recurringruns/{daily_id}:disable")
    assert kfp_server.recurring[daily_id]["mode"] == "DISABLE"
    assert _cli(["schedule", "resume", "--host", kfp_server.url, daily_id]) == 0             # by id
    assert kfp_server.recurring[daily_id]["mode"] == "ENABLE"
    assert _cli(["schedule", "delete", "--host", kfp_server.url, "quantrec-daily"]) == 0
    assert kfp_server.calls("DELETE", f"/apis/v2beta1/recurringruns/{daily_id}")
    assert [r["display_name"] for r in kfp_server.recurring.values()] == ["quantrec-daily-monitoring"]
    with pytest.raises(S.ScheduleError, match="no recurring run with id or name 'quantrec-daily'"):
        _cli(["schedule", "pause", "--host", kfp_server.url, "quantrec-daily"])


def test_bad_input_fails_before_any_request_and_errors_are_one_line(kfp_server):
    from quantrec.config import ConfigError
    with pytest.raises(ConfigError):
        _cli(["schedule", "create", "--host", kfp_server.url, "--cron", "0 2 * * *",
              "--config", '{"models": {"presett": "small"}}'])
    with pytest.raises(S.ScheduleError, match="not a cron expression"):
        _cli(["schedule", "create", "--host", kfp_server.url, "--cron", "0 2 * *"])
    assert kfp_server.requests == []
    # an unknown experiment is a KFP answer turned into one line
    with pytest.raises(S.ScheduleError, match="No experiment is found with name nope"):
        _cli(["schedule", "list", "--host", kfp_server.url, "--experiment", "nope"])


def test_unreachable_host_is_one_clear_error(monkeypatch):
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    monkeypatch.setenv("QUANTREC_KFP_TOKEN", "sekrit-token-123")
    with pytest.raises(S.ScheduleError, match=f"cannot reach the KFP API at http://127.0.0.1:{port}") as exc:
        _cli(["schedule", "list", "--host", f"http://127.0.0.1:{port}"])
    assert "sekrit" not in str(exc.value)


def test_quantrec_cli_reports_schedule_errors_in_one_redacted_line(monkeypatch, capsys):
    import socket

    from pipelines.cli import main
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("QUANTREC_KFP_TOKEN", "sekrit-token-123")
    assert main(["schedule", "list", "--host", f"http://user:pw-xyz@127.0.0.1:{port}"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("quantrec schedule: error: cannot reach the KFP API")
    assert "pw-xyz" not in err and "sekrit" not in err
