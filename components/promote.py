from kfp import dsl
from kfp.dsl import Artifact, Input

from components._image import IMAGE


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def promote(registry: str, version: str, champion: Input[Artifact]) -> str:
    """Make a blessed version the champion: a compare-and-swap against the champion this run
    started from (a promotion by another run in between fails this task, clearly). Returns
    the champion after the task; a re-run that finds the version already champion does nothing.

    Args:
        registry: URL of the model registry ("" = none: nothing to promote).
        version: the published version to promote.
        champion: the champion resolved at the start of this run.
    """
    import json

    from components._meta import say
    from quantrec.stages.champion import ChampionInfo
    from quantrec.stages.promote import promote_stage

    with open(champion.path) as f:
        info = ChampionInfo.from_dict(json.load(f))
    out = promote_stage(registry, version, info)
    say(out["message"])
    return out["champion"]
