"""The daily training pipeline (DESIGN.md): validate -> (if passed) build task tables -> ...

Parameters (all settable from the KFP UI):
- run_date: YYYY-MM-DD, the day the run happens; it sees only data before it.
- data: URL of the transactions table ("" = the dataset spec's path).
- spec: URL of the dataset spec YAML ("" = the embedded default spec).
- config: the run configuration (quantrec.config.RunConfig as a dict; {} = defaults;
  {"models": {"preset": "paper"}} trains the authors' full-size models).
- registry: URL of the model registry ("" = none): its champion's codebook is reused
  and its models warm-start training.
- rebuild_codebook: fit a new codebook even when the champion has one (set when the
  monitoring pipeline recommends a rebuild).
"""

from kfp import dsl

from components.build_tasks import build_tasks
from components.evaluate_offline import evaluate_offline
from components.fit_codebook import fit_codebook
from components.train import train
from components.validate_data import validate_data

PIPELINE_NAME = "quantrec-daily"


@dsl.pipeline(name=PIPELINE_NAME,
              description="Validate the day's transactions, build task tables, fit the "
                          "GMV codebook, train and evaluate RQ-Reg against the WLR baseline.")
def daily_pipeline(run_date: str, data: str = "", spec: str = "", config: dict = {},
                   registry: str = "", rebuild_codebook: bool = False):
    gate = validate_data(run_date=run_date, data=data, spec=spec, config=config)
    gate.set_display_name("validate data")
    with dsl.If(gate.outputs["Output"] == True, name="data-passed"):  # noqa: E712 (KFP condition)
        tasks = build_tasks(run_date=run_date, data=data, spec=spec, config=config)
        tasks.set_display_name("build task tables")
        with dsl.If(tasks.outputs["Output"] == True, name="tables-passed"):  # noqa: E712
            codebook = fit_codebook(gmv=tasks.outputs["gmv"], config=config, registry=registry,
                                    rebuild_codebook=rebuild_codebook)
            codebook.set_display_name("fit codebook")
            models = train(gmv=tasks.outputs["gmv"], codebook=codebook.outputs["codebook"],
                           codebook_reused=codebook.outputs["Output"], config=config, registry=registry)
            models.set_display_name("train RQ-Reg and WLR")
            report = evaluate_offline(gmv=tasks.outputs["gmv"], rqreg=models.outputs["rqreg"],
                                      wlr=models.outputs["wlr"])
            report.set_display_name("evaluate offline")
