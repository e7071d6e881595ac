"""GR: generative regression (Ma et al. 2025, "Generative Regression Based Watch Time
Prediction for Short-Video Recommendation", arXiv 2412.20211), for any value task.

Target and vocabulary. Like RQ-Reg the model works on z = s * t(min(y, clip))
(``TargetTransform``: t = log1p or identity, clip = the ``clip_quantile`` of the
training labels, s maps t(clip) to ``target_max``). The vocabulary is GR's dynamic
quantiles of the training z (Algorithm 1, ``DynamicQuantileCodebook``); a label is
its greedy largest-first token decomposition wrapped in SOS / EOS, padded with PAD.
Token ids: PAD 0, SOS 1, EOS 2, vocabulary tokens 3.. in decreasing value (so id
neighbours are value neighbours, which the embedding mixup relies on).

Network (B batch, T = max_len + 1 decoder positions, d = d_model, V tokens, M memory):
    memory = encoder(num, cat).view(B, M, d)     feature MLP (the paper's FFN encoder)
    x_t = E[token_t] (+ position)                (B, T, d) inputs SOS, s_1, .., s_{T-1}
    h = TransformerDecoder(x, memory)            masked self-attention + cross-attention
    logits = out(h)                              (B, T, V); PAD and SOS never predicted

Loss = ce_weight * CE(logits, [s_1.., EOS]) + huber_weight * Huber(sum_t E_p[g], z)
(authors: 10 x CE + 1 x Huber), where the decoded sum uses each position's expected
token value (the argmax sum of the paper's formula has no gradient).

Curriculum learning with embedding mixup (CLEM, section 3.5.2). Two decoder passes
share the weights: pass 1 with the ground-truth inputs; pass 2 feeds, at every
position, the ground-truth token with probability p or else the embedding of pass 1's
prediction for it. With mixup the prediction's embedding is the windowed softmax
mixture z_t = sum_j sigma_j E[k_t + j] over the ``window`` ids either side of the
argmax k_t (sigma = softmax of the logits inside the window; gradients flow through
sigma); without mixup it is E[argmax] (no gradient). p decays with the training
step tau: "sigmoid" p = p0 * w / (w + exp(tau / w)) (the paper's Eq. 9; w = ``omega``,
0 = chosen so that p = p0 / 2 at the middle of the configured steps), "linear",
"exponential" or "fixed". The step's loss is the mean of both passes' losses.
Inference is autoregressive from SOS with only the first pass: the next input is the
mixup embedding (or E[argmax]) of the current prediction; the value is the sum of the
argmax tokens' values until EOS (``decode`` "argmax", the paper) or of each step's
expected token value ("expected").

Ablation switches (the paper's Table 4): ``curriculum`` (two passes), ``mixup``,
``tf_schedule`` / ``tf_fixed``: w/o CLEM = neither; EM with TF = mixup without
curriculum (p = 1: pass 2 equals pass 1, so it is skipped); CL w/o EM = curriculum
without mixup; linear / exponential / fixed p = 0.5 / fixed p = 0.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from quantrec.models.base import FeatureEncoder, ModelInputs, NeuralModel
from quantrec.models.features import FeaturePipeline, model_feature_spec
from quantrec.training import checkpoints as ck
from quantrec.training.trainer import Batch, StepContext, TrainConfig

PAD, SOS, EOS, N_SPECIAL = 0, 1, 2, 3
TF_SCHEDULES = ("sigmoid", "linear", "exponential", "fixed")
DECODES = ("argmax", "expected")


@dataclass
class GRConfig:
    """GR hyper-parameters. ``small()`` is the daily / benchmark size, ``paper()`` the authors'."""

    task: str = "gmv"
    cat_mode: str = "index"
    min_count: int = 2
    categorical: tuple[str, ...] | None = None   # embedded id columns; None = the task's all
    # target and vocabulary (Algorithm 1)
    target: str = "log1p"            # "log1p" | "raw"
    clip_quantile: float = 0.999
    target_max: float = 6.0
    q_start: float = 0.9999
    q_end: float = 0.9
    decay: float = 0.99
    eps: float = 1e-6
    stop_rel: float = 1e-3           # label encoding stops at |rest| <= stop_rel * z (paper: 0.001)
    max_len: int = 16                # cap on content tokens per label
    # network
    d_model: int = 64
    n_heads: int = 4
    layers: int = 2
    ffn: int = 128
    feat_emb_dim: int = 16
    memory_tokens: int = 1           # encoder output as M memory tokens for cross-attention
    dropout: float = 0.1             # feature encoder
    decoder_dropout: float = 0.0     # decoder layers (0: dropout's RNG was ~20% of a CPU step)
    # loss
    ce_weight: float = 10.0
    huber_weight: float = 1.0
    huber_delta: float = 1.0         # z units
    # CLEM
    curriculum: bool = True
    mixup: bool = True
    window: int = 2                  # mixup over ids k-window .. k+window
    tf_schedule: str = "sigmoid"     # "sigmoid" | "linear" | "exponential" | "fixed"
    tf_p0: float = 1.0
    tf_omega: float = 0.0            # 0 = automatic (p = p0 / 2 at mid-training)
    tf_fixed: float = 0.5            # p of the "fixed" schedule
    tf_exp_rate: float = 5.0         # "exponential": p = p0 * exp(-rate * tau / steps)
    decode: str = "argmax"           # "argmax" (paper) | "expected"
    train: TrainConfig = field(default_factory=lambda: TrainConfig(epochs=8, batch_size=512, lr=1e-3,
                                                                   patience=3))

    def __post_init__(self) -> None:
        if self.target not in ("log1p", "raw"):
            raise ValueError(f"GR target must be 'log1p' or 'raw', got {self.target!r}")
        if self.tf_schedule not in TF_SCHEDULES:
            raise ValueError(f"GR tf_schedule must be one of {TF_SCHEDULES}, got {self.tf_schedule!r}")
        if self.decode not in DECODES:
            raise ValueError(f"GR decode must be one of {DECODES}, got {self.decode!r}")
        if self.d_model % self.n_heads:
            raise ValueError(f"GR d_model {self.d_model} must be a multiple of n_heads {self.n_heads}")

    @classmethod
    def small(cls, **kw: Any) -> "GRConfig":
        """CPU size: d 64, 2 decoder layers, 4 heads, FFN 128, no decoder dropout; AdamW
        1e-3, the authors' batch 512, up to 8 epochs (patience 3). Two decoder passes
        over up to max_len + 1 positions make a step ~5x an RQ-Reg step on CPU
        (benchmarks/RESULTS.md gmv_quality: fit seconds)."""
        return cls(**kw)

    @classmethod
    def paper(cls, **kw: Any) -> "GRConfig":
        """The authors': 3 layers, 8 heads, hidden 128, FFN 256; Adam 5e-4, batch 512, 20 epochs."""
        kw.setdefault("train", TrainConfig(epochs=20, batch_size=512, lr=5e-4, patience=5))
        return cls(d_model=128, n_heads=8, layers=3, ffn=256, **kw)


