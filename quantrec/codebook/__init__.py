"""Quantizers for a 1-D label: RQ K-means / K-medians and the paper's baselines.

Public API::

    fit_codebook(values, method="rq" | "kmeans" | "dynamic_quantile", **kw)
    load_codebook(path)                      # any of the three, by the saved "kind"
    RQCodebook.fit / .load / .save / .encode / .decode / .finished_mask
    reconstruction_report(values, {name: codebook}) -> dict
    write_reconstruction_report(report, json_path, html_path, values, codebooks)
"""

from __future__ import annotations

import json
from typing import Any

import fsspec

from quantrec.codebook.baselines import DynamicQuantileCodebook, fit_flat_kmeans
from quantrec.codebook.rq import RQCodebook, validate_values
from quantrec.codebook.report import reconstruction_report, write_reconstruction_report

Codebook = RQCodebook | DynamicQuantileCodebook
METHODS = ("rq", "kmeans", "dynamic_quantile")


def fit_codebook(values: Any, method: str = "rq", **kw: Any) -> Codebook:
    """Fit a quantizer on labels (n,). ``kw`` goes to the method's fit:

    - "rq": ``RQCodebook.fit`` (layers, size, first_layer, finish_below, seed, ...)
    - "kmeans": one layer of ``layers * size`` centroids (``fit_flat_kmeans``)
    - "dynamic_quantile": ``DynamicQuantileCodebook.fit`` (layers/size/first_layer
      are accepted and ignored so one config can drive all three)
    """
    if method == "rq":
        return RQCodebook.fit(values, **kw)
    if method == "kmeans":
        kw.pop("first_layer", None)
        return fit_flat_kmeans(values, **kw)
    if method == "dynamic_quantile":
        for k in ("layers", "size", "first_layer", "finish_below", "seed", "dp_max_unique"):
            kw.pop(k, None)
        return DynamicQuantileCodebook.fit(values, **kw)
    raise ValueError(f"unknown codebook method {method!r}; expected one of {METHODS}")


def codebook_from_dict(d: dict[str, Any]) -> Any:
    """Any saved codebook's dict (RQ, dynamic quantile, or a TargetCodebook), by ``kind``."""
    from quantrec.codebook.target import TargetCodebook
    kinds = {"RQCodebook": RQCodebook, "DynamicQuantileCodebook": DynamicQuantileCodebook,
             "TargetCodebook": TargetCodebook}
    kind = d.get("kind")
    if kind not in kinds:
        raise ValueError(f"unknown codebook kind {kind!r}; expected one of {sorted(kinds)}")
    return kinds[kind].from_dict(d)


def load_codebook(path: str) -> Any:
    """Load any saved codebook (JSON via fsspec), dispatching on its ``kind``."""
    with fsspec.open(path, "r", encoding="utf-8") as f:
        d = json.load(f)
    from quantrec.codebook.provenance import ProvenanceError
    try:
        return codebook_from_dict(d)
    except ProvenanceError as exc:  # keep the type: callers tell a bad provenance apart
        raise ProvenanceError(f"{path}: {exc}") from None
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from None


__all__ = ["RQCodebook", "DynamicQuantileCodebook", "fit_codebook", "fit_flat_kmeans",
           "load_codebook", "codebook_from_dict", "reconstruction_report", "write_reconstruction_report",
           "validate_values", "METHODS", "Codebook"]
