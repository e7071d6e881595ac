from kfp import dsl
from kfp.dsl import HTML, Artifact, Dataset, Input, Metrics, Model, Output

from components._image import IMAGE


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def evaluate_offline(gmv: Input[Dataset], rqreg: Input[Model], wlr: Input[Model],
                     report: Output[HTML], metrics: Output[Metrics], evaluation: Output[Artifact]):
    """Metrics, slices and plots of every model on the eval window: one report."""
    from quantrec.evaluation.offline import evaluate_saved_models

    result = evaluate_saved_models(gmv.path, {"rqreg": rqreg.path, "wlr": wlr.path}, split="eval",
                                   html_path=report.path, json_path=evaluation.path)
    for key, value in result.summary().items():
        metrics.log_metric(key, value)
    report.metadata["n_eval"] = result.n
