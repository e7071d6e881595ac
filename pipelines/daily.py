"""The daily training pipeline: validate -> (if passed) build task tables ->
(if the tables pass) resolve the champion -> fit codebook -> train GMV models and
purchase models -> evaluate offline -> shadow A/B against WLR and the champion ->
publish (blessed or not) -> (if blessed) promote -> refresh the serving cache.

Caching: tasks that read something outside their inputs (the data URL, the registry)
or change something outside (publish) never cache; every other task's inputs are
artifacts produced in the run, so its cache key changes whenever the data or the
champion did.
"""

from kfp import dsl

from components.build_tasks import build_tasks
from components.evaluate_offline import evaluate_offline
from components.fit_codebook import fit_codebook
from components.promote import promote
from components.refresh_cache import refresh_cache
from components.publish import publish
from components.resolve_champion import resolve_champion
from components.resolve_run_date import resolve_run_date
from components.shadow_compare import shadow_compare
from components.train import train
from components.validate_data import validate_data

PIPELINE_NAME = "quantrec-daily"


def build_daily_pipeline(schedule_time: str = dsl.PIPELINE_JOB_SCHEDULE_TIME_UTC_PLACEHOLDER):
    """The daily pipeline with the schedule time wired into its first task. Compiled for a
    cluster with KFP's schedule-time placeholder; ``kfp.local`` cannot substitute that
    placeholder (it crashes), so local runs use ``schedule_time=""`` and pass run_date."""

    @dsl.pipeline(name=PIPELINE_NAME,
                  description="Validate the day's transactions, build task tables, fit the GMV codebook, "
                              "train RQ-Reg, WLR and the purchase model, evaluate them offline, compare them "
                              "with WLR and the champion on replayed requests, publish, and promote if blessed.")
    def daily_pipeline(run_date: str = "", data: str = "", spec: str = "", config: dict = {},
                       registry: str = "", rebuild_codebook: str = "auto", checkpoints: str = "",
                       cache: str = ""):
        """The daily training run.

        Args:
            run_date: YYYY-MM-DD, the day the run happens; it sees only data before it
                ("" = the day of the schedule time: what a recurring run uses).
            data: URL of the transactions table ("" = the dataset spec's path).
            spec: URL of the dataset spec YAML ("" = the embedded default spec).
            config: the run configuration (quantrec.config.RunConfig as a dict; {} = defaults;
                {"models": {"preset": "paper"}} trains the authors' full-size models).
            registry: URL of the model registry ("" = none): its champion's codebook is reused,
                its models warm-start training, and the run is published there.
            rebuild_codebook: "auto" (rebuild when the monitoring pipeline recommended it),
                "true" (always fit a new codebook) or "false" (reuse the champion's).
            checkpoints: URL root for resumable training checkpoints ("" = none): a re-run of the
                same day, data and config resumes from them.
            cache: the serving cache a blessed version is written to: "" = the task's
                QUANTREC_REDIS_URL / REDIS_URL environment variable (mount it from a secret: a
                password must never be a pipeline parameter), a redis:// URL without password,
                or a folder for an embedded Redis (local runs).
        """
        day = resolve_run_date(run_date=run_date, schedule_time=schedule_time)
        day.set_display_name("resolve run date").set_caching_options(False)  # reads the clock
        run_date = day.output
        gate = validate_data(run_date=run_date, data=data, spec=spec, config=config)
        gate.set_display_name("validate data").set_caching_options(False)  # reads the data URL
        with dsl.If(gate.outputs["Output"] == True, name="data-passed"):  # noqa: E712 (KFP condition)
            tables = build_tasks(snapshot=gate.outputs["snapshot"], run_date=run_date, spec=spec, config=config)
            tables.set_display_name("build task tables")
            with dsl.If(tables.outputs["Output"] == True, name="tables-passed"):  # noqa: E712
                champ = resolve_champion(registry=registry, run_date=run_date, rebuild_codebook=rebuild_codebook)
                champ.set_display_name("resolve champion").set_caching_options(False)  # reads the registry
                codebook = fit_codebook(gmv=tables.outputs["gmv"], champion=champ.outputs["champion"], config=config)
                codebook.set_display_name("fit codebook")
                gmv_models = train(task="gmv", run_date=run_date, table=tables.outputs["gmv"],
                                   snapshot=gate.outputs["snapshot"], champion=champ.outputs["champion"],
                                   config=config, checkpoints=checkpoints, events=tables.outputs["events"],
                                   codebook=codebook.outputs["codebook"], codebook_reused=codebook.outputs["Output"])
                gmv_models.set_display_name("train GMV models")
                purchase_models = train(task="purchase", run_date=run_date, table=tables.outputs["purchase"],
                                        snapshot=gate.outputs["snapshot"], champion=champ.outputs["champion"],
                                        config=config, checkpoints=checkpoints, events=tables.outputs["events"])
                purchase_models.set_display_name("train purchase models")
                report = evaluate_offline(gmv=tables.outputs["gmv"], purchase=tables.outputs["purchase"],
                                          events=tables.outputs["events"], gmv_models=gmv_models.outputs["models"],
                                          purchase_models=purchase_models.outputs["models"])
                report.set_display_name("evaluate offline")
                shadow = shadow_compare(replay=tables.outputs["replay"], purchase=tables.outputs["purchase"],
                                        events=tables.outputs["events"], gmv_models=gmv_models.outputs["models"],
                                        purchase_models=purchase_models.outputs["models"],
                                        champion=champ.outputs["champion"], config=config)
                shadow.set_display_name("shadow A/B vs WLR and champion")
                published = publish(registry=registry, run_date=run_date, config=config,
                                    champion=champ.outputs["champion"], snapshot=gate.outputs["snapshot"],
                                    codebook=codebook.outputs["codebook"], gmv_models=gmv_models.outputs["models"],
                                    purchase_models=purchase_models.outputs["models"],
                                    evaluation=report.outputs["evaluation"], metrics=report.outputs["metrics"],
                                    decision=shadow.outputs["decision"])
                published.set_display_name("publish").set_caching_options(False)  # writes the registry
                with dsl.If(shadow.outputs["Output"] == True, name="blessed"):  # noqa: E712
                    promoted = promote(registry=registry, version=published.output, champion=champ.outputs["champion"])
                    promoted.set_display_name("promote").set_caching_options(False)  # moves the champion
                    # after the promotion: the cache pointer may lag the champion, never lead it
                    refreshed = refresh_cache(registry=registry, version=published.output,
                                              events=tables.outputs["events"], config=config, cache=cache)
                    refreshed.set_display_name("refresh serving cache").set_caching_options(False)
                    refreshed.after(promoted)

    return daily_pipeline


daily_pipeline = build_daily_pipeline()          # compiled: daily.yaml
local_daily_pipeline = build_daily_pipeline("")  # kfp.local: the CLI passes run_date
