"""What every component shares: gs:// credentials for its process, and a stage summary
redacted, then attached."""

from __future__ import annotations

import json
from typing import Any

from quantrec.storage import apply_gcs_defaults

# Every component imports this module in its body, once per task process: plain
# fsspec.open("gs://...") calls (checkpoints, codebooks, reports) then get the same
# credentials as data loading and the registry.
apply_gcs_defaults()


def attach(artifact: Any, summary: dict[str, Any]) -> None:
    """Put a stage summary into an artifact's metadata (shown in the KFP UI), redacted
    and made JSON-safe (KFP serialises metadata with protobuf Structs)."""
    from quantrec.redact import redact_obj
    artifact.metadata.update(json.loads(json.dumps(redact_obj(summary), default=str)))


def say(message: str) -> None:
    """One log line of a component, redacted (logs are readable by every UI user)."""
    from quantrec.redact import redact
    print("quantrec: " + redact(message), flush=True)  # pipelines.local.SAY_PREFIX
