"""What every data-driven benchmark shares: the dataset / window arguments and a table
cache keyed by a fingerprint of what the tables are built from.

Arguments (``add_data_args``): ``--data`` (table URL; default: the spec's path or
$QUANTREC_DATA), ``--spec`` (dataset spec YAML; default: the embedded Online Retail II
spec or $QUANTREC_SPEC), ``--run-date`` (default: the day after the data's last day),
``--eval-days / --val-days / --train-days`` and ``--cache-dir``.

Cache: ``<cache-dir>/<key>/<table>.parquet`` + ``meta.json``. The key is the sha256 of
the data file's bytes, the spec (minus its location), the run date, the windows, the
task settings and the source of the modules that build the tables (``CODE_FILES``), so
another dataset, spec, window or feature code never reads a cached table of another
(a missing data file is an error, never a cache hit). A table that cannot be built on
a dataset (e.g. the LTV table on a history shorter than first period + horizon) is
recorded as skipped with the reason; the benchmark runs the other tables.

    from common import add_data_args, resolve_choice, load_tables
    choice = resolve_choice(args)            # errors: DataError / SpecError / WindowError
    bundle = load_tables(choice, ("gmv", "ltv"), args.cache_dir)
    bundle.tables["gmv"], bundle.skipped     # {"ltv": "no customer ..."} when skipped
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from quantrec.data import schema as S  # noqa: E402
from quantrec.data.spec import DatasetSpec, load_spec, repo_root, resolve_data_url  # noqa: E402
from quantrec.data.tasks import TaskConfig  # noqa: E402
from quantrec.data.windows import WindowConfig, parse_run_date  # noqa: E402
from quantrec.redact import redact  # noqa: E402

#: bump when the cache layout changes
CACHE_FORMAT = 1
#: modules whose source decides the tables' content (their bytes go into the key)
CODE_FILES = ("quantrec/data/load.py", "quantrec/data/clean.py", "quantrec/data/windows.py",
              "quantrec/data/features.py", "quantrec/data/schema.py", "quantrec/data/tasks.py")
#: the tables a value benchmark can ask for, and their label columns
LABELS = {"gmv": S.VALUE, "ltv": S.LTV_LABEL}
DEFAULT_CACHE = os.environ.get("QUANTREC_BENCH_CACHE", "/tmp/quantrec_bench")


class BenchmarkError(ValueError):
    """A benchmark cannot run on the given data / arguments (the message says why)."""


# ---- arguments -----------------------------------------------------------------------
def add_data_args(ap: argparse.ArgumentParser, run_date: str | None = None, eval_days: int = 14,
                  val_days: int = 7, train_days: int = 365) -> argparse.ArgumentParser:
    """Add --data --spec --run-date --eval-days --val-days --train-days --cache-dir."""
    g = ap.add_argument_group("data and windows")
    g.add_argument("--data", default=None, help="transactions table (path, file:// or gs:// URL); "
                                                "default: the spec's path or $QUANTREC_DATA")
    g.add_argument("--spec", default=None, help="dataset spec YAML; default: Online Retail II or $QUANTREC_SPEC")
    g.add_argument("--run-date", default=run_date,
                   help="the run's day D (data before D only); default "
                        + (run_date or "the day after the data's last day"))
    g.add_argument("--eval-days", type=int, default=eval_days, help="trading days of the eval window")
    g.add_argument("--val-days", type=int, default=val_days, help="trading days of the val window")
    g.add_argument("--train-days", type=int, default=train_days, help="calendar days of the train window")
    g.add_argument("--cache-dir", default=DEFAULT_CACHE, help="task-table cache (keyed by a fingerprint)")
    return ap


@dataclass(frozen=True)
class DataChoice:
    """Resolved data, spec, run date and windows of a benchmark run."""

    data_url: str
    spec: DatasetSpec
    run_date: pd.Timestamp
    windows: WindowConfig
    task_config: TaskConfig = field(default_factory=TaskConfig)

    def describe(self) -> dict[str, Any]:
        """JSON-able summary (the URL redacted) for results files."""
        return {"data": redact(self.data_url), "spec": self.spec.name,
                "run_date": str(self.run_date.date()), "windows": asdict(self.windows)}


def resolve_choice(args: argparse.Namespace) -> DataChoice:
    """Spec + data URL + run date + windows from parsed ``add_data_args`` arguments.

    Raises SpecError (bad spec), DataError (missing / unreadable data) or a
    ConfigError / WindowError (bad window sizes or run date)."""
    from quantrec.data.load import latest_day
    spec = load_spec(args.spec)
    url = resolve_data_url(spec, args.data)
    if args.run_date:
        run_date = parse_run_date(args.run_date)
    else:
        run_date = latest_day(url, spec) + pd.Timedelta(days=1)
    windows = WindowConfig(eval_days=args.eval_days, val_days=args.val_days, train_days=args.train_days)
    cfg = TaskConfig(windows=windows)
    return DataChoice(url, spec, run_date, windows, cfg)


# ---- fingerprint -----------------------------------------------------------------------
def data_fingerprint(url: str) -> str:
    """sha256 of the data's bytes (a folder: of its files' relative paths and bytes).

    A missing path raises DataError naming it (redacted), never a cache hit."""
    import fsspec

    from quantrec.data.load import DataError
    fs, path = fsspec.core.url_to_fs(url)
    if not fs.exists(path):
        raise DataError(f"data not found: {redact(url)}")
    files = sorted(fs.find(path)) if fs.isdir(path) else [path]
    h = hashlib.sha256()
    for f in files:
        h.update(os.path.relpath(f, path).encode() if f != path else b"")
        with fs.open(f, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()


def code_fingerprint(files: tuple[str, ...] = CODE_FILES) -> str:
    """sha256 of the table-building modules' source (a feature change = a new key)."""
    h = hashlib.sha256()
    root = repo_root()
    for rel in files:
        h.update(rel.encode())
        h.update((root / rel).read_bytes())
    return h.hexdigest()


