"""Jagged whole histories: strictly before the request day, whole (no silent cap),
cheap per-batch packing, and the heaviest real user's full history."""

import numpy as np
import pandas as pd
import pytest
import torch

from quantrec.data import schema as S
from quantrec.data.sequences import (EventLog, HistoryError, ItemIndex, Requests, build_histories,
                                     histories_for, log_bucket, price_bucket, quantity_bucket,
                                     ranges_to_index, to_seconds)


def _events():
    rows = [  # user, item, ts, price, qty
        ("u1", "A", "2011-01-01 09:00", 1.0, 1), ("u1", "B", "2011-01-01 10:00", 2.0, 4),
        ("u1", "A", "2011-01-02 08:00", 1.0, 2), ("u1", "C", "2011-01-03 12:00", 8.0, 1),
        ("u2", "B", "2011-01-02 11:00", 2.5, 10), ("u2", "D", "2011-01-05 11:00", 3.0, 1),
        ("u1", "B", "2011-01-05 07:00", 2.0, 1),
    ]
    df = pd.DataFrame(rows, columns=[S.USER, S.ITEM, S.TS, S.UNIT_PRICE, S.QUANTITY])
    df[S.TS] = pd.to_datetime(df[S.TS])
    df[S.DAY] = df[S.TS].dt.normalize()
    return df.sample(frac=1.0, random_state=3).reset_index(drop=True)   # order must not matter


def test_log_buckets():
    assert price_bucket(np.array([np.nan, -1.0, 0.0, 0.01, 0.02, 1e9])).tolist() == [0, 0, 0, 1, 3, 31]
    assert quantity_bucket(np.array([1, 2, 4, 0])).tolist() == [1, 3, 5, 0]
    assert log_bucket(np.array([8.0]), 1.0, 5).tolist() == [4]       # 1 + 2*3 = 7 -> clipped to 4


def test_item_index_fit_cutoff_min_count_and_json():
    ev = _events()
    idx = ItemIndex.fit(ev, "2011-01-03", min_count=1)     # days < Jan 3: A, B only
    assert idx.ids == ["A", "B"] and idx.size == 3
    assert idx.lookup(["B", "A", "C", "zzz"]).tolist() == [2, 1, 0, 0]
    assert idx.price[1] == price_bucket(np.array([1.0]))[0]
    assert ItemIndex.fit(ev, "2011-01-10", min_count=2).ids == ["A", "B"]   # C, D: 1 line
    assert ItemIndex.fit(ev, "2011-01-10", min_count=3).ids == ["B"]        # A: 2 lines, B: 3
    back = ItemIndex.from_json(idx.to_json())
    assert back.ids == idx.ids and back.price.tolist() == idx.price.tolist()
    with pytest.raises(HistoryError, match="ids"):
        ItemIndex.from_json({"price": []})
    with pytest.raises(HistoryError, match="unit_price"):
        ItemIndex.fit(ev.drop(columns=[S.UNIT_PRICE]), "2011-01-03")


def test_history_is_strictly_before_the_request_day():
    ev = _events()
    idx = ItemIndex.fit(ev, "2011-01-10")
    log = EventLog.from_events(ev, idx)
    users = ["u1", "u1", "u1", "u2", "new"]
    days = pd.to_datetime(["2011-01-01", "2011-01-03", "2011-01-06", "2011-01-05", "2011-01-05"])
    h = build_histories(log, users, days)
    # u1 on Jan 3: Jan 1 (2 lines) + Jan 2 (1); its Jan 3 line is the request day: excluded
    assert h.lengths.tolist() == [0, 3, 5, 1, 0]
    b = h.batch([1])
    assert idx.lookup(["A", "B", "A"]).tolist() == b["item"].tolist()
    assert torch.all(b["ts"][1:] >= b["ts"][:-1])                     # oldest first
    assert int(b["ts"].max()) < to_seconds(pd.Series([days[1]]))[0]   # nothing on/after the day
    assert b["request_ts"].tolist() == [int(to_seconds(pd.Series([days[1]]))[0])]
    # negative control: one more day sees the request day's line
    assert build_histories(log, ["u1"], pd.to_datetime(["2011-01-04"])).lengths.tolist() == [4]


def test_batch_packs_values_and_offsets_equal_to_the_per_request_slices():
    ev = _events()
    idx = ItemIndex.fit(ev, "2011-01-10")
    log = EventLog.from_events(ev, idx)
    h = build_histories(log, ["u1", "u2", "u1", "new"], pd.to_datetime(["2011-01-06", "2011-01-06", "2011-01-03", "2011-01-06"]))
    b = h.batch([2, 0, 3, 1])
    assert b["offsets"].tolist() == [0, 3, 8, 8, 10]
    for j, r in enumerate([2, 0, 3, 1]):
        sl = slice(int(b["offsets"][j]), int(b["offsets"][j + 1]))
        assert b["item"][sl].tolist() == log.item[h.start[r]:h.end[r]].tolist()
        assert b["qty"][sl].tolist() == log.qty[h.start[r]:h.end[r]].tolist()


