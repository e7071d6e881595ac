"""The registry on gs:// against a real GCS API server on loopback (fake-gcs-server):
publish through gcsfs, promotion log entries created with ifGenerationMatch=0, so two
concurrent promotions cannot both win."""

from __future__ import annotations

import json
import multiprocessing as mp
import os

import pytest

from quantrec.registry import PromotionConflict, Registry


def _artifacts(tmp_path, weights: bytes):
    d = tmp_path / f"model-{weights.hex()}"
    d.mkdir(exist_ok=True)
    (d / "config.json").write_text('{"model": "wlr"}')
    (d / "w.bin").write_bytes(weights)
    return {"models/wlr": str(d)}


@pytest.fixture
def bucket(gcs, request):
    name = f"reg-{request.node.name.lower().replace('_', '-')[:40]}"
    gcs.create_bucket(name)
    return name


def test_create_exclusive_uses_the_generation_precondition(bucket, tmp_path):
    reg = Registry(f"gs://{bucket}/registry", create=True)
    path = reg._p("promotions", "probe.json")
    assert reg._create_exclusive(path, b'{"first": 1}') is True
    assert reg._create_exclusive(path, b'{"second": 2}') is False   # GCS answered 412
    assert json.loads(reg.fs.cat(path)) == {"first": 1}               # the first write stands


def test_publish_promote_rollback_on_gs(bucket, tmp_path):
    reg = Registry(f"gs://{bucket}/registry", create=True)
    a, created = reg.publish(_artifacts(tmp_path, b"a"), "2011-04-26", {"config": {"x": 1}})
    b, _ = reg.publish(_artifacts(tmp_path, b"b"), "2011-04-27")
    assert created and reg.versions() == sorted([a.name, b.name])
    assert reg.publish(_artifacts(tmp_path, b"a"), "2011-04-26")[1] is False   # idempotent
    assert a.path.startswith(f"gs://{bucket}/registry/versions/")
    reg.promote(a.name, expected_current=None)
    # a second Registry object (another task) sees the log at once: no stale listing
    other = Registry(f"gs://{bucket}/registry")
    assert other.champion_name() == a.name
    other.promote(b.name, expected_current=a.name)
    assert reg.champion_name() == b.name
    with pytest.raises(PromotionConflict):
        reg.promote(a.name, expected_current=a.name)   # stale expectation
    reg.rollback(expected_current=b.name)
    assert other.champion_name() == a.name and [e["seq"] for e in other.history()] == [1, 2, 3]


def _racer(root: str, version: str, expected: str | None, start, q) -> None:
    reg = Registry(root)
    start.wait(30)
    try:
        reg.promote(version, expected_current=expected)
        q.put("won")
    except PromotionConflict:
        q.put("conflict")
    except Exception as exc:  # pragma: no cover - reported in the assertion
        q.put(f"error: {type(exc).__name__}: {exc}")


def test_concurrent_promotions_on_gs_one_wins(bucket, tmp_path):
    root = f"gs://{bucket}/registry"
    reg = Registry(root, create=True)
    a, _ = reg.publish(_artifacts(tmp_path, b"a"), "2011-04-26")
    b, _ = reg.publish(_artifacts(tmp_path, b"b"), "2011-04-27")
    ctx = mp.get_context("spawn")  # fresh processes: each its own gcsfs and GCS client
    for _round in range(3):
        base = reg.champion_name()
        targets = [n for n in (a.name, b.name) if n != base][:1] * 2
        start, q = ctx.Barrier(2), ctx.Queue()
        procs = [ctx.Process(target=_racer, args=(root, t, base, start, q)) for t in targets]
        for p in procs:
            p.start()
        outcome = sorted(q.get(timeout=120) for _ in procs)
        for p in procs:
            p.join(30)
        assert outcome == ["conflict", "won"], outcome
    history = reg.history()
    assert [e["seq"] for e in history] == [1, 2, 3]
    assert all(e["action"] == "promote" for e in history)


def test_gs_emulator_needs_no_credentials(gcs):
    from quantrec.storage import gcs_emulator, storage_options
    assert gcs_emulator() == gcs.url
    assert storage_options("gs://b/x") == {"token": "anon"}
    assert os.environ["GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT"] == "false"


def test_apply_gcs_defaults_reaches_plain_fsspec_calls(gcs, tmp_path, monkeypatch):
    """Code that opens gs:// without asking storage_options (checkpoints, reports) gets the
    same settings once apply_gcs_defaults ran: here anonymous access to the emulator."""
    import fsspec
    import fsspec.config

    from quantrec.storage import apply_gcs_defaults
    from quantrec.training import checkpoints as ck
    saved = {k: dict(v) for k, v in fsspec.config.conf.items()}
    try:
        assert apply_gcs_defaults() == {"token": "anon"}
        assert fsspec.config.conf["gs"]["token"] == "anon"
        gcs.create_bucket("plain-calls")
        ck.save_json("gs://plain-calls/ckpt/state.json", {"epoch": 3})
        assert ck.load_json("gs://plain-calls/ckpt/state.json") == {"epoch": 3}
        # real GCS: the configured token (a key file) reaches them too; without one, nothing is set
        monkeypatch.delenv("STORAGE_EMULATOR_HOST")
        fsspec.config.conf.clear()
        monkeypatch.setenv("QUANTREC_GCS_TOKEN", str(tmp_path / "key.json"))
        assert apply_gcs_defaults() == {"token": str(tmp_path / "key.json")}
        assert fsspec.config.conf["gcs"]["token"] == str(tmp_path / "key.json")
        fsspec.config.conf.clear()
        monkeypatch.delenv("QUANTREC_GCS_TOKEN")
        assert apply_gcs_defaults() == {} and fsspec.config.conf == {}
    finally:
        fsspec.config.conf.clear()
        fsspec.config.conf.update(saved)
