"""Great Expectations 1.x plumbing: run a list of expectations on a frame -> ``Check`` rows.

Every verdict of the validation gate comes out of GX, including the aggregate ones
(freshness, daily row counts) that are first computed in pandas into a small derived
frame. This module owns the one ephemeral GX context of the process (no files, no
network, progress bars off) and turns GX results into plain, JSON-safe ``Check``
records with a few example offending rows taken from the validated frame.
"""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd

# GX 1.x reads this when a context is created; keep usage statistics off on every path.
os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")

MAX_EXAMPLES = 5

# dtype families for ExpectColumnValuesToBeInTypeList. GX names a pandas StringDtype
# column "StringDtype" and an object column of Python strings "str".
STRING_TYPES = ["StringDtype", "str"]
NUMERIC_TYPES = ["float64", "float32", "int64", "int32", "Float64", "Int64", "Int32"]
INT_TYPES = ["int64", "int32", "Int64", "Int32"]
DATETIME_TYPES = ["datetime64[ns]", "datetime64[us]", "datetime64[ms]"]
BOOL_TYPES = ["bool", "boolean"]


@dataclass
class Check:
    """One evaluated expectation, in plain JSON-safe values.

    ``observed`` is GX's observed value, or for row-wise expectations the count and
    percent of offending rows; ``examples`` holds a few offending rows (empty when the
    check passed); ``details`` the thresholds the verdict used.
    """

    suite: str
    expectation: str
    description: str
    column: str | None
    success: bool
    observed: Any = None
    details: dict[str, Any] = field(default_factory=dict)
    examples: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Expect:
    """An expectation to run, with the words and example rows to report it by.

    ``examples`` is for aggregate expectations (a share, a count): the rows to show
    when it fails. Row-wise expectations take their examples from GX's unexpected
    index list over the validated frame, restricted to ``example_columns``. For an
    expectation on a small derived frame, ``observed`` names the value it judged.
    """

    expectation: Any  # a great_expectations.expectations.Expectation
    description: str
    examples: pd.DataFrame | None = None
    observed: Any = None  # the derived value judged (e.g. days since newest), shown instead of row counts


def json_safe(value: Any) -> Any:
    """Convert numpy / pandas scalars and containers to plain JSON values."""
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, np.ndarray, pd.Index)):
        return [json_safe(v) for v in list(value)]
    if isinstance(value, (pd.Timestamp, np.datetime64)):
        return None if pd.isna(value) else str(pd.Timestamp(value))
    if isinstance(value, (np.bool_, bool)):
        return bool(value)
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        if math.isinf(value):  # JSON has no infinity; "inf" still says what the row held
            return "inf" if value > 0 else "-inf"
        return None if math.isnan(value) else float(value)
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, (str, int)):
        return value
    return str(value)


def example_rows(df: pd.DataFrame, columns: list[str] | None = None, n: int = MAX_EXAMPLES) -> list[dict]:
    """The first ``n`` rows of ``df`` (``columns`` only) as JSON-safe dicts."""
    if columns is not None:
        df = df[[c for c in columns if c in df.columns]]
    return [json_safe(r) for r in df.head(n).to_dict(orient="records")]


_CONTEXT: dict[str, Any] = {}


def _batch_definition() -> Any:
    """The process-wide ephemeral context's whole-dataframe batch definition (lazy).

    GX is imported here, not at module import, so callers that never validate (and
    the error paths of the runner) do not pay its ~2-7 s import.
    """
    if "bd" not in _CONTEXT:
        import great_expectations as gx
        from great_expectations.data_context.types.base import (DataContextConfig,
                                                                 InMemoryStoreBackendDefaults,
                                                                 ProgressBarsConfig)

        # In-memory stores and no data-docs site: the default ephemeral config reserves
        # a temp directory for docs; we never build docs, so we ask for none.
        config = DataContextConfig(
            store_backend_defaults=InMemoryStoreBackendDefaults(init_temp_docs_sites=False),
            analytics_enabled=False)
        ctx = gx.get_context(mode="ephemeral", project_config=config)
        # tqdm bars per metric would flood stderr of every pipeline task.
        ctx.variables.progress_bars = ProgressBarsConfig(globally=False, metric_calculations=False)
        asset = ctx.data_sources.add_pandas("quantrec").add_dataframe_asset("frame")
        _CONTEXT["bd"] = asset.add_batch_definition_whole_dataframe("whole")
    return _CONTEXT["bd"]


