"""Two DDP processes (torchrun, gloo on CPU) train the same model as one process with
the same global batch."""

import json
import os
import subprocess
import sys

import numpy as np

from quantrec.models import ModelInputs, load_model
from quantrec.models.base import config_to_json
from quantrec.models.rqreg import RQRegConfig
from quantrec.stages.ddp import run
from quantrec.training.trainer import TrainConfig

from quantrec.data.features import build_aggregates
from quantrec.data.tasks import build_gmv_task
from quantrec.data.windows import WindowConfig, compute_windows


def test_two_process_ddp_matches_single_process(tmp_path, real_lines):
    # a small slice of the real GMV task: September 2011
    lines = real_lines[(real_lines["day"] >= "2011-09-01") & (real_lines["day"] < "2011-10-01")]
    windows = compute_windows(lines["day"], "2011-09-30", WindowConfig(eval_days=1, val_days=3, train_days=20))
    df = build_gmv_task(lines, windows, build_aggregates(lines, as_of=windows.run_date))
    tr = df[df.split == "train"].head(384)           # 6 global batches of 64, 32 per rank
    va = df[df.split == "val"].head(300)
    tr.to_parquet(tmp_path / "train.parquet")
    va.to_parquet(tmp_path / "val.parquet")
    # dropout off and no batch-coupled loss (RnC): then DDP == single process exactly
    cfg = RQRegConfig(d_model=16, code_emb_dim=8, feat_emb_dim=4, layers=2, codebook_size=8, dropout=0.0,
                      use_rnc=False, train=TrainConfig(epochs=2, batch_size=64, lr=3e-3, progress=False,
                                                       num_threads=1, seed=0))
    (tmp_path / "cfg.json").write_text(json.dumps(config_to_json(cfg)))

    single = run("rqreg", str(tmp_path / "train.parquet"), str(tmp_path / "val.parquet"),
                 str(tmp_path / "single"), config_to_json(cfg))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
         "-m", "quantrec.stages.ddp", "--model", "rqreg", "--train", str(tmp_path / "train.parquet"),
         "--val", str(tmp_path / "val.parquet"), "--out", str(tmp_path / "ddp"),
         "--config", str(tmp_path / "cfg.json")],
        capture_output=True, text=True, timeout=180, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]

    a, b = load_model(single), load_model(str(tmp_path / "ddp" / "model"))
    pa, pb = a.predict(va), b.predict(va)
    assert not np.allclose(pa, pa.mean())             # the model did learn something
    np.testing.assert_allclose(pb, pa, rtol=1e-4, atol=1e-4)
    ha = json.loads((tmp_path / "single" / "checkpoints" / "trainer_state.json").read_text())["history"]
    hb = json.loads((tmp_path / "ddp" / "checkpoints" / "trainer_state.json").read_text())["history"]
    assert len(ha) == len(hb) == 2
    np.testing.assert_allclose([h["val_metric"] for h in hb], [h["val_metric"] for h in ha], rtol=1e-4)


def test_a_model_that_reads_histories_gets_the_events_table(tmp_path):
    """DMQN under the DDP entry point: without --events it says what is missing; with it,
    it trains (one process here; the two-shard gradient equality is a DMQN unit test)."""
    import pandas as pd
    import pytest

    from quantrec.data import schema as S
    rng = np.random.default_rng(0)
    days = pd.date_range("2011-03-01", periods=20, freq="D")
    events = pd.DataFrame({S.USER: rng.choice(["u1", "u2", "u3", "u4"], 400), S.ITEM: rng.choice(list("abcdefgh"), 400),
                           S.ORDER: "o", S.DAY: rng.choice(days[:15], 400), S.QUANTITY: 1.0, S.UNIT_PRICE: 2.0,
                           S.VALUE: 2.0, S.COUNTRY: "UK"})
    events[S.TS] = events[S.DAY] + pd.Timedelta(hours=10)
    rows = []
    for day in days[10:]:
        for user in ("u1", "u2", "u3", "u4"):
            for j, item in enumerate("abcde"):
                rows.append({S.USER: user, S.DAY: day, S.ITEM: item, S.LABEL: int(j == 0), S.VALUE: 2.0 * (j == 0),
                             S.TS: day + pd.Timedelta(hours=12), S.COUNTRY: "UK",
                             S.SPLIT: "train" if day < days[17] else "val"})
    table = pd.DataFrame(rows)
    table[table.split == "train"].to_parquet(tmp_path / "train.parquet")
    table[table.split == "val"].to_parquet(tmp_path / "val.parquet")
    events.to_parquet(tmp_path / "events.parquet")
    from quantrec.models.dmqn import DMQNConfig
    cfg = config_to_json(DMQNConfig(item_dim=4, d_model=4, code_dim=4, codebooks=2, codewords=2, hstu_blocks=1,
                                    hstu_attn_dim=4, hstu_linear_dim=4, mlp_hidden=8, min_count=1,
                                    train=TrainConfig(epochs=1, batch_size=4, progress=False)))
    with pytest.raises(ValueError, match="pass --events"):
        run("dmqn", str(tmp_path / "train.parquet"), str(tmp_path / "val.parquet"), str(tmp_path / "x"), cfg)
    model_dir = run("dmqn", str(tmp_path / "train.parquet"), str(tmp_path / "val.parquet"), str(tmp_path / "out"),
                    cfg, events_path=str(tmp_path / "events.parquet"))
    p = load_model(model_dir).predict(table[table.split == "val"], ModelInputs(events=events))
    assert p.shape == ((table.split == "val").sum(),) and np.isfinite(p).all()
