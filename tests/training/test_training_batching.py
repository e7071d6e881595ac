"""Batch providers: a provider batch equals the slice of the full data, the trainer
gives the same result from a dict and from its provider, and a resumed provider run
equals an uninterrupted one."""

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from quantrec.data import schema as S
from quantrec.data.sequences import EventLog, ItemIndex, build_histories
from quantrec.training.batching import RequestBatches, TensorBatches, as_provider
from quantrec.training.trainer import TrainConfig, train


# ---- synthetic jagged data ---------------------------------------------------------------
def _histories(n_users=12, seed=0):
    """Events of n_users users with 0..40 lines each; one request per user on day 60."""
    rng = np.random.default_rng(seed)
    rows = []
    for u in range(n_users):
        for _ in range(int(rng.integers(0, 40))):
            rows.append((f"u{u}", f"i{rng.integers(0, 30)}", pd.Timestamp("2011-01-01") + pd.Timedelta(hours=int(rng.integers(0, 24 * 70))),
                         float(rng.uniform(0.5, 9)), float(rng.integers(1, 20))))
    ev = pd.DataFrame(rows, columns=[S.USER, S.ITEM, S.TS, S.UNIT_PRICE, S.QUANTITY])
    ev[S.DAY] = ev[S.TS].dt.normalize()
    idx = ItemIndex.fit(ev, "2011-03-02")
    users = [f"u{u}" for u in range(n_users)]
    return build_histories(EventLog.from_events(ev, idx), users, pd.to_datetime(["2011-03-02"] * n_users))


def _rows(n_units, seed=0):
    """Candidate rows in a shuffled order: unit, item, label."""
    rng = np.random.default_rng(seed + 1)
    unit = np.repeat(np.arange(n_units), rng.integers(1, 7, n_units))
    rng.shuffle(unit)
    item = torch.from_numpy(rng.integers(0, 31, len(unit)))
    y = torch.from_numpy((rng.random(len(unit)) < 0.3).astype(np.float32))
    return unit, {"cand_item": item, "y": y}


def test_tensor_batches_is_the_row_slice_and_dicts_are_wrapped():
    data = {"x": torch.arange(10).float()[:, None], "y": torch.arange(10)}
    p = as_provider(data)
    assert isinstance(p, TensorBatches) and p.n == 10
    idx = torch.tensor([7, 2, 2])
    b = p.batch(idx)
    assert b["y"].tolist() == [7, 2, 2] and b["x"].shape == (3, 1)
    with pytest.raises(ValueError, match="first dimension"):
        TensorBatches({"a": torch.zeros(3), "b": torch.zeros(4)})
    with pytest.raises(TypeError, match="batch provider"):
        as_provider([1, 2, 3])
    assert as_provider(p) is p


def test_request_batch_equals_the_slice_of_the_full_data():
    hist = _histories()
    unit, rows = _rows(hist.n)
    prov = RequestBatches(hist, unit, rows)
    idx = np.array([5, 0, 11, 3])
    b = prov.batch(idx)
    # histories: exactly the histories source's packed batch
    h = hist.batch(idx)
    for k in ("item", "ts", "price", "qty", "offsets", "request_ts"):
        assert torch.equal(b[f"hist_{k}"], h[k]), k
    # rows: each unit's rows in the original order, units in the batch's order
    expect = np.concatenate([np.flatnonzero(unit == u) for u in idx])
    assert np.array_equal(prov.row_positions(idx), expect)
    assert torch.equal(b["cand_item"], rows["cand_item"][expect])
    assert torch.equal(b["y"], rows["y"][expect])
    assert b["row_unit"].tolist() == [int(np.flatnonzero(idx == u)[0]) for u in unit[expect]]
    assert prov.rows(idx) == len(expect)
    assert torch.equal(prov.original_rows("y"), rows["y"])
    # iterating covers every row exactly once
    seen = np.concatenate([prov.row_positions(i) for i, _ in prov.iter_batches(5)])
    assert sorted(seen.tolist()) == list(range(len(unit)))


def test_request_batches_reject_bad_rows():
    hist = _histories()
    unit, rows = _rows(hist.n)
    with pytest.raises(ValueError, match="differ"):
        RequestBatches(hist, unit[:-1], rows)
    with pytest.raises(ValueError, match="outside"):
        RequestBatches(hist, np.full(len(unit), hist.n), rows)


# ---- the trainer with providers ----------------------------------------------------------
class HistNet(nn.Module):
    """Mean item embedding of the history (segment mean over offsets) . candidate."""

    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(32, 8)
        self.cand = nn.Embedding(32, 8)
        self.drop = nn.Dropout(0.2)

    def forward(self, b):
        off = b["hist_offsets"]
        lens = off[1:] - off[:-1]
        seg = torch.repeat_interleave(torch.arange(len(lens)), lens)
        user = torch.zeros(len(lens), 8).index_add(0, seg, self.emb(b["hist_item"])) / lens.clamp(min=1)[:, None]
        return (self.drop(user[b["row_unit"]]) * self.cand(b["cand_item"])).sum(-1)


def _step(model, batch, ctx):
    return nn.functional.binary_cross_entropy_with_logits(model(batch), batch["y"])


def _val(model, prov):
    model.eval()
    with torch.no_grad():
        b = prov.batch(np.arange(prov.n))
        return float(nn.functional.binary_cross_entropy_with_logits(model(b), b["y"]))


