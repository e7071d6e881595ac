"""CacheStore / CacheReader against a real redis-server: refresh, read, retention, rollback,
no-op, verification, locking, and readers that never see a mix of versions."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
from cache_helpers import ITEM_SCHEMA, USER_SCHEMA, item_values, namespace_keys, user_values

from quantrec.serving.cache import (CacheBusyError, CacheInputError, CacheReader, CacheStore,
                                    CacheVerificationError, MixedVersionError, VersionNotFoundError, cache_id)
from quantrec.serving.codec import SchemaMismatchError, version_tag


def _store(client, **kw):
    kw.setdefault("progress", False)
    kw.setdefault("batch_size", 64)
    return CacheStore(client, **kw)


def _refresh(store, version, n_users=300, n_items=40, version_no=1.0, **kw):
    return store.refresh(version, user_values(version, n_users, version_no),
                         item_values(version, n_items, version_no),
                         user_schema=USER_SCHEMA, item_schema=ITEM_SCHEMA, **kw)


def test_refresh_then_one_read_returns_the_values_written(redis_client):
    store = _store(redis_client)
    users = user_values("2011-12-10", 300)
    items = item_values("2011-12-10", 40)
    report = store.refresh("2011-12-10", users, items, user_schema=USER_SCHEMA, item_schema=ITEM_SCHEMA,
                           meta={"run_date": "2011-12-10", "registry": "redis://:hunter22@example:6379/0"})
    assert not report.noop and report.active == "2011-12-10" and report.previous is None
    assert (report.users, report.items) == (300, 40)
    assert report.bytes == 300 * USER_SCHEMA.nbytes + 40 * ITEM_SCHEMA.nbytes
    assert report.sample_checked == min(300, store.sample_size) + 40
    assert store.active_version() == "2011-12-10"

    reader = CacheReader(redis_client)
    read = reader.read(17, ["SKU3", "SKU39", "SKU-unknown"])
    assert read.version == "2011-12-10"
    expected_user = USER_SCHEMA.decode(users[17][1])
    np.testing.assert_array_equal(read.user.array, expected_user.array)
    np.testing.assert_array_equal(read.user.aggregates, expected_user.aggregates)
    assert [None if v is None else int(v.aggregates[0]) for v in read.items] == [3, 39, None]
    assert reader.read(99999, []).user is None  # a cold user: no value, no error
    # ids normalise the same way on write and read: 17, 17.0 and "17" are one key
    np.testing.assert_array_equal(reader.read(17.0).user.array, reader.read("17").user.array)
    user_schema, item_schema = reader.schemas("2011-12-10")
    assert user_schema == USER_SCHEMA and item_schema == ITEM_SCHEMA

    manifest = store.manifest("2011-12-10")
    assert manifest["status"] == "complete" and manifest["users"] == 300 and manifest["items"] == 40
    assert len(manifest["checksums"]) == report.sample_checked
    assert manifest["meta"]["run_date"] == "2011-12-10"
    assert "hunter22" not in str(manifest) and "hunter22" not in str(store.status())


def test_refresh_of_the_active_version_is_a_noop(redis_client):
    store = _store(redis_client)
    _refresh(store, "v1")
    before = store.manifest("v1")
    dbsize = redis_client.dbsize()

    def must_not_be_read():
        raise AssertionError("a no-op refresh consumed its input")
        yield  # pragma: no cover

    report = store.refresh("v1", must_not_be_read(), must_not_be_read(), user_schema=USER_SCHEMA,
                           item_schema=ITEM_SCHEMA)
    assert report.noop and report.reason == "already active" and report.users == 0
    assert store.manifest("v1") == before and redis_client.dbsize() == dbsize
    assert [h["version"] for h in store.history()] == ["v1"]  # no second flip recorded


def test_keep_last_n_versions_deleted_with_scan_and_unlink_never_del(redis_client):
    store = _store(redis_client, keep=2)
    for no, version in enumerate(["v1", "v2", "v3", "v4"], start=1):
        report = _refresh(store, version, version_no=no)
    assert report.collected == ["v2"] and report.retained == ["v4", "v3"]
    assert report.keys_unlinked == 300 + 40 + 1  # users, items, manifest
    assert namespace_keys(redis_client, "v1") == namespace_keys(redis_client, "v2") == 0
    assert namespace_keys(redis_client, "v3") == namespace_keys(redis_client, "v4") == 341
    assert [m["version"] for m in store.versions()] == ["v4", "v3"]
    stats = redis_client.info("commandstats")
    assert stats["cmdstat_unlink"]["calls"] > 0 and stats["cmdstat_scan"]["calls"] > 0
    # a DEL of a large namespace blocks the server; KEYS walks it in one blocking call
    assert "cmdstat_del" not in stats and "cmdstat_keys" not in stats


def test_rollback_flips_back_and_retention_keeps_the_good_versions(redis_client):
    store = _store(redis_client, keep=3)
    reader = CacheReader(redis_client)
    for no, version in enumerate(["v1", "v2", "v3"], start=1):
        _refresh(store, version, version_no=no)
    assert reader.read(5).user.aggregates[2] == 3
    assert store.rollback() == "v2"
    read = reader.read(5, ["SKU1"])
    assert read.version == "v2" and read.user.aggregates[2] == 2 and read.items[0].aggregates[1] == 2
    assert store.history(1)[0] | {"at": None, "host": None, "pid": None} == {
        "version": "v2", "previous": "v3", "reason": "rollback 1 from v3", "at": None, "host": None, "pid": None}
    assert store.rollback() == "v1"  # walks back, does not toggle to the rolled-back v3
    with pytest.raises(VersionNotFoundError, match="cannot roll back 1 step"):
        store.rollback()
    assert store.active_version() == "v1"
    # after rolling back v3 and v2, a new refresh keeps v1 (last good), not the rejected ones
    report = _refresh(store, "v4", version_no=4)
    assert report.retained == ["v4", "v1"] and sorted(report.collected) == ["v2", "v3"]
    assert store.rollback() == "v1"


def test_activate_repairs_a_gap_with_the_registry_champion(redis_client):
    store = _store(redis_client)
    _refresh(store, "v1")
    _refresh(store, "v2")
    store.rollback()
    status = store.status(champion="v2")
    assert status["active"] == "v1" and status["agrees_with_champion"] is False
    assert store.activate("v2", reason="sync with registry champion") is True
    assert store.activate("v2") is False  # already active: no-op
    assert store.status(champion="v2")["agrees_with_champion"] is True
    with pytest.raises(VersionNotFoundError, match="not a complete namespace"):
        store.activate("v9")


def test_reader_pinned_version_and_missing_versions(redis_client):
    store = _store(redis_client, keep=2)
    reader = CacheReader(redis_client)
    with pytest.raises(VersionNotFoundError, match="no active version"):
        reader.read(1)
    _refresh(store, "v1", version_no=1)
    _refresh(store, "v2", version_no=2)
    assert reader.read(3, version="v1").user.aggregates[2] == 1  # pinned: the older one
    assert reader.read(3).user.aggregates[2] == 2
    with pytest.raises(VersionNotFoundError, match="'v7' is not complete"):
        reader.read(3, version="v7")
    with pytest.raises(CacheInputError):
        reader.read(3, version="bad:name")


def test_reader_detects_a_value_of_another_version(redis_client):
    """Negative control of the version-tag check: a foreign value in the namespace is caught."""
    store = _store(redis_client)
    _refresh(store, "v1")
    foreign = user_values("v0", 1)[0][1]
    redis_client.set("quantrec:v:v1:u:5", foreign)
    reader = CacheReader(redis_client)
    reader.read(6)  # other users still fine
    with pytest.raises(MixedVersionError, match=f"tag {version_tag('v0')}"):
        reader.read(5)


def test_a_concurrent_reader_never_sees_a_mix_of_versions(redis_client, redis_server):
    """A reader thread hammers reads while versions are refreshed, collected and rolled back;
    every read must come whole from one version (tags and the version number inside)."""
    store = _store(redis_client, keep=2, batch_size=50)
    _refresh(store, "r1", n_users=400, n_items=60, version_no=1)
    reader = CacheReader(redis_server.client())
    stop = threading.Event()
    seen: dict[str, int] = {}
    errors: list[str] = []
    reads = [0]

    def hammer():
        rng = np.random.default_rng(0)
        while not stop.is_set():
            user = int(rng.integers(0, 400))
            items = [f"SKU{i}" for i in rng.integers(0, 60, 50)]
            read = reader.read(user, items)
            numbers = {read.user.aggregates[2]} | {v.aggregates[1] for v in read.items}
            tags = {read.user.tag} | {v.tag for v in read.items}
            if tags != {version_tag(read.version)} or numbers != {float(read.version[1:])}:
                errors.append(f"{read.version}: tags {tags} numbers {numbers}")
            seen[read.version] = seen.get(read.version, 0) + 1
            reads[0] += 1

    thread = threading.Thread(target=hammer)
    thread.start()
    try:
        for no in range(2, 6):  # each refresh also collects the version before last
            time.sleep(0.05)
            _refresh(store, f"r{no}", n_users=400, n_items=60, version_no=no)
        store.rollback()
        time.sleep(0.05)
    finally:
        stop.set()
        thread.join(timeout=30)
    assert not errors, errors[:3]
    assert len(seen) >= 3, f"the reader did not overlap the flips: {seen}"  # the test exercised flips
    assert reads[0] > 50


def test_duplicate_ids_fail_verification_and_nothing_flips(redis_client):
    store = _store(redis_client, batch_size=50)
    _refresh(store, "v1")
    users = user_values("v2", 120) + user_values("v2", 10, start=5)  # ids 5..14 twice, in other batches
    with pytest.raises(CacheVerificationError, match="wrote 130 users .* holds 120") as err:
        store.refresh("v2", users, user_schema=USER_SCHEMA)
    assert "nothing was flipped" in str(err.value)
    assert store.active_version() == "v1"
    assert store.manifest("v2")["status"] == "failed"
    assert store.collect_garbage()["collected"] == ["v2"]
    assert namespace_keys(redis_client, "v2") == 0 and namespace_keys(redis_client, "v1") == 341


def test_a_value_of_the_wrong_schema_stops_the_refresh_before_any_flip(redis_client):
    store = _store(redis_client)
    _refresh(store, "v1")
    users = user_values("v2", 100)
    users[70] = (70, user_values("v1", 1)[0][1])  # encoded for another version
    with pytest.raises(SchemaMismatchError, match="quantrec:v:v2:u:70"):
        store.refresh("v2", users, user_schema=USER_SCHEMA)
    assert store.active_version() == "v1" and store.manifest("v2")["status"] == "failed"
    with pytest.raises(CacheInputError, match="without an item_schema"):
        store.refresh("v3", user_values("v3", 5), item_values("v3", 2), user_schema=USER_SCHEMA)
    assert store.manifest("v3") is None  # a sized input is refused before anything is written
    with pytest.raises(CacheInputError, match="without an item_schema"):  # a generator: after the users
        store.refresh("v4", user_values("v4", 5), iter(item_values("v4", 2)), user_schema=USER_SCHEMA)
    assert store.active_version() == "v1" and store.manifest("v4")["status"] == "failed"


def test_a_held_lock_makes_a_second_refresh_fail_fast(redis_client):
    store = _store(redis_client, lock_ttl_s=30)
    _refresh(store, "v1")
    with store._locked("refresh", "v-other"):
        with pytest.raises(CacheBusyError, match="locked by .*v-other.* expires in"):
            _refresh(_store(redis_client), "v2")
        with pytest.raises(CacheBusyError):
            _store(redis_client).collect_garbage()
    assert store.active_version() == "v1" and store.manifest("v2") is None
    _refresh(store, "v2")  # lock released: works
    assert store.active_version() == "v2"


def test_names_and_ids_are_validated(redis_client):
    store = _store(redis_client)
    for bad in ["", "a:b", "v*", "../x", "-v"]:
        with pytest.raises(CacheInputError, match="invalid cache version"):
            store.refresh(bad, [], user_schema=USER_SCHEMA)
    with pytest.raises(CacheInputError):
        CacheStore(redis_client, prefix="a b")
    assert cache_id(np.int64(12345)) == cache_id(12345.0) == "12345"
    for bad_id in [1.5, True, None, ""]:
        with pytest.raises(CacheInputError):
            cache_id(bad_id)


def test_an_id_named_manifest_does_not_confuse_version_listing(redis_client):
    store = _store(redis_client)
    values = user_values("v1", 3)
    store.refresh("v1", values + [("manifest", values[0][1])], user_schema=USER_SCHEMA)
    assert [m["version"] for m in store.versions()] == ["v1"]
    assert CacheReader(redis_client).read("manifest").user is not None


def test_prefixes_isolate_caches_on_one_server(redis_client):
    a, b = _store(redis_client, prefix="shop-a"), _store(redis_client, prefix="shop-b")
    _refresh(a, "v1")
    _refresh(b, "v9")
    assert a.active_version() == "v1" and b.active_version() == "v9"
    assert CacheReader(redis_client, prefix="shop-b").read(1).version == "v9"
    assert namespace_keys(redis_client, "v1", prefix="shop-a") == 341


def test_the_verification_sample_is_uniform_over_the_stream():
    """Algorithm L reservoir: exactly k distinct pairs, every position equally likely."""
    import random

    from quantrec.serving.cache import _Reservoir
    n, k, runs = 1000, 50, 400
    hits = np.zeros(n)
    for seed in range(runs):
        sampler = _Reservoir(k, random.Random(seed))
        for i in range(n):
            sampler.offer(i, str(i).encode(), b"v")
        picked = [int(key) for key, _ in sampler.items]
        assert len(picked) == len(set(picked)) == k
        hits[picked] += 1
    deciles = hits.reshape(10, -1).sum(axis=1) / (runs * k)
    assert np.abs(deciles - 0.1).max() < 0.015, deciles  # sd of a decile share ~0.002
    short = _Reservoir(k, random.Random(0))
    for i in range(7):
        short.offer(i, str(i).encode(), b"v")
    assert len(short.checksums()) == 7
