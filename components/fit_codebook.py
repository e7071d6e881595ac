from kfp import dsl
from kfp.dsl import HTML, Artifact, Dataset, Input, Output

from components._image import IMAGE


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def fit_codebook(gmv: Input[Dataset], config: dict, registry: str, rebuild_codebook: bool,
                 codebook: Output[Artifact], report: Output[HTML],
                 reconstruction: Output[Artifact]) -> bool:
    """Fit the GMV codebook on the training labels, or reuse the champion's; True if reused.

    The champion's codebook is kept unless rebuild_codebook is set (monitoring's
    recommendation) or there is no champion yet. Errors go in the report's metadata.
    """
    from quantrec.config import RunConfig
    from quantrec.registry import Registry
    from quantrec.training.daily import fit_codebook_stage

    cfg = RunConfig.from_dict(config)
    champion = Registry(registry).champion() if registry else None
    reuse = None
    if champion is not None and not rebuild_codebook and "codebook.json" in champion.manifest["artifacts"]:
        reuse = champion.artifact("codebook.json")
    summary = fit_codebook_stage(gmv.path, cfg.models, codebook.path, report.path, reconstruction.path,
                                 reuse_path=reuse)
    summary["champion"] = champion.name if champion else None
    for art in (report, codebook):
        art.metadata.update(summary)
    codebook.metadata["config"] = cfg.to_dict()
    print(f"codebook {summary['source']}: MAE {summary['mae']:.5g}, relative {summary['mre']:.3g}")
    return reuse is not None
