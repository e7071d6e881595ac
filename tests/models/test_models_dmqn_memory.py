"""DMQN's item memory (``item_memory`` = M > 0): the M most recent distinct items of the
history in the state, read exactly by each candidate. Building and packing the memory,
the candidate's lookup (counts / ages right, absent = zeros, ids exact in float16), the
cap counted, the cacheable state == the full forward with the memory on, and a synthetic
task decided by "bought this item before" that the memory learns and the clusters alone
do not."""

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from quantrec.data import schema as S
from quantrec.evaluation.metrics import auc
from quantrec.models.base import ModelInputs
from quantrec.models.dmqn import (MEMORY_FIELDS, DMQNInputError, DMQNModel, DMQNNet,
                                  age_bucket, build_item_memory, memory_cap_report, memory_lookup, pack_memory,
                                  unpack_memory)
from quantrec.training.trainer import TrainConfig

sys.path.insert(0, str(Path(__file__).resolve().parent))
from models_synth import purchase_world_frames, state_round_trip, tiny_dmqn_config  # noqa: E402

DAY = 86_400


_tiny = tiny_dmqn_config


def repeat_world(n_users=60, n_items=300, days=36, favourites=12, seed=0):
    """Each user buys from a private set of favourite items (random over a large catalogue).
    The purchase table asks, per request (user, day), about 4 items the user bought
    before (label 1) and 4 items they never bought (label 0): the label IS "bought this
    item before", which the exact-item read answers and ~8 clusters of 300 items blur."""
    rng = np.random.default_rng(seed)
    start = pd.Timestamp("2011-01-01")
    ev, rows = [], []
    for u in range(n_users):
        fav = rng.choice(n_items, size=favourites, replace=False)
        seen: set[int] = set()
        for d in sorted(rng.choice(days, size=8, replace=False)):
            day = start + pd.Timedelta(days=int(d))
            if len(seen) >= 4:
                pos = rng.choice(sorted(seen), size=4, replace=False)
                neg = rng.choice(np.setdiff1d(np.arange(n_items), sorted(seen)), size=4, replace=False)
                for it, y in [(i, 1) for i in pos] + [(i, 0) for i in neg]:
                    rows.append((f"u{u}", day, f"i{it}", day + pd.Timedelta(hours=9), y))
            for k, it in enumerate(rng.choice(fav, size=3, replace=False)):
                ev.append((f"u{u}", f"i{it}", day + pd.Timedelta(hours=9, minutes=k), day,
                           float(rng.integers(1, 12)), 2.0))
                seen.add(int(it))
    events, purchase = purchase_world_frames(ev, rows, start, days)
    return events, purchase


@pytest.fixture(scope="module")
def world():
    return repeat_world()


@pytest.fixture(scope="module")
def split(world):
    _, purchase = world
    return {s: purchase[purchase[S.SPLIT] == s].reset_index(drop=True) for s in ("train", "val", "eval")}


@pytest.fixture(scope="module")
def fitted(world, split, tmp_path_factory):
    events, _ = world
    m = DMQNModel(_tiny(item_memory=5, train=TrainConfig(epochs=3, batch_size=8, lr=1e-2, progress=False, seed=0)))
    m.fit(split["train"], split["val"], ModelInputs(events=events), out_dir=str(tmp_path_factory.mktemp("mem")))
    return m


