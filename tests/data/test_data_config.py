from __future__ import annotations

import pytest

from quantrec.config import RunConfig


def test_kfp_floats_become_ints_and_round_trip():
    # protobuf Structs (the KFP UI, dict parameters) carry every number as a float
    cfg = RunConfig.from_dict({"tasks": {"windows": {"eval_days": 2.0, "train_days": 30.0}, "purchase_train_days": 7.0}})
    assert cfg.tasks.windows.eval_days == 2 and isinstance(cfg.tasks.windows.eval_days, int)
    assert RunConfig.from_dict(cfg.to_dict()) == cfg
    assert RunConfig.from_dict({}) == RunConfig()
    # free-form override dicts too: the config a run records and hashes is the one written
    through_kfp = RunConfig.from_dict({"models": {"models": {"wlr": {"d_model": 16.0, "dropout": 0.5}}}})
    assert through_kfp == RunConfig.from_dict({"models": {"models": {"wlr": {"d_model": 16, "dropout": 0.5}}}})
    assert through_kfp.models.models["wlr"]["d_model"] == 16 and isinstance(through_kfp.models.models["wlr"]["d_model"], int)


@pytest.mark.parametrize("raw, message", [
    ({"taks": {}}, r"config field taks: unknown key"),
    ({"tasks": {"windows": {"eval_dayz": 1}}}, "tasks.windows.eval_dayz"),
    ({"tasks": {"windows": {"eval_days": 1.5}}}, "expected an integer"),
    ({"tasks": {"ltv_eval_share": "a lot"}}, "tasks.ltv_eval_share"),
    # the whole tree is checked before any stage runs (issue 7 §9): model overrides by name
    ({"models": {"models": {"wlr": {"trian": {}}}}}, r"config field models\.models\.wlr\.trian: unknown key"),
    ({"models": {"models": {"wlr": {"train": {"epochs": 0}}}}}, r"models\.models\.wlr\.train\.epochs: must be at least 1"),
    ({"models": {"models": {"rqreg": {"train": {"lr": -1.0}}}}}, r"models\.models\.rqreg\.train\.lr: must be positive"),
    ({"models": {"models": {"rqreg": {"d_model": "wide"}}}}, r"models\.models\.rqreg\.d_model: expected an integer"),
    ({"models": {"models": {"nosuch": {}}}}, r"models\.models: names unknown model"),
    ({"models": {"daily": ["rqreg", "nosuch"]}}, r"models\.daily: names unknown model"),
    ({"models": {"daily": ["rqreg"]}}, r"models\.baseline: 'wlr' must be one of models\.daily"),
    ({"models": {"preset": "huge"}}, r"models\.preset: must be one of"),
    ({"models": {"max_train_rows": -5}}, r"models\.max_train_rows: must be >= 0"),
    ({"tasks": {"windows": {"eval_days": 0}}}, r"tasks\.windows\.eval_days: must be at least 1"),
    ({"tasks": {"windows": {"val_days": 0}}}, r"tasks\.windows\.val_days: must be at least 1"),
    ({"tasks": {"negatives_per_positive": 0}}, r"tasks\.negatives_per_positive: must be at least 1"),
    ({"tasks": "all"}, r"config field tasks: expected a mapping"),
])
def test_config_typos_and_bad_values_are_named(raw, message):
    with pytest.raises(ValueError, match=message):
        RunConfig.from_dict(raw)


def test_saved_model_configs_load_leniently_at_every_level():
    from quantrec.models.base import config_from_json, config_to_json
    from quantrec.models.rqreg import RQRegConfig
    saved = config_to_json(RQRegConfig.small())
    saved["removed_field"] = 1
    saved["train"]["also_removed"] = 2
    saved["train"]["epochs"] = 3.0  # as JSON / KFP may carry it
    back = config_from_json(RQRegConfig, saved)
    assert back.train.epochs == 3 and isinstance(back.train.epochs, int)
    assert back == RQRegConfig.small(train=type(back.train)(**{**config_to_json(RQRegConfig.small())["train"], "epochs": 3}))


def test_model_overrides_apply_on_the_preset():
    cfg = RunConfig.from_dict({"models": {"preset": "paper", "models": {"wlr": {"train": {"epochs": 2.0}}}}})
    wlr = cfg.models.model_config("wlr")
    assert wlr.train.epochs == 2 and wlr.d_model == 512  # paper width kept, one field overridden
    assert cfg.models.model_config("rqreg").d_model == 512
    assert RunConfig.from_dict(cfg.to_dict()) == cfg
