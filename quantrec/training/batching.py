"""Batch providers: what ``trainer.train`` draws its batches from.

The trainer permutes ``provider.n`` UNITS per epoch (the same global permutation on
every DDP rank), cuts the permutation into global batches of ``batch_size`` units,
gives rank r the units ``global_batch[r::world]`` and asks ``provider.batch(idx)``
for them. What a unit is belongs to the provider:

* ``TensorBatches``: a dict of equal-length tensors; a unit is a row and a batch is
  the row slice (what ``train`` did before providers existed; a plain dict passed to
  ``train`` is wrapped in it).
* ``RequestBatches``: variable-length data grouped by request; a unit is a request
  (one user at one time) with its whole behaviour history (jagged: packed values +
  offsets, from a history source such as ``quantrec.data.sequences.Histories``) and
  its candidate rows (CSR: a contiguous run of rows per request). A batch holds
  ``hist_*`` packed history tensors, ``hist_offsets`` (B + 1,), the requests' rows
  (R,) and ``row_unit`` (R,) = the position in the batch of each row's request.

A provider may also report ``rows(idx)`` (the number of loss terms of those units) so
a step function can normalise its loss by the GLOBAL batch's rows: with
``StepContext.global_index`` and ``StepContext.world``, ``loss = sum_local * world /
rows(global_index)`` makes DDP's gradient average equal the single-process
per-row mean even when ranks hold different numbers of rows.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch

from quantrec.data.sequences import ranges_to_index

Batch = dict[str, torch.Tensor]


@runtime_checkable
class BatchProvider(Protocol):
    """n: units the trainer permutes; batch(idx (b,) int64 tensor) -> Batch."""

    n: int

    def batch(self, idx: torch.Tensor) -> Batch: ...


class TensorBatches:
    """Rows of a dict of tensors sharing the first dimension (n, ...)."""

    def __init__(self, data: Batch) -> None:
        if not data:
            raise ValueError("TensorBatches: empty data dict")
        sizes = {k: int(v.shape[0]) for k, v in data.items()}
        if len(set(sizes.values())) != 1:
            raise ValueError(f"TensorBatches: tensors differ in their first dimension: {sizes}")
        self.data = data
        self.n = next(iter(sizes.values()))

    def batch(self, idx: torch.Tensor) -> Batch:
        return {k: v[idx] for k, v in self.data.items()}

    def rows(self, idx: torch.Tensor) -> int:
        return int(len(idx))


def as_provider(data: Batch | BatchProvider) -> BatchProvider:
    """A provider as is; a dict of equal-length tensors wrapped in ``TensorBatches``."""
    if isinstance(data, dict):
        return TensorBatches(data)
    if not isinstance(data, BatchProvider):
        raise TypeError(f"expected a dict of tensors or a batch provider (n, batch(idx)), got {type(data).__name__}")
    return data


class RequestBatches:
    """Units = requests: each with a jagged history and a run of candidate rows.

    history: an object with ``n`` (= requests) and ``batch(idx) -> {name: (sum_len,)
        tensors..., "offsets": (B + 1,), per-request (B,) tensors}`` (e.g. ``Histories``);
        its keys come out prefixed ``hist_``.
    row_unit: (n_rows,) int64 request of every row (any order).
    rows: {name: (n_rows, ...) tensor}: per-row data (candidates, labels).
    A batch of requests idx (B,) returns the history of each, then the rows of
    request idx[0], then those of idx[1], ... and ``row_unit`` (R,) in [0, B).
    """

    def __init__(self, history: Any, row_unit: np.ndarray, rows: Batch) -> None:
        row_unit = np.asarray(row_unit, dtype=np.int64)
        n_rows = int(row_unit.shape[0])
        bad = {k: int(v.shape[0]) for k, v in rows.items() if int(v.shape[0]) != n_rows}
        if bad:
            raise ValueError(f"RequestBatches: row tensors {bad} differ from row_unit length {n_rows}")
        if n_rows and (row_unit.min() < 0 or row_unit.max() >= history.n):
            raise ValueError(f"RequestBatches: row_unit outside [0, {history.n})")
        self.history = history
        self.n = int(history.n)
        order = np.argsort(row_unit, kind="stable")            # rows grouped by request (CSR)
        self._order = torch.from_numpy(order)
        counts = np.bincount(row_unit, minlength=self.n)
        self.row_start = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)
        self.row_count = counts.astype(np.int64)
        self.rows_data = {k: v[self._order] for k, v in rows.items()}

    def rows(self, idx: Any) -> int:
        """Number of rows of requests ``idx``."""
        idx = np.asarray(idx, dtype=np.int64).reshape(-1)
        return int(self.row_count[idx].sum())

    def row_positions(self, idx: Any) -> np.ndarray:
        """Original row numbers (into the ``rows`` given at construction) of a batch's
        rows, in batch order: ``pred[row_positions(idx)] = model_output``."""
        idx = np.asarray(idx, dtype=np.int64).reshape(-1)
        sel, _ = ranges_to_index(self.row_start[idx], self.row_start[idx] + self.row_count[idx])
        return self._order.numpy()[sel]

    def original_rows(self, name: str) -> torch.Tensor:
        """Row tensor ``name`` in the order given at construction."""
        inv = torch.empty_like(self._order)
        inv[self._order] = torch.arange(len(self._order))
        return self.rows_data[name][inv]

    def batch(self, idx: Any) -> Batch:
        idx = np.asarray(idx, dtype=np.int64).reshape(-1)
        hist = self.history.batch(idx)
        out: Batch = {f"hist_{k}": v for k, v in hist.items()}
        sel, offsets = ranges_to_index(self.row_start[idx], self.row_start[idx] + self.row_count[idx])
        sel_t = torch.from_numpy(sel)
        out.update({k: v[sel_t] for k, v in self.rows_data.items()})
        out["row_unit"] = torch.from_numpy(np.repeat(np.arange(len(idx), dtype=np.int64), np.diff(offsets)))
        return out

    def iter_batches(self, batch_size: int):
        """All requests in order, ``batch_size`` at a time: yields (idx, batch)."""
        for i in range(0, self.n, batch_size):
            idx = np.arange(i, min(i + batch_size, self.n), dtype=np.int64)
            yield idx, self.batch(idx)
