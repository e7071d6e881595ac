"""Expectations on the task tables of a run (``quantrec.data.tasks``): gmv, purchase, ltv, replay.

Columns and dtypes follow the tables' declared arrow schemas (``tasks.TABLE_SCHEMAS``),
so the checks move with the producer. On top: ids present, labels in range
(non-negative GMV / LTV, 0/1 purchase labels), known splits, one row per key, and
with the run's windows, no row from the run date or later (leakage guard).
"""

from __future__ import annotations

from typing import Iterable

import pandas as pd
import pyarrow as pa

from quantrec.data import schema as S
from quantrec.data.tasks import TABLE_SCHEMAS
from quantrec.data.windows import Windows
from validation.checks import (BOOL_TYPES, DATETIME_TYPES, INT_TYPES, NUMERIC_TYPES, STRING_TYPES,
                               Check, Expect, run_expectations)

TASK_NAMES = ("gmv", "purchase", "ltv", "replay")

# What each table must hold beyond its arrow schema (the column lists).
_REQUIRED = {
    "gmv": [S.SPLIT, S.VALUE, *S.NUMERIC_FEATURES, *S.CATEGORICAL_FEATURES, S.IS_NEW_USER],
    "purchase": [S.USER, S.ITEM, S.DAY, S.SPLIT, S.LABEL, S.VALUE],
    "ltv": [*S.LTV_FEATURES, S.COUNTRY, S.LTV_LABEL, S.SPLIT],
    "replay": [S.REQUEST_ID, S.USER, S.ITEM, S.DAY, S.LABEL, S.VALUE],
}
_IDS = {"gmv": [S.USER, S.ITEM, S.DAY], "purchase": [S.USER, S.ITEM, S.DAY],
        "ltv": [S.USER], "replay": [S.REQUEST_ID, S.USER, S.ITEM, S.DAY]}
_KEYS = {"purchase": [S.USER, S.DAY, S.ITEM], "replay": [S.REQUEST_ID, S.ITEM], "ltv": [S.USER]}
_LABELS = {"gmv": [S.VALUE], "purchase": [S.VALUE], "replay": [S.VALUE], "ltv": [S.LTV_LABEL]}


def _type_family(t: pa.DataType) -> list[str]:
    if pa.types.is_integer(t):
        return INT_TYPES
    if pa.types.is_floating(t):
        return NUMERIC_TYPES  # int counts are fine in memory; the writer casts to float
    if pa.types.is_timestamp(t):
        return DATETIME_TYPES
    if pa.types.is_boolean(t):
        return BOOL_TYPES
    return STRING_TYPES


def expected_columns(name: str) -> dict[str, list[str]]:
    """Column -> accepted GX dtype names for task table ``name``."""
    out = {f.name: _type_family(f.type) for f in TABLE_SCHEMAS[name]}
    for col in _REQUIRED[name]:
        out.setdefault(col, NUMERIC_TYPES if col in S.NUMERIC_FEATURES else STRING_TYPES)
    return out


def validate_task_table(name: str, df: pd.DataFrame, windows: Windows | None = None) -> list[Check]:
    """GX suite ``task.<name>`` on one task table; ``windows`` adds the day-range checks.

    An empty ltv table is valid (early backtests have no customer with a full
    first period and horizon); the other tables must have rows.
    """
    import great_expectations.expectations as gxe

    if name not in TASK_NAMES:
        raise ValueError(f"unknown task table {name!r}; expected one of {TASK_NAMES}")
    cols = expected_columns(name)
    have = set(df.columns)
    ex: list[Expect] = []
    if name != "ltv":
        ex.append(Expect(gxe.ExpectTableRowCountToBeBetween(min_value=1), f"the {name} table has rows"))
    for col, types in cols.items():
        ex.append(Expect(gxe.ExpectColumnToExist(column=col), f"column {col} exists"))
        if col in have and len(df):  # dtype of an empty object column says nothing
            ex.append(Expect(gxe.ExpectColumnValuesToBeInTypeList(column=col, type_list=types),
                             f"column {col} has a {types[0]}-like dtype"))
    present = lambda c: c in have  # noqa: E731 - expectations on absent columns only repeat the miss
    for col in filter(present, _IDS[name]):
        ex.append(Expect(gxe.ExpectColumnValuesToNotBeNull(column=col), f"no null {col}"))
    for col in filter(present, _LABELS[name]):
        ex.append(Expect(gxe.ExpectColumnValuesToNotBeNull(column=col), f"label {col} is never null"))
        ex.append(Expect(gxe.ExpectColumnValuesToBeBetween(column=col, min_value=0),
                         f"label {col} is non-negative"))
    if present(S.LABEL) and name in ("purchase", "replay"):
        ex.append(Expect(gxe.ExpectColumnValuesToBeInSet(column=S.LABEL, value_set=[0, 1]),
                         "purchase label is 0 or 1"))
        ex.append(Expect(gxe.ExpectColumnValuesToNotBeNull(column=S.LABEL), "no null label"))
    if present(S.SPLIT):
        allowed = ["eval"] if name == "replay" else list(S.SPLITS)
        ex.append(Expect(gxe.ExpectColumnValuesToNotBeNull(column=S.SPLIT), "every row has a split"))
        ex.append(Expect(gxe.ExpectColumnValuesToBeInSet(column=S.SPLIT, value_set=allowed),
                         f"split is one of {allowed}"))
        if name in ("gmv", "purchase"):
            ex.append(Expect(gxe.ExpectColumnDistinctValuesToContainSet(column=S.SPLIT,
                                                                        value_set=["train", "eval"]),
                             "both a train and an eval split have rows"))
    if present(S.IS_NEW_USER):
        ex.append(Expect(gxe.ExpectColumnValuesToBeInSet(column=S.IS_NEW_USER, value_set=[True, False]),
                         "is_new_user is a boolean"))
    key = _KEYS.get(name)
    if key and all(map(present, key)):
        if len(key) == 1:
            ex.append(Expect(gxe.ExpectColumnValuesToBeUnique(column=key[0]), f"one row per {key[0]}"))
        else:
            ex.append(Expect(gxe.ExpectCompoundColumnsToBeUnique(column_list=key),
                             f"one row per ({', '.join(key)})"))
    if windows is not None and present(S.DAY):
        start = windows.eval_start if name == "replay" else windows.train_start
        ex.append(Expect(gxe.ExpectColumnValuesToBeBetween(column=S.DAY, min_value=start,
                                                           max_value=windows.end, strict_max=True),
                         f"day within [{start.date()}, run_date {windows.end.date()}): no leakage"))
    example_cols = [c for c in [S.REQUEST_ID, S.USER, S.ITEM, S.DAY, S.SPLIT, S.LABEL, S.VALUE,
                                S.LTV_LABEL, S.IS_NEW_USER] if c in have]
    return run_expectations(f"task.{name}", df, ex, example_cols)


def validate_task_tables(tables: dict[str, pd.DataFrame], windows: Windows | None = None,
                         skipped: Iterable[str] = ()) -> list[Check]:
    """``validate_task_table`` for every known task table in ``tables`` (others, e.g. events,
    are not checked); ``skipped``: tables left empty on purpose (``TaskTables.skipped``:
    an interaction table has no gmv / ltv), not judged."""
    checks: list[Check] = []
    skipped = set(skipped)
    for name in TASK_NAMES:
        if name in tables and name not in skipped:
            checks += validate_task_table(name, tables[name], windows)
    return checks
