"""A small generic trainer: AdamW, early stopping on a validation metric (lower is
better, e.g. MAE), safetensors checkpoints with JSON state beside them, resume after
interruption, a tqdm bar, a clear exception on a NaN/inf loss, fixed seeds, and
torch DDP when launched under ``torchrun`` (see ``quantrec.stages.ddp``).

Training data are dicts of tensors sharing the first dimension (``{"num": (n, F)
float32, "cat": (n, C) int64, "y": (n,) float32, ...}``) or a batch provider
(``quantrec.training.batching``: ``provider.n`` units, ``provider.batch(idx) -> Batch``),
e.g. requests with variable-length histories packed as values + offsets. A dict is
wrapped in ``TensorBatches``: one code path, the same batches as before. The caller
supplies

* ``step_fn(model, batch, ctx) -> loss`` or ``(loss, {"part": float})``; ``model`` may
  be DDP-wrapped, so the step must call ``model(...)`` (its ``forward``);
* ``eval_fn(model, val_data) -> float`` (the early-stopping metric, lower is better).

Distributed semantics: ``batch_size`` is the GLOBAL batch. Every rank draws the same
permutation (same seed) and takes ``global_batch[rank::world]``; DDP averages the
gradients, so with a per-sample-mean loss and equal shards the update equals the
single-process update on the same global batch. Every rank evaluates the full
validation set (identical decisions, no extra communication); rank 0 writes files.
"""

from __future__ import annotations

import json
import logging
import math
import sys
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Callable

import numpy as np
import torch
import torch.distributed as dist
from tqdm.auto import tqdm

from quantrec.training import checkpoints as ck
from quantrec.training.batching import Batch, BatchProvider, as_provider

log = logging.getLogger(__name__)


class TrainingDiverged(RuntimeError):
    """The training loss became NaN or infinite."""

    def __init__(self, epoch: int, step: int, value: float, parts: dict[str, float] | None = None):
        self.epoch, self.step, self.value, self.parts = epoch, step, value, parts or {}
        detail = f"; loss parts: {self.parts}" if self.parts else ""
        super().__init__(
            f"training diverged: loss = {value} at epoch {epoch}, step {step}{detail}. "
            "Lower the learning rate, clip gradients (TrainConfig.grad_clip) or check the "
            "inputs for inf/NaN.")


@dataclass
class TrainConfig:
    """Optimisation settings (all JSON-serialisable).

    batch_size: GLOBAL batch size (split across DDP ranks).
    patience: epochs without a validation improvement > min_delta before stopping.
    on_divergence: "raise" (TrainingDiverged) or "stop" (return with diverged=True and
        the best checkpoint so far).
    num_threads: torch intra-op threads (None = leave torch's default). Default 1: the
        daily models' matmuls are small; measured on this 2-core machine, an RQ-Reg
        step (d_model 64, batch 512) took 37 ms with 1 thread and 600-850 ms with 2
        while another process held the other core (oversubscription stalls).
    max_steps_per_epoch: cap on optimizer steps per epoch (None = full pass).
    lr_schedule: "constant" (``lr`` throughout) or "cosine" (``lr`` decays to
        ``lr * min_lr_ratio`` along a half cosine over the planned epochs x steps; a
        function of (epoch, step) only, so a resumed run follows the same curve).
    """

    epochs: int = 5
    batch_size: int = 256
    lr: float = 5e-4
    weight_decay: float = 0.01
    patience: int = 3
    min_delta: float = 0.0
    grad_clip: float | None = 10.0
    seed: int = 0
    num_threads: int | None = 1
    progress: bool = True
    resume: bool = True
    on_divergence: str = "raise"
    eval_batch_size: int = 8192
    max_steps_per_epoch: int | None = None
    drop_last: bool = False
    lr_schedule: str = "constant"
    min_lr_ratio: float = 0.05

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class StepContext:
    """What a step function may need: epoch (0-based), step within the epoch, the
    number of epochs, a torch.Generator seeded identically on every rank for this step
    (for global random decisions such as scheduled sampling), and ``extra`` (per-epoch
    values the caller computes in ``epoch_hook``). ``global_index`` holds the units of
    the whole global batch (all ranks) and ``world`` the number of ranks, so a step can
    normalise by the global batch (see ``quantrec.training.batching``)."""

    epoch: int
    step: int
    epochs: int
    generator: torch.Generator
    extra: dict[str, Any] = field(default_factory=dict)
    global_index: torch.Tensor | None = None
    world: int = 1