# ---- pieces ----------------------------------------------------------------------------------
def test_build_item_memory_keeps_the_most_recent_distinct_items_with_counts_and_ages():
    # request 0: items 7 (3 lines), 3000 (1), 0 (rare items' shared row: left out), 9 (2);
    # request 1: empty; request 2: item 4
    pair_item = torch.tensor([0, 7, 9, 3000, 4])
    pair_off = torch.tensor([0, 4, 4, 5])
    count = torch.tensor([5, 3, 2, 1, 1])
    first = torch.tensor([10, 1_000, 50_000, 90_000, 5]) * 1
    last = torch.tensor([99_000, 80_000, 60_000, 90_000, 5])
    req_ts = torch.tensor([100_000, 100_000, 100_000 + DAY])
    mem, distinct = build_item_memory(pair_item, pair_off, count, first, last, req_ts, M=2)
    assert mem.shape == (3, 2, MEMORY_FIELDS) and mem.dtype == torch.float32
    assert distinct.tolist() == [3, 0, 1]                       # row 0 not counted
    # request 0 keeps the 2 most recent of {3000 @ 90k, 7 @ 80k, 9 @ 60k}: 3000 then 7
    assert mem[0, 0, :2].tolist() == [2.0, 3000 - 2048]         # 3000 = 2 * 1024 + 952
    assert mem[0, 1, :2].tolist() == [0.0, 7.0]
    assert mem[0, 1, 2].item() == pytest.approx(np.log1p(3))
    assert mem[0, 1, 3].item() == 2 and mem[0, 0, 3].item() == 1   # count buckets 1 + floor(log2 n)
    assert mem[0, 1, 4].item() == age_bucket(torch.tensor(20_000)).item()
    assert mem[0, 1, 5].item() == age_bucket(torch.tensor(99_000)).item()
    assert mem[1].abs().sum() == 0                              # empty history: empty entries
    assert mem[2, 0, 1].item() == 4 and mem[2, 1].abs().sum() == 0
    # order "count": the 2 most often bought of {7: 3 lines, 9: 2, 3000: 1}
    by_count, _ = build_item_memory(pair_item, pair_off, count, first, last, req_ts, M=2, order="count")
    assert by_count[0, :, 1].tolist() == [7.0, 9.0] and by_count[0, :, 3].tolist() == [2.0, 2.0]
    assert torch.equal(by_count[1:], mem[1:])
    rep = memory_cap_report(distinct, 2)
    assert rep["requests_over_cap"] == 1 and rep["entries_dropped"] == 1 and rep["distinct_max"] == 3


