"""Score one request: cached (or computed) values + loaded models -> ranked candidates. PURE.

No I/O here: ``service`` reads the cache and loads the models, this module only
computes, so the same function scores a request in the service, in a test and in a
benchmark. What it computes, per candidate c of user u at request time t (day D):

    features  the GMV features of (u, c, t): the cached user / item / pair blocks
              (``refresh``: join_features at the as-of day), + (D - as_of) days on the
              features measured to shift with the day, the context block of t;
              NaN where u or c has no history (a cold user, an unseen item, a pair
              never bought), exactly as a task table row would have them
    value     the GMV model's prediction, mapped through the calibrator the shadow stage
              fitted for this version (centred isotonic: E[GMV | prediction])
    p         the purchase model's score of c from u's state (the empty-history state
              for a cold user); 1 without a purchase model (the shadow stage's rule).
              The state is the refresh's: as of the as-of day (DMQN's cluster ages count
              from it), so a request days later scores like a request on the as-of day
              until the next daily refresh (the paper's offline-state design)
    score     p x calibrated value; candidates ranked by it, ties in request order.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import pandas as pd

from quantrec.data import schema as S
from quantrec.serving.refresh import COUNTRY_FIELD, FeatureLayout, UserValues


class ScoringInputError(ValueError):
    """A request the version cannot score as asked (e.g. a time before its as-of day)."""


def context_features(ts: np.ndarray) -> dict[str, np.ndarray]:
    """The context block of ``join_features`` for request times ``ts`` (n,) datetime64:
    weekday (Monday = 0), hour and month as float64 (n,). ``refresh.check_context`` proves
    it equal to ``join_features`` at every refresh and model load."""
    t = pd.DatetimeIndex(np.asarray(ts, dtype="datetime64[ns]"))
    return {"weekday": t.weekday.to_numpy(dtype=np.float64), "hour": t.hour.to_numpy(dtype=np.float64),
            "month": t.month.to_numpy(dtype=np.float64)}


@dataclass
class ServingModels:
    """The models of one registry version, as the scorer uses them.

    gmv: ``predict(frame) -> (n,)`` currency units (the version's GMV challenger);
    calibrator: ``apply(values) -> (n,)`` (the shadow stage's, from the version's
    decision), None = values used as given (calibration "none"); purchase: a model with
    ``score(state, items) -> (n,)`` probabilities, None = p = 1; cold_state: its state of
    a user without history (C, d + 1) float32.
    """

    version: str
    layout: FeatureLayout
    gmv: Any
    calibrator: Any
    purchase: Any = None
    cold_state: np.ndarray | None = None
    gmv_name: str = ""
    purchase_name: str | None = None


@dataclass
class ScoredItem:
    item_id: str
    score: float          # p_purchase x expected_gmv
    p_purchase: float     # in [0, 1]
    expected_gmv: float   # calibrated, currency units
    predicted_gmv: float  # the GMV model's raw prediction, currency units


@dataclass
class Scored:
    """The ranked candidates of one request (best first) and how they were computed.

    cold_start: the user had no history (no cached value and none computed); cache_miss:
    the user's values were computed from history because the cache lacked them;
    unknown_items: candidates without cached item features (never sold before as_of).
    """

    version: str
    user_id: str
    ts: pd.Timestamp
    items: list[ScoredItem]
    cold_start: bool
    cache_miss: bool
    unknown_items: int

    def to_dict(self) -> dict[str, Any]:
        return {"version": self.version, "user_id": self.user_id, "ts": self.ts.isoformat(),
                "cold_start": self.cold_start, "cache_miss": self.cache_miss, "unknown_items": self.unknown_items,
                "candidates": [vars(i) for i in self.items]}


def user_from_value(value: Any, pairs: Sequence[Any] | None, items: Sequence[str],
                    layout: FeatureLayout, fields: Sequence[str]) -> UserValues | None:
    """A decoded cache user value (None = not cached) and its pair values (aligned with
    ``items``) -> ``UserValues``. ``fields``: the user schema's aggregate names."""
    if value is None:
        return None
    index = {f: i for i, f in enumerate(fields)}
    aggs = np.asarray(value.aggregates, dtype=np.float64)
    features = aggs[[index[f] for f in layout.user]]
    code = aggs[index[COUNTRY_FIELD]] if COUNTRY_FIELD in index else -1.0
    country = layout.countries[int(code)] if 0 <= code < len(layout.countries) else ""
    state = np.array(value.array, dtype=np.float32) if value.array.size else None  # a writable copy
    got = {items[k]: np.asarray(v.aggregates, dtype=np.float64) for k, v in enumerate(pairs or ()) if v is not None}
    return UserValues(state, features, country, got)


def item_matrix(values: Sequence[Any], width: int) -> np.ndarray:
    """Decoded item values (None = not cached) -> (R, width) float64, NaN rows for None."""
    out = np.full((len(values), width), np.nan)
    for k, v in enumerate(values):
        if v is not None:
            out[k] = v.aggregates
    return out


def feature_frame(layout: FeatureLayout, user_id: str, candidates: Sequence[str], ts: pd.Timestamp,
                  user: UserValues | None, items: np.ndarray, country: str | None = None) -> pd.DataFrame:
    """The rows a GMV model predicts from: USER, ITEM, COUNTRY, DAY, TS and every numeric
    feature of ``layout`` (float64, NaN = undefined), one row per candidate.

    items: (R, len(layout.item)) cached item features (NaN rows = unknown item).
    country: the request's country; None = the user's last known country.
    """
    ts = pd.Timestamp(ts)
    day = ts.normalize()
    shift = float((day - layout.as_of_day).days)
    if shift < 0:
        raise ScoringInputError(f"request time {ts} is before the cache's as-of day {layout.as_of}: the "
                                f"cached values hold history up to that day and would leak the future")
    n = len(candidates)
    cols: dict[str, Any] = {}
    user_feats = user.features if user is not None else np.full(len(layout.user), np.nan)
    for j, name in enumerate(layout.user):
        cols[name] = np.full(n, user_feats[j])
    for j, name in enumerate(layout.item):
        cols[name] = items[:, j].copy()
    pair = np.full((n, len(layout.pair)), np.nan)
    if user is not None and user.pairs:
        for k, c in enumerate(candidates):
            got = user.pairs.get(c)
            if got is not None:
                pair[k] = got
    for j, name in enumerate(layout.pair):
        cols[name] = pair[:, j]
    if shift:
        for name in layout.day_shift:
            cols[name] = cols[name] + shift  # NaN stays NaN
    ts64 = np.full(n, np.datetime64(ts.to_datetime64(), "ns"))
    cols.update(context_features(ts64))
    who = country if country is not None else (user.country if user is not None else "")
    frame = {S.USER: np.full(n, user_id, dtype=object), S.ITEM: np.asarray(candidates, dtype=object),
             S.COUNTRY: np.full(n, who, dtype=object),
             S.DAY: np.full(n, np.datetime64(day.to_datetime64(), "ns")), S.TS: ts64}
    frame.update((name, cols[name]) for name in layout.numeric)
    return pd.DataFrame(frame)


def score_request(models: ServingModels, user_id: str, candidates: Sequence[str], ts: pd.Timestamp,
                  user: UserValues | None, items: np.ndarray, country: str | None = None,
                  cache_miss: bool = False) -> Scored:
    """Rank ``candidates`` (R,) of ``user_id`` at ``ts`` (see the module docstring).

    user: the user's values (cached or computed from history), None = cold start;
    items: (R, len(layout.item)) cached item features, NaN rows for unknown items.
    """
    frame = feature_frame(models.layout, user_id, candidates, ts, user, items, country)
    predicted = np.asarray(models.gmv.predict(frame), dtype=np.float64)
    expected = (np.asarray(models.calibrator.apply(predicted), dtype=np.float64)
                if models.calibrator is not None else predicted)
    if models.purchase is None:
        p = np.ones(len(candidates))
    else:
        state = user.state if user is not None and user.state is not None else models.cold_state
        if state is None:
            raise ScoringInputError(f"version {models.version}: no state for user {user_id!r} and no "
                                    f"cold-start state")
        p = np.asarray(models.purchase.score(state, np.asarray(candidates, dtype=object)), dtype=np.float64)
    score = p * expected
    order = np.argsort(-score, kind="stable")
    ranked = [ScoredItem(str(candidates[k]), float(score[k]), float(p[k]), float(expected[k]), float(predicted[k]))
              for k in order]
    unknown = int(np.isnan(items).all(axis=1).sum()) if items.shape[1] else 0
    return Scored(models.version, user_id, pd.Timestamp(ts), ranked, cold_start=user is None,
                  cache_miss=cache_miss, unknown_items=unknown)
