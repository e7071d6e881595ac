"""The run configuration: one JSON-able dict, passed as the pipeline's `config` parameter.

Every stage reads its own section; the whole config is saved with each artifact so a
result can be traced to the settings that made it. Unknown keys are errors, so a typo
in the KFP UI fails the run at once instead of silently using a default.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from quantrec.data.tasks import TaskConfig

SECTIONS = ("tasks",)


@dataclass(frozen=True)
class RunConfig:
    tasks: TaskConfig = field(default_factory=TaskConfig)

    @classmethod
    def from_dict(cls, raw: dict[str, Any] | None) -> "RunConfig":
        raw = dict(raw or {})
        unknown = set(raw) - set(SECTIONS)
        if unknown:
            raise ValueError(f"unknown config section(s) {sorted(unknown)}; known: {list(SECTIONS)}")
        try:
            return cls(tasks=TaskConfig.from_dict(raw.get("tasks")))
        except TypeError as exc:
            raise ValueError(f"bad config: {exc}") from None

    def to_dict(self) -> dict[str, Any]:
        return {"tasks": self.tasks.to_dict()}
