"""The value-shape history features (spread, price level, last day) by hand: every one
from strictly earlier days, NaN without history, the same through ``latest()`` (what
serving joins)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from quantrec.data import schema as S
from quantrec.data.features import build_aggregates, join_features


def _lines(rows):
    df = pd.DataFrame(rows)
    df[S.TS] = pd.to_datetime(df[S.TS])
    df[S.DAY] = df[S.TS].dt.normalize()
    df[S.VALUE] = df[S.QUANTITY] * df[S.UNIT_PRICE]
    for c in (S.USER, S.ITEM, S.ORDER, S.COUNTRY):
        df[c] = df.get(c, "x")
        df[c] = df[c].astype("string")
    return df


LINES = _lines([
    {S.USER: "u", S.ITEM: "a", S.ORDER: "1", S.TS: "2011-01-03 10:00", S.QUANTITY: 2.0, S.UNIT_PRICE: 5.0},
    {S.USER: "u", S.ITEM: "b", S.ORDER: "1", S.TS: "2011-01-03 10:00", S.QUANTITY: 1.0, S.UNIT_PRICE: 3.0},
    {S.USER: "v", S.ITEM: "a", S.ORDER: "2", S.TS: "2011-01-04 09:00", S.QUANTITY: 12.0, S.UNIT_PRICE: 4.0},
    {S.USER: "v", S.ITEM: "a", S.ORDER: "2", S.TS: "2011-01-04 09:00", S.QUANTITY: 6.0, S.UNIT_PRICE: 4.0},
    {S.USER: "u", S.ITEM: "a", S.ORDER: "3", S.TS: "2011-01-05 11:00", S.QUANTITY: 4.0, S.UNIT_PRICE: 5.0},
    {S.USER: "v", S.ITEM: "b", S.ORDER: "4", S.TS: "2011-01-05 12:00", S.QUANTITY: 1.0, S.UNIT_PRICE: 3.0},
])


def test_value_shape_features_by_hand():
    f = join_features(build_aggregates(LINES), LINES)
    lg = np.log1p(LINES[S.VALUE].to_numpy())
    # u on 01-05 (row 4): history = u's two lines of 01-03 (gmv 10 and 3)
    r = f.loc[4]
    assert r.u_log_gmv_std == pytest.approx(np.std(lg[[0, 1]]))
    assert r.u_log_price_mean == pytest.approx(np.mean(np.log1p([5.0, 3.0])))
    assert r.u_last_day_log_gmv_mean == pytest.approx(np.mean(lg[[0, 1]]))
    # item a on 01-05: lines of 01-03 (u: 2 x 5) and 01-04 (v: 12 x 4, 6 x 4)
    assert r.i_log_gmv_std == pytest.approx(np.std(lg[[0, 2, 3]]))
    assert r.i_log_price_mean == pytest.approx(np.mean(np.log1p([5.0, 4.0, 4.0])))
    assert r.i_qty_last == 9.0                       # median quantity of a's last day (01-04)
    # v on 01-05 (row 5): its last active day is 01-04, two lines
    assert f.loc[5].u_last_day_log_gmv_mean == pytest.approx(np.mean(lg[[2, 3]]))
    assert f.loc[5].i_qty_last == 1.0                # item b last sold 01-03, 1 unit
    # a user or item without earlier lines has no value (NaN), not 0
    for c in ("u_log_gmv_std", "u_log_price_mean", "u_last_day_log_gmv_mean", "i_log_gmv_std",
              "i_log_price_mean", "i_qty_last"):
        assert np.isnan(f.loc[0, c]), c
    # one earlier line: spread 0 (a defined value), never negative from rounding
    assert f.loc[2].i_log_gmv_std == 0.0 and (f[["u_log_gmv_std", "i_log_gmv_std"]].fillna(0) >= 0).all().all()


def test_value_shape_features_ignore_the_query_day_and_serve_the_same():
    agg = build_aggregates(LINES)
    q = LINES[LINES[S.DAY] == "2011-01-05"]

    def times_seven_from(day: str) -> pd.DataFrame:
        out = LINES.copy()
        out.loc[out[S.DAY] >= day, S.QUANTITY] *= 7
        out[S.VALUE] = out[S.QUANTITY] * out[S.UNIT_PRICE]
        return out

    cols = ["u_log_gmv_std", "u_last_day_log_gmv_mean", "i_log_gmv_std", "i_qty_last"]
    same = join_features(build_aggregates(times_seven_from("2011-01-05")), q)
    pd.testing.assert_frame_equal(join_features(agg, q), same)
    # negative control: a change on the day before does reach them
    earlier = join_features(build_aggregates(times_seven_from("2011-01-04")), q)
    assert not join_features(agg, q)[cols].equals(earlier[cols])
    next_day = q.assign(**{S.DAY: q[S.DAY] + pd.Timedelta(days=1)})         # a request on 01-06
    served = join_features(build_aggregates(LINES, as_of="2011-01-06").latest(), next_day)
    direct = join_features(agg, next_day)
    pd.testing.assert_frame_equal(served, direct)
