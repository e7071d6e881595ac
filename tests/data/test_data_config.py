from __future__ import annotations

import pytest

from quantrec.config import RunConfig


def test_kfp_floats_become_ints_and_round_trip():
    # protobuf Structs (the KFP UI, dict parameters) carry every number as a float
    cfg = RunConfig.from_dict({"tasks": {"windows": {"eval_days": 2.0, "train_days": 30.0}, "purchase_train_days": 7.0}})
    assert cfg.tasks.windows.eval_days == 2 and isinstance(cfg.tasks.windows.eval_days, int)
    assert RunConfig.from_dict(cfg.to_dict()) == cfg
    assert RunConfig.from_dict({}) == RunConfig()


@pytest.mark.parametrize("raw, message", [
    ({"taks": {}}, r"unknown config field\(s\) \['taks'\]"),
    ({"tasks": {"windows": {"eval_dayz": 1}}}, "tasks.windows.eval_dayz"),
    ({"tasks": {"windows": {"eval_days": 1.5}}}, "expected an integer"),
    ({"tasks": {"ltv_eval_share": "a lot"}}, "tasks.ltv_eval_share"),
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
