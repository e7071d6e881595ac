from kfp import dsl
from kfp.dsl import HTML, Artifact, Dataset, Metrics, Output

from components._image import IMAGE


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def build_tasks(run_date: str, data: str, spec: str, config: dict,
                gmv: Output[Dataset], purchase: Output[Dataset], replay: Output[Dataset],
                ltv: Output[Dataset], events: Output[Dataset], cleaning: Output[Metrics],
                table_report: Output[HTML], table_checks: Output[Artifact]) -> bool:
    """Load -> clean -> windows -> task tables (parquet); True when the tables pass their suites."""
    from quantrec.config import RunConfig
    from quantrec.data.spec import load_spec
    from quantrec.data.tasks import prepare_run, write_table
    from validation.runner import run_task_table_validation

    cfg = RunConfig.from_dict(config)
    tt = prepare_run(run_date, data=data or None, spec=load_spec(spec or None), config=cfg.tasks)
    sizes = tt.sizes()
    for name, art in (("gmv", gmv), ("purchase", purchase), ("replay", replay),
                      ("ltv", ltv), ("events", events)):
        write_table(tt.tables[name], art.path, name)
        art.metadata.update({"rows": sizes[name], "windows": tt.windows.to_dict(),
                             "config": cfg.tasks.to_dict()})
    for rule, count in tt.cleaning.removed.items():
        cleaning.log_metric(f"removed/{rule}", count)
    cleaning.log_metric("rows_in", tt.cleaning.rows_in)
    cleaning.log_metric("rows_out", tt.cleaning.rows_out)
    checks = run_task_table_validation(tt.tables, tt.windows, run_date)
    checks.write(table_checks.path, table_report.path)
    table_checks.metadata.update(checks.summary())
    print(checks.message())
    return checks.passed
