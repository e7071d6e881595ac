"""Task tables of a run: GMV, purchase, LTV and replay requests.

``build_task_tables(lines, windows, config)`` takes cleaned purchase lines strictly
before the run date and returns every table; ``prepare_run`` does load -> clean ->
windows -> tables from a dataset spec. No feature uses information from the row's
own day or later (``features.build_aggregates`` / ``join_features``).

Tables (one parquet file each, written with an explicit arrow schema):
- gmv:      one row per purchase line in [train_start, run_date); label ``gmv``.
- purchase: per user-day from ``purchase_train_days`` before the val window up to
            run_date (train, val and eval splits): the items bought
            (label 1, ``gmv`` realised) and ``negatives_per_positive`` items sampled
            from that day's active catalogue (label 0, gmv 0); GMV features included
            so the same rows score with the GMV models. ``hist_len`` = lines before.
- replay:   the eval-window rows of ``purchase`` with ``request_id`` = user|day:
            what the shadow A/B replays (rank by p(buy) x GMV, realised value gmv).
- ltv:      customers whose first purchase day f leaves a full first period and
            horizon before run_date: first-period features -> spend over the
            ``ltv_horizon_days`` after it. Cohorts starting in the first
            ``ltv_first_period_days`` of the data are left out (customers seen then
            may be old customers: left censoring).
- events:   the cleaned purchase lines before run_date, the whole behaviour log
            (DMQN reads a user's sequence from it, day < the request day).

An interaction table (a dataset spec without prices, ``DatasetSpec.has_prices``) has no
GMV: ``gmv`` and ``ltv`` are written empty (with their schemas, so a pipeline's graph is
the same) and ``TaskTables.skipped`` says why; the stages that need them say they are
skipped. The purchase table's ``gmv`` column then holds the line's quantity.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import fsspec
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from quantrec.data import schema as S
from quantrec.dataclass_io import build_dataclass
from quantrec.data.clean import CleaningReport, clean_transactions
from quantrec.data.features import FeatureAggregates, build_aggregates, join_features
from quantrec.data.load import load_transactions
from quantrec.data.spec import NO_PRICES, DatasetSpec, load_spec, resolve_data_url
from quantrec.data.windows import WindowConfig, Windows, compute_windows, parse_run_date

TABLE_NAMES = ("gmv", "purchase", "replay", "ltv", "events")


@dataclass(frozen=True)
class TaskConfig:
    windows: WindowConfig = field(default_factory=WindowConfig)
    purchase_train_days: int = 60    # calendar days of purchase-task training rows before val
    negatives_per_positive: int = 4
    ltv_first_period_days: int = 30
    ltv_horizon_days: int = 365
    ltv_val_share: float = 0.1       # latest cohorts: eval, the ones before: val
    ltv_eval_share: float = 0.2
    seed: int = 0

    def __post_init__(self) -> None:
        from quantrec.dataclass_io import ConfigError
        for key in ("purchase_train_days", "negatives_per_positive", "ltv_first_period_days", "ltv_horizon_days"):
            if getattr(self, key) < 1:
                raise ConfigError(key, f"must be at least 1, got {getattr(self, key)}")
        for key in ("ltv_val_share", "ltv_eval_share"):
            if not 0.0 <= getattr(self, key) < 1.0:
                raise ConfigError(key, f"must be in [0, 1), got {getattr(self, key)}")
        if self.ltv_val_share + self.ltv_eval_share >= 1.0:
            raise ConfigError("ltv_eval_share", "ltv_val_share + ltv_eval_share must leave training rows (< 1)")

    @classmethod
    def from_dict(cls, raw: dict | None) -> "TaskConfig":
        return build_dataclass(cls, raw)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class TaskTables:
    windows: Windows
    tables: dict[str, pd.DataFrame]
    cleaning: CleaningReport | None = None
    config: TaskConfig = field(default_factory=TaskConfig)
    skipped: dict[str, str] = field(default_factory=dict)   # table -> why it is empty on purpose

    def sizes(self) -> dict[str, dict[str, int]]:
        """Rows per table and split (tables without a split count under 'all')."""
        out = {}
        for name, df in self.tables.items():
            counts = {"all": int(len(df))}
            if S.SPLIT in df.columns:
                counts.update({k: int(v) for k, v in df[S.SPLIT].value_counts().items()})
            out[name] = counts
        return out


def _split_rows(df: pd.DataFrame, windows: Windows) -> pd.DataFrame:
    split = windows.split_of(df[S.DAY])
    df = df.assign(**{S.SPLIT: split.to_numpy()})
    return df[df[S.SPLIT].notna()].reset_index(drop=True)


def build_gmv_task(lines: pd.DataFrame, windows: Windows, aggregates: FeatureAggregates) -> pd.DataFrame:
    """One row per purchase line in the run's windows, with history features and splits."""
    rows = _split_rows(lines[lines[S.DAY] >= windows.train_start], windows)
    feats = join_features(aggregates, rows)
    keep = [S.ORDER, S.USER, S.ITEM, S.COUNTRY, S.DAY, S.TS, S.QUANTITY, S.UNIT_PRICE, S.VALUE, S.SPLIT]
    return pd.concat([rows[keep], feats], axis=1)


