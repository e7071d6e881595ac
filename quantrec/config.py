"""The run configuration: one JSON-able dict, passed as the pipeline's `config` parameter.

Every stage reads its own section; the whole config is saved with each artifact so a
result can be traced to the settings that made it. Unknown keys are errors, so a typo
in the KFP UI fails the run at once instead of silently using a default.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from quantrec.data.tasks import TaskConfig
from quantrec.dataclass_io import build_dataclass
from quantrec.training.daily import ModelsConfig


@dataclass(frozen=True)
class RunConfig:
    tasks: TaskConfig = field(default_factory=TaskConfig)
    models: ModelsConfig = field(default_factory=ModelsConfig)

    @classmethod
    def from_dict(cls, raw: dict[str, Any] | None) -> "RunConfig":
        return build_dataclass(cls, raw)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)
