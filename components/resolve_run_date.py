from kfp import dsl

from components._image import IMAGE


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def resolve_run_date(run_date: str, schedule_time: str) -> str:
    """The day the run is for: ``run_date`` when given, else the day of the schedule time
    (a recurring run trains for its scheduled day without anyone typing it; a manual run
    from the UI gets its creation time).

    Args:
        run_date: YYYY-MM-DD, or "" to use the schedule time.
        schedule_time: the run's scheduled time in UTC (RFC 3339), from KFP.
    """
    from components._meta import say
    from quantrec.stages.run_date import resolve_run_date as resolve

    day, how = resolve(run_date, schedule_time)
    say(f"run_date {day} ({how})")
    return day