def sigmoid_omega(total_steps: int, mid: float = 0.5) -> float:
    """omega such that p0 * w / (w + exp(tau / w)) = p0 / 2 at tau = mid * total_steps,
    i.e. w * ln(w) = mid * total_steps (solved by bisection; w >= e)."""
    target = max(mid * total_steps, math.e)
    lo, hi = math.e, max(2 * target, 3.0)
    for _ in range(100):
        w = 0.5 * (lo + hi)
        lo, hi = (w, hi) if w * math.log(w) < target else (lo, w)
    return 0.5 * (lo + hi)


def teacher_forcing_prob(cfg: GRConfig, step: int, total_steps: int) -> float:
    """Probability p of feeding the ground-truth token in pass 2 at training step ``step``."""
    if not cfg.curriculum:
        return 1.0
    frac = step / max(total_steps, 1)
    if cfg.tf_schedule == "fixed":
        return float(cfg.tf_fixed)
    if cfg.tf_schedule == "linear":
        return float(cfg.tf_p0 * max(0.0, 1.0 - frac))
    if cfg.tf_schedule == "exponential":
        return float(cfg.tf_p0 * math.exp(-cfg.tf_exp_rate * frac))
    w = cfg.tf_omega or sigmoid_omega(total_steps)
    return float(cfg.tf_p0 * w / (w + math.exp(min(step / w, 700.0))))