@dataclass
class TrainResult:
    """best_checkpoint: safetensors path of the best-validation weights.
    history: one dict per epoch {epoch, train_loss, val_metric, seconds, **parts}."""

    best_checkpoint: str
    last_checkpoint: str
    history: list[dict[str, float]]
    best_epoch: int
    best_metric: float
    diverged: bool = False
    stopped_early: bool = False
    epochs_run: int = 0


def set_seed(seed: int) -> None:
    """Seed torch and numpy (python's ``random`` is not used by this library)."""
    torch.manual_seed(seed)
    np.random.seed(seed % (2**32))


def dist_info() -> tuple[int, int]:
    """(rank, world_size); (0, 1) outside torch.distributed."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


LR_SCHEDULES = ("constant", "cosine")


def lr_at(config: TrainConfig, epoch: int, step: int, steps_per_epoch: int) -> float:
    """Learning rate of optimizer step ``step`` of ``epoch`` under ``config.lr_schedule``."""
    if config.lr_schedule == "constant":
        return config.lr
    if config.lr_schedule == "cosine":
        total = max(config.epochs * steps_per_epoch - 1, 1)
        frac = min((epoch * steps_per_epoch + step) / total, 1.0)
        lo = config.lr * config.min_lr_ratio
        return lo + 0.5 * (config.lr - lo) * (1.0 + math.cos(math.pi * frac))
    raise ValueError(f"TrainConfig.lr_schedule {config.lr_schedule!r} is not one of {LR_SCHEDULES}")


def _unwrap(model: torch.nn.Module) -> torch.nn.Module:
    return model.module if hasattr(model, "module") else model


#: TrainConfig fields that do not change what a checkpoint holds: a resume may differ in them
_RESUME_NEUTRAL = frozenset({"progress", "num_threads", "resume", "eval_batch_size"})


def config_changes(saved: Any, current: Any) -> list[str]:
    """The dotted fields where a checkpoint folder's saved ``config.json`` and this run's
    differ ("model.item_memory: 0 -> 2048"), leaving out ``_RESUME_NEUTRAL`` fields;
    compared as JSON (tuples and lists alike). Empty: the checkpoints can be resumed."""

    def diff(a: Any, b: Any, path: str) -> list[str]:
        if not (isinstance(a, dict) and isinstance(b, dict)):
            return [] if a == b else [f"{path}: {a!r} -> {b!r}"]
        out = []
        for key in sorted(set(a) | set(b)):
            if key in _RESUME_NEUTRAL:
                continue
            where = f"{path}.{key}" if path else key
            if key not in a or key not in b:
                out.append(f"{where}: {a.get(key, 'absent')!r} -> {b.get(key, 'absent')!r}")
            else:
                out += diff(a[key], b[key], where)
        return out

    as_json = lambda x: json.loads(json.dumps(x, default=str))  # noqa: E731 - once, not per level
    return diff(as_json(saved), as_json(current), "")


def train(model: torch.nn.Module,
          step_fn: Callable[[torch.nn.Module, Batch, StepContext], Any],
          train_data: Batch | BatchProvider,
          val_data: Any,
          config: TrainConfig,
          out_dir: str,
          eval_fn: Callable[[torch.nn.Module, Any], float],
          model_config: dict[str, Any] | None = None,
          epoch_hook: Callable[[int, int], dict[str, Any]] | None = None) -> TrainResult:
    """Train ``model`` in place and leave its best weights loaded.

    Files in ``out_dir`` (fsspec URL): ``best.safetensors`` (best weights),
    ``last-<epoch>.safetensors`` (weights + optimizer after that epoch, for resume),
    ``trainer_state.json`` (epoch, history, early-stopping state and the name of its
    ``last-*`` file), ``config.json`` (model + train config). The state is written after
    the checkpoint it names and older ``last-*`` files are removed after it, so a kill
    between any two writes resumes from a consistent pair (one shared ``last`` file would
    let a kill after its write and before the state's resume epoch k+1 from weights that
    already trained on it). Resumes when ``config.resume`` and a state exists.
    ``epoch_hook(epoch, epochs) -> dict`` fills ``StepContext.extra`` for the epoch.
    ``train_data``: a dict of equal-length tensors or a batch provider (units permuted
    globally, sharded ``[rank::world]``); ``val_data`` goes to ``eval_fn`` unchanged.
    """
    rank, world = dist_info()
    lr_at(config, 0, 0, 1)  # an unknown schedule fails before any work
    if config.num_threads:
        torch.set_num_threads(config.num_threads)
    set_seed(config.seed)
    best_path = ck.join(out_dir, "best.safetensors")
    state_path = ck.join(out_dir, "trainer_state.json")
    last_path = ""

    opt = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    history: list[dict[str, float]] = []
    start_epoch, best_metric, best_epoch, bad_epochs = 0, math.inf, -1, 0
    finished = False
    st = ck.load_json(state_path) if config.resume and ck.exists(state_path) else None
    config_doc = {"model": model_config or {}, "train": config.to_json()}
    cfg_path = ck.join(out_dir, "config.json")
    if st is not None and ck.exists(cfg_path):
        changed = config_changes(ck.load_json(cfg_path), config_doc)
        if changed:  # e.g. a preset's default moved: those weights do not fit this model
            log.warning("not resuming %s: its checkpoints were trained with another config (%s); "
                        "training from scratch", out_dir, "; ".join(changed[:5]))
            st = None
    if st is not None:
        # states written before per-epoch files name none: their file is last.safetensors
        last_path = ck.join(out_dir, st.get("last", "last.safetensors"))
        if not ck.exists(last_path):
            raise FileNotFoundError(f"{state_path} names the checkpoint {last_path}, which does not exist; "
                                    "remove the folder to train from scratch")
        ck.load_training_checkpoint(last_path, model, opt, st["optim"])
        history = st["history"]
        start_epoch = st["epoch"] + 1
        best_metric, best_epoch, bad_epochs = st["best_metric"], st["best_epoch"], st["bad_epochs"]
        finished = st.get("stopped_early", False)
    if rank == 0:
        ck.save_json(cfg_path, config_doc)

    net = model
    if world > 1:
        from torch.nn.parallel import DistributedDataParallel as DDP
        net = DDP(model)

    provider = as_provider(train_data)
    n = provider.n
    diverged, stopped_early = False, finished
    epoch = start_epoch - 1
    for epoch in range(start_epoch, config.epochs):
        if finished:
            break
        t0 = time.time()
        # epoch-level seeds make a resumed run identical to an uninterrupted one
        perm_gen = torch.Generator().manual_seed(config.seed * 1_000_003 + epoch)
        torch.manual_seed(config.seed * 7919 + epoch * 104_729 + rank)
        perm = torch.randperm(n, generator=perm_gen)
        n_steps = n // config.batch_size if config.drop_last else math.ceil(n / config.batch_size)
        if config.max_steps_per_epoch:
            n_steps = min(n_steps, config.max_steps_per_epoch)
        extra = epoch_hook(epoch, config.epochs) if epoch_hook else {}
        net.train()
        loss_sum, parts_sum, seen = 0.0, {}, 0
        # In a KFP task log (no terminal) every refresh is a new line: refresh rarely there.
        bar = tqdm(range(n_steps), desc=f"epoch {epoch + 1}/{config.epochs}",
                   disable=(not config.progress) or rank != 0, leave=False,
                   mininterval=0.1 if sys.stderr.isatty() else 15.0)
        for step in bar:
            gidx = perm[step * config.batch_size:(step + 1) * config.batch_size]
            idx = gidx[rank::world]
            batch = provider.batch(idx)
            ctx = StepContext(epoch, step, config.epochs,
                              torch.Generator().manual_seed(config.seed * 31 + epoch * 100_003 + step),
                              extra, global_index=gidx, world=world)
            out = step_fn(net, batch, ctx)
            loss, parts = (out if isinstance(out, tuple) else (out, {}))
            bad = torch.tensor([0.0 if torch.isfinite(loss).all() else 1.0])
            if world > 1:
                dist.all_reduce(bad)
            if bad.item() > 0:
                diverged = True
                if config.on_divergence == "raise":
                    raise TrainingDiverged(epoch, step, float(loss.detach()), parts)
                break
            if config.lr_schedule != "constant":
                for group in opt.param_groups:
                    group["lr"] = lr_at(config, epoch, step, n_steps)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if config.grad_clip:
                torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
            opt.step()
            lv = float(loss.detach())
            loss_sum += lv
            for k, v in parts.items():
                parts_sum[k] = parts_sum.get(k, 0.0) + float(v)
            seen += 1
            if step % 10 == 0:
                bar.set_postfix(loss=f"{lv:.4f}", refresh=False)
        bar.close()
        if diverged:
            break
        metric = float(eval_fn(model, val_data))
        if not math.isfinite(metric):
            diverged = True
            if config.on_divergence == "raise":
                raise TrainingDiverged(epoch, n_steps, metric, {"val_metric": metric})
            break
        rec = {"epoch": epoch, "train_loss": loss_sum / max(seen, 1), "val_metric": metric,
               "seconds": time.time() - t0, **{k: v / max(seen, 1) for k, v in parts_sum.items()},
               **{k: float(v) for k, v in extra.items() if isinstance(v, (int, float))},
               **({"lr": float(opt.param_groups[0]["lr"])} if config.lr_schedule != "constant" else {})}
        history.append(rec)
        improved = metric < best_metric - config.min_delta
        if improved:
            best_metric, best_epoch, bad_epochs = metric, epoch, 0
            if rank == 0:
                ck.save_state(best_path, model.state_dict())
        else:
            bad_epochs += 1
        stopped_early = bad_epochs >= config.patience
        if rank == 0:
            previous, last_name = last_path, f"last-{epoch:04d}.safetensors"
            last_path = ck.join(out_dir, last_name)
            optim_meta = ck.save_training_checkpoint(last_path, model, opt)
            ck.save_json(state_path, {"epoch": epoch, "history": history, "best_metric": best_metric,
                                      "best_epoch": best_epoch, "bad_epochs": bad_epochs,
                                      "stopped_early": stopped_early, "last": last_name,
                                      "optim": optim_meta})
            if previous and previous != last_path:
                ck.remove(previous)
        if world > 1:
            dist.barrier()
        if config.progress and rank == 0:
            tqdm.write(f"epoch {epoch + 1}: train loss {rec['train_loss']:.4f}  val {metric:.4f}"
                       + ("  *" if improved else ""))
        if stopped_early:
            break

    if ck.exists(best_path):
        model.load_state_dict(ck.load_state(best_path))
    return TrainResult(best_checkpoint=best_path, last_checkpoint=last_path, history=history,
                       best_epoch=best_epoch, best_metric=best_metric, diverged=diverged,
                       stopped_early=stopped_early, epochs_run=len(history))
