from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from quantrec.data import schema as S
from quantrec.data.features import build_aggregates, join_features


def history_features(lines, queries):
    """Features of ``queries`` from every line (the task builders' two steps)."""
    return join_features(build_aggregates(lines), queries)
from quantrec.data.tasks import (TABLE_SCHEMAS, TaskConfig, build_ltv_task, build_purchase_task,
                                 build_task_tables, read_table, write_table)
from quantrec.data.windows import WindowConfig, compute_windows


def lines_frame(rows):
    df = pd.DataFrame(rows)
    df[S.TS] = pd.to_datetime(df[S.TS])
    df[S.DAY] = df[S.TS].dt.normalize()
    df[S.VALUE] = df[S.QUANTITY] * df[S.UNIT_PRICE]
    for c in (S.USER, S.ITEM, S.ORDER, S.COUNTRY):
        df[c] = df.get(c, "x")
        df[c] = df[c].astype("string")
    return df


def test_history_features_by_hand():
    lines = lines_frame([
        {S.USER: "u", S.ITEM: "a", S.ORDER: "1", S.TS: "2011-01-03 10:00", S.QUANTITY: 2.0, S.UNIT_PRICE: 5.0},
        {S.USER: "u", S.ITEM: "b", S.ORDER: "1", S.TS: "2011-01-03 10:00", S.QUANTITY: 1.0, S.UNIT_PRICE: 3.0},
        {S.USER: "u", S.ITEM: "a", S.ORDER: "2", S.TS: "2011-01-05 11:00", S.QUANTITY: 4.0, S.UNIT_PRICE: 5.0},
        {S.USER: "v", S.ITEM: "a", S.ORDER: "3", S.TS: "2011-01-05 12:00", S.QUANTITY: 1.0, S.UNIT_PRICE: 6.0},
    ])
    f = history_features(lines, lines)
    # first day of u: no history at all
    assert f.loc[0, S.IS_NEW_USER] and np.isnan(f.loc[0, "u_lines"]) and np.isnan(f.loc[0, "i_lines"])
    # u on 01-05 buying a: sees day 01-03 only (not its own day)
    r = f.loc[2]
    assert (r.u_lines, r.u_days, r.u_orders, r.u_spend) == (2, 1, 1, 13.0)
    assert r.u_recency_days == 2 and r.u_tenure_days == 2
    assert r.u_log_order_gmv_mean == pytest.approx(np.log1p(13.0))
    assert r.i_lines == 1 and r.i_price_last == 5.0 and r.i_recency_days == 2
    assert r.ui_lines == 1 and r.ui_log_gmv_last == pytest.approx(np.log1p(10.0))
    assert (r.weekday, r.hour, r.month) == (2, 11, 1)
    # v on 01-05 is new but the item is known; the pair is not
    assert f.loc[3, S.IS_NEW_USER] and f.loc[3, "i_lines"] == 1 and np.isnan(f.loc[3, "ui_lines"])


def _perturb_from(lines: pd.DataFrame, day: pd.Timestamp, seed: int = 0) -> pd.DataFrame:
    """Change every line on or after ``day``: values, items, and add/remove rows."""
    rng = np.random.default_rng(seed)
    late = lines[S.DAY] >= day
    out = lines.copy()
    out.loc[late, S.QUANTITY] = out.loc[late, S.QUANTITY] * rng.integers(2, 50, late.sum())
    out.loc[late, S.UNIT_PRICE] = out.loc[late, S.UNIT_PRICE] * 3.7
    out[S.VALUE] = out[S.QUANTITY] * out[S.UNIT_PRICE]
    shuffled = out.loc[late, S.ITEM].sample(frac=1.0, random_state=seed).to_numpy()
    out.loc[late, S.ITEM] = shuffled
    extra = out[late].sample(n=min(500, int(late.sum())), random_state=seed)
    out = pd.concat([out.drop(out[late].sample(frac=0.3, random_state=seed).index), extra])
    return out.reset_index(drop=True)


def test_no_leakage_features_of_day_x_ignore_day_x_and_later(real_lines):
    """Altering every line on or after day X leaves the features of day X's rows unchanged."""
    lines = real_lines[(real_lines[S.DAY] >= "2011-03-01") & (real_lines[S.DAY] < "2011-06-01")]
    x = pd.Timestamp("2011-05-10")
    queries = lines[lines[S.DAY] == x]
    assert len(queries) > 500
    before = history_features(lines, queries)
    after = history_features(_perturb_from(lines, x), queries)
    pd.testing.assert_frame_equal(before, after)
    # and the check can fail: perturbing from the day before changes them
    changed = history_features(_perturb_from(lines, x - pd.Timedelta(days=1)), queries)
    assert not before.equals(changed)


def test_no_leakage_task_tables_of_run_date_ignore_later_data(real_lines):
    lines = real_lines[(real_lines[S.DAY] >= "2011-01-01") & (real_lines[S.DAY] < "2011-05-01")]
    cfg = TaskConfig(windows=WindowConfig(eval_days=2, val_days=3, train_days=30), purchase_train_days=10)
    d = pd.Timestamp("2011-04-12")
    w = compute_windows(lines[S.DAY], d, cfg.windows)
    a = build_task_tables(lines, w, cfg)
    b = build_task_tables(_perturb_from(lines, d), w, cfg)
    for name in ("gmv", "purchase", "replay", "ltv"):
        pd.testing.assert_frame_equal(a.tables[name], b.tables[name], obj=name)