def cache_key(data_digest: str, choice: DataChoice, code_digest: str | None = None) -> str:
    """Key of the tables built from ``choice`` on data with sha256 ``data_digest``."""
    spec = choice.spec.to_dict()
    spec.pop("path", None)  # where the data lives is not what it is (data_digest is)
    payload = {"format": CACHE_FORMAT, "data": data_digest, "spec": spec,
               "run_date": str(choice.run_date.date()), "task_config": choice.task_config.to_dict(),
               "code": code_digest if code_digest is not None else code_fingerprint()}
    blob = json.dumps(payload, sort_keys=True, default=str).encode()
    return f"{choice.spec.name}_{choice.run_date.date()}_{hashlib.sha256(blob).hexdigest()[:16]}"


# ---- usability of a table -------------------------------------------------------------
def unusable_reason(name: str, frame: pd.DataFrame | None) -> str | None:
    """Why a value-task table cannot be benchmarked (None = it can): it needs rows in
    the train, val and eval splits and at least two distinct training labels."""
    if frame is None or frame.empty:
        return f"the {name} table is empty on this data and windows"
    label = LABELS.get(name)
    if label not in frame.columns:
        return f"the {name} table has no label column {label!r}"
    counts = frame[S.SPLIT].value_counts()
    missing = [s for s in S.SPLITS if int(counts.get(s, 0)) == 0]
    if missing:
        return (f"the {name} table has no rows in the split(s) {missing} "
                f"(rows per split: {({s: int(counts.get(s, 0)) for s in S.SPLITS})})")
    y = frame.loc[frame[S.SPLIT] == "train", label]
    if y.nunique() < 2:
        return f"the {name} table's training labels are constant"
    return None


# ---- building and caching ---------------------------------------------------------------
@dataclass
class TableBundle:
    """Tables of one benchmark run: ``tables`` (name -> frame) and ``skipped`` (name ->
    reason) partition the requested names. ``meta``: what built them (cache meta.json)."""

    tables: dict[str, pd.DataFrame]
    skipped: dict[str, str]
    key: str
    meta: dict[str, Any]
    from_cache: bool = False


def _builders() -> dict[str, Callable]:
    from quantrec.data.tasks import build_gmv_task, build_ltv_task
    return {"gmv": lambda lines, w, cfg, agg: build_gmv_task(lines, w, agg),
            "ltv": lambda lines, w, cfg, agg: build_ltv_task(lines, w, cfg)}