def _observed(result: dict[str, Any]) -> Any:
    if "observed_value" in result:
        return json_safe(result["observed_value"])
    if "unexpected_count" in result:
        pct = result.get("unexpected_percent")
        return {"unexpected_count": json_safe(result.get("unexpected_count")),
                "element_count": json_safe(result.get("element_count")),
                "unexpected_percent": None if pct is None else round(float(pct), 4)}
    return None


def _kwargs(config: Any) -> dict[str, Any]:
    kw = dict(config.kwargs)
    kw.pop("batch_id", None)
    kw.pop("column", None)
    return json_safe(kw)


def run_expectations(suite: str, frame: pd.DataFrame, expects: list[Expect],
                     example_columns: list[str] | None = None,
                     rows: pd.DataFrame | None = None) -> list[Check]:
    """Validate ``frame`` against ``expects`` as one GX suite; one ``Check`` per expectation.

    Results are matched back to their ``Expect`` through the expectation's ``meta``
    (GX does not keep the order of a suite's results). ``rows``: where example rows
    come from (same index as ``frame``), for a slim ``frame`` of a few numeric columns
    cut from a wide table: GX hashes every column of the frame it validates, so the
    whole read window (a million rows of string ids) goes to GX slim and the examples
    still show the full rows.
    """
    rows = frame if rows is None else rows
    import great_expectations as gx

    bd = _batch_definition()  # the context must exist before a suite is built
    for i, e in enumerate(expects):
        e.expectation.meta = {**(e.expectation.meta or {}), "quantrec_check": i}
    # Passing the list at construction skips add_expectation's pairwise duplicate scan
    # (quadratic: ~1 s for the 60-column task tables).
    gx_suite = gx.ExpectationSuite(name=suite, expectations=[e.expectation for e in expects])
    batch = bd.get_batch(batch_parameters={"dataframe": frame})
    run = batch.validate(gx_suite, result_format={"result_format": "SUMMARY",
                                                  "partial_unexpected_count": MAX_EXAMPLES})
    checks: list[Check | None] = [None] * len(expects)
    for res in run.results:
        cfg = res.expectation_config
        i = int(cfg.meta["quantrec_check"])
        e = expects[i]
        result = dict(res.result or {})
        column = cfg.kwargs.get("column")
        observed = _observed(result) if e.observed is None else json_safe(e.observed)
        info = res.exception_info or {}
        # A failed metric computation comes back as exception_info (nested per metric
        # in GX 1.x): report its message, never a traceback.
        messages = ([info.get("exception_message")] if "exception_message" in info
                    else [v.get("exception_message") for v in info.values() if isinstance(v, dict)])
        messages = [m for m in messages if m]
        if messages:
            observed = f"could not be evaluated: {messages[0].splitlines()[0][:300]}"
        examples: list[dict] = []
        if not res.success:
            if e.examples is not None:
                examples = example_rows(e.examples, example_columns)
            elif result.get("partial_unexpected_index_list"):
                idx = [j for j in result["partial_unexpected_index_list"] if j in rows.index]
                examples = example_rows(rows.loc[idx], example_columns)
        checks[i] = Check(suite=suite, expectation=cfg.type, description=e.description,
                          column=column, success=bool(res.success), observed=observed,
                          details=_kwargs(cfg), examples=examples)
    missing = [expects[i].description for i, c in enumerate(checks) if c is None]
    if missing:  # would mean GX silently dropped an expectation: never report it as passed
        raise RuntimeError(f"GX returned no result for {missing}")
    return [c for c in checks if c is not None]
