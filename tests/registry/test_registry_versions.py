from __future__ import annotations

import json

import fsspec
import pytest

from quantrec.registry import Registry


def _artifacts(tmp_path):
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "config.json").write_text('{"model": "wlr"}')
    (tmp_path / "model" / "sub").mkdir()
    (tmp_path / "model" / "sub" / "w.bin").write_bytes(b"\x00\x01")
    (tmp_path / "codebook.json").write_text('{"kind": "rq"}')
    return {"wlr": str(tmp_path / "model"), "codebook.json": str(tmp_path / "codebook.json")}


def test_publish_promote_rollback(tmp_path):
    reg = Registry(str(tmp_path / "reg"))
    assert reg.champion() is None and reg.versions() == []
    arts = _artifacts(tmp_path)
    v1 = reg.publish("2011-12-09-a", arts, {"run_date": "2011-12-09"})
    assert json.loads(fsspec.open(v1.artifact("wlr") + "/config.json", "r").open().read()) == {"model": "wlr"}
    assert fsspec.open(v1.artifact("wlr") + "/sub/w.bin", "rb").open().read() == b"\x00\x01"
    assert v1.manifest["run_date"] == "2011-12-09" and v1.manifest["artifacts"] == ["codebook.json", "wlr"]
    reg.promote("2011-12-09-a")
    reg.publish("2011-12-10-b", arts)
    pointer = reg.promote("2011-12-10-b", reason="blessed")
    assert pointer["previous"] == "2011-12-09-a" and reg.champion().name == "2011-12-10-b"
    reg.rollback()
    assert reg.champion().name == "2011-12-09-a"
    assert reg.versions() == ["2011-12-09-a", "2011-12-10-b"]
    assert not [p for p in (tmp_path / "reg").iterdir() if p.name.startswith(".champion")]


def test_versions_are_immutable_and_unknown_ones_refused(tmp_path):
    reg = Registry(f"file://{tmp_path}/reg")
    arts = _artifacts(tmp_path)
    reg.publish("v1", arts)
    with pytest.raises(ValueError, match="immutable"):
        reg.publish("v1", arts)
    with pytest.raises(KeyError, match="no version 'nope'"):
        reg.promote("nope")
    reg.promote("v1")
    with pytest.raises(ValueError, match="no previous champion"):
        reg.rollback()


def test_a_version_without_manifest_is_invisible(tmp_path):
    reg = Registry(str(tmp_path / "reg"))
    (tmp_path / "reg" / "versions" / "half").mkdir(parents=True)  # a crash mid-publish
    assert reg.versions() == []
