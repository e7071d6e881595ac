from kfp import dsl
from kfp.dsl import HTML, Artifact, Output

from components._image import IMAGE


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def validate_data(run_date: str, data: str, spec: str, config: dict,
                  report: Output[HTML], result: Output[Artifact]) -> bool:
    """Great Expectations gate on the data before run_date; True when it passes.

    The report is written before returning, also on failure: downstream stages run
    only under dsl.If(passed), so a failed check publishes nothing else.
    """
    from quantrec.config import RunConfig
    from validation.runner import run_validation

    cfg = RunConfig.from_dict(config)
    res = run_validation(run_date, data=data or None, spec_path=spec or None,
                         window_config=cfg.tasks.windows)
    res.write(result.path, report.path)
    result.metadata.update(res.summary())
    print(res.message())
    return res.passed
