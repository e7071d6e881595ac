"""The scorer (pure) and the cached feature blocks on synthetic lines: a request's features
from the cache equal the offline join_features on ANY request day >= as_of; the day
shift is measured, never assumed (a negative control shows it matters); ranking,
calibration, cold start and bad request times."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from quantrec.data import schema as S
from quantrec.data.features import build_aggregates, join_features
from quantrec.serving import refresh as R
from quantrec.serving import scorer as SC
from quantrec.shadow.calibration import IsotonicCalibrator
from serving_synth import LinearGMV, StatePurchase, synth_lines

AS_OF = "2011-02-20"


def _user_values(values: R.CacheValues, user: str) -> R.UserValues | None:
    """What the service decodes from the cache for ``user`` (None = not cached)."""
    b = values.blocks
    hit = np.flatnonzero(b.user_ids == user)
    if not hit.size:
        return None
    k = hit[0]
    mine = b.pair_users == user
    return R.UserValues(None, b.user[k], str(b.user_country[k]),
                        {str(i): b.pair[j] for j, i in zip(np.flatnonzero(mine), b.pair_items[mine])})


def _item_rows(values: R.CacheValues, candidates: list[str]) -> np.ndarray:
    pos = {str(i): k for k, i in enumerate(values.blocks.item_ids)}
    out = np.full((len(candidates), len(values.layout.item)), np.nan)
    for r, c in enumerate(candidates):
        if c in pos:
            out[r] = values.blocks.item[pos[c]]
    return out


@pytest.fixture(scope="module")
def lines():
    return synth_lines()


@pytest.fixture(scope="module")
def values(lines):
    return R.build_cache_values("v1", lines, AS_OF, None, progress=False)


def test_measured_day_shift_and_context_match_the_schema(values):
    assert set(values.layout.day_shift) == {"u_recency_days", "u_tenure_days", "i_recency_days"}
    assert values.layout.numeric == S.NUMERIC_FEATURES
    assert values.layout.as_of == AS_OF and values.layout.countries == ("EIRE", "France", "United Kingdom")
    R.check_context(AS_OF)  # scorer.context_features == join_features' context block


@pytest.mark.parametrize("days_after", [0, 1, 17])
def test_cached_features_equal_offline_join_on_any_later_day(lines, values, days_after):
    """Users with history, a user without any, items sold and never sold, pairs bought and
    not: the frame the scorer builds equals join_features over the FULL aggregates (the
    task-table path) at the request's time."""
    aggs = build_aggregates(lines, as_of=AS_OF)
    ts = pd.Timestamp(AS_OF) + pd.Timedelta(days=days_after, hours=14, minutes=5)
    candidates = ["i0", "i3", "i7", "i19", "i39", "never-sold"]
    pairs_seen = 0
    for user in ["u0", "u4", "u11", "u24", "never-bought"]:
        user_vals = _user_values(values, user)
        frame = SC.feature_frame(values.layout, user, candidates, ts, user_vals, _item_rows(values, candidates))
        queries = pd.DataFrame({S.USER: [user] * len(candidates), S.ITEM: candidates,
                                S.DAY: np.full(len(candidates), np.datetime64(ts.normalize().to_datetime64(), "ns")),
                                S.TS: np.full(len(candidates), np.datetime64(ts.to_datetime64(), "ns"))})
        offline = join_features(aggs, queries)
        np.testing.assert_array_equal(frame[S.NUMERIC_FEATURES].to_numpy(), offline[S.NUMERIC_FEATURES].to_numpy())
        pairs_seen += int(frame["ui_lines"].notna().sum())
    assert pairs_seen >= 3  # the pair block was exercised, not only NaN


def test_without_the_day_shift_a_later_request_would_be_skewed(lines, values):
    """Negative control: drop the measured shift and a request 5 days later no longer equals
    the offline features (recency and tenure differ by 5 days)."""
    frozen = R.FeatureLayout(**{**values.layout.__dict__, "day_shift": ()})
    ts = pd.Timestamp(AS_OF) + pd.Timedelta(days=5, hours=9)
    user = values.blocks.user_ids[0]
    a = SC.feature_frame(values.layout, user, ["i1"], ts, _user_values(values, user), _item_rows(values, ["i1"]))
    b = SC.feature_frame(frozen, user, ["i1"], ts, _user_values(values, user), _item_rows(values, ["i1"]))
    assert a["u_recency_days"].iloc[0] - b["u_recency_days"].iloc[0] == 5.0


def test_lines_on_or_after_as_of_never_reach_the_cache(lines, values):
    later = synth_lines(n=200, start=AS_OF, days=10, seed=9)
    more = R.build_cache_values("v1", pd.concat([lines, later], ignore_index=True), AS_OF, None, progress=False)
    np.testing.assert_array_equal(more.blocks.user, values.blocks.user)
    np.testing.assert_array_equal(more.blocks.pair, values.blocks.pair)
    assert list(more.blocks.item_ids) == list(values.blocks.item_ids)


def test_a_feature_that_moves_otherwise_with_the_day_is_refused():
    at = np.array([1.0, np.nan, 3.0])
    assert R._shifting("f", "user", at, at + 7, 7) is True
    assert R._shifting("f", "user", at, at.copy(), 7) is False
    with pytest.raises(R.FeatureLayoutError, match="other than by the elapsed days"):
        R._shifting("f", "user", at, at * 2, 7)
    with pytest.raises(R.FeatureLayoutError, match="becomes defined"):
        R._shifting("f", "user", at, np.array([1.0, 2.0, 3.0]), 7)


