"""The model registry: immutable versions with lineage, and an append-only promotion log
whose replay is the champion. One folder reachable through fsspec (local or gs://).

Layout under ``root``::

    registry.json                        marks an initialised registry ({"format": 2, ...})
    versions/<version>/manifest.json     lineage: run_date, data fingerprint, codebook id,
                                         config, metrics, roles, decision, content digest
    versions/<version>/<artifact>/...    codebook.json, models/<name>/..., evaluation.json, ...
    promotions/<seq>.json                the promotion log: one immutable entry per
                                         promote / rollback, seq = 1, 2, 3, ... (zero-padded)
    recommendations/<run_date>.json      codebook keep/rebuild advice of the monitoring pipeline

Why a log and no champion pointer file: the ONE atomic operation every store has is
"create this object only if it does not exist" (local: link(2) of a finished temp file;
GCS: a write with ifGenerationMatch=0). A promotion creates entry ``seq + 1`` that way,
so two concurrent promotions that both saw entry ``seq`` cannot both win: the second
gets ``PromotionConflict``. The champion is the top of the stack the log replays to
(promote pushes, rollback pops), so ``rollback`` twice walks back two promotions instead
of re-promoting the version it just left.

Publishing is idempotent: a version's name is ``<run_date>-<digest[:10]>`` where the
digest covers the content of every artifact; publishing the same content again returns
the existing version (a retried task, a resumed backfill), different content under an
existing name is an error. The manifest is written last, whole or not at all (local: a
temp file renamed into place; object stores: one PUT): a version without one (a crash or a
full disk mid-copy) is invisible and is overwritten by the next publish; a publish that
fails to write removes its partial folder and raises ``RegistryWriteError`` naming the path.

The champion "pointer" is therefore the LAST promotion-log entry: every reader replays the
log and checks that the version it lands on exists, so a corrupt entry (not JSON, a wrong
shape, a version that is not in the registry) is a ``RegistryError`` naming that entry's
file, never a silent wrong champion (docs/operations.md: how to repair it).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import posixpath
import re
import uuid
from dataclasses import dataclass
from typing import Any, Iterable

import fsspec

from quantrec.redact import redact

MANIFEST = "manifest.json"
MARKER = "registry.json"
FORMAT = 2
VERSION_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
SEQ_WIDTH = 8
#: ``promote(..., expected_current=ANY)``: no expectation about the current champion
ANY = object()


class RegistryError(ValueError):
    """The registry cannot do what was asked; the message names the registry and why."""


class PromotionConflict(RegistryError):
    """Another promotion happened between reading the champion and writing the new one."""


class RegistryWriteError(RegistryError):
    """Writing to the registry's storage failed (e.g. ENOSPC: the disk is full); the message
    names the path and what was left behind. ``errno`` is the OS error number (or None)."""

    def __init__(self, message: str, errno: int | None = None) -> None:
        super().__init__(message)
        self.errno = errno


def join(root: str, *parts: str) -> str:
    return "/".join([root.rstrip("/")] + [p.strip("/") for p in parts if p])


def check_version_name(name: Any) -> str:
    """A version name: letters, digits, '.', '_', '-' (no '/', no '..' path tricks)."""
    if not isinstance(name, str) or not VERSION_NAME.match(name) or ".." in name:
        raise RegistryError(f"{name!r} is not a valid version name (letters, digits, '.', '_', '-'; "
                            "at most 128 characters)")
    return name


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat()


def _file_list(src: str) -> tuple[Any, list[tuple[str, str]]]:
    """(fs, [(absolute path, relative path)]) of a file or a folder (recursive)."""
    fs, path = fsspec.core.url_to_fs(src)
    if not fs.exists(path):
        raise RegistryError(f"cannot publish {redact(src)}: it does not exist")
    if fs.isdir(path):
        base = path.rstrip("/")
        files = sorted(fs.find(base))
        return fs, [(f, f[len(base) + 1:]) for f in files]
    return fs, [(path, "")]


def _write_synced_tmp(path: str, data: bytes) -> str:
    """Write ``data`` to a fresh temp file beside local ``path``, fsync'd; returns its name
    (the caller renames or links it into place, so ``path`` appears whole or not at all).
    A temp file a failed write leaves is removed before the error propagates."""
    tmp = f"{path}.{uuid.uuid4().hex}.tmp"
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
    except OSError:
        _remove_quietly(tmp)
        raise
    return tmp


def _remove_quietly(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


def content_digest(artifacts: dict[str, str]) -> str:
    """sha256 over every artifact file's relative path and bytes (key order independent)."""
    outer = hashlib.sha256()
    for key in sorted(artifacts):
        fs, files = _file_list(artifacts[key])
        for path, rel in files:
            h = hashlib.sha256()
            with fs.open(path, "rb") as f:
                for block in iter(lambda: f.read(1 << 20), b""):
                    h.update(block)
            outer.update(f"{key}/{rel}\0{h.hexdigest()}\n".encode())
    return outer.hexdigest()


