"""The daily training pipeline (DESIGN.md): validate -> (if passed) build task tables -> ...

Parameters (all settable from the KFP UI):
- run_date: YYYY-MM-DD, the day the run happens; it sees only data before it.
- data: URL of the transactions table ("" = the dataset spec's path).
- spec: URL of the dataset spec YAML ("" = the embedded default spec).
- config: the run configuration (quantrec.config.RunConfig as a dict; {} = defaults).
"""

from kfp import dsl

from components.build_tasks import build_tasks
from components.validate_data import validate_data

PIPELINE_NAME = "quantrec-daily"


@dsl.pipeline(name=PIPELINE_NAME,
              description="Validate the day's transactions, build task tables, fit the "
                          "GMV codebook, train and evaluate RQ-Reg against the WLR baseline.")
def daily_pipeline(run_date: str, data: str = "", spec: str = "", config: dict = {}):
    gate = validate_data(run_date=run_date, data=data, spec=spec, config=config)
    gate.set_display_name("validate data")
    with dsl.If(gate.outputs["Output"] == True, name="data-passed"):  # noqa: E712 (KFP condition)
        tasks = build_tasks(run_date=run_date, data=data, spec=spec, config=config)
        tasks.set_display_name("build task tables")