def test_a_wrong_context_function_is_caught(monkeypatch):
    def hour_off_by_one(ts):
        t = pd.DatetimeIndex(ts)
        return {"weekday": t.weekday.to_numpy(float), "hour": (t.hour.to_numpy(float) + 1) % 24,
                "month": t.month.to_numpy(float)}
    monkeypatch.setattr(SC, "context_features", hour_off_by_one)
    with pytest.raises(R.FeatureLayoutError, match="'hour'"):
        R.check_context(AS_OF)


def _models(values, purchase=None, calibrator=None, lines=None):
    cold = R.cold_state(purchase, values.layout.as_of) if purchase is not None else None
    return SC.ServingModels("v1", values.layout, LinearGMV(), calibrator, purchase, cold, "linear")


def test_ranking_by_p_times_calibrated_value_with_both_parts(values, lines):
    cal = IsotonicCalibrator(np.array([0.0, 10.0, 100.0]), np.array([1.0, 30.0, 120.0]), n_fit=3)
    purchase = StatePurchase()
    models = _models(values, purchase, cal)
    user = values.blocks.user_ids[3]
    uv = _user_values(values, user)
    _, states = purchase.user_states(lines, [user], AS_OF)
    uv.state = states[0]
    cands = ["i5", "i2", "i30", "never-sold"]
    ts = pd.Timestamp(AS_OF) + pd.Timedelta(hours=11)
    out = SC.score_request(models, user, cands, ts, uv, _item_rows(values, cands))
    frame = SC.feature_frame(values.layout, user, cands, ts, uv, _item_rows(values, cands))
    raw = LinearGMV().predict(frame)
    p = purchase.score(states[0], cands)
    want = p * cal.apply(raw)
    got = {c.item_id: c for c in out.items}
    for k, c in enumerate(cands):
        assert got[c].predicted_gmv == pytest.approx(raw[k]) and got[c].expected_gmv == pytest.approx(cal.apply(raw)[k])
        assert got[c].p_purchase == pytest.approx(p[k]) and got[c].score == pytest.approx(want[k])
    assert [c.item_id for c in out.items] == [cands[k] for k in np.argsort(-want, kind="stable")]
    assert out.unknown_items == 1 and not out.cold_start and not out.cache_miss


def test_cold_start_uses_the_empty_history_state_and_no_user_features(values):
    purchase = StatePurchase()
    models = _models(values, purchase)
    out = SC.score_request(models, "nobody", ["i1", "i2"], pd.Timestamp(AS_OF), None, _item_rows(values, ["i1", "i2"]))
    assert out.cold_start
    assert [c.p_purchase for c in sorted(out.items, key=lambda c: c.item_id)] == \
        pytest.approx(list(purchase.score(np.zeros((2, 3)), ["i1", "i2"])))
    frame = SC.feature_frame(values.layout, "nobody", ["i1"], pd.Timestamp(AS_OF), None, _item_rows(values, ["i1"]))
    assert frame[list(values.layout.user) + list(values.layout.pair)].isna().all(axis=None)
    assert frame[S.COUNTRY].iloc[0] == ""


def test_no_purchase_model_ranks_by_value_alone_and_ties_keep_request_order(values):
    models = _models(values)
    cands = ["never-1", "never-2", "never-3"]  # identical features: identical scores
    out = SC.score_request(models, "nobody", cands, pd.Timestamp(AS_OF), None, _item_rows(values, cands))
    assert [c.item_id for c in out.items] == cands and {c.p_purchase for c in out.items} == {1.0}


def test_request_country_overrides_the_users_last_country(values):
    models = _models(values)
    user = values.blocks.user_ids[1]
    uv = _user_values(values, user)
    ts = pd.Timestamp(AS_OF)
    own = SC.feature_frame(values.layout, user, ["i1"], ts, uv, _item_rows(values, ["i1"]))
    assert own[S.COUNTRY].iloc[0] == uv.country
    asked = SC.score_request(models, user, ["i1"], ts, uv, _item_rows(values, ["i1"]), country="France")
    other = SC.score_request(models, user, ["i1"], ts, uv, _item_rows(values, ["i1"]), country="EIRE")
    assert asked.items[0].predicted_gmv - other.items[0].predicted_gmv == pytest.approx(3.0)


def test_a_request_before_the_as_of_day_is_refused(values):
    with pytest.raises(SC.ScoringInputError, match="before the cache's as-of day 2011-02-20"):
        SC.score_request(_models(values), "u1", ["i1"], pd.Timestamp("2011-02-19 23:59"), None,
                         _item_rows(values, ["i1"]))


def test_user_values_from_history_equal_the_refreshed_values(lines, values):
    """The cache-miss path computes exactly what the refresh wrote for that user."""
    for user in values.blocks.user_ids[:5]:
        mine = lines[lines[S.USER] == user]
        got = R.user_values_from_history(mine, user, values.layout, StatePurchase())
        want = _user_values(values, user)
        np.testing.assert_array_equal(got.features, want.features)
        assert got.country == want.country and set(got.pairs) == set(want.pairs)
        for item, row in want.pairs.items():
            np.testing.assert_array_equal(got.pairs[item], row)
        assert got.state is not None and got.state.shape == (2, 3)


def test_request_time_rules():
    from quantrec.serving.service import request_time
    assert request_time("2011-02-21T10:00:00+01:00") == pd.Timestamp("2011-02-21 09:00")  # aware -> UTC, naive
    assert request_time("2011-02-21 10:00") == pd.Timestamp("2011-02-21 10:00")  # naive: the data's clock
    assert request_time(None).tzinfo is None and request_time(None).year >= 2026  # the server clock (UTC)
    for bad in ("soon", "NaT"):
        with pytest.raises(SC.ScoringInputError, match="is not a time"):
            request_time(bad)