@dataclass(frozen=True)
class Version:
    name: str
    path: str
    manifest: dict[str, Any]

    def artifact(self, key: str) -> str:
        """Path of an artifact of this version (e.g. 'codebook.json', 'models/rqreg')."""
        return join(self.path, key)

    def has(self, key: str) -> bool:
        return key in self.manifest.get("artifacts", [])


class Registry:
    """See the module docstring. ``create=True`` initialises a registry at an empty or
    absent root; without it a root that is not a registry is an error (a typo in a
    registry URL must not silently start a new, empty registry)."""

    def __init__(self, root: str, create: bool = False, **storage_options: Any) -> None:
        if not root:
            raise RegistryError("no registry URL given")
        self.root = root
        from quantrec.storage import storage_options as resolve_options
        opts = storage_options or resolve_options(root)  # gs:// credentials checked up front
        self.fs, self._root_path = fsspec.core.url_to_fs(root, **opts)
        marker = self._p(MARKER)
        if self.fs.exists(marker):
            info = self._read_json(marker)
            if not isinstance(info, dict) or info.get("format") != FORMAT:
                raise RegistryError(f"{self._where(MARKER)} is not a format-{FORMAT} quantrec registry marker")
            return
        if not create:
            raise RegistryError(f"there is no quantrec registry at {redact(root)} (no {MARKER}); create one "
                                "with `quantrec registry init URL` or pass --create-registry")
        if self.fs.exists(self._root_path) and self.fs.ls(self._root_path, detail=False):
            raise RegistryError(f"cannot create a registry at {redact(root)}: the folder is not empty")
        self._write_atomic(marker, json.dumps({"format": FORMAT, "created_at": _now()}).encode())

    # ---- storage helpers -------------------------------------------------------------
    def _p(self, *parts: str) -> str:
        return join(self._root_path, *parts)

    def _where(self, *parts: str) -> str:
        return redact(join(self.root, *parts))

    @property
    def _local(self) -> bool:
        protocol = self.fs.protocol if isinstance(self.fs.protocol, str) else self.fs.protocol[0]
        return protocol in ("file", "local")

    def _path_where(self, path: str) -> str:
        """The redacted URL of a storage path under the root (for messages)."""
        return self._where(path[len(self._root_path):].lstrip("/")) if path.startswith(self._root_path) \
            else redact(path)

    def _write_failed(self, path: str, exc: OSError, what: str = "") -> RegistryWriteError:
        reason = exc.strerror or str(exc) or type(exc).__name__
        return RegistryWriteError(f"cannot write {self._path_where(path)}: {reason}{what}", exc.errno)

    def _write(self, path: str, data: bytes) -> None:
        """Write ``path``; an OSError (disk full, permissions) becomes a RegistryWriteError
        naming the path (Python's own ENOSPC message names none)."""
        try:
            self.fs.makedirs(posixpath.dirname(path), exist_ok=True)  # no-op on object stores
            with self.fs.open(path, "wb") as f:
                f.write(data)
        except OSError as exc:
            raise self._write_failed(path, exc) from exc

    def _write_atomic(self, path: str, data: bytes) -> None:
        """Write ``path`` so that it appears whole or not at all: locally a temp file in the
        same folder, fsync'd, then renamed over ``path``; on an object store one upload
        (an object appears only when its upload completes)."""
        if not self._local:
            self._write(path, data)
            return
        tmp = ""
        try:
            tmp = _write_synced_tmp(path, data)
            os.replace(tmp, path)
        except OSError as exc:
            _remove_quietly(tmp)
            raise self._write_failed(path, exc) from exc

    def _create_exclusive(self, path: str, data: bytes) -> bool:
        """Create ``path`` with ``data`` only if it does not exist; False if it does.
        Readers never see a half-written file."""
        if self._local:
            tmp = ""
            try:
                tmp = _write_synced_tmp(path, data)
                os.link(tmp, path)  # atomic, fails if path exists
                return True
            except FileExistsError:
                return False
            except OSError as exc:  # disk full, permissions: nothing was created
                raise self._write_failed(path, exc, "; nothing was written") from exc
            finally:
                _remove_quietly(tmp)
        if self.fs.protocol in ("gs", "gcs") or "gs" in self.fs.protocol:
            # GCS: a write with ifGenerationMatch=0 succeeds only while no live object has
            # that name (the object appears whole or not at all); gcsfs has no such write.
            from google.api_core.exceptions import PreconditionFailed
            from quantrec.storage import gcs_client
            bucket, key = path.split("/", 1)
            try:
                gcs_client(self.root).bucket(bucket).blob(key).upload_from_string(
                    data, content_type="application/json", if_generation_match=0)
                return True
            except PreconditionFailed:
                return False
            finally:  # written behind gcsfs's back: its cached listing of the folder is stale
                self.fs.invalidate_cache(posixpath.dirname(path))
        raise RegistryError(f"registry at {redact(self.root)}: protocol {self.fs.protocol!r} has no "
                            "create-if-absent operation; use a local folder or gs://")

    def _read_json(self, path: str) -> Any:
        rel = path[len(self._root_path):].lstrip("/")
        try:
            with self.fs.open(path, "rb") as f:
                return json.loads(f.read().decode("utf-8"))
        except FileNotFoundError:
            raise
        except (ValueError, UnicodeDecodeError) as exc:
            raise RegistryError(f"{self._where(rel)} is corrupt (not valid JSON: {exc}); "
                                "restore it from a backup or remove it") from None

    # ---- versions --------------------------------------------------------------------
    def versions(self) -> list[str]:
        """Names of the complete versions (a manifest exists), sorted."""
        base = self._p("versions")
        self.fs.invalidate_cache(base)  # other processes publish: never trust a cached listing
        if not self.fs.exists(base):
            return []
        names = [posixpath.basename(p.rstrip("/")) for p in self.fs.ls(base, detail=False)]
        return sorted(n for n in names if VERSION_NAME.match(n) and self.fs.exists(join(base, n, MANIFEST)))

    def get(self, name: str) -> Version:
        check_version_name(name)
        path = self._p("versions", name)
        try:
            manifest = self._read_json(join(path, MANIFEST))
        except FileNotFoundError:
            raise RegistryError(f"registry {redact(self.root)} has no version {name!r}") from None
        if not isinstance(manifest, dict) or manifest.get("version") != name:
            raise RegistryError(f"{self._where('versions', name, MANIFEST)} does not describe version {name!r}")
        return Version(name=name, path=self.fs.unstrip_protocol(path), manifest=manifest)

    def publish(self, artifacts: dict[str, str], run_date: str, metadata: dict[str, Any] | None = None,
                name: str | None = None) -> tuple[Version, bool]:
        """Copy artifacts (key -> local/fsspec path, file or folder) into a version.

        The name is ``<run_date>-<content digest[:10]>`` unless given. Returns (version,
        created): publishing identical content again returns the existing version with
        created=False; a different content under an existing name raises RegistryError.
        """
        digest = content_digest(artifacts)
        name = check_version_name(name or f"{run_date}-{digest[:10]}")
        dest = self._p("versions", name)
        self.fs.invalidate_cache(dest)  # a concurrent publish of the same content may have finished
        if self.fs.exists(join(dest, MANIFEST)):
            existing = self.get(name)
            if existing.manifest.get("digest") == digest:
                return existing, False
            raise RegistryError(f"version {name!r} already exists in {redact(self.root)} with different "
                                "content; versions are immutable")
        manifest = {**(metadata or {}), "version": name, "run_date": run_date, "digest": digest,
                    "artifacts": sorted(artifacts), "published_at": _now()}
        try:
            for key, src in artifacts.items():
                src_fs, files = _file_list(src)
                for path, rel in files:
                    with src_fs.open(path, "rb") as fi:
                        self._write(join(dest, key, rel) if rel else join(dest, key), fi.read())
            # last, and whole or not at all: only a complete copy is ever listed
            self._write_atomic(join(dest, MANIFEST),
                               json.dumps(manifest, indent=2, sort_keys=True, default=str).encode())
        except RegistryWriteError as exc:
            left = ("the partial copy was removed" if self._remove_partial(dest) else
                    "a partial copy without a manifest is left: invisible, the next publish overwrites it")
            raise RegistryWriteError(f"publishing version {name!r} to {redact(self.root)} failed: {exc}; "
                                     f"nothing was published ({left})", exc.errno) from exc
        return self.get(name), True

    def _remove_partial(self, dest: str) -> bool:
        """Remove the folder of a publish that failed (best effort: a full disk still lets
        us delete); never a folder that has a manifest (a concurrent publish finished it)."""
        try:
            self.fs.invalidate_cache(dest)
            if self.fs.exists(join(dest, MANIFEST)):
                return False
            if self.fs.exists(dest):
                self.fs.rm(dest, recursive=True)
            return True
        except (OSError, ValueError):
            return False

    # ---- the promotion log -----------------------------------------------------------
    def history(self) -> list[dict[str, Any]]:
        """Every promotion-log entry in order (seq 1, 2, ...)."""
        base = self._p("promotions")
        self.fs.invalidate_cache(base)  # other processes append: never trust a cached listing
        if not self.fs.exists(base):
            return []
        entries = []
        for p in sorted(self.fs.ls(base, detail=False)):
            fname = posixpath.basename(p.rstrip("/"))
            if not re.fullmatch(r"\d{%d}\.json" % SEQ_WIDTH, fname):
                continue
            entry = self._read_json(p)
            if not isinstance(entry, dict) or entry.get("seq") != int(fname[:SEQ_WIDTH]):
                raise RegistryError(f"{self._where('promotions', fname)} is corrupt (seq does not match its name)")
            if entry.get("action") not in ("promote", "rollback") or (
                    entry["action"] == "rollback" and not isinstance(entry.get("steps"), int)):
                raise RegistryError(f"{self._where('promotions', fname)} is corrupt (action must be 'promote', or "
                                    "'rollback' with integer steps)")
            try:
                check_version_name(entry.get("version"))
            except RegistryError as exc:
                raise RegistryError(f"{self._where('promotions', fname)} is corrupt: {exc}") from None
            entries.append(entry)
        for i, e in enumerate(entries, start=1):
            if e["seq"] != i:
                raise RegistryError(f"promotion log of {redact(self.root)} has a gap before seq {e['seq']}")
        return entries

    @staticmethod
    def _stack(entries: Iterable[dict[str, Any]]) -> list[str]:
        stack: list[str] = []
        for e in entries:
            if e["action"] == "promote":
                stack.append(e["version"])
            else:  # rollback: pop the versions left, the entry records where it landed
                stack = stack[: len(stack) - int(e["steps"])]
                if (stack[-1] if stack else None) != e["version"]:
                    raise RegistryError(f"promotion log of {redact(self.root)} is inconsistent at seq {e['seq']}")
        return stack

    @staticmethod
    def _entry_file(seq: int) -> str:
        return f"{seq:0{SEQ_WIDTH}d}.json"

    def _current(self, entries: list[dict[str, Any]]) -> list[str]:
        """The replayed stack, after checking that the champion it lands on is a complete
        version: the last log entry is the champion pointer, and a pointer to nothing must
        fail here (naming that entry) rather than in whatever reads the champion next."""
        stack = self._stack(entries)
        if stack and not self.fs.exists(self._p("versions", stack[-1], MANIFEST)):
            last = self._where("promotions", self._entry_file(entries[-1]["seq"]))
            raise RegistryError(f"the champion pointer {last} names version {stack[-1]!r}, which registry "
                                f"{redact(self.root)} does not hold (no versions/{stack[-1]}/{MANIFEST}): the "
                                "promotion log is corrupt; see docs/operations.md (remove that last entry, "
                                "then re-promote)")
        return stack

    def champion_name(self) -> str | None:
        """The champion's version name (None before the first promotion). Raises
        RegistryError naming the log entry when the log is corrupt or names a missing version."""
        stack = self._current(self.history())
        return stack[-1] if stack else None

    def champion(self) -> Version | None:
        """The current champion, or None when nothing was promoted yet."""
        name = self.champion_name()
        return self.get(name) if name else None

    def _append(self, entry: dict[str, Any], seq: int) -> dict[str, Any]:
        entry = {**entry, "seq": seq, "at": _now()}
        path = self._p("promotions", f"{seq:0{SEQ_WIDTH}d}.json")
        if not self._create_exclusive(path, json.dumps(entry, indent=2, sort_keys=True).encode()):
            raise PromotionConflict(f"registry {redact(self.root)}: another promotion wrote log entry {seq} "
                                    "first; re-resolve the champion and retry")
        return entry

    def promote(self, name: str, expected_current: Any = ANY, reason: str = "") -> dict[str, Any]:
        """Make ``name`` the champion: compare-and-swap against ``expected_current`` (a
        version name or None for "no champion yet"; ANY skips the comparison but the
        append itself still cannot overwrite a concurrent promotion)."""
        self.get(name)  # must exist and be complete
        entries = self.history()
        current = (self._current(entries) or [None])[-1]
        if expected_current is not ANY and current != expected_current:
            raise PromotionConflict(f"cannot promote {name!r}: the champion is {current!r}, "
                                    f"not the expected {expected_current!r}")
        if current == name:
            raise RegistryError(f"{name!r} is already the champion")
        return self._append({"action": "promote", "version": name, "previous": current, "reason": reason},
                            len(entries) + 1)

    def rollback(self, steps: int = 1, expected_current: Any = ANY, reason: str = "") -> dict[str, Any]:
        """Undo the last ``steps`` promotions: the champion becomes the version that was
        champion before them (rolled-back versions are never re-promoted by a rollback)."""
        if steps < 1:
            raise RegistryError(f"rollback steps must be >= 1, got {steps}")
        entries = self.history()
        stack = self._current(entries)
        current = stack[-1] if stack else None
        if expected_current is not ANY and current != expected_current:
            raise PromotionConflict(f"cannot roll back: the champion is {current!r}, not the expected "
                                    f"{expected_current!r}")
        if len(stack) <= steps:
            raise RegistryError(f"registry {redact(self.root)} has {max(len(stack) - 1, 0)} earlier champion(s) "
                                f"to roll back to; cannot roll back {steps} step(s)")
        target = stack[-1 - steps]
        self.get(target)  # a rollback must land on a version that exists
        return self._append({"action": "rollback", "version": target, "previous": current, "steps": steps,
                             "reason": reason or f"rollback from {current}"}, len(entries) + 1)

    # ---- monitoring recommendations ---------------------------------------------------
    def record_recommendation(self, run_date: str, recommendation: dict[str, Any]) -> str:
        """Store the monitoring pipeline's codebook advice for ``run_date`` (overwrites a
        re-run of the same day); returns its path."""
        path = self._p("recommendations", f"{check_version_name(run_date)}.json")
        self._write_atomic(path, json.dumps({**recommendation, "run_date": run_date, "recorded_at": _now()},
                                     indent=2, sort_keys=True, default=str).encode())
        return self.fs.unstrip_protocol(path)

    def latest_recommendation(self, before: str | None = None) -> dict[str, Any] | None:
        """The newest recommendation (of a run_date < ``before`` when given), or None."""
        base = self._p("recommendations")
        self.fs.invalidate_cache(base)
        if not self.fs.exists(base):
            return None
        days = sorted(posixpath.basename(p)[:-5] for p in self.fs.ls(base, detail=False) if p.endswith(".json"))
        days = [d for d in days if before is None or d < before]
        return self._read_json(join(base, f"{days[-1]}.json")) if days else None
