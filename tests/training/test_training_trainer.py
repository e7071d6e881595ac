import math

import pytest
import torch
from torch import nn

from quantrec.training import checkpoints as ck
from quantrec.training.scheduled_sampling import authors_sampling_prob, paper_sampling_prob, sampling_prob
from quantrec.training.trainer import TrainConfig, TrainingDiverged, train


def _data(n=256, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 4, generator=g)
    y = x @ torch.tensor([1.0, -2.0, 0.5, 0.0]) + 0.1 * torch.randn(n, generator=g)
    return {"x": x, "y": y}


class Lin(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(4, 8), nn.Dropout(0.1), nn.Linear(8, 1))

    def forward(self, x):
        return self.net(x).squeeze(-1)


def step(model, batch, ctx):
    return ((model(batch["x"]) - batch["y"]) ** 2).mean()


def val_mae(model, data):
    model.eval()
    with torch.no_grad():
        return float((model(data["x"]) - data["y"]).abs().mean())


def _cfg(**kw):
    base = dict(epochs=4, batch_size=32, lr=1e-2, progress=False, seed=3, patience=10)
    base.update(kw)
    return TrainConfig(**base)


def test_trains_checkpoints_and_reports_history(tmp_path):
    torch.manual_seed(0)
    model = Lin()
    res = train(model, step, _data(), _data(seed=1), _cfg(), str(tmp_path), val_mae, {"kind": "lin"})
    assert res.epochs_run == 4 and not res.diverged
    assert res.history[-1]["val_metric"] < res.history[0]["val_metric"]
    assert res.best_metric == min(h["val_metric"] for h in res.history)
    cfg = ck.load_json(str(tmp_path / "config.json"))
    assert cfg["model"] == {"kind": "lin"} and cfg["train"]["batch_size"] == 32
    best = ck.load_state(res.best_checkpoint)
    for k, v in model.state_dict().items():  # best weights are the ones left loaded
        torch.testing.assert_close(best[k], v)
    assert abs(val_mae(model, _data(seed=1)) - res.best_metric) < 1e-6


def test_resume_after_interruption_matches_uninterrupted_run(tmp_path):
    torch.manual_seed(0)
    ref = Lin()
    init = {k: v.clone() for k, v in ref.state_dict().items()}
    train(ref, step, _data(), _data(seed=1), _cfg(), str(tmp_path / "a"), val_mae)

    calls = {"n": 0}

    def flaky(model, batch, ctx):
        if ctx.epoch == 2 and ctx.step == 3 and calls["n"] == 0:
            calls["n"] += 1
            raise KeyboardInterrupt("simulated preemption")
        return step(model, batch, ctx)

    m = Lin()
    m.load_state_dict(init)
    with pytest.raises(KeyboardInterrupt):
        train(m, flaky, _data(), _data(seed=1), _cfg(), str(tmp_path / "b"), val_mae)
    m2 = Lin()  # a fresh process: new random init, state comes from the checkpoint
    res = train(m2, flaky, _data(), _data(seed=1), _cfg(), str(tmp_path / "b"), val_mae)
    assert [h["epoch"] for h in res.history] == [0, 1, 2, 3]
    for k, v in ref.state_dict().items():
        torch.testing.assert_close(m2.state_dict()[k], v)


def test_nan_loss_raises_naming_epoch_and_step(tmp_path):
    def bad(model, batch, ctx):
        loss = step(model, batch, ctx)
        return loss * float("nan") if (ctx.epoch, ctx.step) == (1, 2) else loss

    with pytest.raises(TrainingDiverged, match=r"epoch 1, step 2"):
        train(Lin(), bad, _data(), _data(seed=1), _cfg(), str(tmp_path), val_mae)


def test_divergence_stop_mode_returns_flag_and_best_so_far(tmp_path):
    def bad(model, batch, ctx):
        loss = step(model, batch, ctx)
        return loss * float("inf") if ctx.epoch == 2 else loss

    res = train(Lin(), bad, _data(), _data(seed=1), _cfg(on_divergence="stop"), str(tmp_path), val_mae)
    assert res.diverged and res.epochs_run == 2 and res.best_epoch in (0, 1)


def test_early_stopping_on_validation_metric(tmp_path):
    metrics = iter([3.0, 2.0, 2.5, 2.4, 2.6, 1.0])
    res = train(Lin(), step, _data(), _data(seed=1), _cfg(epochs=6, patience=2), str(tmp_path),
                lambda m, d: next(metrics))
    assert res.stopped_early and res.epochs_run == 4 and res.best_epoch == 1 and res.best_metric == 2.0


