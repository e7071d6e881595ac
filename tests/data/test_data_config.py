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
