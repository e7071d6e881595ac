"""Provenance of a GMV codebook: where and when it was fitted and what its labels looked like.

A codebook reused for weeks (the champion's) is only as good as the labels it was
fitted on. Its provenance travels inside the codebook's JSON (``TargetCodebook``) so
that monitoring can, without the training run, tell whether today's labels still
look like those:

- ``fit_window``: the half-open day range [start, end) of the training labels.
- ``data_fingerprint``: which DATASET the labels came from (``dataset_fingerprint``);
  a later day of the same dataset has the same fingerprint, another dataset does not.
- ``codebook_digest``: sha256 of the codebook it describes (transform + centroids), so
  a provenance can never be attached to, or read with, another codebook.
- ``refit``: the arguments of ``TargetCodebook.fit`` that produced the codebook, so
  monitoring can fit the candidate a rebuild would give and compare the two.
- ``sketch`` (``ReferenceSketch``): a compact description of the training labels:
  quantiles of GMV (log GMV = log1p of them, exactly), unit price and quantity; a
  histogram of log1p(GMV); layer-1 code occupancy; the most frequent price points and
  their shares; reconstruction error and the shares above the clip / beyond the last
  layer-1 centroid at fit time. ``codebook_label_stats`` computes the codebook-side
  numbers, and monitoring calls the same function on the current labels, so reference
  and current are measured the same way.

Typical use (the fit_codebook stage)::

    book = RQRegModel(cfg).fit_target_codebook(y_train)
    prov = build_provenance(y_train, book, fit_window=(train_start, val_start),
                            data_fingerprint=dataset_fingerprint(spec, events),
                            unit_price=train.unit_price, quantity=train.quantity)
    book.with_provenance(prov).save(path)
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from quantrec.codebook.cluster1d import collapse
from quantrec.codebook.rq import validate_values

FORMAT = "quantrec.codebook.provenance/v1"
#: Columns a sketch may hold quantiles of (canonical names of ``quantrec.data.schema``).
SKETCH_COLUMNS = ("gmv", "unit_price", "quantity")
#: Price points are matched after rounding to this many decimals: qty x price products
#: that print the same (3 x 0.85 and 2 x 1.275) differ in the last float bit.
PRICE_POINT_DECIMALS = 6


class ProvenanceError(ValueError):
    """A provenance is malformed, missing, or does not belong to its codebook / data."""


class FingerprintMismatch(ProvenanceError):
    """The codebook was fitted on another dataset than the one being checked."""


# ---- dataset fingerprint --------------------------------------------------------------
def dataset_fingerprint(spec: Any, lines: pd.DataFrame) -> str:
    """Identify the dataset (not one day's snapshot) of cleaned purchase lines.

    spec: the ``DatasetSpec`` (its name, role -> column mapping and format).
    lines: cleaned canonical purchase lines (``clean_transactions`` output or a run's
        events table) that include the dataset's first trading day.
    Returns ``"<spec name>:<16 hex digits>"``: sha256 of the spec identity plus the
    content of the lines of the FIRST trading day (user, item, timestamp, quantity,
    unit price, in a canonical order).

    Why the first day: an append-only transactions table keeps its first day forever,
    so every later run of the same dataset (any run_date, any copy of the file: local,
    gs://, renamed) gets the same fingerprint, while another dataset described by the
    same spec (a different shop's export) does not. A file URL would change with a
    mirror or a date-stamped export name; a content hash of the whole table would
    change every day. Limitation: a table that drops its oldest days (rolling
    retention) or a change of the spec's cleaning rules that touches the first day
    changes the fingerprint; monitoring then reports a mismatch, and the safe response
    (a rebuild) follows.
    """
    from quantrec.data import schema as S

    if lines is None or len(lines) == 0:
        raise ProvenanceError("dataset_fingerprint: no lines given (the first trading day is hashed)")
    missing = [c for c in (S.USER, S.ITEM, S.TS, S.QUANTITY, S.UNIT_PRICE) if c not in lines.columns]
    if missing:
        raise ProvenanceError(f"dataset_fingerprint: lines lack the column(s) {missing}")
    day = pd.to_datetime(lines[S.DAY] if S.DAY in lines.columns else lines[S.TS]).dt.normalize()
    first = day.min()
    rows = lines.loc[(day == first).to_numpy(), [S.USER, S.ITEM, S.TS, S.QUANTITY, S.UNIT_PRICE]]
    # Canonical dtypes: the events table read back from parquet has object strings,
    # clean_transactions gives pandas "string"; both must hash the same.
    canon = pd.DataFrame({
        "u": rows[S.USER].astype(str).to_numpy(), "i": rows[S.ITEM].astype(str).to_numpy(),
        "t": pd.to_datetime(rows[S.TS]).astype("int64").to_numpy(),
        "q": rows[S.QUANTITY].astype("float64").to_numpy(), "p": rows[S.UNIT_PRICE].astype("float64").to_numpy(),
    }).sort_values(["t", "u", "i", "q", "p"], kind="stable").reset_index(drop=True)
    identity = {"name": spec.name, "columns": dict(sorted(spec.columns.items())), "format": spec.format,
                "first_day": str(first.date())}
    h = hashlib.sha256(json.dumps(identity, sort_keys=True).encode())
    h.update(pd.util.hash_pandas_object(canon, index=False).to_numpy().tobytes())
    return f"{spec.name}:{h.hexdigest()[:16]}"


def codebook_digest(codebook: Any) -> str:
    """sha256 (hex) of a TargetCodebook's transform + inner codebook, provenance excluded."""
    d = {"transform": codebook.transform.to_dict(), "codebook": codebook.codebook.to_dict()}
    return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()


# ---- codebook-side statistics (shared by reference and current) ----------------------
def last_centroid(codebook: Any) -> float:
    """The largest layer-1 centroid in label units (a TargetCodebook with centroids)."""
    return float(np.max(codebook.centroids[0]))


def _check_rq(codebook: Any) -> None:
    if not hasattr(codebook, "transform") or not hasattr(codebook, "codebook"):
        raise ProvenanceError(f"expected a TargetCodebook (transform + codebook), got {type(codebook).__name__}")
    if not hasattr(codebook.codebook, "centroids"):
        raise ProvenanceError(f"layer-1 occupancy needs a codebook with centroids (RQ / K-means), "
                              f"got {type(codebook.codebook).__name__}")


def codebook_label_stats(y: Any, codebook: Any) -> dict[str, Any]:
    """How a TargetCodebook fits labels y (n,) in GMV units.

    Returns a JSON-able dict:
      n: lines; code_counts: (K,) ints, layer-1 code occupancy;
      recon_mae / recon_mre: mean |y - decode(encode(y))| (GMV) and its mean ratio to y
        (y > 0); recon_mae_within_clip: the same over labels <= clip (the quantization
        error proper; above the clip the error is y - clip whatever the centroids);
      share_above_clip: share of labels > the transform's clip;
      share_beyond_last_centroid: share of labels > the largest layer-1 centroid.
    Works on the distinct labels weighted by their counts (GMV has heavy ties).
    """
    _check_rq(codebook)
    y = validate_values(y, what="labels")
    u, w = collapse(y)
    codes = codebook.encode(u)
    recon = codebook.decode(codes)
    err = np.abs(u - recon)
    n = float(w.sum())
    pos = u > 0
    clip = float(codebook.transform.clip)
    within = u <= clip
    counts = np.bincount(codes[:, 0], weights=w, minlength=int(codebook.size))
    return {
        "n": int(n),
        "code_counts": [int(round(c)) for c in counts],
        "recon_mae": float(np.sum(w * err) / n),
        "recon_mre": float(np.sum(w[pos] * err[pos] / u[pos]) / w[pos].sum()) if pos.any() else float("nan"),
        "recon_mae_within_clip": float(np.sum(w[within] * err[within]) / w[within].sum()) if within.any() else float("nan"),
        "share_above_clip": float(w[u > clip].sum() / n),
        "share_beyond_last_centroid": float(w[u > last_centroid(codebook)].sum() / n),
    }


def price_point_shares(y: Any, values: Any) -> np.ndarray:
    """Share of labels y (n,) equal to each of ``values`` (m,) after rounding to
    ``PRICE_POINT_DECIMALS``; returns (m,) floats."""
    y = np.round(np.asarray(y, dtype=np.float64), PRICE_POINT_DECIMALS)
    v = np.round(np.asarray(values, dtype=np.float64), PRICE_POINT_DECIMALS)
    if y.size == 0:
        return np.zeros(len(v))
    u, c = np.unique(y, return_counts=True)
    idx = np.clip(np.searchsorted(u, v), 0, len(u) - 1)
    return np.where(u[idx] == v, c[idx], 0) / float(y.size)


def top_price_points(y: Any, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The k most frequent label values (rounded) and their shares, most frequent first."""
    y = np.round(np.asarray(y, dtype=np.float64), PRICE_POINT_DECIMALS)
    u, c = np.unique(y, return_counts=True)
    order = np.lexsort((u, -c))[:k]  # by count desc, ties by value
    return u[order], c[order] / float(y.size)


# ---- the reference sketch -------------------------------------------------------------
@dataclass(frozen=True)
class ReferenceSketch:
    """The training labels of a codebook, summarised (all lists are plain JSON).

    quantiles: column -> (n_quantiles,) values at probabilities linspace(0, 1, n_quantiles)
        (``inverted_cdf``: actual data values, so price-point ties survive). "gmv" always;
        "unit_price" / "quantity" when given. log GMV quantiles = log1p(gmv quantiles).
    log_gmv_edges (B+1,) / log_gmv_counts (B,): histogram of log1p(GMV).
    top_values / top_shares (k,): most frequent GMV values (price points) and shares.
    stats: ``codebook_label_stats`` of the training labels (occupancy, errors, shares).
    """

    n: int
    quantiles: dict[str, list[float]]
    log_gmv_edges: list[float]
    log_gmv_counts: list[int]
    top_values: list[float]
    top_shares: list[float]
    stats: dict[str, Any]

    @property
    def probs(self) -> np.ndarray:
        return np.linspace(0.0, 1.0, len(self.quantiles["gmv"]))

    def reference_frame(self) -> pd.DataFrame:
        """A frame of the quantile points (n_quantiles rows): equally weighted points
        whose empirical distribution is the sketch, per column; ``log_gmv`` added.
        Columns are independent marginals (row i = the i-th quantile of each)."""
        out = {c: np.asarray(v, dtype=np.float64) for c, v in self.quantiles.items()}
        out["log_gmv"] = np.log1p(out["gmv"])
        return pd.DataFrame(out)


@dataclass(frozen=True)
class CodebookProvenance:
    """Fit window, dataset fingerprint, codebook digest and reference sketch."""

    fit_window: tuple[str, str]
    data_fingerprint: str
    codebook_digest: str
    sketch: ReferenceSketch
    format: str = FORMAT
    refit: dict[str, Any] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def check_fingerprint(self, fingerprint: str) -> None:
        """Raise ``FingerprintMismatch`` unless ``fingerprint`` is this provenance's."""
        if fingerprint != self.data_fingerprint:
            raise FingerprintMismatch(
                f"the codebook was fitted on dataset {self.data_fingerprint!r} (window "
                f"{self.fit_window[0]} .. {self.fit_window[1]}), but the data being checked is "
                f"{fingerprint!r}: a codebook from another dataset cannot be monitored or reused")

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["fit_window"] = list(self.fit_window)
        return d

    @classmethod
    def from_dict(cls, d: Any, where: str = "provenance") -> "CodebookProvenance":
        """Inverse of ``to_dict``; ProvenanceError naming the missing / bad key."""
        if not isinstance(d, dict):
            raise ProvenanceError(f"{where} must be a JSON object, got {type(d).__name__}")
        if d.get("format") != FORMAT:
            raise ProvenanceError(f"{where}.format is {d.get('format')!r}, expected {FORMAT!r}")
        for key in ("fit_window", "data_fingerprint", "codebook_digest", "sketch"):
            if key not in d:
                raise ProvenanceError(f"{where} lacks the key {key!r}")
        sk = d["sketch"]
        keys = ("n", "quantiles", "log_gmv_edges", "log_gmv_counts", "top_values", "top_shares", "stats")
        missing = [k for k in keys if k not in sk]
        if missing:
            raise ProvenanceError(f"{where}.sketch lacks the key(s) {missing}")
        if "gmv" not in sk["quantiles"]:
            raise ProvenanceError(f"{where}.sketch.quantiles lacks 'gmv'")
        fw = d["fit_window"]
        if not (isinstance(fw, (list, tuple)) and len(fw) == 2):
            raise ProvenanceError(f"{where}.fit_window must be [start, end], got {fw!r}")
        return cls(fit_window=(str(fw[0]), str(fw[1])), data_fingerprint=str(d["data_fingerprint"]),
                   codebook_digest=str(d["codebook_digest"]), sketch=ReferenceSketch(**{k: sk[k] for k in keys}),
                   refit=dict(d["refit"]) if d.get("refit") is not None else None,
                   extra=dict(d.get("extra") or {}))


def _day(value: Any) -> str:
    try:
        return str(pd.Timestamp(value).date())
    except (ValueError, TypeError):
        raise ProvenanceError(f"fit_window bound {value!r} is not a date") from None


def build_provenance(y_train: Any, codebook: Any, fit_window: tuple[Any, Any], data_fingerprint: str, *,
                     unit_price: Any = None, quantity: Any = None, n_quantiles: int = 1001,
                     hist_bins: int = 48, top_k: int = 20, refit: dict[str, Any] | None = None,
                     extra: dict[str, Any] | None = None) -> CodebookProvenance:
    """The provenance of ``codebook`` (a TargetCodebook with an RQ / K-means inner codebook)
    fitted on ``y_train`` (n,) GMV labels of the days [fit_window[0], fit_window[1]).

    unit_price / quantity: (n,) of the same lines (optional; their quantiles let
    monitoring check them for drift too). n_quantiles: sketch resolution (1001 = every
    0.1%). hist_bins: log1p(GMV) histogram bins over [0, log1p(max)]. top_k: price
    points kept. refit: the ``TargetCodebook.fit`` keyword arguments that reproduce the
    codebook's kind (default: the ``fit_params`` that ``TargetCodebook.fit`` recorded;
    None for a codebook built another way: monitoring then cannot compare with a
    candidate rebuild). ``extra``: free JSON (e.g. the spec name, the run that fitted it).
    """
    _check_rq(codebook)
    y = validate_values(y_train, what="training labels")
    start, end = _day(fit_window[0]), _day(fit_window[1])
    if start >= end:
        raise ProvenanceError(f"fit_window must be [start, end) with start < end, got {start} .. {end}")
    if not isinstance(data_fingerprint, str) or not data_fingerprint:
        raise ProvenanceError("data_fingerprint must be a non-empty string (see dataset_fingerprint)")
    if n_quantiles < 11 or hist_bins < 2 or top_k < 1:
        raise ProvenanceError(f"need n_quantiles >= 11, hist_bins >= 2, top_k >= 1; got "
                              f"{n_quantiles}, {hist_bins}, {top_k}")
    probs = np.linspace(0.0, 1.0, n_quantiles)
    quantiles = {"gmv": np.quantile(y, probs, method="inverted_cdf").tolist()}
    for name, col in (("unit_price", unit_price), ("quantity", quantity)):
        if col is None:
            continue
        v = validate_values(col, what=f"training {name}")
        if v.size != y.size:
            raise ProvenanceError(f"{name} has {v.size} values, the labels {y.size}: they must be the same lines")
        quantiles[name] = np.quantile(v, probs, method="inverted_cdf").tolist()
    ly = np.log1p(y)
    edges = np.linspace(0.0, float(ly.max()) if ly.max() > 0 else 1.0, hist_bins + 1)
    counts, _ = np.histogram(ly, bins=edges)
    tv, ts = top_price_points(y, top_k)
    sketch = ReferenceSketch(n=int(y.size), quantiles=quantiles, log_gmv_edges=edges.tolist(),
                             log_gmv_counts=[int(c) for c in counts], top_values=tv.tolist(),
                             top_shares=ts.tolist(), stats=codebook_label_stats(y, codebook))
    refit = refit if refit is not None else getattr(codebook, "fit_params", None)
    try:
        refit = json.loads(json.dumps(refit)) if refit is not None else None
    except TypeError as exc:
        raise ProvenanceError(f"refit parameters must be plain JSON: {exc}") from None
    return CodebookProvenance(fit_window=(start, end), data_fingerprint=data_fingerprint,
                              codebook_digest=codebook_digest(codebook), sketch=sketch, refit=refit,
                              extra=dict(extra or {}))
