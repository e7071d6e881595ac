from kfp import dsl
from kfp.dsl import HTML, Artifact, Output

from components._image import IMAGE


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def monitor(run_date: str, data: str, spec: str, registry: str, codebook: str, config: dict,
            review: Output[HTML], recommendation: Output[Artifact], alert: Output[Artifact]) -> str:
    """Drift of the GMV price clustering against the serving codebook (Evidently + codebook
    health); returns the recommended action: "keep", "rebuild" or "error" (alert).

    Args:
        run_date: YYYY-MM-DD; the current window is the last trading days before it.
        data: URL of the transactions table ("" = the dataset spec's path).
        spec: URL of the dataset spec YAML ("" = the embedded default spec).
        registry: URL of the model registry: its champion's codebook is judged and the
            recommendation is recorded there for the training pipeline ("" = none).
        codebook: URL of a codebook file to judge instead of the champion's ("" = the champion's).
        config: the monitoring configuration (monitoring.config.MonitorConfig as a dict; {} = defaults).
    """
    from components._meta import attach, say
    from quantrec.stages.monitor import monitor_stage

    result = monitor_stage(run_date, data or None, spec or None, registry, codebook, config,
                           review.path, recommendation.path, alert.path)
    attach(recommendation, result.summary())
    attach(alert, {"alert": result.recommendation.alert, "exit_code": result.exit_code})
    say(result.recommendation.summary)
    return result.action
