"""No train/serve skew, on a real-data slice, a real redis-server and the pipeline's own
models (RQ-Reg GMV challenger, DMQN purchase model, the shadow stage's calibrator).

The service's answer for a request (user, candidates, time) is compared with what the
OFFLINE pipeline computes for the same rows of the replay table (the eval window's
requests, features built by ``build_task_tables``), with exactly the calls the shadow
stage makes for the challenger arm (``quantrec.stages.shadow``):

    p_offline     = DMQNModel.predict(replay_rows, ModelInputs(events=events))
    value_offline = IsotonicCalibrator(knots of the shadow stage's decision.json).apply(
                        RQRegModel.predict(replay_rows))
    score_offline = p_offline * value_offline

The cache is refreshed as of the replay's last day D (so D's requests are what the
service would have been asked that day). States are stored in float32 here (tolerance
1e-5 relative: DMQN batches users differently offline); float16, the production
default, is checked separately against its own bound.
"""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pandas as pd
import pytest

from quantrec.data import schema as S
from quantrec.data.features import build_aggregates, join_features
from quantrec.models import ModelInputs, load_model
from quantrec.registry import Registry
from quantrec.serving.codec import ValueSchema
from quantrec.serving.service import ScoringService, ServiceConfig
from quantrec.shadow.calibration import IsotonicCalibrator
from serving_fixtures import write_values

RTOL = 1e-5


@pytest.fixture(scope="module")
def offline(served_version, served_values):
    values, day, events, replay = served_values
    v = Registry(served_version["registry"]).get(served_version["version"])
    gmv, dmqn = load_model(v.artifact("models/rqreg")), load_model(v.artifact("models/dmqn"))
    decision = json.loads((served_version["root"] / "decision.json").read_text())
    cal = decision["challenger"]["calibration"]
    calibrator = IsotonicCalibrator(np.asarray(cal["knots_x"]), np.asarray(cal["knots_y"]), cal["n_fit"])

    def score(rows: pd.DataFrame, history: pd.DataFrame = events) -> pd.DataFrame:
        p = dmqn.predict(rows, ModelInputs(events=history))
        value = calibrator.apply(gmv.predict(rows))
        return rows.assign(p=p, value=value, score=p * value)

    rows = replay[replay[S.DAY] == day].reset_index(drop=True)
    return {"score": score, "rows": score(rows), "day": day, "events": events, "values": values}


def _serve(service, rows: pd.DataFrame, shift_days: int = 0, user: str | None = None) -> pd.DataFrame:
    """Score each request (user-day) of ``rows`` through the service; one row per candidate."""
    out = []
    for (uid, _), g in rows.groupby([S.USER, S.DAY], sort=False):
        ts = pd.Timestamp(g[S.TS].iloc[0]) + pd.Timedelta(days=shift_days)
        res = service.score(user or uid, list(g[S.ITEM]), ts.isoformat(), country=str(g[S.COUNTRY].iloc[0]))
        for c in res.items:
            out.append({S.USER: uid, S.ITEM: c.item_id, "p_srv": c.p_purchase, "value_srv": c.expected_gmv,
                        "score_srv": c.score, "cold": res.cold_start, "miss": res.cache_miss,
                        "version": res.version})
    return rows.merge(pd.DataFrame(out), on=[S.USER, S.ITEM], how="left", validate="one_to_one")


def _assert_equal(both: pd.DataFrame, rtol: float = RTOL) -> None:
    assert both["p_srv"].notna().all()
    np.testing.assert_allclose(both["p_srv"], both["p"], rtol=rtol, atol=0)
    np.testing.assert_allclose(both["value_srv"], both["value"], rtol=1e-12, atol=0)  # features bit-equal
    np.testing.assert_allclose(both["score_srv"], both["score"], rtol=rtol, atol=0)


@pytest.fixture
def service(redis_client, served_version, offline):
    write_values(redis_client, offline["values"])
    svc = ScoringService(ServiceConfig(registry=served_version["registry"], events=served_version["paths"]["events"]),
                         client=redis_client)
    yield svc
    svc.client.close()