def test_purchase_task_negatives_come_from_the_day_catalogue(real_lines):
    lines = real_lines[(real_lines[S.DAY] >= "2011-09-01") & (real_lines[S.DAY] < "2011-10-01")]
    cfg = TaskConfig(windows=WindowConfig(eval_days=2, val_days=3, train_days=20), purchase_train_days=7, seed=3)
    w = compute_windows(lines[S.DAY], "2011-09-30", cfg.windows)
    p = build_purchase_task(lines, w, cfg, build_aggregates(lines, as_of=w.run_date))
    pos, neg = p[p[S.LABEL] == 1], p[p[S.LABEL] == 0]
    assert len(neg) > 3 * len(pos)  # ~4 per positive, minus the few collisions removed
    bought = set(map(tuple, lines[[S.USER, S.DAY, S.ITEM]].astype(str).to_numpy()))
    assert not any(tuple(map(str, r)) in bought for r in neg[[S.USER, S.DAY, S.ITEM]].to_numpy())
    catalogue = lines.groupby(S.DAY)[S.ITEM].agg(set)
    assert all(item in catalogue[day] for day, item in neg[[S.DAY, S.ITEM]].to_numpy())
    assert (neg[S.VALUE] == 0).all() and (pos[S.VALUE] > 0).all()
    # every candidate of a request shares the request time; features exist for all rows
    assert (p.groupby([S.USER, S.DAY])[S.TS].nunique() == 1).all()
    assert p["hist_len"].ge(0).all()
    again = build_purchase_task(lines, w, cfg, build_aggregates(lines, as_of=w.run_date))
    pd.testing.assert_frame_equal(p, again)  # seeded: reproducible


def test_ltv_label_is_the_horizon_spend():
    rows = []
    for user, start in (("old", "2010-01-01"), ("a", "2010-03-01"), ("b", "2010-04-01")):
        rows.append({S.USER: user, S.ITEM: "i", S.ORDER: "1", S.TS: start, S.QUANTITY: 1.0, S.UNIT_PRICE: 10.0})
    rows += [
        {S.USER: "a", S.ITEM: "i", S.ORDER: "2", S.TS: "2010-03-20", S.QUANTITY: 1.0, S.UNIT_PRICE: 5.0},   # first period
        {S.USER: "a", S.ITEM: "i", S.ORDER: "3", S.TS: "2010-06-01", S.QUANTITY: 2.0, S.UNIT_PRICE: 7.0},   # horizon
        {S.USER: "a", S.ITEM: "i", S.ORDER: "4", S.TS: "2011-05-01", S.QUANTITY: 1.0, S.UNIT_PRICE: 99.0},  # after it
    ]
    lines = lines_frame(rows)
    cfg = TaskConfig(ltv_first_period_days=30, ltv_horizon_days=365, ltv_eval_share=0.5, ltv_val_share=0.0)
    w = compute_windows(lines[S.DAY], "2011-06-01", WindowConfig(eval_days=1, val_days=0))
    ltv = build_ltv_task(lines, w, cfg).set_index(S.USER)
    assert "old" not in ltv.index  # first seen in the first period of the data: censored
    assert ltv.loc["a", S.LTV_LABEL] == 14.0 and ltv.loc["a", "fp_spend"] == 15.0
    assert ltv.loc["a", "fp_orders"] == 2 and ltv.loc["a", "fp_first_day_spend"] == 10.0
    assert ltv.loc["b", S.LTV_LABEL] == 0.0
    assert ltv.loc["a", S.SPLIT] == "train" and ltv.loc["b", S.SPLIT] == "eval"


def test_tables_round_trip_with_their_schema(tmp_path, real_lines):
    lines = real_lines[(real_lines[S.DAY] >= "2011-10-01") & (real_lines[S.DAY] < "2011-11-01")]
    cfg = TaskConfig(windows=WindowConfig(eval_days=1, val_days=2, train_days=10), purchase_train_days=5)
    tt = build_task_tables(lines, compute_windows(lines[S.DAY], "2011-10-31", cfg.windows), cfg)
    for name, df in tt.tables.items():
        path = str(tmp_path / f"{name}.parquet")
        write_table(df, path, name)
        back = read_table(path)
        assert list(back.columns) == TABLE_SCHEMAS[name].names
        assert len(back) == len(df)
    with pytest.raises(ValueError, match="lacks the column"):
        write_table(tt.tables["gmv"].drop(columns=[S.VALUE]), str(tmp_path / "x.parquet"), "gmv")


def test_serving_join_on_stored_aggregates_equals_the_task_table(real_lines):
    """No train/serve skew: the features a server joins for a request from the aggregates
    as of the request day (one row per key, what the cache stores) are the task table's."""
    lines = real_lines[(real_lines[S.DAY] >= "2011-01-01") & (real_lines[S.DAY] < "2011-05-01")]
    cfg = TaskConfig(windows=WindowConfig(eval_days=2, val_days=3, train_days=30), purchase_train_days=10)
    tables = build_task_tables(lines, compute_windows(lines[S.DAY], "2011-04-12", cfg.windows), cfg).tables
    purchase = tables["purchase"]
    day = purchase[S.DAY].max()
    requests = purchase[purchase[S.DAY] == day]
    assert len(requests) > 200 and requests[S.IS_NEW_USER].any() and (~requests[S.IS_NEW_USER]).any()
    stored = build_aggregates(lines, as_of=day).latest()
    assert stored.user[S.USER].is_unique and len(stored.user_item) == len(stored.user_item[[S.USER, S.ITEM]].drop_duplicates())
    served = join_features(stored, requests[[S.USER, S.ITEM, S.DAY, S.TS]])
    pd.testing.assert_frame_equal(served, requests[S.NUMERIC_FEATURES + [S.IS_NEW_USER]])
