"""The one feature pipeline shared by every model (RQ-Reg, WLR, MLP, LightGBM).

Fit on the training rows only, transform any rows:

* numeric features: ``log1p`` of heavy-tailed counts / amounts / day spans (sign kept:
  ``sign(x) * log1p(|x|)``), then a missing flag per feature that had NaN in training,
  NaN filled with the training median, then standardised with training mean / std.
* categorical features (user, item, country): an index built on the training window
  (ids seen at least ``min_count`` times get 1..V, everything else, and every id unseen
  at inference, maps to 0 = unknown), or stable hashing into ``hash_buckets`` buckets
  (index 1..buckets, 0 reserved for empty / null ids).

The fitted state is plain JSON (``to_json`` / ``from_json`` / ``save`` / ``load`` via
fsspec), saved next to every model as ``features.json``.
"""

from __future__ import annotations

import json
import zlib
from dataclasses import asdict, dataclass, field
from typing import Any

import fsspec
import numpy as np
import pandas as pd

from quantrec.data import schema

#: numeric features whose raw values are heavy-tailed counts, amounts or day spans.
LOG_FEATURES: tuple[str, ...] = (
    "u_lines", "u_days", "u_orders", "u_spend", "u_recency_days", "u_tenure_days",
    "i_lines", "i_price_last", "i_recency_days", "i_qty_last", "ui_lines",
    "fp_spend", "fp_lines", "fp_orders", "fp_items", "fp_days", "fp_first_day_spend",
)


@dataclass
class FeatureSpec:
    """Which columns the pipeline uses and how.

    numeric: numeric columns (float; NaN = undefined).
    categorical: string id columns.
    log_features: subset of ``numeric`` transformed with signed log1p.
    mode: "index" (vocabulary built on the training rows) or "hash".
    min_count: an id needs this many training rows to get its own index (mode "index").
    hash_buckets: bucket count per categorical column (mode "hash").
    """

    numeric: list[str] = field(default_factory=lambda: list(schema.NUMERIC_FEATURES))
    categorical: list[str] = field(default_factory=lambda: list(schema.CATEGORICAL_FEATURES))
    log_features: list[str] = field(default_factory=lambda: list(LOG_FEATURES))
    mode: str = "index"
    min_count: int = 1
    hash_buckets: int = 20_000

    @classmethod
    def gmv(cls, **kw: Any) -> "FeatureSpec":
        """The GMV task's features (schema.NUMERIC_FEATURES + user/item/country)."""
        return cls(**kw)

    @classmethod
    def ltv(cls, **kw: Any) -> "FeatureSpec":
        """The LTV task's features (schema.LTV_FEATURES + country)."""
        return cls(numeric=list(schema.LTV_FEATURES), categorical=[schema.COUNTRY], **kw)


def model_feature_spec(config: Any) -> FeatureSpec:
    """The FeatureSpec a model config asks for: its task's columns ("gmv" | "ltv"), its
    ``cat_mode`` and ``min_count`` and, when the config has a non-None ``categorical``
    field, only those categorical columns (a subset of the task's; () = none)."""
    task = config.task
    kw = {"mode": getattr(config, "cat_mode", "index"), "min_count": getattr(config, "min_count", 2)}
    if task == "gmv":
        spec = FeatureSpec.gmv(**kw)
    elif task == "ltv":
        spec = FeatureSpec.ltv(**kw)
    else:
        raise ValueError(f"unknown task {task!r} for the feature pipeline (gmv|ltv)")
    chosen = getattr(config, "categorical", None)
    if chosen is not None:
        unknown = [c for c in chosen if c not in spec.categorical]
        if unknown:
            raise ValueError(f"categorical {unknown} are not categorical features of the {task} task "
                             f"(known: {spec.categorical})")
        spec.categorical = [c for c in spec.categorical if c in chosen]
    return spec


