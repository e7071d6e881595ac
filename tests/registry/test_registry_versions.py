"""Registry v2: idempotent publish, lineage, compare-and-swap promotion, rollback walking
the log, and the faults a user can hit (issue 7 §10, issue 8 §3)."""

from __future__ import annotations

import json
import multiprocessing as mp

import fsspec
import pytest

from quantrec.registry import PromotionConflict, Registry, RegistryError


def _artifacts(tmp_path, weights: bytes = b"\x00\x01"):
    (tmp_path / "model").mkdir(exist_ok=True)
    (tmp_path / "model" / "config.json").write_text('{"model": "wlr"}')
    (tmp_path / "model" / "sub").mkdir(exist_ok=True)
    (tmp_path / "model" / "sub" / "w.bin").write_bytes(weights)
    (tmp_path / "codebook.json").write_text('{"kind": "rq"}')
    return {"models/wlr": str(tmp_path / "model"), "codebook.json": str(tmp_path / "codebook.json")}


def test_publish_copies_with_lineage_and_is_idempotent(tmp_path):
    reg = Registry(str(tmp_path / "reg"), create=True)
    assert reg.champion() is None and reg.versions() == []
    arts = _artifacts(tmp_path)
    v1, created = reg.publish(arts, "2011-12-09", {"data_fingerprint": "abc", "roles": {"gmv": "rqreg"}})
    assert created and v1.name.startswith("2011-12-09-") and len(v1.name) == len("2011-12-09-") + 10
    assert json.loads(fsspec.open(v1.artifact("models/wlr") + "/config.json", "r").open().read()) == {"model": "wlr"}
    assert fsspec.open(v1.artifact("models/wlr") + "/sub/w.bin", "rb").open().read() == b"\x00\x01"
    assert v1.manifest["run_date"] == "2011-12-09" and v1.manifest["data_fingerprint"] == "abc"
    assert v1.manifest["artifacts"] == ["codebook.json", "models/wlr"] and len(v1.manifest["digest"]) == 64
    # a retried task publishes the same content again: the same version, nothing rewritten
    again, created_again = reg.publish(arts, "2011-12-09", {"data_fingerprint": "abc"})
    assert (again.name, created_again) == (v1.name, False)
    assert reg.versions() == [v1.name]
    # other content is another version; other content under a taken name is refused
    other = _artifacts(tmp_path, weights=b"\x09")
    v2, _ = reg.publish(other, "2011-12-09")
    assert v2.name != v1.name
    with pytest.raises(RegistryError, match="different content; versions are immutable"):
        reg.publish(other, "2011-12-09", name=v1.name)


def test_promote_is_compare_and_swap_and_rollback_walks_the_log(tmp_path):
    reg = Registry(str(tmp_path / "reg"), create=True)
    names = []
    for i in range(3):
        v, _ = reg.publish(_artifacts(tmp_path, weights=bytes([i])), f"2011-12-0{i + 1}")
        names.append(v.name)
    a, b, c = names
    reg.promote(a, expected_current=None)
    with pytest.raises(PromotionConflict, match="not the expected None"):
        reg.promote(b, expected_current=None)  # someone promoted since we looked
    reg.promote(b, expected_current=a, reason="blessed")
    reg.promote(c, expected_current=b)
    assert reg.champion().name == c
    reg.rollback()
    assert reg.champion().name == b
    reg.rollback()  # twice: back to a, never re-promoting c
    assert reg.champion().name == a
    with pytest.raises(RegistryError, match="0 earlier champion"):
        reg.rollback()
    log = reg.history()
    assert [(e["seq"], e["action"], e["version"]) for e in log] == [
        (1, "promote", a), (2, "promote", b), (3, "promote", c), (4, "rollback", b), (5, "rollback", a)]
    reg.promote(c, expected_current=a)
    assert reg.champion().name == c and reg.history()[-1]["previous"] == a


def _promote_worker(root, name, expected, queue):
    try:
        Registry(root).promote(name, expected_current=expected)
        queue.put(("won", name))
    except PromotionConflict as exc:
        queue.put(("conflict", str(exc)))


def test_concurrent_promotions_one_wins_the_other_gets_a_clear_error(tmp_path):
    root = str(tmp_path / "reg")
    reg = Registry(root, create=True)
    a, _ = reg.publish(_artifacts(tmp_path, b"a"), "2011-12-01")
    b, _ = reg.publish(_artifacts(tmp_path, b"b"), "2011-12-02")
    results = []
    for _round in range(5):  # several rounds: both processes race from the same champion
        base = reg.champion_name()
        ctx = mp.get_context("fork")
        q = ctx.Queue()
        targets = [n for n in (a.name, b.name) if n != base] * 2
        procs = [ctx.Process(target=_promote_worker, args=(root, t, base, q)) for t in targets[:2]]
        for p in procs:
            p.start()
        for p in procs:
            p.join(30)
        outcome = sorted(q.get(timeout=5)[0] for _ in procs)
        results.append(outcome)
        assert outcome == ["conflict", "won"], outcome
    seqs = [e["seq"] for e in reg.history()]
    assert seqs == list(range(1, len(seqs) + 1))


