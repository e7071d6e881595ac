from kfp import dsl
from kfp.dsl import HTML, Artifact, Dataset, Output

from components._image import IMAGE


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def validate_data(run_date: str, data: str, spec: str, config: dict, report: Output[HTML],
                  result: Output[Artifact], snapshot: Output[Dataset]) -> bool:
    """Great Expectations gate on the data before run_date; True when it passes.

    The report is written before returning, also on failure; downstream stages run only
    under dsl.If(passed), so a failed check publishes nothing else. The rows the gate
    validated are written as the snapshot that task building reads.

    Args:
        run_date: YYYY-MM-DD; the run sees only data before this day.
        data: URL of the transactions table ("" = the dataset spec's path).
        spec: URL of the dataset spec YAML ("" = the embedded default spec).
        config: the run configuration (quantrec.config.RunConfig as a dict).
    """
    from components._meta import attach, say
    from quantrec.config import RunConfig
    from quantrec.stages.validate import validate_stage

    passed, summary = validate_stage(run_date, data or None, spec or None, RunConfig.from_dict(config),
                                     result.path, report.path, snapshot.path)
    attach(result, summary)
    attach(snapshot, summary["snapshot"])
    say(f"{summary['verdict']}: {summary['checks_passed']}/{summary['checks_total']} checks on "
        f"{summary.get('rows_loaded') or 0:,} rows" + ("" if passed else f" ({summary['message']})"))
    return passed