def _stable_hash(values: np.ndarray, buckets: int) -> np.ndarray:
    """(n,) object array of strings -> (n,) int64 in [1, buckets]; "" / None -> 0."""
    out = np.zeros(len(values), dtype=np.int64)
    for i, v in enumerate(values):  # crc32 is C-speed; python loop over unique values only
        if v is None or v == "":
            continue
        out[i] = 1 + zlib.crc32(str(v).encode("utf-8")) % buckets
    return out


def _index_codes_pandas(values: pd.Series, vocab: dict[str, int]) -> np.ndarray:
    """(n,) int64 vocabulary indices of ``values`` as strings; missing / unseen -> 0.
    The reference semantics (pandas string conversion); ``_index_codes`` equals it."""
    return values.astype("string").fillna("").map(vocab).fillna(0).to_numpy(dtype=np.int64)


def _index_codes(values: pd.Series, vocab: dict[str, int]) -> np.ndarray:
    """``_index_codes_pandas`` with plain dict lookups when every value is a str or missing
    (ids are strings in every table): ~20x faster on the ~100-row frames of a scoring
    request, where pandas' conversions cost milliseconds. Other values (numbers in an id
    column) take the pandas path, so the string conversion rules stay pandas' own."""
    arr = values.to_numpy(dtype=object)
    get = vocab.get
    out = np.zeros(len(arr), dtype=np.int64)
    for i, v in enumerate(arr):
        if type(v) is str:
            out[i] = get(v, 0)
        elif not (v is None or v is pd.NA or (type(v) is float and v != v)):
            return _index_codes_pandas(values, vocab)
    return out


