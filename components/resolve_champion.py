from kfp import dsl
from kfp.dsl import Artifact, Output

from components._image import IMAGE


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def resolve_champion(registry: str, run_date: str, rebuild_codebook: str, champion: Output[Artifact]) -> str:
    """Read the registry's champion once; every later stage uses this version. Returns its name.

    Args:
        registry: URL of the model registry ("" = none: cold start, nothing published).
        run_date: YYYY-MM-DD of the run (monitoring advice up to this day counts).
        rebuild_codebook: "auto" (rebuild when monitoring recommended it), "true" or "false".
    """
    import json

    from components._meta import attach, say
    from quantrec.stages.champion import resolve_champion as resolve

    info = resolve(registry, run_date, rebuild_codebook)
    with open(champion.path, "w") as f:
        json.dump(info.to_dict(), f, indent=2)
    attach(champion, info.to_dict())
    say(f"champion: {info.version or 'none'}; codebook: {info.rebuild_reason}")
    return info.version
