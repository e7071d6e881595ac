from kfp import dsl
from kfp.dsl import HTML, Artifact, Dataset, Input, Metrics, Model, Output

from components._image import IMAGE


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def evaluate_offline(gmv: Input[Dataset], purchase: Input[Dataset], events: Input[Dataset],
                     gmv_models: Input[Model], purchase_models: Input[Model],
                     report: Output[HTML], metrics: Output[Metrics], evaluation: Output[Artifact]):
    """Metrics, slices and plots of every trained model on its task's eval window: one report.

    Args:
        gmv: the GMV task table.
        purchase: the purchase task table.
        events: the events table (models that read behaviour histories).
        gmv_models: the GMV train stage's models.
        purchase_models: the purchase train stage's models.
    """
    from components._meta import say
    from quantrec.stages.evaluate import evaluate_stage, flat_metrics

    results = evaluate_stage({"gmv": gmv.path, "purchase": purchase.path},
                             [gmv_models.path, purchase_models.path], report.path, evaluation.path,
                             events_path=events.path)
    for key, value in flat_metrics(results).items():
        metrics.log_metric(key, value)
    report.metadata.update({f"n_eval/{task}": res.n for task, res in results.items()})
    for task, res in results.items():
        say(f"evaluated {task}: " + "; ".join(
            f"{r['model']} " + ", ".join(f"{m} {r[m]:.4g}" for m in res.metric_columns[:2])
            for r in res.overall.to_dict(orient="records")))
