"""The validation gate of a run: load -> windows -> cleaning -> GX suites -> ``ValidationResult``.

``run_validation`` never raises. Every way the input can be unusable (``DataError``,
``SpecError``, ``WindowError``, an unreadable URL, a bad run date) becomes a FAILED
result whose one failed check carries the clear message, so the pipeline step can
still write its report before it stops the run; anything unexpected becomes a FAILED
result naming the exception type (its traceback goes to the log, redacted).
"""

from __future__ import annotations

import logging
import re
import time
import traceback

import pandas as pd

from quantrec.data import schema as S
from quantrec.data.clean import clean_transactions
from quantrec.data.load import DataError, load_transactions
from quantrec.data.spec import SpecError, load_spec, resolve_data_url
from quantrec.data.windows import WindowConfig, WindowError, compute_windows, parse_run_date
from quantrec.redact import redact, redact_exception
from validation.result import ValidationResult
from validation.transactions import daily_row_counts, validate_transactions_with_drift

log = logging.getLogger(__name__)


def run_validation(run_date: str, data: str | None = None, spec_path: str | None = None,
                   window_config: WindowConfig | None = None) -> ValidationResult:
    """Validate every transaction a run on ``run_date`` (YYYY-MM-DD) reads: all rows before it.

    ``data`` overrides the table URL (else $QUANTREC_DATA, else the spec's path);
    ``spec_path`` the dataset spec (else $QUANTREC_SPEC, else the default spec);
    ``window_config`` the run's windows (``tasks.windows`` of the run config). The
    result's ``frame`` holds the canonical rows that were validated (None when the data
    could not be loaded): what the run should build its tasks from.
    """
    t0 = time.perf_counter()
    ctx: dict = {}
    shown_date = str(run_date)

    def done(result: ValidationResult) -> ValidationResult:
        result.elapsed_s = round(time.perf_counter() - t0, 3)
        return result

    def failed(message: str) -> ValidationResult:
        return done(ValidationResult.from_error(shown_date, message, **ctx))

    try:
        day = parse_run_date(run_date)
        shown_date = str(day.date())
        spec = load_spec(spec_path)
        ctx["spec_name"] = spec.name
        url = resolve_data_url(spec, data)
        ctx["data_url"] = url
        raw = load_transactions(url, spec, before=day)
        ctx["rows_loaded"] = len(raw)
        windows = compute_windows(raw[S.DAY], day, window_config or WindowConfig())
        _, cleaning = clean_transactions(raw, spec.cleaning)
        checks, drift = validate_transactions_with_drift(raw, windows, spec.validation, spec.cleaning,
                                                         cleaning, has_order=S.ORDER in spec.columns,
                                                         has_prices=spec.has_prices)
        daily = daily_row_counts(raw, windows, spec.validation.row_count_reference_days)
    except (DataError, SpecError, WindowError) as exc:
        return failed(str(exc))
    except re.error as exc:  # a bad non_product_patterns regex in the spec
        return failed(f"dataset spec has an invalid pattern: {exc}")
    except OSError as exc:  # unreachable bucket, permission denied, a directory, ...
        return failed(f"cannot read {ctx.get('data_url')}: {redact_exception(exc)}")
    except Exception as exc:  # last resort: a FAILED report, never a bare traceback
        log.error("validation raised unexpectedly:\n%s", redact(traceback.format_exc()))
        return failed(f"validation could not complete: {redact_exception(exc)} (the traceback is in the log)")
    return done(ValidationResult(run_date=shown_date, checks=checks, windows=windows.to_dict(),
                                 daily_rows=daily, cleaning=cleaning.to_dict(), cleaning_drift=drift,
                                 frame=raw, **ctx))


def run_task_table_validation(tables: dict, windows, run_date: str, skipped=()) -> ValidationResult:
    """GX suites of every task table (schema, ids, labels, splits) as one verdict/report;
    ``skipped``: tables empty on purpose (``TaskTables.skipped``), not judged."""
    from validation.tasks import validate_task_tables
    started = time.perf_counter()
    return ValidationResult(run_date=run_date, checks=validate_task_tables(tables, windows, skipped),
                            windows=windows.to_dict(), elapsed_s=time.perf_counter() - started)
