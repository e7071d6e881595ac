"""Warm start from a champion: shared ids keep their rows, everything else by name+shape."""

from __future__ import annotations

import numpy as np
import torch

from quantrec.models import ModelInputs, RQRegConfig, RQRegModel, WLRConfig, WLRModel
from quantrec.training.trainer import TrainConfig
from quantrec.training.warm_start import warm_start


def _cfg(epochs=1):
    return WLRConfig(d_model=16, emb_dim=4, train=TrainConfig(epochs=epochs, batch_size=64, progress=False, seed=0))


def test_embedding_rows_follow_their_ids_across_windows(gmv_frames):
    tr, va, _ = gmv_frames
    champion = WLRModel(_cfg())
    champion.fit(tr, va)
    # today's window: some users gone, one new user, so the index shifts
    today = tr[tr["user_id"] != tr["user_id"].iloc[0]].copy()
    today.loc[today.index[:5], "user_id"] = "brand-new-user"
    fresh = WLRModel(_cfg(epochs=0))
    fresh.features = type(champion.features)(champion.features.spec).fit(today)
    fresh._prepare(today["gmv"].to_numpy(np.float64), ModelInputs())
    fresh.net = fresh._build()
    before = {k: v.clone() for k, v in fresh.net.state_dict().items()}
    report = warm_start(fresh.net, fresh.features, champion.net, champion.features)

    new_vocab, old_vocab = fresh.features.vocab["user_id"], champion.features.vocab["user_id"]
    shared = sorted(set(new_vocab) & set(old_vocab))
    assert any(new_vocab[u] != old_vocab[u] for u in shared)  # the remap is exercised
    emb_new = fresh.net.state_dict()
    key = next(k for k in emb_new if k.endswith("embs.0.weight"))
    for uid in shared[:20]:
        torch.testing.assert_close(emb_new[key][new_vocab[uid]], champion.net.state_dict()[key][old_vocab[uid]])
    # the new id keeps its fresh initialisation
    torch.testing.assert_close(emb_new[key][new_vocab["brand-new-user"]], before[key][new_vocab["brand-new-user"]])
    assert report["embedding_rows"]["user_id"] == len(shared) + 1
    assert report["copied"] and not any("embs" in k for k in report["copied"])


def test_fit_with_init_from_starts_from_the_champion(gmv_frames):
    tr, va, ev = gmv_frames
    cfg = RQRegConfig(d_model=16, code_emb_dim=8, feat_emb_dim=4, layers=2, codebook_size=8,
                      train=TrainConfig(epochs=2, batch_size=64, progress=False, seed=0))
    champion = RQRegModel(cfg)
    champion.fit(tr, va)
    warm = RQRegModel(cfg)
    warm.fit(tr, va, ModelInputs(codebook=champion.fit_target_codebook(tr["gmv"].to_numpy(np.float64))),
             init_from=champion)
    # identical window and codebook: every parameter came from the champion
    assert warm.warm_start_report["skipped"] == []
    assert len(warm.warm_start_report["copied"]) > 5
    assert np.isfinite(warm.predict(ev)).all()
