from kfp import dsl
from kfp.dsl import HTML, Artifact, Dataset, Input, Output

from components._image import IMAGE


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def fit_codebook(gmv: Input[Dataset], champion: Input[Artifact], config: dict, codebook: Output[Artifact],
                 report: Output[HTML], reconstruction: Output[Artifact]) -> bool:
    """Fit the GMV codebook on the training labels, or reuse the champion's; True if reused.

    Args:
        gmv: the GMV task table.
        champion: the champion resolved for this run (says whether to rebuild, and why).
        config: the run configuration (the codebook's shape comes from the models that need it).
    """
    import json

    from components._meta import attach, say
    from quantrec.config import RunConfig
    from quantrec.stages.champion import ChampionInfo
    from quantrec.stages.codebook import fit_codebook_stage

    with open(champion.path) as f:
        info = ChampionInfo.from_dict(json.load(f))
    summary = fit_codebook_stage(gmv.path, RunConfig.from_dict(config), info, codebook.path, report.path,
                                 reconstruction.path, gmv.metadata["dataset_fingerprint"],
                                 skipped=gmv.metadata.get("skipped"))
    attach(codebook, summary)
    attach(report, summary)
    say(f"codebook {summary['source']}: {summary['reason']}"
        + (f"; MAE {summary['mae']:.5g}" if "mae" in summary else ""))
    return summary["source"] == "reused"
