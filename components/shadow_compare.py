from kfp import dsl
from kfp.dsl import HTML, Artifact, Dataset, Input, Model, Output

from components._image import IMAGE


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def shadow_compare(replay: Input[Dataset], purchase: Input[Dataset], events: Input[Dataset],
                   gmv_models: Input[Model], purchase_models: Input[Model], champion: Input[Artifact],
                   config: dict, report: Output[HTML], decision: Output[Artifact]) -> bool:
    """Replay the eval window's requests with the new models, the production baseline (WLR)
    and the champion; bless on explicit thresholds tested on bootstrap CI bounds. True if blessed.

    Args:
        replay: the replay requests (eval-window candidate lists).
        purchase: the purchase table (its val rows calibrate the expected GMV).
        events: the events table (purchase models that read behaviour histories).
        gmv_models: the GMV train stage's models.
        purchase_models: the purchase train stage's models.
        champion: the champion resolved for this run (the third arm).
        config: the run configuration (its "shadow" section holds the thresholds).
    """
    import json

    from components._meta import attach, say
    from quantrec.config import RunConfig
    from quantrec.stages.champion import ChampionInfo
    from quantrec.stages.shadow import shadow_stage

    with open(champion.path) as f:
        info = ChampionInfo.from_dict(json.load(f))
    result = shadow_stage(replay.path, purchase.path, [gmv_models.path, purchase_models.path], info,
                          RunConfig.from_dict(config), report.path, decision.path, events_path=events.path)
    attach(decision, result.summary())
    say(("blessed" if result.blessed else "not blessed") + ": " + "; ".join(result.reasons[:3]))
    return bool(result.blessed)
