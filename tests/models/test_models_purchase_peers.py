"""Purchase peers (issue 9): shapes, training learns the synthetic preference, save / load
round trips give equal predictions, SIM's search covers the whole history, DIN reads
only the recent events, the tabular peers' rates and registration."""

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from quantrec.data import schema as S
from quantrec.evaluation.metrics import auc
from quantrec.models import MODELS, load_model
from quantrec.models.base import ModelInputs
from quantrec.models.purchase_peers import (DINModel, LGBMPurchaseConfig, LGBMPurchaseModel, MeanPoolModel,
                                            PeerInputError, PopularityModel, RepeatCountModel, SeqPeerConfig,
                                            SeqPeerNet, SIMModel, pad_packed, topk_search)
from quantrec.training.trainer import TrainConfig

sys.path.insert(0, str(Path(__file__).resolve().parent))
from models_synth import purchase_world_frames  # noqa: E402


def synth_world(n_users=40, n_items=60, days=40, seed=0):
    """Users prefer one of 3 item groups; the purchase table = per user-day the items
    bought (label 1) + random negatives, with i_lines / ui_lines counted from earlier days."""
    rng = np.random.default_rng(seed)
    start = pd.Timestamp("2011-01-01")
    group = np.arange(n_items) % 3
    ev, rows = [], []
    for u in range(n_users):
        for d in sorted(rng.choice(days, size=int(rng.integers(3, 10)), replace=False)):
            day = start + pd.Timedelta(days=int(d))
            bought = rng.choice(np.flatnonzero(group == u % 3), size=int(rng.integers(1, 5)), replace=False)
            for k, it in enumerate(bought):
                ev.append((f"u{u}", f"i{it}", day + pd.Timedelta(hours=9, minutes=k), day,
                           float(rng.integers(1, 12)), float(1 + it % 7)))
                rows.append((f"u{u}", day, f"i{it}", day + pd.Timedelta(hours=9), 1))
            for it in rng.choice(n_items, size=2 * len(bought), replace=False):
                if it not in bought:
                    rows.append((f"u{u}", day, f"i{it}", day + pd.Timedelta(hours=9), 0))
    events, purchase = purchase_world_frames(ev, rows, start, days)
    # leakage-free counts of earlier days (what the real table's features hold)
    purchase["i_lines"] = [int(((events[S.ITEM] == i) & (events[S.DAY] < d)).sum())
                           for i, d in zip(purchase[S.ITEM], purchase[S.DAY])]
    purchase["ui_lines"] = [int(((events[S.ITEM] == i) & (events[S.USER] == u) & (events[S.DAY] < d)).sum())
                            for u, i, d in zip(purchase[S.USER], purchase[S.ITEM], purchase[S.DAY])]
    return events, purchase


@pytest.fixture(scope="module")
def world():
    events, purchase = synth_world()
    split = {s: purchase[purchase[S.SPLIT] == s].reset_index(drop=True) for s in ("train", "val", "eval")}
    return events, purchase, split


def _cfg(**kw):
    train = kw.pop("train", TrainConfig(epochs=8, batch_size=8, lr=3e-2, patience=8, progress=False, seed=0))
    return SeqPeerConfig(item_dim=8, att_hidden=8, mlp_hidden=16, min_count=1, eval_requests=5,
                         max_recent=5, top_k=3, train=train, **kw)


@pytest.mark.parametrize("cls", [MeanPoolModel, DINModel, SIMModel])
def test_sequence_peer_fit_predict_save_load(cls, world, tmp_path):
    events, _, split = world
    m = cls(_cfg())
    res = m.fit(split["train"], split["val"], ModelInputs(events=events))
    assert res.epochs_run >= 1 and np.isfinite(res.best_metric)
    p = m.predict(split["val"], ModelInputs(events=events))
    assert p.shape == (len(split["val"]),) and p.dtype == np.float64
    assert ((p > 0) & (p < 1)).all()
    # the group preference is learnable from the history: clearly better than chance
    assert auc(split["val"][S.LABEL], p) > 0.6
    m.save(str(tmp_path / "m"))
    back = load_model(str(tmp_path / "m"))
    assert type(back) is cls
    np.testing.assert_array_equal(back.predict(split["val"], ModelInputs(events=events)), p)
    # row order does not matter: predictions follow their rows
    shuf = split["val"].sample(frac=1.0, random_state=1)
    np.testing.assert_allclose(m.predict(shuf, ModelInputs(events=events)), p[shuf.index.to_numpy()], rtol=1e-5, atol=1e-9)


def test_sequence_peer_errors(world):
    events, _, split = world
    with pytest.raises(PeerInputError, match="events"):
        SIMModel(_cfg()).fit(split["train"], split["val"], ModelInputs())
    m = MeanPoolModel(_cfg(train=TrainConfig(epochs=1, batch_size=8, progress=False)))
    m.fit(split["train"], split["val"], ModelInputs(events=events))
    with pytest.raises(PeerInputError, match="item_id"):
        m.predict(split["val"].drop(columns=[S.ITEM]), ModelInputs(events=events))
    with pytest.raises(ValueError, match="purchase"):
        SeqPeerConfig(task="gmv")