def build_purchase_task(lines: pd.DataFrame, windows: Windows, config: TaskConfig,
                        aggregates: FeatureAggregates) -> pd.DataFrame:
    """Positives (items bought per user-day) + negatives sampled from the day's catalogue.

    Negatives are drawn uniformly (seeded) from the items sold that day by anyone,
    excluding the user's own purchases that day; a user-day with p positives gets
    up to ``negatives_per_positive * p`` distinct negatives.
    """
    start = max(windows.train_start, windows.val_start - pd.Timedelta(days=config.purchase_train_days))
    win = lines[lines[S.DAY] >= start]
    pos = (win.groupby([S.USER, S.DAY, S.ITEM], sort=True, observed=True)
           .agg(**{S.VALUE: (S.VALUE, "sum"), S.TS: (S.TS, "min"), S.COUNTRY: (S.COUNTRY, "first")})
           .reset_index())
    # The request happens at the user's first event of the day; all candidates share it.
    first_ts = pos.groupby([S.USER, S.DAY], sort=False)[S.TS].transform("min")
    pos[S.TS] = first_ts
    pos[S.LABEL] = 1
    rng = np.random.default_rng(config.seed)
    negs = []
    catalogue = win.groupby(S.DAY, sort=True)[S.ITEM].unique()
    k = config.negatives_per_positive
    for day, day_pos in pos.groupby(S.DAY, sort=True):
        items = np.asarray(catalogue[day], dtype=object)
        users = day_pos.groupby(S.USER, sort=False)
        n_pos = users.size()
        want = (n_pos.to_numpy() * k)
        draws = rng.integers(0, len(items), size=int(want.sum()))
        cand = pd.DataFrame({S.USER: np.repeat(n_pos.index.to_numpy(), want), S.ITEM: items[draws]})
        cand = cand.drop_duplicates()
        bought = day_pos[[S.USER, S.ITEM]].assign(_b=1)
        cand = cand.merge(bought, on=[S.USER, S.ITEM], how="left")
        cand = cand[cand["_b"].isna()].drop(columns="_b")
        meta = day_pos.groupby(S.USER, sort=False).agg(**{S.TS: (S.TS, "first"), S.COUNTRY: (S.COUNTRY, "first")})
        cand = cand.join(meta, on=S.USER)
        cand[S.DAY] = day
        negs.append(cand)
    neg = pd.concat(negs, ignore_index=True) if negs else pos.iloc[:0]
    neg[S.VALUE] = 0.0
    neg[S.LABEL] = 0
    rows = pd.concat([pos, neg[pos.columns]], ignore_index=True)
    rows = _split_rows(rows.sort_values([S.DAY, S.USER, S.LABEL, S.ITEM],
                                        ascending=[True, True, False, True], kind="stable"), windows)
    feats = join_features(aggregates, rows)
    rows["hist_len"] = feats["u_lines"].fillna(0).astype("int64").to_numpy()
    return pd.concat([rows, feats], axis=1)


def build_replay_requests(purchase: pd.DataFrame) -> pd.DataFrame:
    """Eval-window candidate lists: one request per user-day (see module docstring)."""
    rep = purchase[purchase[S.SPLIT] == "eval"].copy()
    rep.insert(0, S.REQUEST_ID, rep[S.USER].astype(str) + "|" + rep[S.DAY].dt.strftime("%Y-%m-%d"))
    return rep.reset_index(drop=True)


