"""Model versions and the champion pointer, in a folder reachable through fsspec.

Layout under ``root`` (a local path or gs:// URL)::

    versions/<version>/manifest.json     what the version holds, its run_date and config
    versions/<version>/<artifact>/...    codebook.json, rqreg/, wlr/, ...
    champion.json                        {"version": ..., "previous": ..., "promoted_at": ...}

A version is immutable once published. Promotion replaces ``champion.json`` in one
write (write to a temporary name, then rename on local disks; a single-object write on
GCS is atomic by itself), and keeps the previous champion's name for rollback.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import uuid
from dataclasses import dataclass
from typing import Any

import fsspec

MANIFEST = "manifest.json"
CHAMPION = "champion.json"


def join(root: str, *parts: str) -> str:
    return "/".join([root.rstrip("/")] + [p.strip("/") for p in parts])


@dataclass(frozen=True)
class Version:
    name: str
    path: str
    manifest: dict[str, Any]

    def artifact(self, key: str) -> str:
        """Path of an artifact of this version (e.g. 'codebook.json', 'rqreg')."""
        return join(self.path, key)


class Registry:
    def __init__(self, root: str, **storage_options: Any) -> None:
        self.root = root
        self.fs, self._root_path = fsspec.core.url_to_fs(root, **storage_options)

    def _p(self, *parts: str) -> str:
        return join(self._root_path, *parts)

    def _write(self, path: str, data: bytes) -> None:
        self.fs.makedirs(path.rsplit("/", 1)[0], exist_ok=True)  # no-op on object stores
        with self.fs.open(path, "wb") as f:
            f.write(data)

    def versions(self) -> list[str]:
        base = self._p("versions")
        if not self.fs.exists(base):
            return []
        return sorted(os.path.basename(p.rstrip("/")) for p in self.fs.ls(base, detail=False)
                      if self.fs.exists(join(p, MANIFEST)))

    def get(self, name: str) -> Version:
        path = self._p("versions", name)
        try:
            with self.fs.open(join(path, MANIFEST), "r") as f:
                manifest = json.load(f)
        except FileNotFoundError:
            raise KeyError(f"registry {self.root} has no version {name!r}") from None
        return Version(name=name, path=self.fs.unstrip_protocol(path), manifest=manifest)

    def publish(self, name: str, artifacts: dict[str, str], metadata: dict[str, Any] | None = None) -> Version:
        """Copy artifacts (key -> local/fsspec path, file or folder) into a new version.

        The manifest is written last: a version without one (a crash mid-copy) is
        invisible to ``versions()`` and can be published again.
        """
        dest = self._p("versions", name)
        if self.fs.exists(join(dest, MANIFEST)):
            raise ValueError(f"version {name!r} already exists in {self.root}; versions are immutable")
        for key, src in artifacts.items():
            src_fs, src_path = fsspec.core.url_to_fs(src)
            target = join(dest, key)
            files = ([(f, join(target, f[len(src_path.rstrip("/")) + 1:])) for f in src_fs.find(src_path)]
                     if src_fs.isdir(src_path) else [(src_path, target)])
            for file, out in files:
                with src_fs.open(file, "rb") as fi:
                    self._write(out, fi.read())
        manifest = {"version": name, "artifacts": sorted(artifacts), **(metadata or {}),
                    "published_at": dt.datetime.now(dt.timezone.utc).isoformat()}
        self._write(join(dest, MANIFEST), json.dumps(manifest, indent=2, sort_keys=True).encode())
        return self.get(name)

    def champion(self) -> Version | None:
        """The current champion, or None when nothing was promoted yet."""
        path = self._p(CHAMPION)
        if not self.fs.exists(path):
            return None
        with self.fs.open(path, "r") as f:
            return self.get(json.load(f)["version"])

    def champion_pointer(self) -> dict[str, Any] | None:
        path = self._p(CHAMPION)
        if not self.fs.exists(path):
            return None
        with self.fs.open(path, "r") as f:
            return json.load(f)

    def promote(self, name: str, reason: str = "") -> dict[str, Any]:
        """Make ``name`` the champion; the previous one is kept in the pointer for rollback."""
        self.get(name)  # must exist
        current = self.champion_pointer()
        pointer = {"version": name, "previous": current["version"] if current else None,
                   "reason": reason, "promoted_at": dt.datetime.now(dt.timezone.utc).isoformat()}
        tmp = self._p(f".{CHAMPION}.{uuid.uuid4().hex}")
        self._write(tmp, json.dumps(pointer, indent=2).encode())
        if self.fs.protocol in ("file", "local") or "file" in self.fs.protocol:
            os.replace(tmp, self._p(CHAMPION))  # atomic rename on one filesystem
        else:
            self.fs.mv(tmp, self._p(CHAMPION))
        return pointer

    def rollback(self) -> dict[str, Any]:
        """Point the champion back at the previous version."""
        current = self.champion_pointer()
        if not current or not current.get("previous"):
            raise ValueError(f"registry {self.root} has no previous champion to roll back to")
        return self.promote(current["previous"], reason=f"rollback from {current['version']}")
