"""The validation gate of a run: load -> windows -> GX suites -> ``ValidationResult``.

``run_validation`` never raises for bad data: every way the input can be unusable
(``DataError``, ``SpecError``, ``WindowError``, an unreadable URL) becomes a FAILED
result whose one failed check carries the clear message, so the pipeline step can
still write its report before it stops the run.
"""

from __future__ import annotations

import re
import time

from quantrec.data import schema as S
from quantrec.data.load import DataError, load_transactions
from quantrec.data.spec import SpecError, load_spec, resolve_data_url
from quantrec.data.windows import WindowConfig, WindowError, compute_windows, parse_run_date
from validation.result import ValidationResult
from validation.transactions import daily_row_counts, validate_transactions


def run_validation(run_date: str, data: str | None = None, spec_path: str | None = None,
                   window_config: WindowConfig | None = None) -> ValidationResult:
    """Validate the transactions strictly before ``run_date`` (YYYY-MM-DD).

    ``data`` overrides the table URL (else $QUANTREC_DATA, else the spec's path);
    ``spec_path`` the dataset spec (else $QUANTREC_SPEC, else the default spec).
    """
    t0 = time.perf_counter()
    ctx: dict = {}

    def done(result: ValidationResult) -> ValidationResult:
        result.elapsed_s = round(time.perf_counter() - t0, 3)
        return result

    try:
        day = parse_run_date(run_date)
        run_date = str(day.date())
        spec = load_spec(spec_path)
        ctx["spec_name"] = spec.name
        url = resolve_data_url(spec, data)
        ctx["data_url"] = url
        raw = load_transactions(url, spec, before=day)
        ctx["rows_loaded"] = len(raw)
        windows = compute_windows(raw[S.DAY], day, window_config or WindowConfig())
    except (DataError, SpecError, WindowError) as exc:
        return done(ValidationResult.from_error(str(run_date), str(exc), **ctx))
    except re.error as exc:  # a bad non_product_patterns regex in the spec
        return done(ValidationResult.from_error(run_date, f"dataset spec has an invalid pattern: {exc}", **ctx))
    except OSError as exc:  # unreachable bucket, permission denied, ...
        return done(ValidationResult.from_error(run_date, f"cannot read {ctx.get('data_url')}: {exc}", **ctx))

    try:
        checks = validate_transactions(raw, windows, spec.validation, spec.cleaning)
    except re.error as exc:
        return done(ValidationResult.from_error(run_date, f"dataset spec has an invalid pattern: {exc}", **ctx))
    daily = daily_row_counts(raw, windows, spec.validation.row_count_reference_days)
    return done(ValidationResult(run_date=run_date, checks=checks, windows=windows.to_dict(),
                                 daily_rows=daily, **ctx))


def run_task_table_validation(tables: dict, windows, run_date: str) -> ValidationResult:
    """GX suites of every task table (schema, ids, labels, splits) as one verdict/report."""
    from validation.tasks import validate_task_tables
    started = time.perf_counter()
    return ValidationResult(run_date=run_date, checks=validate_task_tables(tables, windows),
                            windows=windows.to_dict(), elapsed_s=time.perf_counter() - started)