def build_ltv_task(lines: pd.DataFrame, windows: Windows, config: TaskConfig) -> pd.DataFrame:
    """First-period features -> spend over the following horizon, one row per customer.

    Split by cohort (first purchase day): the latest ``ltv_eval_share`` of customers
    are 'eval', the ``ltv_val_share`` before them 'val', the rest 'train'; a time split,
    so no cohort is scored by a model that saw later cohorts.
    """
    fp, hz = pd.Timedelta(days=config.ltv_first_period_days), pd.Timedelta(days=config.ltv_horizon_days)
    first = lines.groupby(S.USER, observed=True)[S.DAY].min().rename("cohort_day")
    data_start = lines[S.DAY].min()
    eligible = first[(first >= data_start + fp) & (first + fp + hz <= windows.run_date)]
    if eligible.empty:
        cols = [S.USER, S.COUNTRY, "cohort_day"] + S.LTV_FEATURES + [S.LTV_LABEL, S.SPLIT]
        return pd.DataFrame(columns=cols)
    df = lines.join(eligible, on=S.USER, how="inner")
    in_fp = df[S.DAY] < df["cohort_day"] + fp
    in_hz = ~in_fp & (df[S.DAY] < df["cohort_day"] + fp + hz)
    f = df[in_fp]
    g = f.groupby(S.USER, observed=True)
    feats = pd.DataFrame({
        "fp_spend": g[S.VALUE].sum(),
        "fp_lines": g[S.VALUE].size(),
        "fp_orders": g[S.ORDER].nunique(),
        "fp_items": g[S.ITEM].nunique(),
        "fp_days": g[S.DAY].nunique(),
        "fp_log_gmv_mean": g[S.VALUE].apply(lambda v: float(np.log1p(v).mean())),
        "fp_log_qty_mean": g[S.QUANTITY].apply(lambda v: float(np.log1p(v).mean())),
        "fp_first_day_spend": f[f[S.DAY] == f["cohort_day"]].groupby(S.USER, observed=True)[S.VALUE].sum(),
        S.COUNTRY: g[S.COUNTRY].first(),
    })
    feats[S.LTV_LABEL] = df[in_hz].groupby(S.USER, observed=True)[S.VALUE].sum()
    feats[S.LTV_LABEL] = feats[S.LTV_LABEL].fillna(0.0)
    feats = feats.join(eligible).reset_index().sort_values(["cohort_day", S.USER], kind="stable")
    n = len(feats)
    n_eval, n_val = int(round(n * config.ltv_eval_share)), int(round(n * config.ltv_val_share))
    split = np.array(["train"] * (n - n_eval - n_val) + ["val"] * n_val + ["eval"] * n_eval, dtype=object)
    feats[S.SPLIT] = split
    return feats.reset_index(drop=True)


def empty_table(name: str) -> pd.DataFrame:
    """A task table with no rows and the columns (and dtypes) of its declared schema."""
    return TABLE_SCHEMAS[name].empty_table().to_pandas()


def build_task_tables(lines: pd.DataFrame, windows: Windows, config: TaskConfig = TaskConfig(),
                      cleaning: CleaningReport | None = None, has_prices: bool = True) -> TaskTables:
    """All task tables from cleaned purchase lines (any days; only < run_date are used).

    ``has_prices`` False (an interaction table): ``gmv`` and ``ltv`` are empty and
    listed in ``TaskTables.skipped`` with the reason."""
    lines = lines[lines[S.DAY] < windows.run_date].reset_index(drop=True)
    aggregates = build_aggregates(lines, as_of=windows.run_date)  # once, for every table
    purchase = build_purchase_task(lines, windows, config, aggregates)
    skipped = {} if has_prices else {"gmv": NO_PRICES, "ltv": NO_PRICES}
    tables = {
        "gmv": build_gmv_task(lines, windows, aggregates) if has_prices else empty_table("gmv"),
        "purchase": purchase,
        "replay": build_replay_requests(purchase),
        "ltv": build_ltv_task(lines, windows, config) if has_prices else empty_table("ltv"),
        "events": lines[[S.USER, S.ITEM, S.ORDER, S.TS, S.DAY, S.QUANTITY, S.UNIT_PRICE, S.VALUE, S.COUNTRY]],
    }
    return TaskTables(windows=windows, tables=tables, cleaning=cleaning, config=config, skipped=skipped)


