"""Checkpoints in safetensors (never pickle), written through fsspec.

A checkpoint file holds the model's state dict; a "last" checkpoint additionally holds
the optimizer's per-parameter tensors under ``optim.<index>.<name>`` keys. Non-tensor
optimizer state (param groups) goes to JSON beside it.
"""

from __future__ import annotations

import json
from typing import Any

import fsspec
import torch
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from quantrec.redact import redact

OPTIM_PREFIX = "optim."


def join(root: str, name: str) -> str:
    """Join a (possibly URL) directory and a file name."""
    return root.rstrip("/") + "/" + name


def _write_bytes(path: str, data: bytes) -> None:
    """Write atomically where the filesystem allows (tmp file + move)."""
    fs, p = fsspec.core.url_to_fs(path)
    parent = p.rsplit("/", 1)[0] if "/" in p else "."
    fs.makedirs(parent, exist_ok=True)
    tmp = p + ".tmp"
    with fs.open(tmp, "wb") as f:
        f.write(data)
    fs.mv(tmp, p)


def remove(path: str) -> None:
    """Delete ``path`` if it exists (a file no state names any more)."""
    fs, p = fsspec.core.url_to_fs(path)
    if fs.exists(p):
        fs.rm(p)


def exists(path: str) -> bool:
    fs, p = fsspec.core.url_to_fs(path)
    return fs.exists(p)


def _cpu(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    # clone: safetensors refuses tensors that share storage
    return {k: v.detach().cpu().contiguous().clone() for k, v in state.items()}


def save_state(path: str, state: dict[str, torch.Tensor], metadata: dict[str, str] | None = None) -> None:
    """Save a flat {name: tensor} dict as safetensors at ``path`` (fsspec URL)."""
    _write_bytes(path, st_save(_cpu(state), metadata=metadata))


def load_state(path: str) -> dict[str, torch.Tensor]:
    """Load a flat {name: tensor} dict from a safetensors file (no pickle); a truncated
    or corrupt file is a ValueError naming it."""
    with fsspec.open(path, "rb") as f:
        data = f.read()
    try:
        return st_load(data)
    except Exception as exc:  # safetensors raises its own SafetensorError for bad bytes
        raise ValueError(f"{redact(path)} is not a readable safetensors file ({exc}); "
                         "the model or checkpoint is corrupt or truncated") from None


def save_json(path: str, obj: Any) -> None:
    _write_bytes(path, json.dumps(obj, indent=2, default=str).encode("utf-8"))


def load_json(path: str) -> Any:
    """Read a JSON file; invalid JSON is a ValueError naming the file."""
    with fsspec.open(path, "r") as f:
        text = f.read()
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{redact(path)} is not valid JSON ({exc}): the file is corrupt") from None


def save_training_checkpoint(path: str, model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> dict[str, Any]:
    """Model + optimizer tensors to ``path``; returns the JSON-able optimizer param groups."""
    state = {k: v for k, v in model.state_dict().items()}
    opt = optimizer.state_dict()
    for idx, pstate in opt["state"].items():
        for name, val in pstate.items():
            t = val if torch.is_tensor(val) else torch.tensor(val)
            state[f"{OPTIM_PREFIX}{idx}.{name}"] = t.reshape(-1) if t.dim() == 0 else t
    save_state(path, state)
    return {"param_groups": opt["param_groups"],
            "scalar_keys": sorted({f"{i}.{n}" for i, s in opt["state"].items()
                                   for n, v in s.items() if not torch.is_tensor(v) or v.dim() == 0})}


def load_training_checkpoint(path: str, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                             optim_meta: dict[str, Any]) -> None:
    """Restore model and optimizer in place from ``save_training_checkpoint`` output."""
    state = load_state(path)
    model_state = {k: v for k, v in state.items() if not k.startswith(OPTIM_PREFIX)}
    model.load_state_dict(model_state)
    scalar = set(optim_meta.get("scalar_keys", []))
    opt_state: dict[int, dict[str, torch.Tensor]] = {}
    for k, v in state.items():
        if not k.startswith(OPTIM_PREFIX):
            continue
        idx, name = k[len(OPTIM_PREFIX):].split(".", 1)
        opt_state.setdefault(int(idx), {})[name] = v.reshape(()) if f"{idx}.{name}" in scalar else v
    optimizer.load_state_dict({"state": opt_state, "param_groups": optim_meta["param_groups"]})