def build_tables(choice: DataChoice, names: tuple[str, ...],
                 log: Callable[[str], None] = print) -> tuple[dict[str, pd.DataFrame], dict[str, str], dict]:
    """Load -> clean -> windows -> the requested tables (only those: no purchase table).

    Each table is built separately, so one that fails on this data (an error raised by
    its builder, or an unusable result) is skipped with its reason while the others
    are built. Raises only for what stops every table (missing data, bad run date)."""
    from quantrec.data.clean import clean_transactions
    from quantrec.data.features import build_aggregates
    from quantrec.data.spec import NO_PRICES
    from quantrec.data.load import load_transactions
    from quantrec.data.windows import compute_windows

    unknown = sorted(set(names) - set(LABELS))
    if unknown:
        raise BenchmarkError(f"unknown table(s) {unknown}; known: {sorted(LABELS)}")
    t0 = time.time()
    raw = load_transactions(choice.data_url, choice.spec, before=choice.run_date)
    windows = compute_windows(raw[S.DAY], choice.run_date, choice.windows)
    lines, _ = clean_transactions(raw, choice.spec.cleaning)
    lines = lines[lines[S.DAY] < choice.run_date].reset_index(drop=True)
    agg = build_aggregates(lines, as_of=choice.run_date) if "gmv" in names else None
    tables, skipped = {}, {}
    for name in names:
        if not choice.spec.has_prices:  # an interaction table: no GMV / LTV to learn
            skipped[name] = NO_PRICES
            continue
        try:
            frame = _builders()[name](lines, windows, choice.task_config, agg)
        except (ValueError, KeyError) as exc:  # a builder that cannot work on this data
            skipped[name] = f"building the {name} table failed: {type(exc).__name__}: {exc}"
            continue
        reason = unusable_reason(name, frame)
        if reason:
            skipped[name] = reason
        else:
            tables[name] = frame.reset_index(drop=True)
    info = {"windows": windows.to_dict(), "build_seconds": round(time.time() - t0, 1),
            "rows": {n: {s: int((f[S.SPLIT] == s).sum()) for s in S.SPLITS} for n, f in tables.items()}}
    return tables, skipped, info


def load_tables(choice: DataChoice, names: tuple[str, ...] = ("gmv", "ltv"), cache_dir: str = DEFAULT_CACHE,
                log: Callable[[str], None] = print, refresh: bool = False) -> TableBundle:
    """The requested tables from the cache (same fingerprint) or built and cached.

    Skipped tables are cached with their reason too (not rebuilt every run). A cache
    entry missing one of the requested tables is completed, not trusted."""
    digest = data_fingerprint(choice.data_url)
    key = cache_key(digest, choice)
    folder = Path(cache_dir) / key
    meta_path = folder / "meta.json"
    meta: dict[str, Any] = json.loads(meta_path.read_text()) if meta_path.exists() and not refresh else {}
    known = {**meta.get("tables", {}), **{n: None for n in meta.get("skipped", {})}}
    todo = tuple(n for n in names if n not in known or (n in meta.get("tables", {})
                                                          and not (folder / f"{n}.parquet").exists()))
    tables: dict[str, pd.DataFrame] = {}
    skipped: dict[str, str] = {n: r for n, r in meta.get("skipped", {}).items() if n in names and n not in todo}
    if todo:
        log(f"building task tables {list(todo)} for {choice.describe()} (cache key {key})")
        built, new_skipped, info = build_tables(choice, todo, log)
        folder.mkdir(parents=True, exist_ok=True)
        for name, frame in built.items():
            frame.to_parquet(folder / f"{name}.parquet")
        meta = {"key": key, "data_sha256": digest, **choice.describe(), "windows_days": info["windows"],
                "tables": {**meta.get("tables", {}), **info["rows"]},
                "skipped": {**{k: v for k, v in meta.get("skipped", {}).items() if k not in built},
                            **new_skipped},
                "build_seconds": info["build_seconds"]}
        meta_path.write_text(json.dumps(meta, indent=1))
        tables.update(built)
        skipped.update(new_skipped)
    for name in names:
        if name in tables or name in skipped:
            continue
        tables[name] = pd.read_parquet(folder / f"{name}.parquet")
    for name, reason in skipped.items():
        log(f"skipping the {name} task: {reason}")
    return TableBundle(tables={n: tables[n] for n in names if n in tables}, skipped=skipped, key=key,
                       meta=meta, from_cache=not todo)


