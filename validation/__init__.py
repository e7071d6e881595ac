"""Data validation gate (Great Expectations 1.x): suites for raw transactions and task tables.

Entry point: ``validation.runner.run_validation(run_date, data, spec_path)`` ->
``ValidationResult`` (``.passed``, ``.message()``, ``.write(json_path, html_path)``).
GX is imported lazily, only when a suite actually runs.
"""

from validation.checks import Check
from validation.result import ValidationResult
from validation.runner import run_validation

__all__ = ["Check", "ValidationResult", "run_validation"]
