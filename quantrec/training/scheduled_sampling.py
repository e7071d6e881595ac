"""Scheduled-sampling schedules for RQ-Reg.

Every function returns the *sampling probability* p in [0, 1]: the probability of
feeding the model's own soft code embedding (instead of the ground-truth code
embedding) at the next decoding step. Teacher forcing probability = 1 - p.
"""

from __future__ import annotations

import math

SCHEDULES = ("authors", "paper", "always_tf", "never_tf")


def authors_sampling_prob(epoch: int, epochs: int, tau: float = 5.0, pivot: float = 0.2) -> float:
    """RQ-Reg authors' code: p = 1 / (1 + exp(tau * (pivot - epoch / epochs))).

    Increases from about 0.27 (epoch 0, tau 5, pivot 0.2) towards 0.98 at the end.
    """
    return 1.0 / (1.0 + math.exp(tau * (pivot - epoch / max(epochs, 1))))


def paper_sampling_prob(epoch: int, epochs: int, k: float = 5.0, ref_epochs: int = 50) -> float:
    """Bengio et al. (2015) inverse-sigmoid decay, as cited by the paper (Eq. 17).

    Teacher-forcing probability eps_i = k / (k + exp(i / k)); returns p = 1 - eps_i.
    ``i`` is the epoch rescaled to a ``ref_epochs``-epoch run (the paper's 50), so a
    short run follows the same curve shape: i = ref_epochs * epoch / epochs.
    """
    i = ref_epochs * epoch / max(epochs, 1)
    eps = k / (k + math.exp(min(i / k, 700.0)))
    return 1.0 - eps


def sampling_prob(schedule: str, epoch: int, epochs: int, tau: float = 5.0,
                  pivot: float = 0.2, k: float = 5.0) -> float:
    """Dispatch on ``schedule`` in SCHEDULES ("always_tf" -> 0, "never_tf" -> 1)."""
    if schedule == "authors":
        return authors_sampling_prob(epoch, epochs, tau, pivot)
    if schedule == "paper":
        return paper_sampling_prob(epoch, epochs, k)
    if schedule == "always_tf":
        return 0.0
    if schedule == "never_tf":
        return 1.0
    raise ValueError(f"unknown schedule {schedule!r}; expected one of {SCHEDULES}")