def _cfg(**kw):
    base = dict(epochs=4, batch_size=3, lr=2e-2, progress=False, seed=5, patience=10)
    base.update(kw)
    return TrainConfig(**base)


def test_resumed_provider_run_equals_uninterrupted(tmp_path):
    hist = _histories()
    unit, rows = _rows(hist.n)
    prov = RequestBatches(hist, unit, rows)
    torch.manual_seed(0)
    ref = HistNet()
    init = {k: v.clone() for k, v in ref.state_dict().items()}
    res_ref = train(ref, _step, prov, prov, _cfg(), str(tmp_path / "a"), _val)

    calls = {"n": 0}

    def flaky(model, batch, ctx):
        if ctx.epoch == 2 and ctx.step == 1 and calls["n"] == 0:
            calls["n"] += 1
            raise KeyboardInterrupt("simulated preemption")
        return _step(model, batch, ctx)

    m = HistNet()
    m.load_state_dict(init)
    with pytest.raises(KeyboardInterrupt):
        train(m, flaky, prov, prov, _cfg(), str(tmp_path / "b"), _val)
    m2 = HistNet()  # a fresh process: the state comes from the checkpoint
    res = train(m2, flaky, prov, prov, _cfg(), str(tmp_path / "b"), _val)
    assert [h["epoch"] for h in res.history] == [0, 1, 2, 3]
    assert [h["val_metric"] for h in res.history] == pytest.approx([h["val_metric"] for h in res_ref.history], abs=1e-7)
    for k, v in ref.state_dict().items():
        torch.testing.assert_close(m2.state_dict()[k], v, rtol=0, atol=1e-6)
    # and training moved the weights (the comparison is not between two untouched inits)
    assert any((ref.state_dict()[k] - init[k]).abs().max() > 1e-3 for k in init)


def test_dict_and_its_provider_train_identically(tmp_path):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(64, 4, generator=g)
    data = {"x": x, "y": x @ torch.tensor([1.0, -1.0, 0.5, 0.0])}

    def step(model, b, ctx):
        assert ctx.world == 1 and ctx.global_index is not None and len(ctx.global_index) == len(b["y"])
        return ((model(b["x"]).squeeze(-1) - b["y"]) ** 2).mean()

    def val(model, d):
        with torch.no_grad():
            return float((model(d["x"]).squeeze(-1) - d["y"]).abs().mean())

    out = []
    for i, td in enumerate((data, TensorBatches(data))):
        torch.manual_seed(1)
        model = nn.Linear(4, 1)
        train(model, step, td, data, _cfg(batch_size=8), str(tmp_path / str(i)), val)
        out.append(model.state_dict())
    for k in out[0]:
        assert torch.equal(out[0][k], out[1][k])


# ---- the LR schedule (trainer option added with the providers; lives here because
# ---- tests/training/test_training_trainer.py is kept unchanged) ---------------------------
def test_cosine_schedule_values_and_unknown_schedule():
    from quantrec.training.trainer import lr_at
    cfg = TrainConfig(epochs=2, lr=1.0, lr_schedule="cosine", min_lr_ratio=0.1)
    assert lr_at(cfg, 0, 0, 5) == pytest.approx(1.0)
    assert lr_at(cfg, 1, 4, 5) == pytest.approx(0.1)                  # last step: the floor
    assert lr_at(cfg, 1, 0, 5) == pytest.approx(0.1 + 0.45 * (1 + np.cos(np.pi * 5 / 9)))
    steps = [lr_at(cfg, e, s, 5) for e in range(2) for s in range(5)]
    assert all(a >= b for a, b in zip(steps, steps[1:]))              # monotone decay
    assert lr_at(TrainConfig(lr=0.3), 7, 3, 5) == 0.3                 # constant = unchanged
    with pytest.raises(ValueError, match="lr_schedule"):
        train(nn.Linear(1, 1), None, {"x": torch.zeros(2)}, None,
              TrainConfig(lr_schedule="warp", progress=False), "/nonexistent", None)


def test_resumed_cosine_run_equals_uninterrupted(tmp_path):
    hist = _histories()
    unit, rows = _rows(hist.n)
    prov = RequestBatches(hist, unit, rows)
    cfg = _cfg(lr_schedule="cosine", min_lr_ratio=0.01)
    torch.manual_seed(0)
    ref = HistNet()
    init = {k: v.clone() for k, v in ref.state_dict().items()}
    res_ref = train(ref, _step, prov, prov, cfg, str(tmp_path / "a"), _val)
    assert res_ref.history[0]["lr"] > res_ref.history[-1]["lr"] == pytest.approx(cfg.lr * 0.01)

    def flaky(model, batch, ctx):
        if ctx.epoch == 1 and ctx.step == 2:
            raise KeyboardInterrupt("simulated preemption")
        return _step(model, batch, ctx)

    m = HistNet()
    m.load_state_dict(init)
    with pytest.raises(KeyboardInterrupt):
        train(m, flaky, prov, prov, cfg, str(tmp_path / "b"), _val)
    m2 = HistNet()
    res = train(m2, _step, prov, prov, cfg, str(tmp_path / "b"), _val)
    assert [h["lr"] for h in res.history] == pytest.approx([h["lr"] for h in res_ref.history])
    for k, v in ref.state_dict().items():
        torch.testing.assert_close(m2.state_dict()[k], v, rtol=0, atol=1e-6)
