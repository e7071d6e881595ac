"""The train stage: a run's checkpoints live where a re-run of the same run finds them."""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import pandas as pd

from quantrec.config import RunConfig
from quantrec.data import schema as S
from quantrec.stages.champion import ChampionInfo
from quantrec.stages.common import run_key
from quantrec.stages.train import read_trained, train_stage

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "models"))
from models_synth import make_gmv_frame  # noqa: E402

CONFIG = {"models": {"daily": ["wlr"], "models": {"wlr": {"d_model": 8, "emb_dim": 2, "train": {
    "epochs": 3, "batch_size": 64, "progress": False}}}}}


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_rerun_resumes_from_the_stable_checkpoints(tmp_path):
    df = make_gmv_frame()
    df[S.TS] = pd.Timestamp("2011-01-01") + pd.to_timedelta(range(len(df)), unit="min")
    df.to_parquet(tmp_path / "gmv.parquet")
    cfg = RunConfig.from_dict(CONFIG)
    ckpt = tmp_path / "checkpoints" / run_key("2011-02-01", "ab" * 32, cfg.to_dict()) / "gmv"
    first = train_stage("gmv", str(tmp_path / "gmv.parquet"), cfg, str(tmp_path / "out1"), ChampionInfo(),
                        checkpoint_dir=str(ckpt))
    state = ckpt / "wlr" / "trainer_state.json"
    assert state.exists() and first["wlr"]["epochs"] == 3
    stamp = state.stat().st_mtime_ns
    # the same run again (a retried or re-run task): it resumes, trains nothing new,
    # and saves the same model
    second = train_stage("gmv", str(tmp_path / "gmv.parquet"), cfg, str(tmp_path / "out2"), ChampionInfo(),
                         checkpoint_dir=str(ckpt))
    assert state.stat().st_mtime_ns == stamp and second["wlr"]["val_metric"] == first["wlr"]["val_metric"]
    assert _digest(tmp_path / "out1" / "wlr" / "model.safetensors") == _digest(tmp_path / "out2" / "wlr" / "model.safetensors")
    assert read_trained(str(tmp_path / "out2"))["models"]["wlr"]["train_rows"] == first["wlr"]["train_rows"]
    # another config is another key: nothing to resume there
    other = RunConfig.from_dict({**CONFIG, "tasks": {"negatives_per_positive": 3}})
    assert run_key("2011-02-01", "ab" * 32, other.to_dict()) != ckpt.parent.name


def test_a_task_without_daily_models_writes_an_empty_manifest(tmp_path):
    df = make_gmv_frame()
    df.to_parquet(tmp_path / "gmv.parquet")
    cfg = RunConfig.from_dict(CONFIG)
    assert train_stage("purchase", str(tmp_path / "gmv.parquet"), cfg, str(tmp_path / "out"), ChampionInfo()) == {}
    assert read_trained(str(tmp_path / "out")) == {"task": "purchase", "models": {}}