def test_pack_unpack_and_lookup_are_exact_in_float32_and_float16():
    mem, _ = build_item_memory(torch.tensor([7, 3000, 4095, 2]), torch.tensor([0, 3, 4]),
                               torch.tensor([3, 1, 40, 2]), torch.tensor([0, 0, 0, 0]),
                               torch.tensor([5, 6, 7, 8]) * DAY, torch.tensor([10 * DAY, 10 * DAY]), M=4)
    rows = pack_memory(mem, 9)
    assert rows.shape == (2, -(-4 * MEMORY_FIELDS // 9), 9)
    assert torch.equal(unpack_memory(rows, 4), mem)
    item = torch.tensor([3000, 4095, 7, 8, 2, 3000])
    unit = torch.tensor([0, 0, 0, 0, 1, 1])
    for dtype in (torch.float32, torch.float16):               # float16: the cache's default storage
        found, entry = memory_lookup(unpack_memory(rows.to(dtype).float(), 4), item, unit)
        assert found.tolist() == [True, True, True, False, True, False]
        assert (entry[~found] == 0).all()
        assert entry[1, 3].item() == 1 + 5 and entry[2, 3].item() == 2     # 40 lines -> bucket 6, 3 -> 2
        assert entry[:3, 0].tolist() == [2.0, 3.0, 0.0]
    # an empty entry (zeros: "item 0") never matches the unknown-item candidate row 0
    found, _ = memory_lookup(mem, torch.tensor([0, 0]), torch.tensor([0, 1]))
    assert not found.any()


def test_memory_off_keeps_the_state_and_the_parameters_of_before():
    cfg = _tiny()
    assert cfg.item_memory == 0 and cfg.memory_rows == 0 and cfg.state_rows == cfg.clusters
    assert DMQNNet(10, cfg).memory is None
    on = _tiny(item_memory=5)
    assert on.memory_rows == -(-5 * MEMORY_FIELDS // 9) and on.state_rows == on.clusters + on.memory_rows
    with pytest.raises(ValueError, match="item_memory"):
        _tiny(item_memory=-1)
    with pytest.raises(ValueError, match="item_memory_order"):
        _tiny(item_memory=5, item_memory_order="random")


# ---- the trained model with the memory on ------------------------------------------------------
def test_state_with_memory_round_trips_and_scores_like_the_full_forward(fitted, world, split, tmp_path):
    m = fitted
    events, _ = world
    r = state_round_trip(m, events, split["val"], tmp_path)
    one_day, users, states, reloaded, row, expect = (r[k] for k in (
        "one_day", "users", "states", "reloaded", "row", "expect"))
    assert states.shape == (len(users), m.config.state_rows, m.config.d_model + 1)
    assert states[:, m.config.clusters:].abs().sum() > 0          # the memory rows are filled
    np.testing.assert_allclose(m.score(reloaded, one_day[S.ITEM].to_numpy(), state_index=row), expect,
                               rtol=0, atol=1e-5)
    # the serving cache's float16 storage: the ids stay exact, scores move only slightly
    p16 = m.score(reloaded.half().float(), one_day[S.ITEM].to_numpy(), state_index=row)
    np.testing.assert_allclose(p16, expect, rtol=0, atol=2e-2)
    # after a save / load of the model too
    m.save(str(tmp_path / "model"))
    back = DMQNModel.load(str(tmp_path / "model"))
    np.testing.assert_allclose(back.score(reloaded, one_day[S.ITEM].to_numpy(), state_index=row), expect,
                               rtol=0, atol=1e-5)
    with pytest.raises(DMQNInputError, match="rows"):
        m.score(reloaded[:, :m.config.clusters], one_day[S.ITEM].to_numpy(), state_index=row)


def test_the_serving_cache_codec_holds_the_memory_state(fitted, world, split):
    """The cache's value codec (float16 by default) stores the memory-on state: the
    decoded memory names the same items, and the scores stay close to offline scoring."""
    from quantrec.serving.codec import ValueSchema
    m = fitted
    events, _ = world
    day = split["val"][S.DAY].iloc[0]
    one_day = split["val"][split["val"][S.DAY] == day].reset_index(drop=True)
    users = one_day[S.USER].unique()
    _, states = m.user_states(events, users, day)
    C, M = m.config.clusters, m.config.item_memory
    row = pd.Series(np.arange(len(users)), index=users)[one_day[S.USER]].to_numpy()
    expect = m.score(states, one_day[S.ITEM].to_numpy(), state_index=row)
    for dtype, tol in (("float32", 1e-6), ("float16", 2e-2)):
        schema = ValueSchema("user", tuple(states.shape[1:]), ("n",), dtype=dtype)
        values = schema.encode_many(states, np.zeros((len(users), 1)), "v1")
        back = torch.from_numpy(np.stack([schema.decode(v, "v1").array for v in values]).astype(np.float32))
        ids = unpack_memory(back[:, C:], M)[..., :2].round()
        assert torch.equal(ids, unpack_memory(states[:, C:], M)[..., :2])        # the same items
        p = m.score(back, one_day[S.ITEM].to_numpy(), state_index=row)
        np.testing.assert_allclose(p, expect, rtol=0, atol=tol)


def test_cold_start_state_has_the_same_shape_and_no_memory(fitted, world):
    m = fitted
    events, _ = world
    _, st = m.user_states(events, ["nobody", "ghost"], "2011-02-01")
    assert st.shape == (2, m.config.state_rows, m.config.d_model + 1)
    assert st[:, m.config.clusters:].abs().sum() == 0 and st[:, :m.config.clusters, -1].sum() == 0
    p = m.score(st[0], ["i1", "i2", "never-seen"])
    assert np.all(np.isfinite(p)) and np.all((p > 0) & (p < 1))
    assert m.last_memory_report["requests"] == 2 and m.last_memory_report["requests_over_cap"] == 0


def test_the_cap_is_counted_in_fit_and_in_user_states(fitted, world, split):
    m = fitted
    events, _ = world
    rep = m.state["item_memory"]["train"]
    # direct count: distinct items bought strictly before each training request's day
    tr = split["train"][[S.USER, S.DAY]].drop_duplicates()
    distinct = [events[(events[S.USER] == u) & (events[S.DAY] < d)][S.ITEM].nunique()
                for u, d in tr.itertuples(index=False)]
    assert rep["requests"] == len(tr) and rep["M"] == 5
    assert rep["requests_over_cap"] == sum(n > 5 for n in distinct) > 0
    assert rep["entries_dropped"] == sum(max(n - 5, 0) for n in distinct)
    assert rep["distinct_max"] == max(distinct)
    u, d = tr.iloc[-1]
    m.user_states(events, [u], d)
    assert m.last_memory_report["requests_over_cap"] == int(distinct[-1] > 5)


def test_the_memory_read_learns_bought_before_and_the_clusters_alone_do_not(world, split):
    """The label is "bought this item before": with the memory (M = 40, more than any
    history's distinct items) val AUC > 0.9 after 4 epochs; without it, the same model and
    budget stays far lower (a control: the read, not the rest of the model, does it)."""
    events, _ = world
    out = {}
    for M in (0, 40):
        cfg = _tiny(item_memory=M, train=TrainConfig(epochs=4, batch_size=8, lr=1e-2, progress=False, seed=0))
        m = DMQNModel(cfg)
        m.fit(split["train"], split["val"], ModelInputs(events=events))
        out[M] = auc(split["val"][S.LABEL], m.predict(split["val"], ModelInputs(events=events)))
    print(f"val AUC without / with the memory: {out}")
    assert out[40] > 0.9, out
    assert out[40] - out[0] > 0.1, out
