"""The cache's extension for the scoring service, on a real redis-server: float64 aggregates,
values without an array, and user-item pair hashes written, verified, read in the same
round trip as the user and the items, and collected with their namespace."""

from __future__ import annotations

import numpy as np
import pytest

from quantrec.serving.cache import CacheReader, CacheStore, CacheVerificationError
from quantrec.serving.codec import CorruptValueError, SchemaMismatchError, ValueSchema, decode
from cache_helpers import ITEM_SCHEMA, USER_SCHEMA, item_values, namespace_keys, user_values

PAIR = ValueSchema("pair", (), ("ui_lines", "ui_log_gmv_last"), agg_dtype="float64")


def pair_values(version: str, users: range, items_per_user: int = 3, tag: float = 1.0):
    out = []
    for u in users:
        aggs = np.array([[k + 1, tag * 1e-9 + u + k / 7] for k in range(items_per_user)], dtype=np.float64)
        out.append((u, list(zip([f"SKU{u + k}" for k in range(items_per_user)],
                                PAIR.encode_many(None, aggs, version)))))
    return out


def test_float64_aggregates_and_aggregate_only_values_round_trip_exactly():
    x = np.array([1 / 3, 1e300, np.nan, 2.0 ** -40])
    schema = ValueSchema("item", (), ("a", "b", "c", "d"), agg_dtype="float64")
    value = schema.encode(None, x, "v1")
    assert len(value) == schema.nbytes == 12 + 4 * 8
    got = schema.decode(value, "v1")
    np.testing.assert_array_equal(got.aggregates, x)  # bit-exact, NaN kept
    assert got.array.shape == (0,) and got.aggregates.dtype == np.float64
    assert ValueSchema.from_dict(schema.to_dict()) == schema
    # float32 values keep their old layout (no high bits): read the same as before
    assert USER_SCHEMA.header("v1")[4] == 0x01 and schema.header("v1")[4] == 0x11  # the dtype byte
    with pytest.raises(ValueError, match="inf"):
        ValueSchema("item", (), ("a",)).encode(None, [1e300], "v1")  # overflows float32 storage
    with pytest.raises(SchemaMismatchError, match="hold no array"):
        schema.encode(np.zeros(3), x, "v1")
    with pytest.raises(SchemaMismatchError, match="float64 aggregates"):
        ValueSchema("item", (), ("a", "b", "c", "d")).decode(value)
    bad = bytearray(value)
    bad[4] = 0x31  # an aggregate dtype code this format does not know
    with pytest.raises(CorruptValueError, match="invalid header"):
        decode(bytes(bad))


def test_pairs_are_written_verified_read_with_the_user_and_collected(redis_client):
    store = CacheStore(redis_client, keep=1, progress=False)
    report = store.refresh("v1", user_values("v1", 20), item_values("v1", 30), user_schema=USER_SCHEMA,
                           item_schema=ITEM_SCHEMA, pairs=pair_values("v1", range(5)), pair_schema=PAIR)
    assert (report.users, report.items, report.pairs, report.pair_users) == (20, 30, 15, 5)
    assert report.bytes == 20 * USER_SCHEMA.nbytes + 30 * ITEM_SCHEMA.nbytes + 15 * PAIR.nbytes
    manifest = store.manifest("v1")
    assert manifest["pairs"] == 15 and manifest["pair_users"] == 5 and manifest["pair_schema"]["kind"] == "pair"
    reader = CacheReader(redis_client)
    read = reader.read(2, ["SKU2", "SKU9", "SKU4", "SKU-none"], pairs=True)
    assert read.version == "v1" and read.user is not None
    assert [None if v is None else v.aggregates[0] for v in read.pairs] == [1.0, None, 3.0, None]
    assert read.pairs[2].aggregates[1] == 1e-9 + 2 + 2 / 7  # float64: bit-exact (float32 would lose the 1e-9)
    assert [v is None for v in read.items] == [False, False, False, True]
    assert reader.read(2, ["SKU2"]).pairs is None  # not asked: not read
    assert reader.read(999, ["SKU2"], pairs=True).pairs == [None]  # a user without pairs
    assert reader.pair_schema("v1") == PAIR and reader.schemas("v1") == (USER_SCHEMA, ITEM_SCHEMA)
    # the next version replaces the namespace, pair hashes included (keep=1)
    store.refresh("v2", user_values("v2", 20), item_values("v2", 30), user_schema=USER_SCHEMA,
                  item_schema=ITEM_SCHEMA, pairs=pair_values("v2", range(3), tag=2.0), pair_schema=PAIR)
    assert namespace_keys(redis_client, "v1") == 0
    assert reader.read(1, ["SKU1"], pairs=True).pairs[0].aggregates[0] == 1.0


def test_duplicate_pairs_fail_verification_and_nothing_flips(redis_client):
    store = CacheStore(redis_client, progress=False)
    store.refresh("v1", user_values("v1", 5), user_schema=USER_SCHEMA, pairs=pair_values("v1", range(2)),
                  pair_schema=PAIR)
    dup = pair_values("v2", range(2))
    dup[1] = (dup[1][0], dup[1][1] + dup[1][1][:1])  # the same item twice for one user
    with pytest.raises(CacheVerificationError, match="pairs"):
        store.refresh("v2", user_values("v2", 5), user_schema=USER_SCHEMA, pairs=dup, pair_schema=PAIR)
    assert store.active_version() == "v1"
    assert store.manifest("v2")["status"] == "failed"


def test_a_pair_value_of_another_schema_or_version_is_refused_before_writing(redis_client):
    store = CacheStore(redis_client, progress=False)
    wrong = pair_values("v0", range(2))  # tagged for another version
    with pytest.raises(SchemaMismatchError):
        store.refresh("v1", user_values("v1", 5), user_schema=USER_SCHEMA, pairs=wrong, pair_schema=PAIR)
    assert store.active_version() is None
    with pytest.raises(ValueError, match="without a pair_schema"):
        store.refresh("v1", user_values("v1", 5), user_schema=USER_SCHEMA, pairs=pair_values("v1", range(2)))


def test_many_pairs_in_small_batches_with_lock_renewals(redis_client, monkeypatch):
    """Pipelined HSET batches (batch_size 7, depth 2), a lock renewal pipelined after every
    batch: the replies of both are read back in order."""
    from quantrec.serving import cache
    renewals = []
    monkeypatch.setattr(cache._Lock, "due", lambda self: renewals.append(1) or True)
    store = CacheStore(redis_client, batch_size=7, depth=2, progress=False)
    pairs = pair_values("v1", range(200), items_per_user=4)
    report = store.refresh("v1", user_values("v1", 10), user_schema=USER_SCHEMA, pairs=pairs, pair_schema=PAIR)
    assert report.pairs == 800 and report.pair_users == 200 and len(renewals) >= 800 // 8  # one per batch of 2 users
    assert CacheReader(redis_client).read(199, ["SKU202"], pairs=True).pairs[0].aggregates[0] == 4.0
