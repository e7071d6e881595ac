"""RQ-Reg speed on this machine: training and inference samples/s at the authors' size
(d_model 512, code embedding 64, L = 3, K = 48; training batch 1024) and the daily
small size, plus the RnC loss time (forward + backward) vectorised vs the per-sample
loop reference.

Synthetic inputs with the GMV task's shapes (29 numeric columns + 3 categorical ids),
so the numbers measure the model, not the data pipeline.

    .venv/bin/python benchmarks/rqreg_speed.py [--quick] [--threads 2] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from quantrec.codebook import RQCodebook  # noqa: E402
from quantrec.models.rqreg import rnc_loss_positive_loop  # noqa: E402
from quantrec.models.rqreg import RQRegConfig, RQRegModel, RQRegNet, rnc_loss, rnc_loss_loop  # noqa: E402
from quantrec.training.trainer import StepContext  # noqa: E402

N_NUM, CARDS = 29, [5000, 4000, 40]


def _batch(B: int, L: int, K: int, g: torch.Generator) -> dict[str, torch.Tensor]:
    tok = 2 + torch.arange(L)[None, :] * K + torch.randint(0, K, (B, L), generator=g)
    return {"num": torch.randn(B, N_NUM, generator=g),
            "cat": torch.stack([torch.randint(0, c, (B,), generator=g) for c in CARDS], 1),
            "tok": tok, "tok_in": torch.cat([torch.ones(B, 1, dtype=torch.long), tok[:, :-1]], 1),
            "q": torch.rand(B, L + 1, generator=g), "z": torch.rand(B, generator=g) * 6}


def time_model(cfg: RQRegConfig, batch: int, steps: int, infer_batch: int) -> dict[str, float]:
    L, K = cfg.layers, cfg.codebook_size
    book = RQCodebook.fit(np.random.default_rng(0).lognormal(1.0, 1.0, 20_000).clip(0, 6), layers=L, size=K)
    model = RQRegModel(cfg)
    model.codebook = book  # the network only needs the vocabulary values of a z-space codebook
    net = RQRegNet(N_NUM, CARDS, cfg, model._vocab_values(), L)
    opt = torch.optim.AdamW(net.parameters(), lr=cfg.train.lr)
    g = torch.Generator().manual_seed(0)
    b = _batch(batch, L, K, g)
    ctx = StepContext(0, 0, 1, torch.Generator().manual_seed(0), {"sampling_prob": 0.5})
    net.train()
    for i in range(steps + 1):          # first step = warm-up
        if i == 1:
            t0 = time.perf_counter()
        loss, _ = model._loss(net, b, ctx)
        opt.zero_grad()
        loss.backward()
        opt.step()
    train_sps = batch * steps / (time.perf_counter() - t0)
    net.eval()
    bi = _batch(infer_batch, L, K, g)
    with torch.no_grad():
        net(bi["num"], bi["cat"])
        t0 = time.perf_counter()
        reps = max(2, steps // 2)
        for _ in range(reps):
            net(bi["num"], bi["cat"])
        infer_sps = infer_batch * reps / (time.perf_counter() - t0)
    return {"train_samples_per_s": train_sps, "infer_samples_per_s": infer_sps,
            "params": sum(p.numel() for p in net.parameters())}


def time_rnc(B: int, D: int, reps: int, loop: str) -> float:
    """Seconds per forward + backward."""
    g = torch.Generator().manual_seed(0)
    f = torch.randn(B, D, generator=g, requires_grad=True)
    y = torch.rand(B, generator=g)
    fn = {"per-sample loop": rnc_loss_loop, "loop over positives (authors' style)": rnc_loss_positive_loop,
          "vectorised": rnc_loss}[loop]
    fn(f, y).backward()
    t0 = time.perf_counter()
    for _ in range(reps):
        fn(f, y).backward()
    return (time.perf_counter() - t0) / reps


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", default=None)
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    steps = 2 if a.quick else 10
    records = []
    sizes = [("authors (d512, E64, batch 1024)", RQRegConfig.paper(), 1024),
             ("daily small (d64, E16, batch 256)", RQRegConfig.small(use_regressor=True), 256)]  # as measured
    for name, cfg, batch in sizes:
        for backbone in (["lstm"] if a.quick else ["lstm", "rnn", "transformer"]):
            cfg.backbone = backbone
            r = time_model(cfg, batch, steps, 4096)
            rec = {"variant": f"{name} {backbone}", "threads": a.threads, **r}
            records.append(rec)
            print(json.dumps(rec), flush=True)
    loop_sizes = [64] if a.quick else [64, 128]
    for B in (loop_sizes + ([256] if a.quick else [256, 1024])):
        kinds = ["vectorised", "loop over positives (authors' style)"]
        if B in loop_sizes:
            kinds.append("per-sample loop")
        for loop in kinds:
            s = time_rnc(B, 3 * 64, 1 if loop != "vectorised" else (2 if a.quick else 5), loop)
            rec = {"variant": f"RnC B={B} D=192 {loop}",
                   "threads": a.threads, "seconds_fwd_bwd": s}
            records.append(rec)
            print(json.dumps(rec), flush=True)
    print("\n| variant | train samples/s | inference samples/s | params |\n|---|---|---|---|")
    for r in records:
        if "train_samples_per_s" in r:
            print(f"| {r['variant']} | {r['train_samples_per_s']:.0f} | {r['infer_samples_per_s']:.0f} | "
                  f"{r['params']:,} |")
    print("\n| RnC (forward + backward) | ms |\n|---|---|")
    for r in records:
        if "seconds_fwd_bwd" in r:
            print(f"| {r['variant']} | {1000 * r['seconds_fwd_bwd']:.1f} |")
    if a.json:
        Path(a.json).parent.mkdir(parents=True, exist_ok=True)
        with open(a.json, "w") as f:
            json.dump({"records": records}, f, indent=1)


if __name__ == "__main__":
    main()
