"""How much each cleaning rule removes per day, judged against the rule's own history.

Cleaning removes dirt silently; a feed that breaks in a way cleaning happens to
catch (500 purchase lines priced -3.0 on one day, a day of zero prices, a day of
lines without users) would only show as a larger count in the cleaning report. This
suite makes it a verdict:

- ``transactions.cleaning``   per judged day and rule: share = rows the rule removed /
                              rows of the day. With p95 = the 95th percentile of the
                              rule's shares over the previous ``history_days`` trading
                              days, limit = max(``min_share``, ``ratio`` x p95). A day
                              fails when share > limit and the rule removed at least
                              ``min_count`` rows (a 3-row day cannot trip it). Days
                              with fewer than ``min_history_days`` earlier trading days
                              are not judged. The share of quantity-0 lines (rule
                              ``zero_quantity``) is also bounded by
                              ``max_zero_quantity_share`` on every judged day.

Judged days: those of the run's windows, [train_start, run_date); history may reach
back before train_start (the run reads it). Calibration on Online Retail II and the
probes are in docs/reliability.md.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from quantrec.data import schema as S
from quantrec.data.clean import ROWS_IN, RULES, CleaningReport
from quantrec.data.spec import CleaningDrift, ValidationThresholds
from validation.checks import MAX_EXAMPLES, Check, Expect, json_safe, run_expectations

ZERO_QUANTITY_SHARE = "zero_quantity_share"


def _gxe():
    import great_expectations.expectations as gxe  # lazy: see checks._batch_definition
    return gxe


def drift_table(by_day: pd.DataFrame, settings: CleaningDrift, judged_from: pd.Timestamp | None = None,
                judged_to: pd.Timestamp | None = None) -> pd.DataFrame:
    """Per (day, rule): share removed, its history p95, the limit and share / limit.

    ``by_day``: ``CleaningReport.by_day`` (one row per trading day). Days in
    [``judged_from``, ``judged_to``) are judged (None: no bound on that side).
    Columns: day, rule, rows_in, removed, share, reference_p95, limit, judged (bool),
    ratio (share / limit on judged days, NaN elsewhere). Vectorised: a rolling
    quantile per rule over a few hundred days.
    """
    by_day = by_day.sort_index()
    rows_in = by_day[ROWS_IN].astype("float64")
    days = pd.Series(by_day.index, index=by_day.index)
    in_range = pd.Series(True, index=by_day.index)
    if judged_from is not None:
        in_range &= days >= pd.Timestamp(judged_from)
    if judged_to is not None:
        in_range &= days < pd.Timestamp(judged_to)
    parts = []
    for rule in RULES:
        removed = by_day[rule].astype("int64")
        share = (removed / rows_in.where(rows_in > 0)).fillna(0.0)
        # History = the previous trading days only: the day judged is not its own reference.
        p95 = share.shift(1).rolling(settings.history_days, min_periods=settings.min_history_days).quantile(0.95)
        limit = np.maximum(settings.min_share, settings.ratio * p95)
        judged = in_range & p95.notna() & (removed >= settings.min_count)
        parts.append(pd.DataFrame({S.DAY: by_day.index, "rule": rule, ROWS_IN: by_day[ROWS_IN].to_numpy(),
                                   "removed": removed.to_numpy(), "share": share.to_numpy(),
                                   "reference_p95": p95.to_numpy(), "limit": limit.to_numpy(),
                                   "judged": judged.to_numpy(),
                                   "ratio": (share / limit).where(judged).to_numpy()}))
    out = pd.concat(parts, ignore_index=True)
    out["in_window"] = np.tile(in_range.to_numpy(), len(RULES))
    return out


def max_ratio_per_rule(table: pd.DataFrame) -> dict[str, float | None]:
    """The highest share / limit each rule reached on a judged day (None: never judged)."""
    return {rule: (None if g["ratio"].notna().sum() == 0 else round(float(g["ratio"].max()), 4))
            for rule, g in table.groupby("rule", sort=False)}


def _failing_days(t: pd.DataFrame) -> list[dict]:
    bad = t[t["ratio"] > 1.0].sort_values("ratio", ascending=False)
    return [{"day": str(r[S.DAY].date()), "removed": int(r["removed"]), ROWS_IN: int(r[ROWS_IN]),
             "share": round(float(r["share"]), 4), "limit": round(float(r["limit"]), 4)}
            for _, r in bad.head(MAX_EXAMPLES).iterrows()]


def validate_cleaning_drift(raw: pd.DataFrame, cleaning: CleaningReport, thresholds: ValidationThresholds,
                            judged_from: pd.Timestamp, judged_to: pd.Timestamp,
                            example_columns: list[str] | None = None) -> tuple[list[Check], pd.DataFrame]:
    """``transactions.cleaning`` over the judged days; returns the checks and the drift table.

    ``cleaning`` must be the report of ``clean_transactions(raw, ...)`` (its per-row
    record indexes ``raw`` by position). A failing rule names its worst days (day,
    removed, rows, share, limit) and quotes rows it removed on the worst one.
    """
    gxe = _gxe()
    settings = thresholds.cleaning_drift
    table = drift_table(cleaning.by_day, settings, judged_from, judged_to)
    wide = table[table["in_window"]].pivot(index=S.DAY, columns="rule", values="ratio")[list(RULES)]
    by_day = cleaning.by_day.loc[wide.index]
    wide[ZERO_QUANTITY_SHARE] = (by_day["zero_quantity"] / by_day[ROWS_IN].where(by_day[ROWS_IN] > 0)).fillna(0.0)
    wide = wide.reset_index()
    wide.columns.name = None
    ex = []
    for rule in RULES:
        t = table[(table["rule"] == rule) & table["in_window"]]
        failing = _failing_days(t)
        examples = None
        if failing:
            worst = pd.Timestamp(failing[0]["day"])
            mask = cleaning.removed_mask(rule) & (raw[S.DAY] == worst).to_numpy()
            examples = raw[mask].head(MAX_EXAMPLES)
        observed = ({"failing_days": failing} if failing else
                    {"max_share_over_limit": max_ratio_per_rule(t)[rule], "days_judged": int(t["judged"].sum())})
        ex.append(Expect(
            gxe.ExpectColumnValuesToBeBetween(column=rule, max_value=1.0),
            f"cleaning rule {rule}: share of a day's rows it removes <= max({settings.min_share:g}, "
            f"{settings.ratio:g} x its p95 over the previous {settings.history_days} trading days) "
            f"on days where it removed >= {settings.min_count} rows",
            examples=examples, observed=json_safe(observed)))
    zq_bad = wide[wide[ZERO_QUANTITY_SHARE] > thresholds.max_zero_quantity_share]
    zq_examples, zq_observed = None, None
    if len(zq_bad):
        zq_examples = raw[cleaning.removed_mask("zero_quantity") & (raw[S.DAY] == zq_bad[S.DAY].iloc[0]).to_numpy()]
        zq_observed = {"failing_days": [{"day": str(d.date()), "share": round(float(s), 4)} for d, s in
                                        zip(zq_bad[S.DAY].head(MAX_EXAMPLES), zq_bad[ZERO_QUANTITY_SHARE])]}
    ex.append(Expect(
        gxe.ExpectColumnValuesToBeBetween(column=ZERO_QUANTITY_SHARE, max_value=thresholds.max_zero_quantity_share),
        f"share of quantity-0 lines (cleaning rule zero_quantity) <= {thresholds.max_zero_quantity_share:g} "
        "on every day of the run's windows",
        examples=zq_examples, observed=zq_observed))
    checks = run_expectations("transactions.cleaning", wide, ex, example_columns)
    return checks, table