def test_service_scores_equal_the_offline_pipeline_for_every_request_of_the_day(service, offline, served_version):
    both = _serve(service, offline["rows"])
    _assert_equal(both)
    assert set(both["version"]) == {served_version["version"]}
    # cached users and users new that day (cold starts) are both in the comparison
    assert (~both["cold"]).sum() > 50 and both["cold"].sum() > 0 and not both["miss"].any()


def test_a_user_missing_from_the_cache_is_computed_from_history_with_the_same_scores(service, offline, redis_client):
    rows = offline["rows"]
    cached = rows[[service.reader.read(u).user is not None for u in rows[S.USER]]]
    user = cached[S.USER].value_counts().index[0]
    keys = [service.reader.keys.user(offline["values"].version, user),
            service.reader.keys.pairs(offline["values"].version, user)]
    assert redis_client.delete(*keys) >= 1  # as if the user arrived after the refresh
    both = _serve(service, rows[rows[S.USER] == user])
    _assert_equal(both)
    assert both["miss"].all() and not both["cold"].any()
    assert service.metrics.misses._value.get() == 1.0


def test_without_an_events_table_a_missing_user_is_a_cold_start(redis_client, served_version, offline):
    write_values(redis_client, offline["values"])
    svc = ScoringService(ServiceConfig(registry=served_version["registry"]), client=redis_client)
    res = svc.score("no-such-user", ["85123A", "22423"], f"{offline['day'].date()}T10:00")
    assert res.cold_start and not res.cache_miss and svc.metrics.cold_starts._value.get() == 1.0


def test_a_cold_start_equals_offline_scoring_of_a_user_without_history(service, offline):
    """An unknown user: the offline row of a user never seen (features from join_features
    over the day's aggregates: NaN user and pair features) scored by the same models."""
    rows = offline["rows"]
    req = rows[rows[S.USER] == rows[S.USER].iloc[0]].copy()
    req[S.USER] = "never-seen-user"
    feats = join_features(build_aggregates(offline["events"], as_of=offline["day"]), req)
    req[S.NUMERIC_FEATURES] = feats[S.NUMERIC_FEATURES].to_numpy()
    expected = offline["score"](req.drop(columns=["p", "value", "score"]))
    both = _serve(service, expected)
    _assert_equal(both)
    assert both["cold"].all()


def test_a_request_days_after_the_refresh_equals_offline_features_of_that_day(service, offline):
    """Recency and tenure move with the request day (the measured shift), so the GMV value
    equals the offline value of a row on D + 3; the purchase state is the refresh's (as of
    D: DMQN's cluster ages count from D until the next refresh), so p equals the offline p
    on D."""
    shift = 3
    rows = offline["rows"]
    users = rows[S.USER].drop_duplicates().iloc[:12]
    on_d = rows[rows[S.USER].isin(users)]
    later = on_d.drop(columns=["p", "value", "score"]).copy()
    later[S.DAY] = later[S.DAY] + pd.Timedelta(days=shift)
    later[S.TS] = later[S.TS] + pd.Timedelta(days=shift)
    history = offline["events"][offline["events"][S.DAY] < offline["day"]]
    feats = join_features(build_aggregates(history), later)
    later[S.NUMERIC_FEATURES] = feats[S.NUMERIC_FEATURES].to_numpy()
    value_later = offline["score"](later, history)["value"].to_numpy()
    expected = on_d.assign(value=value_later, score=on_d["p"].to_numpy() * value_later)
    both = _serve(service, expected, shift_days=shift)
    _assert_equal(both)
    assert not np.allclose(value_later, on_d["value"])  # the shift mattered for some rows


def test_float16_states_move_scores_by_less_than_one_percent(redis_client, served_version, offline):
    values = offline["values"]
    half = dataclasses.replace(values, user_schema=ValueSchema("user", values.user_schema.shape,
                                                               values.user_schema.fields, dtype="float16",
                                                               agg_dtype="float64"))
    write_values(redis_client, half)
    svc = ScoringService(ServiceConfig(registry=served_version["registry"]), client=redis_client)
    rows = offline["rows"]
    both = _serve(svc, rows[rows[S.USER].isin(rows[S.USER].drop_duplicates().iloc[:15])])
    rel = np.abs(both["p_srv"] / both["p"] - 1)
    assert rel.max() < 1e-2
    np.testing.assert_allclose(both["value_srv"], both["value"], rtol=1e-12, atol=0)