class FeaturePipeline:
    """Fitted feature transform.

    Attributes after ``fit``:
        numeric_stats: {col: {"median", "mean", "std", "flag"}} in transformed units.
        vocab: {col: {id: index}} (mode "index").
    """

    def __init__(self, spec: FeatureSpec | None = None) -> None:
        self.spec = spec or FeatureSpec()
        self.numeric_stats: dict[str, dict[str, float]] = {}
        self.vocab: dict[str, dict[str, int]] = {}
        self.fitted = False

    # ---- numeric --------------------------------------------------------------------
    def _raw_numeric(self, frame: pd.DataFrame, col: str) -> np.ndarray:
        """(n,) float64 after the log transform; NaN kept. Missing column -> all NaN."""
        if col in frame.columns:
            s = frame[col]
            if pd.api.types.is_numeric_dtype(s.dtype):
                # already numbers: skip pd.to_numeric (its per-call cost dominates the
                # ~100-row frames of a scoring request)
                x = s.to_numpy(dtype=np.float64, na_value=np.nan)
            else:
                x = pd.to_numeric(s, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
        else:
            x = np.full(len(frame), np.nan)
        x = np.where(np.isfinite(x), x, np.nan)
        if col in self.spec.log_features:
            x = np.sign(x) * np.log1p(np.abs(x))
        return x

    def fit(self, frame: pd.DataFrame) -> "FeaturePipeline":
        """Fit statistics and vocabularies on the training rows ``frame``."""
        self.numeric_stats = {}
        for col in self.spec.numeric:
            x = self._raw_numeric(frame, col)
            ok = ~np.isnan(x)
            median = float(np.median(x[ok])) if ok.any() else 0.0
            filled = np.where(ok, x, median)
            std = float(filled.std()) if len(filled) else 1.0
            self.numeric_stats[col] = {
                "median": median,
                "mean": float(filled.mean()) if len(filled) else 0.0,
                "std": std if std > 1e-8 else 1.0,
                "flag": float((~ok).any()),
            }
        self.vocab = {}
        if self.spec.mode == "index":
            for col in self.spec.categorical:
                if col not in frame.columns:
                    self.vocab[col] = {}
                    continue
                counts = frame[col].dropna().astype(str).value_counts()
                counts = counts[(counts >= self.spec.min_count) & (counts.index != "")]
                ids = sorted(counts.index)  # deterministic order
                self.vocab[col] = {v: i + 1 for i, v in enumerate(ids)}
        elif self.spec.mode != "hash":
            raise ValueError(f"unknown categorical mode {self.spec.mode!r} (index|hash)")
        self.fitted = True
        return self

    # ---- shapes ---------------------------------------------------------------------
    @property
    def numeric_names(self) -> list[str]:
        """Names of the output numeric columns (features, then missing flags)."""
        names = list(self.spec.numeric)
        names += [f"{c}__missing" for c in self.spec.numeric if self.numeric_stats[c]["flag"]]
        return names

    @property
    def n_numeric(self) -> int:
        return len(self.numeric_names)

    @property
    def cardinalities(self) -> list[int]:
        """Embedding table size per categorical column (index 0 = unknown included)."""
        if self.spec.mode == "hash":
            return [self.spec.hash_buckets + 1 for _ in self.spec.categorical]
        return [len(self.vocab[c]) + 1 for c in self.spec.categorical]

    # ---- transform ------------------------------------------------------------------
    def transform_numeric(self, frame: pd.DataFrame) -> np.ndarray:
        """(n, n_numeric) float32: standardised features then 0/1 missing flags."""
        self._check()
        names = self.spec.numeric
        if not names:
            return np.zeros((len(frame), 0), dtype=np.float32)
        # one (n, k) matrix and whole-matrix arithmetic (same values as column by column)
        x = np.stack([self._raw_numeric(frame, col) for col in names], axis=1)
        stats = [self.numeric_stats[col] for col in names]
        median = np.array([st["median"] for st in stats])
        mean = np.array([st["mean"] for st in stats])
        std = np.array([st["std"] for st in stats])
        miss = np.isnan(x)
        z = (np.where(miss, median, x) - mean) / std
        flagged = np.array([bool(st["flag"]) for st in stats])
        if flagged.any():
            z = np.concatenate([z, miss[:, flagged].astype(np.float64)], axis=1)
        return z.astype(np.float32)

    def transform_categorical(self, frame: pd.DataFrame) -> np.ndarray:
        """(n, n_categorical) int64 indices; 0 = unknown / unseen id (never an error)."""
        self._check()
        out = np.zeros((len(frame), len(self.spec.categorical)), dtype=np.int64)
        for j, col in enumerate(self.spec.categorical):
            if col not in frame.columns:
                continue
            if self.spec.mode == "hash":
                vals = frame[col].astype("string").fillna("")
                uniq, inv = np.unique(vals.to_numpy(dtype=object), return_inverse=True)
                out[:, j] = _stable_hash(uniq, self.spec.hash_buckets)[inv]
            else:
                out[:, j] = _index_codes(frame[col], self.vocab[col])
        return out

    def transform(self, frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """-> (numeric (n, n_numeric) float32, categorical (n, n_categorical) int64)."""
        return self.transform_numeric(frame), self.transform_categorical(frame)

    def _check(self) -> None:
        if not self.fitted:
            raise RuntimeError("FeaturePipeline is not fitted: call fit(train_rows) first")

    # ---- persistence ----------------------------------------------------------------
    def to_json(self) -> dict[str, Any]:
        self._check()
        return {"spec": asdict(self.spec), "numeric_stats": self.numeric_stats, "vocab": self.vocab}

    @classmethod
    def from_json(cls, state: dict[str, Any]) -> "FeaturePipeline":
        pipe = cls(FeatureSpec(**state["spec"]))
        pipe.numeric_stats = {k: dict(v) for k, v in state["numeric_stats"].items()}
        pipe.vocab = {k: {str(i): int(j) for i, j in v.items()} for k, v in state["vocab"].items()}
        pipe.fitted = True
        return pipe

    def save(self, path: str) -> None:
        """Write JSON to ``path`` (any fsspec URL)."""
        with fsspec.open(path, "w") as f:
            json.dump(self.to_json(), f)

    @classmethod
    def load(cls, path: str) -> "FeaturePipeline":
        with fsspec.open(path, "r") as f:
            return cls.from_json(json.load(f))
