"""Compact, self-describing cache values: one array + one aggregate vector. No pickle.

A value is the bytes::

    header   12 bytes, little-endian  "<2sBBBBHI"
             magic b"QC" | format version (1) | kind (1 user, 2 item, 3 user-item pair) |
             dtype byte: low 4 bits the array dtype (1 float16, 2 float32), high 4 bits
             the aggregates' dtype (0 float32, 1 float64) | ndim | n_aggregates (uint16) |
             version tag (uint32)
    dims     ndim x uint32            the array's shape, e.g. (clusters, d) = (100, 32)
    array    prod(dims) x dtype        e.g. a DMQN user state (100, 32) float16 = 6,400 bytes;
                                       ndim 0 = no array (a value of aggregates only)
    aggs     n_aggregates x float32 | float64   the as-of features (names in the manifest)

Aggregates default to float32 (values written before the high bits existed read the
same); float64 keeps features bit-equal to the offline pipeline's float64 columns (the
serving refresh uses it: 20 features cost 80 more bytes next to a 6.4 kB state).

For a user: the DMQN interest-cluster state (clusters, d) in float16 plus the user's as-of
aggregates RQ-Reg needs (``schema.USER_FEATURES``); for an item: its embedding (d,) plus
its aggregates. The aggregates' names are not repeated in every value: they are listed
once in the version's manifest (``ValueSchema.to_dict``).

The version tag is ``crc32(version name)``: a reader checks that every value it got
carries the tag of the version it resolved, so a mix of versions cannot pass silently.

Every value of one ``ValueSchema`` and version has the same header bytes and the same
length, so checking a value before it is written is a prefix compare plus a length
compare (``ValueSchema.check``), cheap enough to run on every value of a refresh.
"""

from __future__ import annotations

import math
import struct
import zlib
from dataclasses import dataclass
from typing import Any

import numpy as np

MAGIC = b"QC"
FORMAT_VERSION = 1
KINDS = {"user": 1, "item": 2, "pair": 3}
DTYPES = {"float16": 1, "float32": 2}
AGG_DTYPES = {"float32": 0, "float64": 1}   # the dtype byte's high 4 bits
_KIND_NAMES = {v: k for k, v in KINDS.items()}
_DTYPE_NAMES = {v: k for k, v in DTYPES.items()}
_AGG_NAMES = {v: k for k, v in AGG_DTYPES.items()}
_HEADER = struct.Struct("<2sBBBBHI")
HEADER_BYTES = _HEADER.size  # 12
MAX_NDIM = 8


class CorruptValueError(ValueError):
    """A cache value that is not a valid encoded value (wrong magic, truncated, ...)."""


class SchemaMismatchError(ValueError):
    """A valid value whose kind, shape, dtype, field count or version tag differs from the expected."""


def version_tag(version: str) -> int:
    """The 32-bit tag a value of ``version`` carries: crc32 of the version name (UTF-8)."""
    return zlib.crc32(version.encode("utf-8")) & 0xFFFFFFFF


def _where(key: str | None) -> str:
    return f" (key {key!r})" if key else ""


@dataclass(frozen=True)
class DecodedValue:
    """A decoded value. ``array`` and ``aggregates`` are read-only views of the bytes.

    kind: "user" | "item" | "pair"; tag: the version tag; array: e.g. (clusters, d)
    float16, (0,) for a value without array; aggregates: (n_aggregates,) float32 or
    float64, NaN where the feature is undefined (no history).
    """

    kind: str
    tag: int
    array: np.ndarray
    aggregates: np.ndarray


