"""Stage ``resolve_champion``: read the registry's champion ONCE per run.

Every later stage gets the version name this stage resolved and reads that immutable
version, never "the champion" again: a promotion by another run between two stages
cannot give a codebook from one version and warm-start weights from another (TFX's
ResolverNode). The same stage decides whether the codebook is rebuilt.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from quantrec.registry import Registry

REBUILD_CHOICES = ("auto", "true", "false")
CODEBOOK = "codebook.json"
MODELS_DIR = "models"


def model_key(name: str) -> str:
    """Artifact key of a model inside a registry version."""
    return f"{MODELS_DIR}/{name}"


@dataclass
class ChampionInfo:
    """What a run takes from the champion (all empty when there is none).

    version: its name ("" = no registry or no champion yet).
    codebook: URL of its codebook ("" = none); codebook_fitted_on: the run_date that
        fitted that codebook (a reused codebook keeps its original date).
    models: model name -> URL of its saved model.
    rebuild_codebook / rebuild_reason: whether this run fits a new codebook, and why.
    """

    registry: str = ""
    version: str = ""
    codebook: str = ""
    codebook_fitted_on: str = ""
    models: dict[str, str] = field(default_factory=dict)
    rebuild_codebook: bool = True
    rebuild_reason: str = "no registry"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "ChampionInfo":
        return cls(**d)


def resolve_champion(registry: str, run_date: str, rebuild_codebook: str = "auto") -> ChampionInfo:
    """The champion of ``registry`` ("" = none) and the codebook decision.

    rebuild_codebook: "true" always fits a new codebook, "false" reuses the champion's
    when there is one, "auto" reuses it unless the monitoring pipeline recommended a
    rebuild (its latest recommendation up to ``run_date``) after that codebook was fitted.
    """
    choice = str(rebuild_codebook).lower()
    if choice not in REBUILD_CHOICES:
        raise ValueError(f"rebuild_codebook must be one of {REBUILD_CHOICES}, not {rebuild_codebook!r}")
    if not registry:
        return ChampionInfo()
    reg = Registry(registry)
    champ = reg.champion()
    if champ is None:
        return ChampionInfo(registry=registry, rebuild_reason="no champion yet")
    info = ChampionInfo(registry=registry, version=champ.name,
                        models={a[len(MODELS_DIR) + 1:]: champ.artifact(a) for a in champ.manifest["artifacts"]
                                if a.startswith(MODELS_DIR + "/")})
    if not champ.has(CODEBOOK):
        info.rebuild_reason = f"champion {champ.name} has no codebook"
        return info
    info.codebook = champ.artifact(CODEBOOK)
    info.codebook_fitted_on = str(champ.manifest.get("codebook_fitted_on") or champ.manifest.get("run_date", ""))
    if choice == "true":
        info.rebuild_reason = "rebuild_codebook=true"
        return info
    if choice == "auto":
        from monitoring.recommend import rebuild_decision
        rec = reg.latest_recommendation(before=_next_day(run_date))
        if rec and _about(rec, champ.manifest.get("codebook_id"), info.codebook_fitted_on):
            rebuild, why = rebuild_decision(rec, "auto")  # also: an error that calls for a rebuild
            if rebuild:
                info.rebuild_reason = f"{why} (codebook fitted on {info.codebook_fitted_on})"
                return info
    info.rebuild_codebook = False
    info.rebuild_reason = f"reusing the codebook of champion {champ.name} (rebuild_codebook={choice})"
    return info


def _about(recommendation: dict[str, Any], codebook_id: str | None, fitted_on: str) -> bool:
    """Whether a recommendation judged this codebook: the same codebook id when the
    recommendation names one, else made on or after the day the codebook was fitted."""
    judged = recommendation.get("codebook_id")
    if judged:
        return judged == codebook_id
    return str(recommendation.get("run_date", "")) >= fitted_on


def _next_day(day: str) -> str:
    import pandas as pd
    return str((pd.Timestamp(day) + pd.Timedelta(days=1)).date())
