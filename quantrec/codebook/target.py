"""A codebook of raw labels: the target transform and the quantizer fitted after it.

Models quantize z = scale * t(min(y, clip)) (t = log1p or identity), not raw GMV. The
transform's ``clip`` and ``scale`` are fitted on the same training labels as the
codebook, so they must travel with it: a codebook reused on a later day (the
champion's) is read with the transform it was fitted with, never a re-fitted one.
``TargetCodebook`` saves both in one JSON file and exposes encode / decode in label
units, so the reconstruction report measures errors in GMV.

A codebook may carry its provenance (``quantrec.codebook.provenance``: fit window,
dataset fingerprint, reference sketch of the training labels) in the same JSON under
the key ``"provenance"``; codebooks saved without one load unchanged (``provenance``
is None) and a codebook without one saves exactly as before.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from quantrec.codebook.rq import validate_values
from quantrec.codebook.jsonio import JsonArtifact

TRANSFORMS = ("log1p", "raw")


@dataclass(frozen=True)
class TargetTransform:
    """z = scale * t(min(max(y, 0), clip)); ``from_z`` inverts it (clipped values stay clipped)."""

    kind: str
    clip: float
    scale: float

    @classmethod
    def fit(cls, y: Any, kind: str = "log1p", clip_quantile: float = 0.999,
            target_max: float = 6.0) -> "TargetTransform":
        """clip = the ``clip_quantile`` of y; scale maps t(clip) to ``target_max``."""
        if kind not in TRANSFORMS:
            raise ValueError(f"unknown target transform {kind!r}; expected one of {TRANSFORMS}")
        if not 0.0 < clip_quantile <= 1.0:
            raise ValueError(f"clip_quantile must be in (0, 1], got {clip_quantile}")
        y = validate_values(y, what="labels")
        clip = float(np.quantile(y, clip_quantile))
        t_clip = float(np.log1p(clip)) if kind == "log1p" else clip
        return cls(kind=kind, clip=clip, scale=float(target_max / max(t_clip, 1e-12)))

    def to_z(self, y: Any) -> np.ndarray:
        """(n,) labels -> (n,) z."""
        v = np.clip(np.asarray(y, dtype=np.float64), 0.0, self.clip)
        return (np.log1p(v) if self.kind == "log1p" else v) * self.scale

    def from_z(self, z: Any) -> Any:
        """(n,) z -> (n,) labels (>= 0). A torch tensor stays a (differentiable, float64)
        tensor, so models decode with this same function (no torch import here)."""
        if hasattr(z, "clamp"):  # torch.Tensor
            v = z.double().clamp(min=0.0) / self.scale
            return v.clamp(max=30.0).expm1() if self.kind == "log1p" else v
        v = np.clip(np.asarray(z, dtype=np.float64), 0.0, None) / self.scale
        return np.expm1(np.minimum(v, 30.0)) if self.kind == "log1p" else v

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class TargetCodebook(JsonArtifact):
    """transform + codebook (in z). encode/decode take and return label units.

    ``provenance``: a ``CodebookProvenance`` describing the fit (None for codebooks
    fitted or saved before provenance existed); attach one with ``with_provenance``.
    """

    def __init__(self, transform: TargetTransform, codebook: Any, provenance: Any = None) -> None:
        self.transform = transform
        self.codebook = codebook
        self.provenance = provenance
        self.fit_params: dict[str, Any] | None = None  # set by fit(); not saved (see provenance.refit)

    def digest(self) -> str:
        """sha256 of the transform + inner codebook (provenance excluded)."""
        from quantrec.codebook.provenance import codebook_digest
        return codebook_digest(self)

    def with_provenance(self, provenance: Any) -> "TargetCodebook":
        """A copy of this codebook carrying ``provenance`` (built for THIS codebook:
        its ``codebook_digest`` must match, else ProvenanceError)."""
        from quantrec.codebook.provenance import CodebookProvenance, ProvenanceError
        if not isinstance(provenance, CodebookProvenance):
            raise ProvenanceError(f"with_provenance expects a CodebookProvenance, got {type(provenance).__name__}")
        if provenance.codebook_digest != self.digest():
            raise ProvenanceError("this provenance was built for another codebook (codebook_digest differs); "
                                  "build it with build_provenance(y_train, <this codebook>, ...)")
        book = TargetCodebook(self.transform, self.codebook, provenance)
        book.fit_params = self.fit_params
        return book

    @classmethod
    def fit(cls, y: Any, transform: str = "log1p", clip_quantile: float = 0.999,
            target_max: float = 6.0, method: str = "rq", **codebook_kw: Any) -> "TargetCodebook":
        """Fit the transform on y (n,), then ``fit_codebook(to_z(y), method, **codebook_kw)``."""
        from quantrec.codebook import fit_codebook
        tf = TargetTransform.fit(y, transform, clip_quantile, target_max)
        book = cls(tf, fit_codebook(tf.to_z(y), method=method, **codebook_kw))
        # how to fit the same kind of codebook again (build_provenance saves it, so
        # monitoring can fit the candidate a rebuild would give)
        book.fit_params = {"transform": transform, "clip_quantile": float(clip_quantile),
                           "target_max": float(target_max), "method": method, **codebook_kw}
        return book

    # the codebook interface of quantrec.codebook, in label units
    @property
    def layers(self) -> int:
        return self.codebook.layers

    @property
    def size(self) -> int:
        return self.codebook.size

    @property
    def method(self) -> str:
        return self.codebook.method

    @property
    def config(self) -> dict[str, Any]:
        return {**self.codebook.config, "transform": self.transform.to_dict()}

    @property
    def centroids(self) -> list[np.ndarray]:
        """Layer-1 centroids in label units, later layers as z offsets (not invertible alone)."""
        cents = [np.asarray(c, dtype=np.float64) for c in self.codebook.centroids]  # AttributeError
        return [self.transform.from_z(cents[0])] + cents[1:]                        # if it has none

    @property
    def vocab(self) -> np.ndarray:
        return self.transform.from_z(self.codebook.vocab)

    def encode(self, y: Any) -> np.ndarray:
        return self.codebook.encode(self.transform.to_z(y))

    def decode(self, codes: Any) -> np.ndarray:
        return self.transform.from_z(self.codebook.decode(codes))

    def decode_partial(self, codes: Any) -> np.ndarray:
        return self.transform.from_z(self.codebook.decode_partial(codes))

    @property
    def lengths(self):
        """The inner codebook's ``lengths(codes)`` (variable-length vocabularies only);
        a property so ``hasattr`` is False where the inner codebook has none."""
        return self.codebook.lengths

    def to_dict(self) -> dict[str, Any]:
        d = {"kind": "TargetCodebook", "transform": self.transform.to_dict(),
             "codebook": self.codebook.to_dict()}
        if self.provenance is not None:
            d["provenance"] = self.provenance.to_dict()
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "TargetCodebook":
        """Inverse of ``to_dict``. A saved provenance must describe the saved codebook
        (digest check): a hand-edited centroid list would otherwise be monitored
        against the sketch of another codebook."""
        from quantrec.codebook import codebook_from_dict
        from quantrec.codebook.provenance import CodebookProvenance, ProvenanceError
        if d.get("kind") != "TargetCodebook":
            raise ValueError(f"not a TargetCodebook: kind {d.get('kind')!r}")
        book = cls(TargetTransform(**d["transform"]), codebook_from_dict(d["codebook"]))
        if d.get("provenance") is not None:
            prov = CodebookProvenance.from_dict(d["provenance"])
            if prov.codebook_digest != book.digest():
                raise ProvenanceError("the saved provenance does not describe the saved codebook "
                                      "(codebook_digest differs): the file was edited or assembled from two codebooks")
            book.provenance = prov
        return book

    def __repr__(self) -> str:
        prov = "" if self.provenance is None else f", fitted {self.provenance.fit_window[0]}..{self.provenance.fit_window[1]}"
        return f"TargetCodebook({self.transform}, {self.codebook!r}{prov})"