def decode(value: bytes | bytearray | memoryview, key: str | None = None) -> DecodedValue:
    """Decode any value (self-describing). Raises ``CorruptValueError`` naming ``key``."""
    buf = memoryview(value)
    if len(buf) < HEADER_BYTES:
        raise CorruptValueError(f"cache value{_where(key)} is {len(buf)} bytes, shorter than "
                                f"the {HEADER_BYTES}-byte header (truncated or not a quantrec value)")
    magic, fmt, kind, dtype_byte, ndim, n_agg, tag = _HEADER.unpack_from(buf, 0)
    dtype, agg_code = dtype_byte & 0x0F, dtype_byte >> 4
    if magic != MAGIC:
        raise CorruptValueError(f"cache value{_where(key)} has magic {bytes(magic)!r}, expected "
                                f"{MAGIC!r} (not a quantrec value)")
    if fmt != FORMAT_VERSION:
        raise CorruptValueError(f"cache value{_where(key)} has format version {fmt}; this code "
                                f"reads version {FORMAT_VERSION}")
    if kind not in _KIND_NAMES or dtype not in _DTYPE_NAMES or agg_code not in _AGG_NAMES or ndim > MAX_NDIM:
        raise CorruptValueError(f"cache value{_where(key)} has an invalid header (kind code {kind}, "
                                f"dtype byte {dtype_byte:#04x}, ndim {ndim})")
    dims_end = HEADER_BYTES + 4 * ndim
    if len(buf) < dims_end:
        raise CorruptValueError(f"cache value{_where(key)} is truncated inside its shape header")
    dims = struct.unpack_from(f"<{ndim}I", buf, HEADER_BYTES)
    np_dtype = np.dtype("<f2" if dtype == DTYPES["float16"] else "<f4")
    agg_dtype = np.dtype("<f8" if agg_code == AGG_DTYPES["float64"] else "<f4")
    n_items = math.prod(dims) if ndim else 0
    expected = dims_end + n_items * np_dtype.itemsize + agg_dtype.itemsize * n_agg
    if len(buf) != expected:
        raise CorruptValueError(f"cache value{_where(key)} is {len(buf)} bytes; its header "
                                f"(shape {tuple(dims)}, {n_agg} aggregates) needs {expected} "
                                f"(truncated or corrupt)")
    array = np.frombuffer(buf, dtype=np_dtype, count=n_items, offset=dims_end).reshape(dims if ndim else (0,))
    aggregates = np.frombuffer(buf, dtype=agg_dtype, count=n_agg, offset=dims_end + n_items * np_dtype.itemsize)
    return DecodedValue(kind=_KIND_NAMES[kind], tag=tag, array=array, aggregates=aggregates)