def tables_from_raw(raw: pd.DataFrame, run_date: str | pd.Timestamp, spec: DatasetSpec,
                    config: TaskConfig = TaskConfig()) -> TaskTables:
    """Clean -> windows -> task tables from canonical raw rows (``load.load_transactions``
    output, e.g. the validated snapshot of a run); rows on or after run_date are ignored."""
    d = parse_run_date(run_date)
    raw = raw[raw[S.DAY] < d]
    windows = compute_windows(raw[S.DAY], d, config.windows)
    lines, report = clean_transactions(raw, spec.cleaning)
    return build_task_tables(lines, windows, config, cleaning=report, has_prices=spec.has_prices)


def prepare_run(run_date: str, data: str | None = None, spec: DatasetSpec | None = None,
                config: TaskConfig = TaskConfig()) -> TaskTables:
    """Load -> clean -> windows -> task tables for a run on ``run_date``."""
    spec = spec or load_spec()
    d = parse_run_date(run_date)
    raw = load_transactions(resolve_data_url(spec, data), spec, before=d)
    return tables_from_raw(raw, d, spec, config)


# ---- parquet with explicit schemas ---------------------------------------------------
_F64, _STR, _TS, _I64, _BOOL = pa.float64(), pa.string(), pa.timestamp("ns"), pa.int64(), pa.bool_()
_FEATURE_FIELDS = [(c, _F64) for c in S.NUMERIC_FEATURES] + [(S.IS_NEW_USER, _BOOL)]
TABLE_SCHEMAS: dict[str, pa.Schema] = {
    "gmv": pa.schema([(S.ORDER, _STR), (S.USER, _STR), (S.ITEM, _STR), (S.COUNTRY, _STR), (S.DAY, _TS),
                      (S.TS, _TS), (S.QUANTITY, _F64), (S.UNIT_PRICE, _F64), (S.VALUE, _F64),
                      (S.SPLIT, _STR)] + _FEATURE_FIELDS),
    "purchase": pa.schema([(S.USER, _STR), (S.DAY, _TS), (S.ITEM, _STR), (S.VALUE, _F64), (S.TS, _TS),
                           (S.COUNTRY, _STR), (S.LABEL, _I64), (S.SPLIT, _STR), ("hist_len", _I64)]
                          + _FEATURE_FIELDS),
    "ltv": pa.schema([(S.USER, _STR)] + [(c, _F64) for c in S.LTV_FEATURES]
                     + [(S.COUNTRY, _STR), (S.LTV_LABEL, _F64), ("cohort_day", _TS), (S.SPLIT, _STR)]),
    "events": pa.schema([(S.USER, _STR), (S.ITEM, _STR), (S.ORDER, _STR), (S.TS, _TS), (S.DAY, _TS),
                         (S.QUANTITY, _F64), (S.UNIT_PRICE, _F64), (S.VALUE, _F64), (S.COUNTRY, _STR)]),
}
TABLE_SCHEMAS["replay"] = pa.schema([(S.REQUEST_ID, _STR)] + list(TABLE_SCHEMAS["purchase"]))


def write_table(df: pd.DataFrame, path: str, name: str) -> str:
    """Write ``df`` as parquet through fsspec, cast to the table's declared schema.

    A column missing from ``df`` or of an incompatible type raises here, at the
    producer, instead of surfacing as a confusing error downstream.
    """
    schema = TABLE_SCHEMAS[name]
    missing = [f.name for f in schema if f.name not in df.columns]
    if missing:
        raise ValueError(f"table {name!r} lacks the column(s) {missing}")
    frame = df[[f.name for f in schema]]
    for f in schema:  # int columns with NaN cannot cast: say so
        if pa.types.is_integer(f.type) and frame[f.name].isna().any():
            raise ValueError(f"table {name!r}: integer column {f.name!r} has nulls")
    table = pa.Table.from_pandas(frame, schema=schema, preserve_index=False)
    with fsspec.open(path, "wb") as fh:
        pq.write_table(table, fh, compression="zstd")
    return path


def read_table(path: str, columns: list[str] | None = None) -> pd.DataFrame:
    """Read a task table written by ``write_table`` (through fsspec)."""
    with fsspec.open(path, "rb") as fh:
        return pq.read_table(fh, columns=columns).to_pandas()