def test_schedules():
    # authors: increasing, 1/(1+e^{tau*pivot}) at epoch 0
    assert abs(authors_sampling_prob(0, 50) - 1 / (1 + math.exp(1.0))) < 1e-12
    ps = [paper_sampling_prob(e, 50) for e in range(50)]
    assert all(a <= b for a, b in zip(ps, ps[1:])) and ps[0] < 0.2 and ps[-1] > 0.99
    assert sampling_prob("always_tf", 3, 10) == 0.0 and sampling_prob("never_tf", 0, 10) == 1.0
    with pytest.raises(ValueError):
        sampling_prob("nope", 0, 1)


def test_a_kill_between_checkpoint_and_state_resumes_consistently(tmp_path, monkeypatch):
    """The state JSON names the per-epoch checkpoint it belongs to: a crash after epoch 2's
    checkpoint is written but before its state is, resumes epoch 2 from epoch 1's weights
    (a shared last file would hold epoch 2's weights under epoch 1's state, and epoch 2
    would be trained twice). The end result equals an uninterrupted run; one last-* file stays."""
    import quantrec.training.trainer as T
    torch.manual_seed(0)
    ref = Lin()
    init = {k: v.clone() for k, v in ref.state_dict().items()}
    train(ref, step, _data(), _data(seed=1), _cfg(), str(tmp_path / "a"), val_mae)

    real_save_json = T.ck.save_json

    def crash_on_epoch_2_state(path, obj):
        if path.endswith("trainer_state.json") and obj["epoch"] == 2:
            raise KeyboardInterrupt("killed between the checkpoint and the state")
        return real_save_json(path, obj)

    m = Lin()
    m.load_state_dict(init)
    monkeypatch.setattr(T.ck, "save_json", crash_on_epoch_2_state)
    with pytest.raises(KeyboardInterrupt):
        train(m, step, _data(), _data(seed=1), _cfg(), str(tmp_path / "b"), val_mae)
    monkeypatch.setattr(T.ck, "save_json", real_save_json)
    assert (tmp_path / "b" / "last-0002.safetensors").exists()   # written, but no state names it
    m2 = Lin()
    res = train(m2, step, _data(), _data(seed=1), _cfg(), str(tmp_path / "b"), val_mae)
    assert [h["epoch"] for h in res.history] == [0, 1, 2, 3]
    for k, v in ref.state_dict().items():
        torch.testing.assert_close(m2.state_dict()[k], v)
    assert sorted(p.name for p in (tmp_path / "b").glob("last*.safetensors")) == ["last-0003.safetensors"]


def test_a_state_naming_a_missing_checkpoint_is_a_clear_error(tmp_path):
    train(Lin(), step, _data(), _data(seed=1), _cfg(), str(tmp_path), val_mae)
    for p in tmp_path.glob("last-*.safetensors"):
        p.unlink()
    with pytest.raises(FileNotFoundError, match=r"trainer_state.json names the checkpoint .*last-0003"):
        train(Lin(), step, _data(), _data(seed=1), _cfg(), str(tmp_path), val_mae)


class Wide(Lin):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(4, 16), nn.Dropout(0.1), nn.Linear(16, 1))


def test_checkpoints_of_another_config_are_not_resumed(tmp_path, caplog):
    """A checkpoint folder written under another model config (e.g. a preset default that
    moved) would not load into this model: the run trains from scratch and says why,
    while a resume that differs only in progress / threads still resumes."""
    from quantrec.training.trainer import config_changes

    folder = str(tmp_path / "ck")
    train(Lin(), step, _data(), _data(seed=1), _cfg(epochs=2), folder, val_mae, {"width": 8})
    # same config, another progress flag: resumed (nothing left to train)
    again = train(Lin(), step, _data(), _data(seed=1), _cfg(epochs=2, progress=True), folder, val_mae,
                  {"width": 8})
    assert [h["epoch"] for h in again.history] == [0, 1]
    with caplog.at_level("WARNING", logger="quantrec.training.trainer"):
        res = train(Wide(), step, _data(), _data(seed=1), _cfg(epochs=2), folder, val_mae, {"width": 16})
    assert res.epochs_run == 2 and "model.width: 8 -> 16" in caplog.text and "from scratch" in caplog.text
    assert ck.load_json(str(tmp_path / "ck" / "config.json"))["model"] == {"width": 16}
    assert config_changes({"a": [1, 2], "train": {"progress": True}}, {"a": (1, 2), "train": {"progress": False}}) == []
    assert config_changes({"a": 1}, {"a": 1, "b": 2}) == ["b: 'absent' -> 2"]
