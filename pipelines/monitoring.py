"""The daily monitoring pipeline: is the GMV codebook still a good clustering of prices?

Separate from training (it runs on its own schedule, reads the data and the registry's
champion, trains nothing); its recommendation lands in the registry, where the next
training run's ``rebuild_codebook=auto`` follows it.
"""

from kfp import dsl

from components.monitor import monitor

PIPELINE_NAME = "quantrec-daily-monitoring"


@dsl.pipeline(name=PIPELINE_NAME,
              description="Drift review of the GMV price clustering against the champion's codebook "
                          "(Evidently + codebook health): a keep / rebuild recommendation and an alert.")
def monitoring_pipeline(run_date: str, data: str = "", spec: str = "", registry: str = "", codebook: str = "",
                        config: dict = {}):
    """The daily drift review.

    Args:
        run_date: YYYY-MM-DD; the current window is the last trading days before it.
        data: URL of the transactions table ("" = the dataset spec's path).
        spec: URL of the dataset spec YAML ("" = the embedded default spec).
        registry: URL of the model registry (its champion's codebook is judged; the
            recommendation is recorded there).
        codebook: URL of a codebook file to judge instead of the champion's ("" = the champion's).
        config: the monitoring configuration (monitoring.config.MonitorConfig as a dict; {} = defaults).
    """
    task = monitor(run_date=run_date, data=data, spec=spec, registry=registry, codebook=codebook, config=config)
    task.set_display_name("drift review of the GMV codebook").set_caching_options(False)  # reads data + registry
