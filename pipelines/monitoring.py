"""The daily monitoring pipeline: is the GMV codebook still a good clustering of prices?

Separate from training (it runs on its own schedule, reads the data and the registry's
champion, trains nothing); its recommendation lands in the registry, where the next
training run's ``rebuild_codebook=auto`` follows it.
"""

from kfp import dsl

from components.monitor import monitor
from components.resolve_run_date import resolve_run_date

PIPELINE_NAME = "quantrec-daily-monitoring"


def build_monitoring_pipeline(schedule_time: str = dsl.PIPELINE_JOB_SCHEDULE_TIME_UTC_PLACEHOLDER):
    """The monitoring pipeline with the schedule time wired into its first task (see
    ``pipelines.daily.build_daily_pipeline`` for why local runs pass ``""``)."""

    @dsl.pipeline(name=PIPELINE_NAME,
                  description="Drift review of the GMV price clustering against the champion's codebook "
                              "(Evidently + codebook health): a keep / rebuild recommendation and an alert.")
    def monitoring_pipeline(run_date: str = "", data: str = "", spec: str = "", registry: str = "", codebook: str = "",
                            config: dict = {}):
        """The daily drift review.

        Args:
            run_date: YYYY-MM-DD; the current window is the last trading days before it
                ("" = the day of the schedule time).
            data: URL of the transactions table ("" = the dataset spec's path).
            spec: URL of the dataset spec YAML ("" = the embedded default spec).
            registry: URL of the model registry (its champion's codebook is judged; the
                recommendation is recorded there).
            codebook: URL of a codebook file to judge instead of the champion's ("" = the champion's).
            config: the monitoring configuration (monitoring.config.MonitorConfig as a dict; {} = defaults).
        """
        day = resolve_run_date(run_date=run_date, schedule_time=schedule_time)
        day.set_display_name("resolve run date").set_caching_options(False)
        task = monitor(run_date=day.output, data=data, spec=spec, registry=registry, codebook=codebook, config=config)
        task.set_display_name("drift review of the GMV codebook").set_caching_options(False)  # reads data + registry

    return monitoring_pipeline


monitoring_pipeline = build_monitoring_pipeline()          # compiled: monitoring.yaml
local_monitoring_pipeline = build_monitoring_pipeline("")  # kfp.local: the CLI passes run_date
