"""The value codec: round trips, exact layout, and clear errors for corrupt or foreign values."""

from __future__ import annotations

import struct

import numpy as np
import pytest

from quantrec.serving.codec import (HEADER_BYTES, CorruptValueError, EncodedRows, SchemaMismatchError, ValueSchema,
                                    decode, version_tag)

FIELDS = ("u_lines", "u_spend", "u_recency_days")
USER = ValueSchema("user", (100, 32), FIELDS)


def _state(seed=0, shape=(100, 32)):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def test_user_value_round_trip_float16_state_float32_aggregates():
    state = _state()
    aggs = [12.0, 3456.789, np.nan]  # NaN = undefined feature (no history): kept
    value = USER.encode(state, aggs, "2011-12-10-a")
    assert len(value) == USER.nbytes == HEADER_BYTES + 2 * 4 + 100 * 32 * 2 + 3 * 4
    out = USER.decode(value, "2011-12-10-a")
    assert out.kind == "user" and out.tag == version_tag("2011-12-10-a")
    assert out.array.dtype == np.float16 and out.array.shape == (100, 32)
    np.testing.assert_array_equal(out.array, state.astype(np.float16))  # exactly the rounding, nothing else
    np.testing.assert_allclose(out.array.astype(np.float32), state, rtol=2 ** -10, atol=1e-4)
    np.testing.assert_array_equal(out.aggregates[:2], np.float32([12.0, 3456.789]))
    assert np.isnan(out.aggregates[2])
    assert USER.aggregates_dict(out)["u_spend"] == pytest.approx(3456.789, rel=1e-6)


def test_item_value_and_float32_storage():
    item = ValueSchema("item", (32,), ("i_price_last",), dtype="float32")
    emb = _state(1, (32,))
    out = decode(item.encode(emb, [2.5], "v1"))
    assert out.kind == "item" and out.array.dtype == np.float32
    np.testing.assert_array_equal(out.array, emb)  # float32 storage is exact


def test_encode_many_equals_encode_one_by_one():
    states = np.stack([_state(i) for i in range(5)])
    aggs = np.arange(15, dtype=float).reshape(5, 3)
    many = USER.encode_many(states, aggs, "v7")
    assert many == [USER.encode(states[i], aggs[i], "v7") for i in range(5)]


def test_every_value_of_a_schema_and_version_shares_its_header():
    a, b = USER.encode(_state(0), [1, 2, 3], "v1"), USER.encode(_state(1), [4, 5, 6], "v1")
    head = USER.header("v1")
    assert a[:len(head)] == b[:len(head)] == head
    assert USER.header("v2") != head  # the version tag is part of it
    magic, fmt, kind, dtype, ndim, n_agg, tag = struct.unpack_from("<2sBBBBHI", a)
    assert (magic, fmt, kind, dtype, ndim, n_agg, tag) == (b"QC", 1, 1, 1, 2, 3, version_tag("v1"))


@pytest.mark.parametrize("mutate, message", [
    (lambda v: v[:-1], "needs"),                         # truncated payload
    (lambda v: v + b"\x00", "needs"),                    # trailing garbage
    (lambda v: v[:7], "shorter than the 12-byte header"),  # truncated header
    (lambda v: v[:HEADER_BYTES + 2], "inside its shape header"),
    (lambda v: b"XX" + v[2:], "magic"),
    (lambda v: v[:2] + bytes([9]) + v[3:], "format version 9"),
    (lambda v: v[:3] + bytes([7]) + v[4:], "invalid header"),  # unknown kind code
    (lambda v: b"\x80\x05\x95" + bytes(30), "magic"),      # a pickle is refused, never unpickled
])
def test_corrupt_values_raise_a_clear_error_naming_the_key(mutate, message):
    value = USER.encode(_state(), [1, 2, 3], "v1")
    with pytest.raises(CorruptValueError, match=message) as err:
        decode(mutate(value), key="quantrec:v:v1:u:42")
    assert "quantrec:v:v1:u:42" in str(err.value)
    assert isinstance(err.value, ValueError)


def test_check_refuses_another_version_kind_or_shape():
    value = USER.encode(_state(), [1, 2, 3], "v1")
    USER.check(value, "v1")  # passes
    with pytest.raises(SchemaMismatchError, match="version 'v2'"):
        USER.check(value, "v2", key="k")
    item = ValueSchema("item", (100, 32), FIELDS)
    with pytest.raises(SchemaMismatchError, match="is a user value"):
        item.check(value, "v1")
    other = ValueSchema("user", (50, 64), FIELDS)
    with pytest.raises(SchemaMismatchError, match=r"shape \(100, 32\)"):
        other.decode(value)
    with pytest.raises(CorruptValueError):
        USER.check(value[:-4], "v1")


def test_encode_refuses_wrong_shapes_overflow_and_inf():
    with pytest.raises(SchemaMismatchError, match="shape"):
        USER.encode(_state(shape=(100, 31)), [1, 2, 3], "v1")
    with pytest.raises(SchemaMismatchError, match="aggregates"):
        USER.encode(_state(), [1, 2], "v1")
    big = _state()
    big[0, 0] = 1e6  # beyond float16's 65504: would become inf
    with pytest.raises(ValueError, match="not finite in float16"):
        USER.encode(big, [1, 2, 3], "v1")
    with pytest.raises(ValueError, match="inf"):
        USER.encode(_state(), [1, np.inf, 3], "v1")


def test_schema_validation_and_manifest_round_trip():
    assert ValueSchema.from_dict(USER.to_dict()) == USER
    assert USER.to_dict()["nbytes"] == USER.nbytes
    with pytest.raises(ValueError, match="kind"):
        ValueSchema("session", (4,))
    with pytest.raises(ValueError, match="distinct"):
        ValueSchema("user", (4,), ("a", "a"))
    with pytest.raises(ValueError, match="positive"):
        ValueSchema("user", (0, 4))
    with pytest.raises(ValueError, match="invalid value schema"):
        ValueSchema.from_dict({"shape": [4]})


def test_torch_tensors_encode_to_the_same_bytes_as_numpy():
    import torch
    states = np.stack([_state(i) for i in range(6)])
    aggs = np.arange(18, dtype=float).reshape(6, 3)
    assert USER.encode_many(torch.from_numpy(states), aggs, "v1") == USER.encode_many(states, aggs, "v1")
    bad = torch.from_numpy(states.copy())
    bad[2, 5, 5] = float("nan")
    with pytest.raises(ValueError, match="not finite"):
        USER.encode_many(bad, aggs, "v1")


def test_encoded_rows_are_lazy_chunks_equal_to_encode_many():
    states = np.stack([_state(i) for i in range(7)])
    aggs = np.arange(21, dtype=float).reshape(7, 3)
    rows = EncodedRows(USER, "v1", [f"u{i}" for i in range(7)], states, aggs, chunk=3)
    assert len(rows) == 7
    assert list(rows) == list(zip([f"u{i}" for i in range(7)], USER.encode_many(states, aggs, "v1")))
    with pytest.raises(SchemaMismatchError, match="7 ids, 6 arrays"):
        EncodedRows(USER, "v1", list(range(7)), states[:6], aggs)
