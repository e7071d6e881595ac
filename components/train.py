from kfp import dsl
from kfp.dsl import Artifact, Dataset, Input, Metrics, Model, Output

from components._image import IMAGE


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def train(gmv: Input[Dataset], codebook: Input[Artifact], codebook_reused: bool, config: dict,
          registry: str, rqreg: Output[Model], wlr: Output[Model], training: Output[Metrics]):
    """Train RQ-Reg and the production baseline WLR; warm start from the champion
    when the codebook is the champion's."""
    from quantrec.config import RunConfig
    from quantrec.registry import Registry
    from quantrec.training.daily import DAILY_MODELS, train_stage

    cfg = RunConfig.from_dict(config)
    champion = Registry(registry).champion() if registry and codebook_reused else None
    warm = ({m: champion.artifact(m) for m in DAILY_MODELS if m in champion.manifest["artifacts"]}
            if champion else {})
    summary = train_stage(gmv.path, codebook.path, cfg.models, {"rqreg": rqreg.path, "wlr": wlr.path},
                          champion_dirs=warm)
    for name, art in (("rqreg", rqreg), ("wlr", wlr)):
        art.metadata.update({**summary[name], "config": cfg.to_dict(),
                             "warm_start_from": champion.name if name in warm else None})
        for key in ("val_mae", "epochs", "train_rows"):
            training.log_metric(f"{name}/{key}", summary[name][key])
