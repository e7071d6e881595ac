"""Warm start a freshly built network from the champion's weights.

The new model's feature pipeline is fitted on today's training window, so its
categorical index differs from the champion's: embedding rows are copied by id
(an id known to both gets the champion's row; new ids keep their fresh init; row 0,
the unknown id, is copied). Every other parameter is copied when its name and shape
match; the encoder's input layer only when the numeric feature layout is identical
(same columns and missing flags), since equal shapes could hide a shifted layout.
"""

from __future__ import annotations

import re
from typing import Any

import torch
from torch import nn

_EMB = re.compile(r"(?:^|\.)embs\.(\d+)\.weight$")
_INPUT_LAYER = re.compile(r"(?:^|\.)mlp\.0\.weight$")


def warm_start(net: nn.Module, features: Any, champion_net: nn.Module, champion_features: Any) -> dict[str, Any]:
    """Copy champion weights into ``net`` in place; returns what was copied and skipped.

    features / champion_features: fitted ``FeaturePipeline``s (``spec.categorical``,
    ``vocab`` for mode "index", ``numeric_names``).
    """
    new_sd, old_sd = net.state_dict(), champion_net.state_dict()
    same_numeric = list(features.numeric_names) == list(champion_features.numeric_names)
    report: dict[str, Any] = {"copied": [], "skipped": [], "embedding_rows": {}}
    with torch.no_grad():
        for name, tensor in new_sd.items():
            old = old_sd.get(name)
            if old is None:
                report["skipped"].append(name)
                continue
            emb = _EMB.search(name)
            if emb is not None:
                col = features.spec.categorical[int(emb.group(1))]
                report["embedding_rows"][col] = _copy_rows(tensor, old, features, champion_features, col)
                continue
            if old.shape != tensor.shape or (_INPUT_LAYER.search(name) and not same_numeric):
                report["skipped"].append(name)
                continue
            tensor.copy_(old)
            report["copied"].append(name)
    net.load_state_dict(new_sd)
    return report


def _copy_rows(new: torch.Tensor, old: torch.Tensor, features: Any, champion_features: Any, col: str) -> int:
    """Copy embedding rows of ids present in both indexes; returns the rows copied."""
    if new.shape[1] != old.shape[1]:
        return 0
    if features.spec.mode == "hash" or champion_features.spec.mode == "hash":
        if features.spec.mode == champion_features.spec.mode and new.shape == old.shape:
            new.copy_(old)  # same buckets, same meaning
            return int(new.shape[0])
        return 0
    new_vocab, old_vocab = features.vocab.get(col, {}), champion_features.vocab.get(col, {})
    shared = [k for k in new_vocab if k in old_vocab]
    dst = torch.tensor([0] + [new_vocab[k] for k in shared], dtype=torch.long)
    src = torch.tensor([0] + [old_vocab[k] for k in shared], dtype=torch.long)
    new[dst] = old[src]
    return int(dst.numel())