@dataclass(frozen=True)
class ValueSchema:
    """The layout of all values of one kind in one cache version.

    kind: "user", "item" or "pair" (one user-item pair); shape: the array's shape, e.g.
    (100, 32) for a DMQN user state (clusters, d) or (32,) for an item embedding; () = no
    array (a value of aggregates only); fields: names of the aggregates, in order; dtype:
    storage dtype of the array ("float16" halves the bytes; the DMQN state is computed in
    float32 and rounded, relative error <= 2**-11); agg_dtype: storage dtype of the
    aggregates ("float32", or "float64" to keep float64 features exact).
    """

    kind: str
    shape: tuple[int, ...]
    fields: tuple[str, ...] = ()
    dtype: str = "float16"
    agg_dtype: str = "float32"

    def __post_init__(self) -> None:
        object.__setattr__(self, "shape", tuple(int(d) for d in self.shape))
        object.__setattr__(self, "fields", tuple(self.fields))
        if self.kind not in KINDS:
            raise ValueError(f"ValueSchema.kind must be one of {sorted(KINDS)}, got {self.kind!r}")
        if self.dtype not in DTYPES:
            raise ValueError(f"ValueSchema.dtype must be one of {sorted(DTYPES)}, got {self.dtype!r}")
        if self.agg_dtype not in AGG_DTYPES:
            raise ValueError(f"ValueSchema.agg_dtype must be one of {sorted(AGG_DTYPES)}, got {self.agg_dtype!r}")
        if len(self.shape) > MAX_NDIM or any(d <= 0 or d >= 2**32 for d in self.shape):
            raise ValueError(f"ValueSchema.shape must have <= {MAX_NDIM} positive dims, got {self.shape}")
        if len(self.fields) >= 2**16:
            raise ValueError(f"ValueSchema.fields: at most 65535 aggregates, got {len(self.fields)}")
        if len(set(self.fields)) != len(self.fields) or not all(isinstance(f, str) and f for f in self.fields):
            raise ValueError(f"ValueSchema.fields must be distinct non-empty names, got {list(self.fields)}")

    @property
    def np_dtype(self) -> np.dtype:
        return np.dtype("<f2" if self.dtype == "float16" else "<f4")

    @property
    def np_agg_dtype(self) -> np.dtype:
        return np.dtype("<f8" if self.agg_dtype == "float64" else "<f4")

    @property
    def size(self) -> int:
        """Elements of the array (0 for shape ())."""
        return math.prod(self.shape) if self.shape else 0

    @property
    def header_bytes(self) -> int:
        return HEADER_BYTES + 4 * len(self.shape)

    @property
    def nbytes(self) -> int:
        """Bytes of one encoded value (header + array + aggregates)."""
        return (self.header_bytes + self.size * self.np_dtype.itemsize
                + self.np_agg_dtype.itemsize * len(self.fields))

    def header(self, version: str) -> bytes:
        """The header every value of this schema and ``version`` starts with."""
        dtype_byte = DTYPES[self.dtype] | (AGG_DTYPES[self.agg_dtype] << 4)
        return (_HEADER.pack(MAGIC, FORMAT_VERSION, KINDS[self.kind], dtype_byte, len(self.shape),
                             len(self.fields), version_tag(version))
                + struct.pack(f"<{len(self.shape)}I", *self.shape))

    def _cast(self, arrays: Any, aggregates: Any, lead: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
        if not self.shape:  # a value of aggregates only
            if arrays is not None:
                raise SchemaMismatchError(f"{self.kind} values of shape () hold no array: pass None")
            arrays = np.zeros(lead + (0,), dtype=self.np_dtype)
        elif arrays is None:
            raise SchemaMismatchError(f"{self.kind} values need an array of shape {self.shape}")
        if type(arrays).__module__.startswith("torch"):
            # a torch tensor (e.g. DMQN states): torch's vectorised half cast is 2-4x numpy's
            import torch
            arrays = arrays.detach().to("cpu", torch.float16 if self.dtype == "float16" else torch.float32).numpy()
        arrays = np.asarray(arrays)
        aggregates = np.asarray(aggregates, dtype=np.float64)
        if arrays.shape != lead + (self.shape or (0,)):
            raise SchemaMismatchError(f"{self.kind} array has shape {arrays.shape}, expected "
                                      f"{lead + self.shape}")
        if aggregates.shape != lead + (len(self.fields),):
            raise SchemaMismatchError(f"{self.kind} aggregates have shape {aggregates.shape}, expected "
                                      f"{lead + (len(self.fields),)} (fields {list(self.fields)})")
        with np.errstate(over="ignore"):  # an overflow becomes inf, refused just below
            stored = arrays.astype(self.np_dtype, copy=False)
        if self.dtype == "float16":
            # inf/NaN have all exponent bits set; an integer test is 3x faster than isfinite on halves
            bad = ((stored.view(np.uint16) & 0x7C00) == 0x7C00).any()
        else:
            bad = not np.isfinite(stored).all()
        if bad:
            # float16 overflows to inf above 65504: a state that large is a bug upstream
            raise ValueError(f"{self.kind} array has values that are not finite in {self.dtype} "
                             f"(NaN, inf, or |x| > {np.finfo(self.np_dtype).max:.0f})")
        with np.errstate(over="ignore"):
            aggs = aggregates.astype(self.np_agg_dtype)
        if np.isinf(aggs).any():  # also a float64 beyond float32's range in float32 storage
            raise ValueError(f"{self.kind} aggregates contain inf (or overflow {self.agg_dtype}); "
                             f"NaN is allowed: 'no history'")
        return stored, aggs

    def encode(self, array: np.ndarray | None, aggregates: np.ndarray | list[float], version: str) -> bytes:
        """One value. array: ``shape`` (any float dtype, rounded to ``dtype``; None for
        shape ()); aggregates: (len(fields),) floats, NaN allowed, inf refused."""
        stored, aggs = self._cast(array, aggregates, ())
        return self.header(version) + stored.tobytes() + aggs.tobytes()

    def encode_many(self, arrays: Any, aggregates: Any, version: str) -> list[bytes]:
        """Values of N rows at once (one cast for the block): arrays (N, *shape), a numpy
        array or a torch tensor (cast by torch, faster), None for shape (); aggregates
        (N, len(fields)) -> N values."""
        n = len(aggregates) if arrays is None else len(arrays)
        stored, aggs = self._cast(arrays, aggregates, (n,))
        head = self.header(version)
        flat = stored.reshape(n, -1)
        return [b"".join((head, flat[i].tobytes(), aggs[i].tobytes())) for i in range(n)]

    def _mismatch(self, decoded: DecodedValue, version: str | None, key: str | None) -> SchemaMismatchError:
        want_tag = f", tag {version_tag(version)} (version {version!r})" if version is not None else ""
        return SchemaMismatchError(
            f"cache value{_where(key)} is {'an' if decoded.kind == 'item' else 'a'} {decoded.kind} value of shape {decoded.array.shape} "
            f"{decoded.array.dtype}, {len(decoded.aggregates)} {decoded.aggregates.dtype} aggregates, tag "
            f"{decoded.tag}; expected {self.kind} {self.shape} {self.dtype}, {len(self.fields)} "
            f"{self.agg_dtype} aggregates{want_tag}")

    def check(self, value: bytes, version: str, key: str | None = None, header: bytes | None = None) -> None:
        """Raise unless ``value`` is a value of this schema for ``version``: a length and a
        header-prefix compare (pass ``header=self.header(version)`` to skip rebuilding it)."""
        head = header if header is not None else self.header(version)
        if len(value) == self.nbytes and value[:len(head)] == head:
            return
        raise self._mismatch(decode(value, key), version, key)  # decode raises first if malformed

    def decode(self, value: bytes, version: str | None = None, key: str | None = None) -> DecodedValue:
        """Decode and check the value against this schema (and ``version``'s tag when given)."""
        decoded = decode(value, key)
        if (decoded.kind != self.kind or decoded.array.shape != (self.shape or (0,))
                or decoded.array.dtype != self.np_dtype or len(decoded.aggregates) != len(self.fields)
                or decoded.aggregates.dtype != self.np_agg_dtype
                or (version is not None and decoded.tag != version_tag(version))):
            raise self._mismatch(decoded, version, key)
        return decoded

    def aggregates_dict(self, decoded: DecodedValue) -> dict[str, float]:
        """The aggregates of a decoded value by field name."""
        return dict(zip(self.fields, decoded.aggregates.tolist()))

    def to_dict(self) -> dict[str, Any]:
        """JSON-able description (stored in the version's manifest)."""
        return {"kind": self.kind, "shape": list(self.shape), "fields": list(self.fields),
                "dtype": self.dtype, "agg_dtype": self.agg_dtype, "nbytes": self.nbytes,
                "format_version": FORMAT_VERSION}

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> "ValueSchema":
        try:
            return cls(kind=raw["kind"], shape=tuple(raw["shape"]), fields=tuple(raw.get("fields", ())),
                       dtype=raw.get("dtype", "float16"), agg_dtype=raw.get("agg_dtype", "float32"))
        except (KeyError, TypeError) as e:
            raise ValueError(f"invalid value schema {raw!r}: {e}") from None


class EncodedRows:
    """(id, value) pairs of N rows for ``CacheStore.refresh``, encoded lazily chunk by chunk
    (memory: one chunk of values at a time); ``len()`` gives the refresh's progress bar a total.

    Args:
        schema: the values' schema; version: the cache/registry version they are for.
        ids: N user or item ids; arrays: (N, *schema.shape) numpy array or torch tensor
        (e.g. DMQN ``user_states``), None for shape (); aggregates: (N, len(schema.fields)),
        NaN allowed.
    """

    def __init__(self, schema: ValueSchema, version: str, ids: Any, arrays: Any, aggregates: Any,
                 chunk: int = 4096) -> None:
        n_arrays = len(ids) if arrays is None and not schema.shape else len(arrays)
        if not (len(ids) == n_arrays == len(aggregates)):
            raise SchemaMismatchError(f"{len(ids)} ids, {n_arrays} arrays and {len(aggregates)} aggregate "
                                      f"rows: one of each per {schema.kind} is needed")
        self.schema, self.version, self.chunk = schema, version, max(1, chunk)
        self.ids, self.arrays, self.aggregates = ids, arrays, aggregates

    def __len__(self) -> int:
        return len(self.ids)

    def __iter__(self):
        for start in range(0, len(self.ids), self.chunk):
            stop = start + self.chunk
            arrays = None if self.arrays is None else self.arrays[start:stop]
            values = self.schema.encode_many(arrays, self.aggregates[start:stop], self.version)
            yield from zip(self.ids[start:stop], values)