class GRNet(nn.Module):
    """See the module docstring. ``token_values`` (V,): each id's value in z units
    (specials 0); ``positions``: T = max_len + 1 decoder positions."""

    def __init__(self, n_numeric: int, cardinalities: list[int], cfg: GRConfig,
                 token_values: torch.Tensor, positions: int) -> None:
        super().__init__()
        self.cfg = cfg
        d, self.M = cfg.d_model, cfg.memory_tokens
        self.V, self.T = int(token_values.shape[0]), int(positions)
        self.register_buffer("token_values", token_values.float())                    # (V,)
        never = torch.zeros(self.V)
        never[[PAD, SOS]] = float("-inf")                                              # never targets
        self.register_buffer("never", never)
        self.encoder = FeatureEncoder(n_numeric, cardinalities, cfg.feat_emb_dim, 2 * d, self.M * d, cfg.dropout)
        self.tok_emb = nn.Embedding(self.V, d)
        self.pos_emb = nn.Parameter(torch.zeros(self.T, d))
        layer = nn.TransformerDecoderLayer(d, cfg.n_heads, cfg.ffn, cfg.decoder_dropout, batch_first=True)
        self.decoder = nn.TransformerDecoder(layer, cfg.layers)
        self.out = nn.Linear(d, self.V)
        self.register_buffer("causal", nn.Transformer.generate_square_subsequent_mask(self.T), persistent=False)

    def memory(self, num: torch.Tensor, cat: torch.Tensor) -> torch.Tensor:
        """(B, M, d) encoder memory."""
        return self.encoder(num, cat).view(num.shape[0], self.M, self.cfg.d_model)

    def decode(self, x: torch.Tensor, memory: torch.Tensor) -> torch.Tensor:
        """Input embeddings x (B, t, d), memory (B, M, d) -> logits (B, t, V)."""
        t = x.shape[1]
        h = self.decoder(x + self.pos_emb[:t], memory, tgt_mask=self.causal[:t, :t], tgt_is_causal=True)
        return self.out(h) + self.never

    def mixup(self, logits: torch.Tensor) -> torch.Tensor:
        """Embedding of the prediction at each position: (B, t, V) logits -> (B, t, d).

        Content argmax k: windowed softmax mixture over ids k-w..k+w inside the
        vocabulary (ids >= 3); a special argmax (EOS): its own embedding."""
        k = logits.argmax(-1)                                                          # (B, t)
        w = self.cfg.window
        offs = torch.arange(-w, w + 1, device=logits.device)
        idx = k[..., None] + offs                                                      # (B, t, 2w+1)
        # a special argmax uses its own embedding below; its window is kept finite
        # (all clamped ids) so the discarded branch has no NaN gradient
        inside = ((idx >= N_SPECIAL) & (idx < self.V)) | (k < N_SPECIAL)[..., None]
        idx_c = idx.clamp(N_SPECIAL, self.V - 1)
        sel = logits.gather(-1, idx_c).masked_fill(~inside, float("-inf"))
        sigma = sel.softmax(-1)                                                        # (B, t, 2w+1)
        mixed = (sigma[..., None] * self.tok_emb(idx_c)).sum(-2)                       # (B, t, d)
        return torch.where((k >= N_SPECIAL)[..., None], mixed, self.tok_emb(k))

    def predicted_embedding(self, logits: torch.Tensor) -> torch.Tensor:
        """Next-input embedding of a prediction: mixup or E[argmax] (no gradient)."""
        if self.cfg.mixup:
            return self.mixup(logits)
        return self.tok_emb(logits.argmax(-1))

    def forward(self, num: torch.Tensor, cat: torch.Tensor, tok_in: torch.Tensor | None = None,
                tf_prob: float = 1.0, generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        """Training (``tok_in`` (B, T) ground-truth inputs): {"logits1", "logits2"?}
        (B, T, V); pass 2 only when ``tf_prob`` < 1. Inference (``tok_in`` None):
        {"tokens" (B, T) argmax ids (PAD after EOS), "value" (B,) z, "expected" (B,) z}."""
        mem = self.memory(num, cat)
        if tok_in is not None:
            logits1 = self.decode(self.tok_emb(tok_in), mem)
            out = {"logits1": logits1}
            if tf_prob < 1.0:
                pred = self.predicted_embedding(logits1)[:, :-1]                        # predicts inputs 1..T-1
                gt = self.tok_emb(tok_in[:, 1:])
                u = torch.rand(gt.shape[:2], generator=generator).to(gt.device)
                x2 = torch.where((u < tf_prob)[..., None], gt, pred)
                x2 = torch.cat([self.tok_emb(tok_in[:, :1]), x2], 1)
                out["logits2"] = self.decode(x2, mem)
            return out
        return self.generate(mem)

    def generate(self, mem: torch.Tensor) -> dict[str, torch.Tensor]:
        """Autoregressive decoding from SOS (see ``forward``)."""
        B = mem.shape[0]
        x = self.tok_emb(torch.full((B, 1), SOS, dtype=torch.long, device=mem.device))
        tokens = torch.full((B, self.T), PAD, dtype=torch.long, device=mem.device)
        value = torch.zeros(B, device=mem.device)
        expected = torch.zeros(B, device=mem.device)
        alive = torch.ones(B, dtype=torch.bool, device=mem.device)
        for t in range(self.T):
            logits = self.decode(x, mem)[:, -1:]                                       # (B, 1, V)
            k = logits[:, 0].argmax(-1)
            if t == self.T - 1:                                                         # length cap: stop
                k = torch.full_like(k, EOS)
            tokens[:, t] = torch.where(alive, k, torch.full_like(k, PAD))
            value = value + torch.where(alive, self.token_values[k], torch.zeros_like(value))
            expected = expected + torch.where(alive, logits[:, 0].softmax(-1) @ self.token_values,
                                              torch.zeros_like(value))
            alive = alive & (k != EOS)
            if not bool(alive.any()):
                break
            x = torch.cat([x, self.predicted_embedding(logits)], 1)
        return {"tokens": tokens, "value": value, "expected": expected}


def _seq_loss(logits: torch.Tensor, tok_out: torch.Tensor, z: torch.Tensor, token_values: torch.Tensor,
              cfg: GRConfig) -> tuple[torch.Tensor, float, float]:
    """ce_weight * CE + huber_weight * Huber(sum of expected values where target != PAD, z)."""
    V = logits.shape[-1]
    ce = F.cross_entropy(logits.reshape(-1, V), tok_out.reshape(-1), ignore_index=PAD)
    real = (tok_out != PAD).float()                                                    # (B, T)
    z_hat = ((logits.softmax(-1) @ token_values) * real).sum(1)                        # (B,)
    huber = F.huber_loss(z_hat, z, delta=cfg.huber_delta)
    return cfg.ce_weight * ce + cfg.huber_weight * huber, float(ce.detach()), float(huber.detach())


class GRModel(NeuralModel):
    """The model protocol over ``GRNet``. The fitted transform + vocabulary is saved as
    ``<dir>/codebook.json`` (a ``TargetCodebook`` around a ``DynamicQuantileCodebook``).

    It fits its own vocabulary on the training labels (needs no run codebook), so it
    does not warm start: yesterday's token ids name other values."""

    name = "gr"
    display_name = "GR"
    config_cls = GRConfig
    needs = frozenset()
    warm_starts = False

    def __init__(self, config: GRConfig | None = None) -> None:
        super().__init__(config)
        self.transform = None
        self.codebook = None

    def fit(self, frame_train, frame_val, inputs: ModelInputs | None = None, out_dir: str | None = None,
            init_from: "GRModel | None" = None, features=None):
        if init_from is not None:
            raise ValueError("gr does not warm start (warm_starts = False): its vocabulary is refitted")
        features = features or FeaturePipeline(model_feature_spec(self.config)).fit(frame_train)
        return super().fit(frame_train, frame_val, inputs, out_dir, None, features)

    # -- target side --
    def _prepare(self, y_train: np.ndarray, inputs: ModelInputs) -> None:
        from quantrec.codebook.target import TargetCodebook
        cfg = self.config
        book = TargetCodebook.fit(y_train, transform=cfg.target, clip_quantile=cfg.clip_quantile,
                                  target_max=cfg.target_max, method="dynamic_quantile", q_start=cfg.q_start,
                                  q_end=cfg.q_end, decay=cfg.decay, eps=cfg.eps, stop_rel=cfg.stop_rel,
                                  max_len=cfg.max_len)
        self.transform, self.codebook = book.transform, book.codebook
        tc = cfg.train
        per_epoch = math.ceil(len(y_train) / tc.batch_size)
        if tc.max_steps_per_epoch:
            per_epoch = min(per_epoch, tc.max_steps_per_epoch)
        self.state = {"vocab": len(self.codebook.vocab), "max_len": self.codebook.max_len,
                      "steps_per_epoch": per_epoch, "total_steps": per_epoch * tc.epochs}

    def _targets(self, y: np.ndarray) -> dict[str, torch.Tensor]:
        """tok_in (n, T) inputs (SOS first), tok_out (n, T) targets (EOS, then PAD), z (n,)."""
        z = self.transform.to_z(y)
        ids = np.asarray(self.codebook.encode(z), dtype=np.int64)                     # (n, max_len + 2)
        return {"z": torch.from_numpy(z.astype(np.float32)), "tok_in": torch.from_numpy(ids[:, :-1]),
                "tok_out": torch.from_numpy(ids[:, 1:])}

    def _token_values(self) -> torch.Tensor:
        return torch.from_numpy(np.asarray(self.codebook.token_values, dtype=np.float32))

    def _build(self) -> nn.Module:
        return GRNet(self.features.n_numeric, self.features.cardinalities, self.config, self._token_values(),
                     self.codebook.max_len + 1)

    # -- training --
    def _loss(self, net: nn.Module, batch: Batch, ctx: StepContext):
        cfg = self.config
        inner = net.module if hasattr(net, "module") else net
        step = ctx.epoch * self.state["steps_per_epoch"] + ctx.step
        p = teacher_forcing_prob(cfg, step, self.state["total_steps"])
        out = net(batch["num"], batch["cat"], batch["tok_in"], p, ctx.generator)
        loss, ce, huber = _seq_loss(out["logits1"], batch["tok_out"], batch["z"], inner.token_values, cfg)
        parts = {"ce": ce, "huber": huber, "tf_prob": p}
        if "logits2" in out:
            loss2, ce2, huber2 = _seq_loss(out["logits2"], batch["tok_out"], batch["z"], inner.token_values, cfg)
            loss = 0.5 * (loss + loss2)
            parts.update(ce2=ce2, huber2=huber2)
        return loss, parts

    def _predict_tensor(self, net: nn.Module, num: torch.Tensor, cat: torch.Tensor) -> torch.Tensor:
        out = net(num, cat)
        return self.from_z(out["value"] if self.config.decode == "argmax" else out["expected"])

    def from_z(self, z: torch.Tensor) -> torch.Tensor:
        return self.transform.from_z(z)

    @torch.no_grad()
    def predict_tokens(self, frame) -> np.ndarray:
        """(n, T) generated token ids (PAD after EOS), for diagnostics."""
        d = self.tensors(frame, with_targets=False)
        self.net.eval()
        return self.net(d["num"], d["cat"])["tokens"].numpy()

    # -- persistence --
    def save(self, path: str) -> None:
        from quantrec.codebook.target import TargetCodebook
        super().save(path)
        TargetCodebook(self.transform, self.codebook).save(ck.join(path, "codebook.json"))

    def _after_load(self, path: str) -> None:
        from quantrec.codebook import load_codebook
        book = load_codebook(ck.join(path, "codebook.json"))
        self.transform, self.codebook = book.transform, book.codebook
