"""The slice of the real data that pipeline tests run on."""

# A small run on a slice of the real data: four months, short windows, tiny models.
SLICE_START, SLICE_END = "2011-01-04", "2011-05-01"
SLICE_RUN_DATE = "2011-04-28"
SLICE_CONFIG = {
    "tasks": {"windows": {"eval_days": 2, "val_days": 3, "train_days": 45}, "purchase_train_days": 7},
    "models": {"max_train_rows": 4000, "models": {
        "rqreg": {"d_model": 16, "code_emb_dim": 8, "feat_emb_dim": 4, "layers": 2, "codebook_size": 16,
                  "train": {"epochs": 1, "batch_size": 256, "progress": False}},
        "wlr": {"d_model": 16, "emb_dim": 4, "train": {"epochs": 1, "batch_size": 256, "progress": False}},
        "dmqn": {"item_dim": 8, "d_model": 8, "code_dim": 8, "codebooks": 2, "codewords": 4, "hstu_blocks": 1,
                 "hstu_attn_dim": 8, "hstu_linear_dim": 8, "mlp_hidden": 16, "max_train_requests": 300,
                 "train": {"epochs": 1, "batch_size": 32, "progress": False}}}},
}
