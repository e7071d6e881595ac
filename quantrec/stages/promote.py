"""Stage ``promote``: the registry's compare-and-swap, run only for a blessed version.

Like TFX's Pusher: idempotent (a version that is already the champion is left alone),
and it refuses to overwrite a promotion that happened after the run resolved its
champion (``PromotionConflict``: the run's comparison was against a stale champion).
"""

from __future__ import annotations

from typing import Any

from quantrec.registry import Registry
from quantrec.stages.champion import ChampionInfo


def promote_stage(registry: str, version: str, champion: ChampionInfo) -> dict[str, Any]:
    """Promote ``version`` expecting the champion the run started from. Returns
    {"champion", "promoted", "message"}."""
    if not registry or not version:
        return {"champion": champion.version, "promoted": False,
                "message": "nothing to promote (no registry or nothing published)"}
    reg = Registry(registry)
    current = reg.champion_name()
    if current == version:
        return {"champion": version, "promoted": False, "message": f"{version} is already the champion"}
    entry = reg.promote(version, expected_current=champion.version or None,
                        reason=f"blessed by the shadow comparison (champion at start: {champion.version or 'none'})")
    return {"champion": version, "promoted": True,
            "message": f"promoted {version} (was {entry['previous'] or 'none'})"}