def test_faults_are_clear_errors(tmp_path):
    with pytest.raises(RegistryError, match="there is no quantrec registry at .*registry init"):
        Registry(str(tmp_path / "typo"))  # a missing registry is never silently a new one
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("1")
    with pytest.raises(RegistryError, match="not empty"):
        Registry(str(tmp_path / "full"), create=True)
    reg = Registry(str(tmp_path / "reg"), create=True)
    v, _ = reg.publish(_artifacts(tmp_path), "2011-12-01")
    with pytest.raises(RegistryError, match="not a valid version name"):
        reg.get("../../etc")
    with pytest.raises(RegistryError, match="has no version 'nope'"):
        reg.promote("nope")
    reg.promote(v.name)
    # a corrupt log entry names its file
    entry = tmp_path / "reg" / "promotions" / "00000001.json"
    entry.write_text("{not json")
    with pytest.raises(RegistryError, match=r"promotions/00000001.json is corrupt"):
        reg.champion()
    # a log entry pointing outside the registry is refused, not followed
    entry.write_text(json.dumps({"seq": 1, "action": "promote", "version": "../../x"}))
    with pytest.raises(RegistryError, match="not a valid version name"):
        reg.champion()


def test_a_version_without_manifest_is_invisible_and_republishable(tmp_path):
    reg = Registry(str(tmp_path / "reg"), create=True)
    arts = _artifacts(tmp_path)
    v, _ = reg.publish(arts, "2011-12-01")
    manifest = tmp_path / "reg" / "versions" / v.name / "manifest.json"
    manifest.unlink()  # as if the publish crashed before its last write
    assert reg.versions() == []
    again, created = reg.publish(arts, "2011-12-01")
    assert created and again.name == v.name and reg.versions() == [v.name]


def test_recommendations_latest_before_a_day(tmp_path):
    reg = Registry(str(tmp_path / "reg"), create=True)
    assert reg.latest_recommendation() is None
    reg.record_recommendation("2011-11-01", {"action": "keep"})
    reg.record_recommendation("2011-11-08", {"action": "rebuild"})
    assert reg.latest_recommendation()["action"] == "rebuild"
    assert reg.latest_recommendation(before="2011-11-08")["action"] == "keep"


def test_gs_registry_without_credentials_fails_at_once_with_one_clear_line(monkeypatch, tmp_path):
    import time
    monkeypatch.delenv("QUANTREC_GCS_TOKEN", raising=False)
    monkeypatch.delenv("GOOGLE_APPLICATION_CREDENTIALS", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))  # no gcloud application-default credentials either
    monkeypatch.setenv("CLOUDSDK_CONFIG", str(tmp_path / "gcloud"))
    t0 = time.perf_counter()
    with pytest.raises(ValueError, match="no Google Cloud credentials found"):
        Registry("gs://some-bucket/registry")
    assert time.perf_counter() - t0 < 10


def test_cli_list_and_history_still_work_when_the_champion_pointer_is_broken(tmp_path, capsys):
    """An operator repairing a broken pointer needs the versions and the log: `list` prints
    them and names the broken entry (exit 1), `history` prints the log (exit 0), `show`
    without a version fails naming the entry (exit 2)."""
    import json

    from pipelines.cli import main
    art = tmp_path / "a.bin"
    art.write_bytes(b"weights")
    reg = Registry(str(tmp_path / "reg"), create=True)
    v, _ = reg.publish({"models/x": str(art)}, "2011-04-28")
    reg.promote(v.name)
    (tmp_path / "reg" / "promotions" / "00000002.json").write_text(json.dumps(
        {"seq": 2, "action": "promote", "version": v.name + "-gone", "previous": v.name,
         "at": "2011-04-29T00:00:00Z"}))
    url = str(tmp_path / "reg")
    assert main(["registry", "list", "--url", url]) == 1
    out = capsys.readouterr().out
    assert v.name in out and "champion: unreadable" in out and "00000002.json" in out
    assert main(["registry", "history", "--url", url]) == 0
    out = capsys.readouterr().out
    assert v.name + "-gone" in out and "promote" in out
    assert main(["registry", "show", "--url", url]) == 2
    assert "00000002.json" in capsys.readouterr().err