def test_pad_packed_roundtrip():
    vals = torch.arange(7)
    off = torch.tensor([0, 3, 3, 7])
    pad, mask = pad_packed(vals, off)
    assert pad.shape == (3, 4) and mask.sum() == 7
    assert pad[0, :3].tolist() == [0, 1, 2] and not mask[1].any() and pad[2].tolist() == [3, 4, 5, 6]


def test_sim_search_reaches_the_oldest_event():
    """The matching key sits at position 0 of a 500-long list (far beyond DIN's last 50):
    the search must return it for the row whose query equals it, and only real entries."""
    torch.manual_seed(0)
    E, L = 8, 500
    keys = torch.randn(2, L, E) * 0.1
    target = torch.zeros(E)
    target[3] = 5.0
    keys[0, 0] = target
    mask = torch.ones(2, L, dtype=torch.bool)
    mask[1, 4:] = False                                       # unit 1 has only 4 entries
    q = torch.stack([target, torch.randn(E), torch.randn(E)])
    row_unit = torch.tensor([0, 0, 1])
    idx, found = topk_search(q, keys, mask, row_unit, k=6, block=2)
    assert idx.shape == (3, 6)
    assert idx[0, 0] == 0 and found[0].all()
    assert found[2].sum() == 4 and set(idx[2][found[2]].tolist()) == {0, 1, 2, 3}


def test_sim_uses_old_history_din_does_not():
    """One request whose only matching event is the OLDEST of 200: changing that event's
    item changes SIM's logit for the candidate but not DIN's (last 5 events only)."""
    cfg = _cfg()
    torch.manual_seed(0)
    batches = []
    for first in (1, 2):
        item = torch.full((200,), 7, dtype=torch.long)
        item[0] = first
        batches.append({"hist_item": item, "hist_price": torch.ones(200, dtype=torch.long),
                        "hist_qty": torch.ones(200, dtype=torch.long),
                        "hist_ts": torch.arange(200, dtype=torch.long) * 3600,
                        "hist_offsets": torch.tensor([0, 200]), "hist_request_ts": torch.tensor([200 * 3600]),
                        "cand_item": torch.tensor([1]), "cand_price": torch.tensor([1]),
                        "row_unit": torch.tensor([0])})
    for pooling, changes in (("sim", True), ("din", False)):
        torch.manual_seed(0)
        net = SeqPeerNet(10, cfg, pooling).eval()
        with torch.no_grad():
            a, b = (float(net(bt)) for bt in batches)
        assert (abs(a - b) > 1e-6) == changes, pooling


def test_column_rate_peers(world, tmp_path):
    _, _, split = world
    for cls, col in ((PopularityModel, "i_lines"), (RepeatCountModel, "ui_lines")):
        m = cls()
        assert m.config.column == col and MODELS[cls.name] is cls
        m.fit(split["train"], split["val"])
        p = m.predict(split["val"])
        assert p.shape == (len(split["val"]),) and ((p > 0) & (p < 1)).all()
        m.save(str(tmp_path / cls.name))
        np.testing.assert_array_equal(load_model(str(tmp_path / cls.name)).predict(split["val"]), p)
    # the repeat count ranks like the column itself (monotone rates on this world)
    rep = RepeatCountModel()
    rep.fit(split["train"], split["val"])
    assert auc(split["val"][S.LABEL], rep.predict(split["val"])) > 0.6
    with pytest.raises(PeerInputError, match="ui_lines"):
        rep.predict(split["val"].drop(columns=["ui_lines"]))


def test_lgbm_purchase_classifier(tmp_path):
    rng = np.random.default_rng(0)
    n = 3000
    df = pd.DataFrame({c: rng.normal(size=n) for c in S.NUMERIC_FEATURES})
    df["ui_lines"] = rng.poisson(1.0, n).astype(float)
    df[S.USER] = [f"u{i % 50}" for i in range(n)]
    df[S.ITEM] = [f"i{i % 70}" for i in range(n)]
    df[S.COUNTRY] = np.where(rng.random(n) < 0.5, "UK", "FR")
    df[S.LABEL] = (rng.random(n) < 1 / (1 + np.exp(-(2 * df["ui_lines"] - 2)))).astype(int)
    tr, va = df.iloc[:2000].reset_index(drop=True), df.iloc[2000:].reset_index(drop=True)
    m = LGBMPurchaseModel(LGBMPurchaseConfig(num_boost_round=60, early_stopping_rounds=10,
                                             params={"num_threads": 1, "verbose": -1, "min_data_in_leaf": 20}))
    res = m.fit(tr, va)
    p = m.predict(va)
    assert p.shape == (1000,) and ((p >= 0) & (p <= 1)).all() and np.isfinite(res.best_metric)
    assert auc(va[S.LABEL], p) > 0.75
    m.save(str(tmp_path / "lgb"))
    np.testing.assert_array_equal(load_model(str(tmp_path / "lgb")).predict(va), p)
    with pytest.raises(ValueError, match="categorical"):
        LGBMPurchaseConfig(categorical=("colour",))
