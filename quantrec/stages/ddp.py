"""Distributed (torch DDP) entry point: the same trainer, N processes.

Locally (CPU, gloo)::

    torchrun --nproc_per_node 2 -m quantrec.stages.ddp --model rqreg \\
        --train train.parquet --val val.parquet --out runs/rqreg [--config cfg.json]

Every rank reads the same frames, fits the same feature pipeline / codebook
(deterministic), and trains with ``TrainConfig.batch_size`` as the GLOBAL batch: each
rank takes ``global_batch[rank::world]`` and DDP averages the gradients, so a run on
N processes follows the single-process run with the same global batch (up to float
summation order; exactly batch-coupled losses such as RnC are computed per rank on the
local shard, and dropout masks differ per rank). Rank 0 writes the checkpoints
(``<out>/checkpoints``, shared storage: local disk or gs:// via fsspec) and the model
directory ``<out>/model``. Rerunning the same command resumes from the checkpoints.

On Kubernetes, a Kubeflow Training Operator ``PyTorchJob`` runs it unchanged: the
operator starts one pod per replica and sets MASTER_ADDR / MASTER_PORT / WORLD_SIZE /
RANK, and ``torchrun`` inside each pod reads them (``--nnodes`` = replicas)::

    apiVersion: kubeflow.org/v1
    kind: PyTorchJob
    metadata: {name: quantrec-rqreg-2011-12-01}
    spec:
      pytorchReplicaSpecs:
        Master:
          replicas: 1
          restartPolicy: OnFailure          # a restarted pod resumes from the checkpoints
          template:
            spec:
              containers:
              - name: pytorch                # the operator requires this name
                image: <images/ image, tag = quantrec version>
                command: [torchrun, --nproc_per_node=1, -m, quantrec.stages.ddp]
                args: [--model, rqreg, --train, gs://bucket/run/gmv_train.parquet,
                       --val, gs://bucket/run/gmv_val.parquet, --out, gs://bucket/run/rqreg,
                       --backend, gloo]      # nccl on GPU nodes
                resources: {limits: {cpu: "4", memory: 8Gi}}
        Worker:
          replicas: 3                        # 4 processes in total
          restartPolicy: OnFailure
          template: <same container spec>

A KFP component can submit such a job (e.g. with the kubeflow training SDK) and wait
for it, then pass ``<out>/model`` on as its Model artifact; nothing in this module
depends on kfp.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
from typing import Any

import fsspec
import pandas as pd
import torch
import torch.distributed as dist

from quantrec.codebook import load_codebook
from quantrec.models import MODELS, ModelInputs
from quantrec.models.base import config_from_json
from quantrec.training import checkpoints as ck


def uses_trainer(cls: type) -> bool:
    """Whether a model class trains with ``training.trainer`` (its config has ``train``)."""
    return "train" in {f.name for f in dataclasses.fields(cls.config_cls)}


def read_frame(path: str) -> pd.DataFrame:
    with fsspec.open(path, "rb") as f:
        return pd.read_parquet(f)


def init_distributed(backend: str = "gloo") -> tuple[int, int]:
    """Initialise the process group from torchrun's env vars; (rank, world)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not dist.is_initialized():
        dist.init_process_group(backend=backend)
    if dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def run(model_name: str, train_path: str, val_path: str, out: str,
        config: dict[str, Any] | None = None, backend: str = "gloo", events_path: str | None = None,
        codebook_path: str | None = None) -> str:
    """Train ``model_name`` (a neural model of ``MODELS``) on the frames at the given
    paths under the current process group; rank 0 saves ``<out>/model``. Returns it.
    events_path / codebook_path: the inputs the model ``needs`` (the events table for
    models reading behaviour histories, the run's GMV codebook for RQ-Reg: without one
    it fits its own, identically on every rank)."""
    torch_models = sorted(k for k, c in MODELS.items() if uses_trainer(c))
    if model_name not in torch_models:
        raise ValueError(f"{model_name!r} is not a model trained by quantrec's trainer: {torch_models}")
    cls = MODELS[model_name]
    rank, world = init_distributed(backend)
    cfg = config_from_json(cls.config_cls, config) if config else cls.config_cls()
    if hasattr(cfg, "train"):
        cfg.train.progress = cfg.train.progress and rank == 0
    if "events" in cls.needs and not events_path:
        raise ValueError(f"{model_name!r} reads behaviour histories: pass --events (the events table)")
    inputs = ModelInputs(events=read_frame(events_path) if events_path and "events" in cls.needs else None,
                         codebook=load_codebook(codebook_path) if codebook_path and "codebook" in cls.needs else None)
    model = cls(cfg)
    model.fit(read_frame(train_path), read_frame(val_path), inputs, out_dir=ck.join(out, "checkpoints"))
    model_dir = ck.join(out, "model")
    if rank == 0:
        model.save(model_dir)
    if dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()
    return model_dir


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description="DDP training entry point (run under torchrun)")
    ap.add_argument("--model", required=True, help="a model of quantrec.models.MODELS trained by quantrec's trainer")
    ap.add_argument("--train", required=True, help="train-split parquet (fsspec URL)")
    ap.add_argument("--val", required=True, help="val-split parquet (fsspec URL)")
    ap.add_argument("--out", required=True, help="output dir: checkpoints/ and model/")
    ap.add_argument("--config", default=None, help="model config JSON file (as config_to_json)")
    ap.add_argument("--events", default=None, help="events table parquet (models that read histories)")
    ap.add_argument("--codebook", default=None, help="the run's GMV codebook JSON (models that need it)")
    ap.add_argument("--backend", default="gloo")
    a = ap.parse_args(argv)
    cfg = None
    if a.config:
        with fsspec.open(a.config, "r") as f:
            cfg = json.load(f)
    torch.set_num_threads(max(1, (os.cpu_count() or 1) // int(os.environ.get("LOCAL_WORLD_SIZE", "1"))))
    run(a.model, a.train, a.val, a.out, cfg, a.backend, events_path=a.events, codebook_path=a.codebook)


if __name__ == "__main__":
    main()