def test_cap_is_explicit_counted_and_keeps_the_most_recent():
    ev = _events()
    idx = ItemIndex.fit(ev, "2011-01-10")
    log = EventLog.from_events(ev, idx)
    full = build_histories(log, ["u1", "u2"], pd.to_datetime(["2011-01-06", "2011-01-06"]))
    cap = build_histories(log, ["u1", "u2"], pd.to_datetime(["2011-01-06", "2011-01-06"]), max_len=2)
    assert full.cap_report()["truncated_requests"] == 0 and full.lengths.tolist() == [5, 2]
    rep = cap.cap_report()
    assert cap.lengths.tolist() == [2, 2]
    assert rep == {"max_len": 2, "requests": 2, "events": 7, "longest": 5,
                   "truncated_requests": 1, "dropped_events": 3}
    assert cap.batch([0])["item"].tolist() == full.batch([0])["item"][-2:].tolist()
    with pytest.raises(HistoryError, match="max_len"):
        build_histories(log, ["u1"], pd.to_datetime(["2011-01-06"]), max_len=-1)


def test_ranges_to_index_and_requests():
    idx, off = ranges_to_index(np.array([5, 0, 9]), np.array([8, 0, 11]))
    assert idx.tolist() == [5, 6, 7, 9, 10] and off.tolist() == [0, 3, 3, 5]
    with pytest.raises(HistoryError):
        ranges_to_index(np.array([3]), np.array([2]))
    frame = pd.DataFrame({S.USER: ["b", "a", "b", "a"], S.DAY: pd.to_datetime(["2011-01-02", "2011-01-02", "2011-01-02", "2011-01-01"]),
                          S.ITEM: list("wxyz")})
    req = Requests.of(frame)
    assert list(req.users) == ["a", "a", "b"]                      # by (day, user)
    assert req.row_request.tolist() == [2, 1, 2, 0]
    with pytest.raises(HistoryError, match="user_id"):
        Requests.of(frame.drop(columns=[S.USER]))


def test_heaviest_real_user_whole_history(real_lines):
    """The customer with the most cleaned lines: every earlier line is in the history."""
    counts = real_lines[S.USER].value_counts()
    user = counts.index[0]
    assert counts.iloc[0] > 10_000                                # Online Retail II: ~12.9k
    last_day = real_lines[S.DAY].max()
    days = pd.to_datetime([last_day + pd.Timedelta(days=1), pd.Timestamp("2011-06-01")])
    frame = pd.DataFrame({S.USER: [user, user], S.DAY: days, S.ITEM: ["x", "x"]})
    idx = ItemIndex.fit(real_lines, last_day + pd.Timedelta(days=1))
    req, h = histories_for(frame, real_lines, idx)
    own = real_lines[real_lines[S.USER] == user]
    for r in range(req.n):
        expected = own[own[S.DAY] < pd.Timestamp(req.days[r])].sort_values(S.TS, kind="stable")
        assert h.lengths[r] == len(expected) == h.full_len[r]
        b = h.batch([r])
        assert b["item"].tolist() == idx.lookup(expected[S.ITEM].to_numpy()).tolist()
        assert b["ts"].tolist() == sorted(to_seconds(expected[S.TS]).tolist())
    assert h.lengths.max() == counts.iloc[0]                      # the day after the data: all
    assert h.cap_report()["dropped_events"] == 0


def test_real_purchase_rows_history_length_equals_hist_len(real_lines):
    """Independent check against the purchase table's hist_len (features.history_features)."""
    from quantrec.data.tasks import TaskConfig, build_task_tables
    from quantrec.data.windows import WindowConfig, compute_windows
    lines = real_lines[real_lines[S.DAY] < pd.Timestamp("2010-02-01")]
    windows = compute_windows(lines[S.DAY], pd.Timestamp("2010-02-01"),
                              WindowConfig(eval_days=1, val_days=2, train_days=30))
    purchase = build_task_tables(lines, windows, TaskConfig(purchase_train_days=3)).tables["purchase"]
    idx = ItemIndex.fit(lines, windows.val_start)
    req, h = histories_for(purchase, lines, idx)
    hist_len = purchase.groupby(req.row_request)["hist_len"].first().sort_index().to_numpy()
    assert req.n > 50
    np.testing.assert_array_equal(h.lengths, hist_len)