def split_frames(frame: pd.DataFrame, max_train_rows: int = 0) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """(train, val, eval) of a task table; train keeps the ``max_train_rows`` most recent
    rows in time order (0 = all), as the daily pipeline does (``stages.common``)."""
    order_col = S.TS if S.TS in frame.columns else ("cohort_day" if "cohort_day" in frame.columns else None)
    tr = frame[frame[S.SPLIT] == "train"]
    if order_col is not None:
        tr = tr.sort_values(order_col, kind="stable")
    if max_train_rows and len(tr) > max_train_rows:
        tr = tr.iloc[-max_train_rows:]
    va = frame[frame[S.SPLIT] == "val"]
    ev = frame[frame[S.SPLIT] == "eval"]
    return tr.reset_index(drop=True), va.reset_index(drop=True), ev.reset_index(drop=True)


# ---- results files ------------------------------------------------------------------------
class ResultLog:
    """Records of a benchmark, written to ``path`` (JSON) after every record so a long
    run can be resumed: ``done(**key)`` tells whether a record with those fields exists."""

    def __init__(self, path: str | None, header: dict[str, Any], resume: bool = True) -> None:
        self.path = Path(path) if path else None
        self.header = dict(header)
        self.records: list[dict[str, Any]] = []
        if self.path and resume and self.path.exists():
            old = json.loads(self.path.read_text())
            if {k: old.get(k) for k in ("key",)} == {k: self.header.get(k) for k in ("key",)}:
                self.records = list(old.get("records", []))

    def done(self, **fields: Any) -> dict[str, Any] | None:
        for r in self.records:
            if all(r.get(k) == v for k, v in fields.items()):
                return r
        return None

    def add(self, record: dict[str, Any]) -> None:
        self.records.append(record)
        self.write()

    def write(self) -> None:
        if self.path is None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(self.path.suffix + ".tmp")
        tmp.write_text(json.dumps({**self.header, "records": self.records}, indent=1, default=float))
        tmp.replace(self.path)


