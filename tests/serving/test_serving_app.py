"""The HTTP service (FastAPI TestClient) on a real redis-server and real models: ranked
answers with both parts, 4xx with a message for bad requests, 503 while Redis is down and
recovery without a restart, readiness, Prometheus metrics, and a pointer flip / rollback
that switches the models with the values."""

from __future__ import annotations

import time

import warnings

import pandas as pd
import pytest

with warnings.catch_warnings():  # starlette 1.x prefers httpx2 for its TestClient; httpx works
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

from quantrec.data import schema as S
from quantrec.registry import Registry
from quantrec.serving.app import create_app
from quantrec.serving.cache import CacheStore
from quantrec.serving.redis_server import free_port
from quantrec.serving.service import ScoringService, ServiceConfig
from serving_fixtures import write_values


def _metric(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{") and line.split(" ")[0] == name:
            return float(line.rsplit(" ", 1)[1])
    return 0.0


@pytest.fixture(scope="module")
def request_rows(served_values):
    values, day, events, replay = served_values
    rows = replay[replay[S.DAY] == day]
    cached = set(values.blocks.user_ids)
    user = next(u for u in rows[S.USER] if u in cached)
    mine = rows[rows[S.USER] == user]
    return {"user": user, "items": list(mine[S.ITEM]), "ts": pd.Timestamp(mine[S.TS].iloc[0]).isoformat(),
            "day": day, "catalogue": list(values.blocks.item_ids)}


def _service(client, served_version, **kw) -> ScoringService:
    cfg = ServiceConfig(registry=served_version["registry"], events=served_version["paths"]["events"],
                        max_candidates=50, **kw)
    return ScoringService(cfg, client=client)


@pytest.fixture
def api(redis_client, served_version, served_values):
    write_values(redis_client, served_values[0])
    svc = _service(redis_client, served_version)
    with TestClient(create_app(svc)) as client:
        yield client, svc


def test_score_ranks_candidates_with_both_parts(api, request_rows, served_version):
    client, svc = api
    r = client.post("/score", json={"user_id": request_rows["user"], "candidates": request_rows["items"],
                                    "ts": request_rows["ts"]})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["version"] == served_version["version"] and body["user_id"] == request_rows["user"]
    assert not body["cold_start"] and not body["cache_miss"]
    got = body["candidates"]
    assert sorted(c["item_id"] for c in got) == sorted(request_rows["items"])
    assert [c["score"] for c in got] == sorted((c["score"] for c in got), reverse=True)
    for c in got:
        assert c["score"] == pytest.approx(c["p_purchase"] * c["expected_gmv"], rel=1e-12)
        assert 0 < c["p_purchase"] < 1 and c["expected_gmv"] > 0 and c["predicted_gmv"] > 0
    # an aware time is taken in UTC; no time = the server clock (a day after the as-of day: valid)
    assert client.post("/score", json={"user_id": request_rows["user"], "candidates": request_rows["items"][:2],
                                       "ts": request_rows["ts"] + "+01:00"}).status_code == 200
    now = client.post("/score", json={"user_id": request_rows["user"], "candidates": request_rows["items"][:2]})
    assert now.status_code == 200 and pd.Timestamp(now.json()["ts"]).year >= 2026


@pytest.mark.parametrize("body, message", [
    ({"user_id": "u", "candidates": []}, "candidates: List should have at least 1 item"),
    ({"user_id": "u", "candidates": [f"i{k}" for k in range(51)]}, "candidates: List should have at most 50"),
    ({"user_id": "u", "candidates": ["a"], "limit": 3}, "limit: Extra inputs are not permitted"),
    ({"user_id": 12346, "candidates": ["a"]}, "user_id: Input should be a valid string"),
    ({"user_id": "u", "candidates": ["a", 22423]}, "candidates.1: Input should be a valid string"),
    ({"candidates": ["a"]}, "user_id: Field required"),
    ({"user_id": "u", "candidates": ["a", "a"]}, "duplicate item ids"),
    ({"user_id": "u", "candidates": ["a", ""]}, "empty item id"),
    ({"user_id": "u", "candidates": ["a"], "ts": "yesterday-ish"}, "ts: Input should be a valid datetime"),
    ({"user_id": "u", "candidates": ["a"], "ts": "2010-01-01T10:00:00"}, "before the cache's as-of day"),
])
def test_bad_requests_get_422_with_a_message_and_are_counted(api, body, message):
    client, svc = api
    r = client.post("/score", json=body)
    assert r.status_code == 422 and message in r.json()["detail"], r.text
    text = client.get("/metrics").text
    assert _metric(text, 'quantrec_score_requests_total{outcome="bad_request"}') == 1.0
    assert _metric(text, 'quantrec_score_requests_total{outcome="ok"}') == 0.0


def test_health_readiness_and_metrics(api, request_rows, served_version):
    client, svc = api
    assert client.get("/healthz").json() == {"status": "ok"}
    deadline = time.monotonic() + 120
    r = client.get("/readyz")
    while r.status_code != 200 and time.monotonic() < deadline:  # the first call starts the load
        assert r.json()["version"] == served_version["version"] and r.status_code == 503
        time.sleep(0.2)
        r = client.get("/readyz")
    assert r.status_code == 200 and r.json()["models"] == r.json()["version"] == served_version["version"]
    client.post("/score", json={"user_id": request_rows["user"], "candidates": request_rows["items"]})
    client.post("/score", json={"user_id": "somebody-new", "candidates": request_rows["items"][:3],
                                "ts": request_rows["ts"]})
    text = client.get("/metrics").text
    assert _metric(text, "quantrec_score_seconds_count") == 2.0
    assert _metric(text, 'quantrec_score_requests_total{outcome="ok"}') == 2.0
    assert _metric(text, "quantrec_cold_starts_total") == 1.0
    assert _metric(text, "quantrec_cache_misses_total") == 0.0
    assert _metric(text, 'quantrec_model_loads_total{outcome="ok"}') == 1.0
    assert f'quantrec_serving_version_info{{version="{served_version["version"]}"}} 1.0' in text


def test_an_empty_cache_is_not_ready_and_answers_503(redis_client, served_version, request_rows):
    svc = ScoringService(ServiceConfig(registry=served_version["registry"], prefix="nothing-here"),
                         client=redis_client)
    with TestClient(create_app(svc)) as client:
        r = client.get("/readyz")
        assert r.status_code == 503 and "no active version" in r.json()["reason"]
        r = client.post("/score", json={"user_id": "u", "candidates": ["a"]})
        assert r.status_code == 503 and "run a refresh first" in r.json()["detail"]
        assert _metric(client.get("/metrics").text, 'quantrec_score_requests_total{outcome="unavailable"}') == 1.0


def test_redis_down_then_back_the_service_recovers_without_a_restart(own_server, tmp_path, served_version,
                                                                     served_values, request_rows):
    server = own_server(port=free_port(), workdir=tmp_path / "redis", password="s3cret-pw")
    write_values(server.client(), served_values[0])
    svc = _service(server.client(socket_timeout=1.0, socket_connect_timeout=1.0), served_version)
    body = {"user_id": request_rows["user"], "candidates": request_rows["items"], "ts": request_rows["ts"]}
    with TestClient(create_app(svc)) as client:
        assert client.post("/score", json=body).status_code == 200
        server.stop()
        down = client.post("/score", json=body)
        assert down.status_code == 503 and "unreachable" in down.json()["detail"]
        assert "s3cret-pw" not in down.text
        assert client.get("/readyz").status_code == 503
        server.start()  # back, empty (a cache may lose everything): the next refresh fills it
        assert "no active version" in client.post("/score", json=body).json()["detail"]
        write_values(server.client(), served_values[0])
        assert client.post("/score", json=body).status_code == 200
        text = client.get("/metrics").text
        assert _metric(text, 'quantrec_errors_total{kind="CacheUnavailableError"}') == 1.0
        assert _metric(text, 'quantrec_score_requests_total{outcome="ok"}') == 2.0


def test_a_pointer_flip_switches_models_with_values_and_rollback_flips_back(api, redis_client, served_version,
                                                                            served_values, request_rows):
    client, svc = api
    reg = Registry(served_version["registry"])
    v1 = reg.get(served_version["version"])
    v2_name = served_version["version"] + "-b"
    if v2_name not in reg.versions():
        meta = {k: v1.manifest[k] for k in ("roles", "decision")}
        reg.publish({a: v1.artifact(a) for a in v1.manifest["artifacts"]}, v1.manifest["run_date"], meta,
                    name=v2_name)
    body = {"user_id": request_rows["user"], "candidates": request_rows["items"], "ts": request_rows["ts"]}
    first = client.post("/score", json=body).json()
    write_values(redis_client, served_values[0], version=v2_name)  # a refresh flips the pointer
    second = client.post("/score", json=body).json()
    assert (first["version"], second["version"]) == (v1.name, v2_name)
    assert [c["score"] for c in second["candidates"]] == [c["score"] for c in first["candidates"]]  # same content
    assert CacheStore(redis_client, progress=False).rollback() == v1.name
    assert client.post("/score", json=body).json()["version"] == v1.name
    text = client.get("/metrics").text
    assert _metric(text, 'quantrec_model_loads_total{outcome="ok"}') == 2.0  # v1 stayed loaded
    assert client.get("/readyz").json()["version"] == v1.name
