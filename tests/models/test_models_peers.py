import numpy as np
import pytest
import torch

from quantrec.models import MODELS, LGBMConfig, MLPConfig, WLRConfig, WLRModel, load_model
from quantrec.training.trainer import TrainConfig


def _train(epochs=3):
    return TrainConfig(epochs=epochs, batch_size=64, lr=3e-3, progress=False, seed=0)


@pytest.mark.parametrize("name,cfg", [
    ("wlr", WLRConfig(d_model=16, emb_dim=4, train=_train())),
    ("mlp", MLPConfig(d_model=16, emb_dim=4, train=_train())),
    ("lgbm", LGBMConfig(num_boost_round=30, early_stopping_rounds=10,
                        params={"num_leaves": 7, "min_data_in_leaf": 5, "num_threads": 1, "verbose": -1})),
])
def test_fit_predict_save_load(tmp_path, gmv_frames, name, cfg):
    tr, va, ev = gmv_frames
    m = MODELS[name](cfg)
    m.fit(tr, va)
    p = m.predict(ev)
    assert p.shape == (len(ev),) and np.isfinite(p).all() and (p >= 0).all()
    m.save(str(tmp_path))
    back = load_model(str(tmp_path))
    assert type(back) is type(m)
    np.testing.assert_allclose(back.predict(ev), p, rtol=1e-6)
    odd = ev.head(3).copy()
    odd["item_id"] = "unseen"
    assert np.isfinite(back.predict(odd)).all()


def test_wlr_serves_exp_logit_and_recovers_weighted_odds():
    """With a constant input the WLR optimum is odds = mean(value): exp(logit) = E[y]."""
    m = WLRModel(WLRConfig(d_model=8, emb_dim=2, dropout=0.0, clip_quantile=1.0))
    m.state = {"clip": 1e9}
    from quantrec.models.base import ScalarNet
    net = ScalarNet(1, [2], m.config)
    y = np.array([1.0, 3.0, 8.0, 4.0] * 16)
    batch = {"num": torch.zeros(len(y), 1), "cat": torch.zeros(len(y), 1, dtype=torch.long),
             **m._targets(y)}
    opt = torch.optim.Adam(net.parameters(), lr=0.05)
    for _ in range(300):
        opt.zero_grad()
        m._loss(net, batch, None).backward()
        opt.step()
    pred = m._predict_tensor(net, batch["num"][:1], batch["cat"][:1])
    assert abs(float(pred.detach()) - y.mean()) < 0.1


def test_mlp_loss_is_on_log1p():
    m = MODELS["mlp"](MLPConfig())
    t = m._targets(np.array([0.0, np.e - 1]))["t"]
    torch.testing.assert_close(t, torch.tensor([0.0, 1.0]))


def test_ltv_task_learns_the_spend_signal(ltv_frames):
    """On the LTV table the label is ~ first-period spend x noise (or 0): a model that
    learned anything ranks customers by it (Norm-Gini well above a constant's 0)."""
    from quantrec.evaluation.metrics import norm_gini
    tr, va = ltv_frames
    for name, cfg in [("rqreg", MODELS["rqreg"].config_cls(task="ltv", d_model=16, layers=2, codebook_size=8,
                                                             train=_train(4))),
                      ("lgbm", LGBMConfig(task="ltv", objective="tweedie", num_boost_round=60,
                                          params={"num_leaves": 7, "min_data_in_leaf": 5, "verbose": -1}))]:
        m = MODELS[name](cfg)
        m.fit(tr, va)
        p = m.predict(va)
        assert p.shape == (len(va),) and np.isfinite(p).all()
        assert m.label == "ltv"
        assert norm_gini(va["ltv"].to_numpy(), p) > 0.4, name


def test_unknown_task_is_an_error_not_the_ltv_label():
    from quantrec.models.base import label_column
    assert label_column("purchase") == "label" and label_column("gmv") == "gmv"
    with pytest.raises(ValueError, match="unknown task 'gvm'"):
        label_column("gvm")
    with pytest.raises(ValueError, match="unknown task"):
        MODELS["wlr"](WLRConfig(task="clicks")).label


@pytest.mark.parametrize("objective", ["l1", "l2_log"])
def test_lgbm_early_stops_on_val_mae_in_label_units(gmv_frames, objective):
    """Both objectives select the boosting round on the val MAE of the served values
    (for "l2_log": expm1 of the log-scale prediction, not the log-scale L2)."""
    from quantrec.evaluation.metrics import mae
    tr, va, _ = gmv_frames
    m = MODELS["lgbm"](LGBMConfig(objective=objective, num_boost_round=80, early_stopping_rounds=10,
                                  params={"num_leaves": 7, "min_data_in_leaf": 5, "num_threads": 1,
                                          "verbose": -1, "learning_rate": 0.1}))
    res = m.fit(tr, va)
    assert res.best_metric == pytest.approx(mae(va["gmv"], m.predict(va)), rel=1e-6)
    if objective == "l2_log":  # served on the label scale: no log-scale values near 0..5 only
        assert m.predict(va).max() > np.log1p(va["gmv"]).max()


def test_lgbm_without_id_categoricals(tmp_path, gmv_frames):
    tr, va, ev = gmv_frames
    cfg = LGBMConfig(categorical=("country",), num_boost_round=30, early_stopping_rounds=10,
                     params={"num_leaves": 7, "min_data_in_leaf": 5, "num_threads": 1, "verbose": -1})
    m = MODELS["lgbm"](cfg)
    m.fit(tr, va)
    assert m.features.spec.categorical == ["country"]
    assert not {"cat_user_id", "cat_item_id"} & set(m.booster.feature_name())
    m.save(str(tmp_path / "m"))
    np.testing.assert_allclose(load_model(str(tmp_path / "m")).predict(ev), m.predict(ev), rtol=1e-9)
    with pytest.raises(ValueError, match="unknown objective"):
        MODELS["lgbm"](LGBMConfig(objective="quantile")).fit(tr, va)


@pytest.mark.parametrize("name", ["wlr", "mlp"])
def test_scalar_nets_take_the_categorical_choice(gmv_frames, name):
    tr, va, ev = gmv_frames
    cls = MODELS[name]
    m = cls(cls.config_cls(d_model=8, emb_dim=2, categorical=("item_id", "country"), train=_train(1)))
    m.fit(tr, va)
    assert m.features.spec.categorical == ["item_id", "country"] and len(m.net.encoder.embs) == 2
    assert np.isfinite(m.predict(ev)).all()