def run_main(main: Callable[[list[str] | None], int | None], argv: list[str] | None = None) -> int:
    """Call a benchmark's ``main``; data / spec / window problems print one line on
    stderr and exit 2 (never a traceback, never cached results of other data)."""
    from quantrec.data.load import DataError
    from quantrec.data.spec import SpecError
    from quantrec.data.windows import WindowError
    from quantrec.dataclass_io import ConfigError
    try:
        return int(main(argv) or 0)
    except (BenchmarkError, DataError, SpecError, WindowError, ConfigError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


def mean_std(values: Any) -> tuple[float, float]:
    """(mean, population std) of a sequence over its non-NaN values (NaN, NaN if none:
    e.g. Spearman of a constant prediction is undefined)."""
    v = np.asarray(list(values), dtype=np.float64)
    v = v[~np.isnan(v)]
    return (float(v.mean()), float(v.std())) if v.size else (float("nan"), float("nan"))


def fmt_mean_std(values: Any, digits: int = 4) -> str:
    """'mean ± std' of ``mean_std``; '-' when undefined."""
    m, s = mean_std(values)
    return "-" if np.isnan(m) else f"{m:.{digits}f} ± {s:.{digits}f}"


# ---- models of the value benchmarks ---------------------------------------------------------
class GlobalMedian:
    """Baseline: the median of the training labels for every row (the best constant
    under MAE)."""

    display_name = "global median"

    def fit(self, train: pd.DataFrame, val: pd.DataFrame, label: str) -> "GlobalMedian":
        self.value = float(np.median(train[label].to_numpy(dtype=np.float64)))
        return self

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        return np.full(len(frame), self.value)


class ItemHistoryHeuristic:
    """Baseline from the row's own history features (all from strictly earlier days):
    the user's last GMV of this item if they bought it before (``ui_log_gmv_last``),
    else the item's typical line GMV (``i_log_gmv_mean``, a geometric mean), else the
    user's typical line GMV (``u_log_gmv_mean``), else the global training median.
    GMV task only (the LTV table has no item)."""

    display_name = "item-history heuristic"
    ORDER = ("ui_log_gmv_last", "i_log_gmv_mean", "u_log_gmv_mean")

    def fit(self, train: pd.DataFrame, val: pd.DataFrame, label: str) -> "ItemHistoryHeuristic":
        if label != S.VALUE:
            raise BenchmarkError("the item-history heuristic needs the GMV task's history features")
        self.fallback = float(np.median(train[label].to_numpy(dtype=np.float64)))
        return self

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        out = np.full(len(frame), np.nan)
        for col in self.ORDER:
            v = np.expm1(frame[col].to_numpy(dtype=np.float64))
            out = np.where(np.isnan(out), v, out)
        return np.where(np.isnan(out), self.fallback, out)


HEURISTICS = {"median": GlobalMedian, "item_history": ItemHistoryHeuristic}


def merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """Recursive dict merge (override wins; nested dicts merged)."""
    out = dict(base)
    for k, v in override.items():
        out[k] = merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def make_config(model: str, task: str, overrides: dict[str, Any] | None = None, seed: int = 0) -> Any:
    """The ``small()`` config of registry model ``model`` for ``task`` with ``overrides``
    (nested dicts, e.g. {"d_model": 128, "train": {"lr": 3e-3}}), seeded, quiet, one
    torch / LightGBM thread (the machine is shared; every model gets the same)."""
    from quantrec.dataclass_io import build_dataclass
    from quantrec.models import MODELS
    cls = MODELS[model].config_cls
    raw = merge(asdict(cls.small()), {"task": task, **(overrides or {})})
    if "train" in raw:
        raw["train"] = merge(raw["train"], {"seed": seed, "progress": False, "num_threads": 1})
    else:
        raw["seed"] = seed
        raw["params"] = merge(raw.get("params", {}), {"num_threads": 1})
    return build_dataclass(cls, raw)


def parse_overrides(text: str) -> tuple[str, dict[str, Any]]:
    """'NAME:key=value,train.lr=0.003' -> (NAME, {"key": value, "train": {"lr": 0.003}})
    (values parsed as Python literals, else kept as strings)."""
    import ast
    name, sep, kv = text.partition(":")
    if not sep:
        raise BenchmarkError(f"expected NAME:key=value,... got {text!r}")
    out: dict[str, Any] = {}
    for item in filter(None, (t.strip() for t in kv.split(","))):
        key, _, value = item.partition("=")
        try:
            parsed = ast.literal_eval(value.strip())
        except (ValueError, SyntaxError):
            parsed = value.strip()
        node = out
        parts = key.strip().split(".")
        for p in parts[:-1]:
            node = node.setdefault(p, {})
        node[parts[-1]] = parsed
    return name.strip(), out


def fit_record(model: str, task: str, overrides: dict[str, Any], seed: int, train: pd.DataFrame,
               val: pd.DataFrame, score: dict[str, pd.DataFrame]) -> tuple[dict[str, Any], Any]:
    """Fit one model (registry name or a HEURISTICS key) on ``train`` with early stopping
    on ``val``; metrics (``regression_metrics``) on every frame of ``score`` (split name
    -> frame). Returns (record, fitted model)."""
    from quantrec.evaluation.metrics import regression_metrics
    from quantrec.models import MODELS
    label = LABELS[task]
    t0 = time.time()
    if model in HEURISTICS:
        fitted = HEURISTICS[model]().fit(train, val, label)
        rec: dict[str, Any] = {}
    else:
        cfg = make_config(model, task, overrides, seed)
        fitted = MODELS[model](cfg)
        result = fitted.fit(train, val)
        rec = {"epochs_run": int(result.epochs_run), "best_epoch": int(result.best_epoch),
               "best_val_metric": float(result.best_metric),
               "val_history": [round(float(h["val_metric"]), 4) for h in result.history]}
    rec["fit_seconds"] = round(time.time() - t0, 1)
    for split, frame in score.items():
        t1 = time.time()
        m = regression_metrics(frame[label].to_numpy(), fitted.predict(frame))
        rec[split] = {k: float(v) for k, v in m.items()}
        rec[f"{split}_predict_seconds"] = round(time.time() - t1, 2)
    return rec, fitted
