from kfp import dsl
from kfp.dsl import HTML, Artifact, Dataset, Input, Metrics, Output

from components._image import IMAGE


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def build_tasks(snapshot: Input[Dataset], run_date: str, spec: str, config: dict,
                gmv: Output[Dataset], purchase: Output[Dataset], replay: Output[Dataset],
                ltv: Output[Dataset], events: Output[Dataset], cleaning: Output[Metrics],
                table_report: Output[HTML], table_checks: Output[Artifact]) -> bool:
    """Validated snapshot -> clean -> windows -> task tables; True when the tables pass their suites.

    Args:
        snapshot: the rows the validation gate judged (its digest is checked).
        run_date: YYYY-MM-DD; the run sees only data before this day.
        spec: URL of the dataset spec YAML ("" = the embedded default spec).
        config: the run configuration (its "tasks" section sets the windows and sampling).
    """
    from components._meta import attach, say
    from quantrec.config import RunConfig
    from quantrec.stages.tasks import build_tasks_stage

    cfg = RunConfig.from_dict(config)
    outs = {"gmv": gmv, "purchase": purchase, "replay": replay, "ltv": ltv, "events": events}
    passed, summary = build_tasks_stage(snapshot.path, snapshot.metadata.get("digest"), run_date, spec or None,
                                        cfg, {k: a.path for k, a in outs.items()}, table_checks.path,
                                        table_report.path)
    for name, art in outs.items():
        meta = {"rows": summary["rows"][name], "windows": summary["windows"],
                "snapshot": snapshot.metadata.get("digest"), "dataset_fingerprint": summary["dataset_fingerprint"]}
        if name in summary["skipped"]:  # empty on purpose: the stages reading it say they skip
            meta["skipped"] = summary["skipped"][name]
        attach(art, meta)
    for rule, count in summary["cleaning"]["removed"].items():
        cleaning.log_metric(f"removed/{rule}", count)
    cleaning.log_metric("rows_in", summary["cleaning"]["rows_in"])
    cleaning.log_metric("rows_out", summary["cleaning"]["rows_out"])
    attach(table_checks, summary["checks"])
    rows = ", ".join(f"{name} {summary['rows'][name]['all']:,}" for name in outs)
    say(f"tables {summary['checks']['verdict']} ({summary['checks']['checks_passed']}/"
        f"{summary['checks']['checks_total']} checks): {rows}")
    for why in dict.fromkeys(summary["skipped"].values()):  # one line per reason
        names = [n for n, w in summary["skipped"].items() if w == why]
        say(f"{' and '.join(names)} table{'s' if len(names) > 1 else ''} skipped: {why}")
    return passed
