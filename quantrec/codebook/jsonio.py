"""Plain-JSON persistence (through fsspec, no pickle) shared by every codebook class."""

from __future__ import annotations

import json
from typing import Any

import fsspec


class JsonArtifact:
    """``save(path)`` / ``load(path)`` for a class with ``to_dict`` / ``from_dict``.

    Floats are written in their shortest round-trip repr, so a load is exact.
    """

    def to_dict(self) -> dict[str, Any]:  # pragma: no cover - implemented by subclasses
        raise NotImplementedError

    def save(self, path: str) -> str:
        with fsspec.open(path, "w", encoding="utf-8") as f:
            json.dump(self.to_dict(), f, indent=1)
        return path

    @classmethod
    def load(cls, path: str) -> Any:
        with fsspec.open(path, "r", encoding="utf-8") as f:
            return cls.from_dict(json.load(f))
