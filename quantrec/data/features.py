"""Point-in-time history features for (user, item, time) queries.

A query row asks "what did we know about this user, this item and this pair before
the query's day?". Every feature is built from purchase lines of strictly earlier
days, in two steps that training and serving share (no train/serve skew):

* ``build_aggregates(lines, as_of)``: daily aggregates cumulated per key;
* ``join_features(aggregates, queries)``: ``merge_asof`` with
  ``allow_exact_matches=False`` on the day, so a query on day X matches the last
  aggregate of a day < X. Undefined features (no earlier history) are NaN.

Task building builds the aggregates once per run and joins every table's rows;
serving joins requests against ``aggregates.latest()``, the state as of run_date.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from quantrec.data import schema as S


def _asof(queries: pd.DataFrame, table: pd.DataFrame, by: list[str]) -> pd.DataFrame:
    """Join each query with the last row of ``table`` (same ``by`` keys) of a day < query day."""
    left = queries[by + ["_q", S.DAY]].sort_values(S.DAY, kind="stable")
    right = table.sort_values(S.DAY, kind="stable").rename(columns={S.DAY: "_hist_day"})
    right[S.DAY] = right["_hist_day"]
    # merge_asof needs identical key dtypes on both sides (object vs string fails)
    left = left.astype({k: "string" for k in by})
    right = right.astype({k: "string" for k in by})
    out = pd.merge_asof(left, right, on=S.DAY, by=by, allow_exact_matches=False,
                        direction="backward")
    return out.set_index("_q").sort_index()


def _cumulate(daily: pd.DataFrame, by: list[str], sums: list[str]) -> pd.DataFrame:
    daily = daily.sort_values(by + [S.DAY], kind="stable")
    daily[sums] = daily.groupby(by, sort=False)[sums].cumsum()
    return daily


def _std(total: pd.Series, total_sq: pd.Series, n: pd.Series) -> np.ndarray:
    """Population std from running sums (NaN without history; >= 0 despite rounding)."""
    n = n.to_numpy(dtype="float64")
    mean = total.to_numpy(dtype="float64") / n
    var = total_sq.to_numpy(dtype="float64") / n - mean ** 2
    return np.sqrt(np.clip(var, 0.0, None))


def _days_between(later: pd.Series, earlier: pd.Series) -> pd.Series:
    return (later - earlier).dt.days.astype("float64")


@dataclass(frozen=True)
class FeatureAggregates:
    """Cumulative daily aggregates of purchase lines, per user, item and user-item pair.

    Each table has one row per (key, day with purchases) holding the running totals up
    to and including that day; ``as_of``: only lines of days < as_of went in (None =
    all given lines). ``join_features`` reads a query's features from the last row of a
    day strictly before the query's day, so the same tables serve task building (every
    historical day) and serving (``latest()``: one row per key, what a cache stores).
    """

    user: pd.DataFrame
    item: pd.DataFrame
    user_item: pd.DataFrame
    as_of: pd.Timestamp | None = None

    def latest(self) -> "FeatureAggregates":
        """One row per key: the state after the last day. Joins equal those of the full
        tables for any query day >= as_of (no later row exists to match instead)."""
        def last(df: pd.DataFrame, by: list[str]) -> pd.DataFrame:
            return df.sort_values(S.DAY, kind="stable").groupby(by, sort=False, observed=True).tail(1) \
                     .reset_index(drop=True)
        return FeatureAggregates(last(self.user, [S.USER]), last(self.item, [S.ITEM]),
                                 last(self.user_item, [S.USER, S.ITEM]), self.as_of)


def build_aggregates(lines: pd.DataFrame, as_of: pd.Timestamp | str | None = None) -> FeatureAggregates:
    """Cumulative per-key aggregates of ``lines`` (cleaned purchase lines: USER, ITEM,
    ORDER, TS, DAY, QUANTITY, UNIT_PRICE, GMV) of days < ``as_of`` (None = all)."""
    if as_of is not None:
        as_of = pd.Timestamp(as_of).normalize()
        lines = lines[lines[S.DAY] < as_of]
    lines = lines[[S.USER, S.ITEM, S.ORDER, S.DAY, S.TS, S.QUANTITY, S.UNIT_PRICE, S.VALUE]].copy()
    lines["_lg"] = np.log1p(lines[S.VALUE])
    lines["_lq"] = np.log1p(lines[S.QUANTITY])
    lines["_lg2"] = lines["_lg"] ** 2
    lines["_lp"] = np.log1p(lines[S.UNIT_PRICE])

    # --- user: per user-day sums, cumulated ---------------------------------------
    orders = (lines.groupby([S.USER, S.DAY, S.ORDER], sort=False, observed=True)[S.VALUE].sum()
              .reset_index())
    orders["_log_order"] = np.log1p(orders[S.VALUE])
    u_orders = orders.groupby([S.USER, S.DAY], sort=False, observed=True).agg(
        u_orders=(S.ORDER, "size"), _log_order=("_log_order", "sum"))
    u = lines.groupby([S.USER, S.DAY], sort=False, observed=True).agg(
        u_lines=(S.VALUE, "size"), u_spend=(S.VALUE, "sum"), _lg=("_lg", "sum"), _lq=("_lq", "sum"),
        _lg2=("_lg2", "sum"), _lp=("_lp", "sum"), u_last_day_log_gmv_mean=("_lg", "mean"))
    u = u.join(u_orders).reset_index()
    u["u_days"] = 1
    u = _cumulate(u, [S.USER], ["u_lines", "u_spend", "_lg", "_lq", "_lg2", "_lp", "u_orders", "_log_order",
                                "u_days"])
    u["_first_day"] = u.groupby(S.USER, sort=False)[S.DAY].transform("min")

    # --- item ---------------------------------------------------------------------
    it = lines.groupby([S.ITEM, S.DAY], sort=False, observed=True).agg(
        i_lines=(S.VALUE, "size"), _lg=("_lg", "sum"), _lq=("_lq", "sum"), _lg2=("_lg2", "sum"),
        _lp=("_lp", "sum"), i_price_last=(S.UNIT_PRICE, "median"),
        i_qty_last=(S.QUANTITY, "median")).reset_index()
    it = _cumulate(it, [S.ITEM], ["i_lines", "_lg", "_lq", "_lg2", "_lp"])

    # --- user x item: count and the last line of the pair -------------------------
    last = lines.sort_values(S.TS, kind="stable")
    ui = last.groupby([S.USER, S.ITEM, S.DAY], sort=False, observed=True).agg(
        ui_lines=(S.VALUE, "size"), ui_log_gmv_last=("_lg", "last"),
        ui_log_qty_last=("_lq", "last")).reset_index()
    ui = _cumulate(ui, [S.USER, S.ITEM], ["ui_lines"])
    return FeatureAggregates(u.reset_index(drop=True), it.reset_index(drop=True), ui.reset_index(drop=True), as_of)


def join_features(aggregates: FeatureAggregates, queries: pd.DataFrame) -> pd.DataFrame:
    """NUMERIC_FEATURES for each query from the aggregates of days strictly before its day.

    queries: rows with USER, ITEM, DAY, TS (the request time, for context features).
    Returns a frame aligned with ``queries.index``: NUMERIC_FEATURES (float64, NaN =
    no history) and IS_NEW_USER (bool).
    """
    q = queries[[S.USER, S.ITEM, S.DAY, S.TS]].copy()
    q["_q"] = np.arange(len(q))
    out = pd.DataFrame(index=np.arange(len(q)))

    ju = _asof(q, aggregates.user, [S.USER])
    for c in ["u_lines", "u_days", "u_orders", "u_spend"]:
        out[c] = ju[c].to_numpy(dtype="float64")
    out["u_log_gmv_mean"] = (ju["_lg"] / ju["u_lines"]).to_numpy(dtype="float64")
    out["u_log_qty_mean"] = (ju["_lq"] / ju["u_lines"]).to_numpy(dtype="float64")
    out["u_log_order_gmv_mean"] = (ju["_log_order"] / ju["u_orders"]).to_numpy(dtype="float64")
    out["u_log_gmv_std"] = _std(ju["_lg"], ju["_lg2"], ju["u_lines"])
    out["u_log_price_mean"] = (ju["_lp"] / ju["u_lines"]).to_numpy(dtype="float64")
    out["u_last_day_log_gmv_mean"] = ju["u_last_day_log_gmv_mean"].to_numpy(dtype="float64")
    out["u_recency_days"] = _days_between(ju[S.DAY], ju["_hist_day"]).to_numpy()
    out["u_tenure_days"] = _days_between(ju[S.DAY], ju["_first_day"]).to_numpy()

    ji = _asof(q, aggregates.item, [S.ITEM])
    out["i_lines"] = ji["i_lines"].to_numpy(dtype="float64")
    out["i_log_gmv_mean"] = (ji["_lg"] / ji["i_lines"]).to_numpy(dtype="float64")
    out["i_log_qty_mean"] = (ji["_lq"] / ji["i_lines"]).to_numpy(dtype="float64")
    out["i_price_last"] = ji["i_price_last"].to_numpy(dtype="float64")
    out["i_log_gmv_std"] = _std(ji["_lg"], ji["_lg2"], ji["i_lines"])
    out["i_log_price_mean"] = (ji["_lp"] / ji["i_lines"]).to_numpy(dtype="float64")
    out["i_qty_last"] = ji["i_qty_last"].to_numpy(dtype="float64")
    out["i_recency_days"] = _days_between(ji[S.DAY], ji["_hist_day"]).to_numpy()

    jui = _asof(q, aggregates.user_item, [S.USER, S.ITEM])
    for c in ["ui_lines", "ui_log_gmv_last", "ui_log_qty_last"]:
        out[c] = jui[c].to_numpy(dtype="float64")

    # --- context of the request itself (known at request time) ---------------------
    ts = q[S.TS].reset_index(drop=True)
    out["weekday"] = ts.dt.weekday.astype("float64").to_numpy()
    out["hour"] = ts.dt.hour.astype("float64").to_numpy()
    out["month"] = ts.dt.month.astype("float64").to_numpy()

    out[S.IS_NEW_USER] = out["u_lines"].isna().to_numpy()
    out.index = queries.index
    return out[S.NUMERIC_FEATURES + [S.IS_NEW_USER]]
