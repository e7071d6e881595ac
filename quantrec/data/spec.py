"""Dataset specs: a YAML file that maps a user's transactions table onto canonical roles.

The spec names the table (local path, file:// or gs:// URL, parquet or csv), which of
its columns play the canonical roles of ``schema.TRANSACTION_COLUMNS``, the cleaning
rules and the validation thresholds.

Two kinds of table:
- transactions (the default): ``unit_price`` or ``value`` is mapped; every task is built.
- interactions: neither is mapped (user, item, timestamp, optionally a quantity and a
  ``label`` column such as a rating). Every line is worth its quantity (1 when unmapped)
  in place of a GMV; only the purchase / interaction task, its replay requests and the
  events are built; the GMV stages (codebook, GMV models, shadow A/B on GMV) say they are
  skipped. With a ``label`` column, ``cleaning.min_label`` says which rows are positive
  interactions (e.g. rating >= 4); the others are removed by the counted cleaning rule
  ``below_min_label``. ``load_spec()`` with no argument returns the spec
of the embedded default dataset (Online Retail II).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import fsspec
import yaml

from quantrec.data import schema
from quantrec.dataclass_io import build_dataclass
from quantrec.redact import redact

DATA_ENV = "QUANTREC_DATA"
SPEC_ENV = "QUANTREC_SPEC"
REQUIRED_ROLES = (schema.USER, schema.ITEM, schema.TS)
OPTIONAL_ROLES = (schema.QUANTITY, schema.ORDER, schema.COUNTRY, schema.UNIT_PRICE, "value", "label")
TS_UNITS = ("s", "ms", "us", "ns")
NO_PRICES = ("the dataset spec maps no unit_price or value column (an interaction table): "
             "there is no GMV to learn")
UCI_HINT = (
    "The default dataset is Online Retail II (UCI Machine Learning Repository, "
    "DOI 10.24432/C5CG6D). Download the workbook from UCI yourself and convert it with "
    "`quantrec import-uci online_retail_II.xlsx OUT.parquet`, then pass --data OUT.parquet "
    "or set QUANTREC_DATA."
)


class SpecError(ValueError):
    """The dataset spec is malformed or does not match the table it describes.

    The message is redacted (``quantrec.redact``): a spec or data URL with credentials
    never reaches a report or log through it.
    """

    def __init__(self, message: str) -> None:
        super().__init__(redact(message))


def _check(ok: bool, key: str, message: str) -> None:
    if not ok:
        raise ValueError(f"config field {key}: {message}")


@dataclass(frozen=True)
class CleaningRules:
    """How ``quantrec.data.clean`` cleans the table (see the rules listed there)."""

    cancellation_prefix: str | None = None
    non_product_codes: tuple[str, ...] = ()
    non_product_patterns: tuple[str, ...] = ()
    drop_duplicates: bool = True
    # Rule ``outlier_quantity``: a purchase line whose quantity is above this quantile of
    # the purchase quantities of strictly earlier days is removed (and counted). None: off.
    outlier_quantile: float | None = 0.9999
    # Rule ``below_min_label`` (interaction tables with a ``label`` column, e.g. a rating):
    # rows whose label is below this value, or missing, are not positive interactions and
    # are removed (and counted). Required when the spec maps ``label``; null otherwise.
    min_label: float | None = None

    def __post_init__(self) -> None:
        q = self.outlier_quantile
        _check(q is None or 0.0 < q < 1.0, "cleaning.outlier_quantile", f"must be in (0, 1) or null, got {q}")
        m = self.min_label
        _check(m is None or math.isfinite(m), "cleaning.min_label", f"must be a finite number or null, got {m}")


@dataclass(frozen=True)
class CleaningDrift:
    """Per-day share of rows each cleaning rule removes, against the rule's own history.

    A rule fails on a day when it removed at least ``min_count`` rows AND its share of
    the day's rows is above max(``min_share``, ``ratio`` x the 95th percentile of its
    shares over the previous ``history_days`` trading days). Days with fewer than
    ``min_history_days`` earlier trading days are not judged. Calibrated on Online
    Retail II: the highest share / limit over all 604 days is 0.76 (same-day reversals,
    2010-05-14: 3.8% of the day's rows against the 5% floor; see docs/reliability.md).
    """

    history_days: int = 90
    min_history_days: int = 20
    ratio: float = 4.0
    min_share: float = 0.05
    min_count: int = 20

    def __post_init__(self) -> None:
        p = "validation.cleaning_drift."
        _check(self.history_days >= 1, p + "history_days", f"must be >= 1, got {self.history_days}")
        _check(1 <= self.min_history_days <= self.history_days, p + "min_history_days",
               f"must be in [1, history_days={self.history_days}], got {self.min_history_days}")
        _check(self.ratio > 0, p + "ratio", f"must be > 0, got {self.ratio}")
        _check(0.0 <= self.min_share <= 1.0, p + "min_share", f"must be in [0, 1], got {self.min_share}")
        _check(self.min_count >= 1, p + "min_count", f"must be >= 1, got {self.min_count}")


@dataclass(frozen=True)
class Plausibility:
    """Bounds on |quantity|, |unit_price| and |gmv| learned from the rows a run reads.

    bound = ``factor`` x the ``quantile`` of the column's absolute finite values; on a
    table too small for that quantile the level drops so that at least 20 rows lie
    above it (a few absurd rows then cannot move their own bound).
    """

    quantile: float = 0.9999
    factor: float = 200.0

    def __post_init__(self) -> None:
        _check(0.0 < self.quantile < 1.0, "validation.plausibility.quantile",
               f"must be in (0, 1), got {self.quantile}")
        _check(self.factor >= 1.0, "validation.plausibility.factor", f"must be >= 1, got {self.factor}")


@dataclass(frozen=True)
class ValidationThresholds:
    freshness_days: int = 14
    row_count_ratio: tuple[float, float] = (0.2, 5.0)
    row_count_reference_days: int = 28
    max_cancellation_share: float = 0.2
    max_duplicate_share: float = 0.05
    max_null_user_share: float = 0.5
    # Dirt, not a broken contract: lines with quantity 0 may carry no unit price (and so
    # no gmv); cleaning removes them as ``zero_quantity``. Their share per day is bounded.
    allow_null_price_on_zero_quantity: bool = True
    max_zero_quantity_share: float = 0.5
    # Rows dated after the wall clock (UTC) plus this tolerance are an error.
    clock_skew_hours: float = 24.0
    # Largest gap between consecutive trading days inside the run's windows.
    max_gap_days: int = 14
    cleaning_drift: CleaningDrift = field(default_factory=CleaningDrift)
    plausibility: Plausibility = field(default_factory=Plausibility)

    def __post_init__(self) -> None:
        p = "validation."
        lo, hi = (tuple(self.row_count_ratio) + (None, None))[:2]
        _check(len(self.row_count_ratio) == 2 and 0 <= lo <= hi, p + "row_count_ratio",
               f"must be [low, high] with 0 <= low <= high, got {list(self.row_count_ratio)}")
        for key in ("freshness_days", "row_count_reference_days", "max_gap_days"):
            _check(getattr(self, key) >= 1, p + key, f"must be >= 1, got {getattr(self, key)}")
        for key in ("max_cancellation_share", "max_duplicate_share", "max_null_user_share",
                    "max_zero_quantity_share"):
            v = getattr(self, key)
            _check(0.0 <= v <= 1.0, p + key, f"must be a share in [0, 1], got {v}")
        _check(self.clock_skew_hours >= 0, p + "clock_skew_hours", f"must be >= 0, got {self.clock_skew_hours}")


@dataclass(frozen=True)
class DatasetSpec:
    """Roles, location and rules of one transactions table.

    ``columns`` maps canonical role -> source column. With ``unit_price`` the GMV of a
    line is quantity x unit price, with ``value`` that column; with neither the table is
    an interaction table (``has_prices`` False, see the module docstring).
    """

    name: str
    path: str
    columns: dict[str, str]
    format: str = "parquet"
    # Unit of a numeric timestamp column (epoch time, e.g. MovieLens' unix seconds):
    # "s" | "ms" | "us" | "ns". None: the column holds dates / date strings.
    ts_unit: str | None = None
    cleaning: CleaningRules = field(default_factory=CleaningRules)
    validation: ValidationThresholds = field(default_factory=ValidationThresholds)
    source_file: str | None = None

    @classmethod
    def from_dict(cls, raw: dict[str, Any], source_file: str | None = None) -> "DatasetSpec":
        if not isinstance(raw, dict):
            raise SpecError(f"dataset spec {source_file or ''} must be a YAML mapping")
        for key in ("name", "columns"):
            if key not in raw:
                raise SpecError(f"dataset spec {source_file or ''} lacks the key '{key}'")
        if not isinstance(raw["columns"], dict):
            raise SpecError(f"dataset spec {source_file or ''}: 'columns' must be a mapping of "
                            f"role -> column name, got {type(raw['columns']).__name__}")
        columns = {str(k): str(v) for k, v in raw["columns"].items()}
        unknown = set(columns) - set(REQUIRED_ROLES) - set(OPTIONAL_ROLES)
        if unknown:
            raise SpecError(f"dataset spec maps unknown roles {sorted(unknown)}; "
                            f"known roles: {sorted(REQUIRED_ROLES + OPTIONAL_ROLES)}")
        missing = [r for r in REQUIRED_ROLES if r not in columns]
        if missing:
            raise SpecError(f"dataset spec does not map the required roles {missing}")
        if schema.UNIT_PRICE in columns and schema.QUANTITY not in columns:
            raise SpecError("dataset spec maps 'unit_price' but no 'quantity': a line's GMV is quantity x "
                            "unit_price (map 'value' instead if the table holds line totals)")
        fmt = str(raw.get("format", "parquet"))
        if fmt not in ("parquet", "csv"):
            raise SpecError(f"dataset spec format must be parquet or csv, not {fmt!r}")
        ts_unit = raw.get("ts_unit")
        if ts_unit is not None and ts_unit not in TS_UNITS:
            raise SpecError(f"dataset spec ts_unit must be one of {list(TS_UNITS)} (epoch time units), "
                            f"not {ts_unit!r}")
        cleaning, validation = _build_section(CleaningRules, raw, "cleaning", source_file), \
            _build_section(ValidationThresholds, raw, "validation", source_file)
        if ("label" in columns) != (cleaning.min_label is not None):
            raise SpecError(
                f"dataset spec {source_file or ''}: " + (
                    f"maps a 'label' column ({columns['label']!r}) but sets no cleaning.min_label: say which "
                    "label values are positive interactions (e.g. min_label: 4 for ratings of 4 and 5)"
                    if "label" in columns else
                    "sets cleaning.min_label but maps no 'label' column to compare it with"))
        return cls(name=str(raw["name"]), path=str(raw.get("path", "")), columns=columns,
                   format=fmt, ts_unit=ts_unit, cleaning=cleaning, validation=validation, source_file=source_file)

    @property
    def has_prices(self) -> bool:
        """True for a transactions table (unit_price or value mapped), False for an
        interaction table: no GMV, only the purchase / interaction task is built."""
        return schema.UNIT_PRICE in self.columns or "value" in self.columns

    def to_dict(self) -> dict[str, Any]:
        from dataclasses import asdict
        out = asdict(self)
        out.pop("source_file")
        return out


def _build_section(cls: type, raw: dict[str, Any], key: str, source_file: str | None) -> Any:
    """The spec's ``key`` section as a typed ``cls``; a wrong key or value -> SpecError naming it.

    Numbers are coerced to the field types (``freshness_days: 14.0`` is 14) and checked
    against their ranges; ``freshness_days: "two"`` fails here, not deep inside a check.
    """
    section = raw.get(key) or {}
    where = f"dataset spec {source_file or ''}".rstrip()
    if not isinstance(section, dict):
        raise SpecError(f"{where}: '{key}' must be a mapping, got {type(section).__name__}")
    section = dict(section)
    if key == "cleaning":
        for codes in ("non_product_codes", "non_product_patterns"):
            if isinstance(section.get(codes), (list, tuple)):  # YAML reads code 22000 as an int
                section[codes] = [str(x) for x in section[codes]]
    try:
        return build_dataclass(cls, section, prefix=f"{key}.")
    except (TypeError, ValueError) as exc:
        raise SpecError(f"{where}: {str(exc).replace('config field', 'key')}") from None


def repo_root() -> Path:
    """The repository (or installed tree) root: the folder holding ``quantrec/``."""
    return Path(__file__).resolve().parents[2]


def default_spec_path() -> str:
    return str(resources.files("quantrec") / "specs" / "online_retail_ii.yaml")


def load_spec(path: str | None = None) -> DatasetSpec:
    """Read a dataset spec from YAML (``path``, else $QUANTREC_SPEC, else the default)."""
    path = path or os.environ.get(SPEC_ENV) or default_spec_path()
    try:
        with fsspec.open(path, "r", encoding="utf-8") as f:
            raw = yaml.safe_load(f)
    except FileNotFoundError:
        raise SpecError(f"dataset spec not found: {path}") from None
    except yaml.YAMLError as exc:
        raise SpecError(f"dataset spec {path} is not valid YAML: {exc}") from None
    return DatasetSpec.from_dict(raw, source_file=path)


def resolve_data_url(spec: DatasetSpec, data: str | None = None) -> str:
    """Where to read the table: ``data`` arg, else $QUANTREC_DATA, else the spec's path.

    A relative spec path resolves against the repository root, so the default dataset
    in ``../shared/data`` is found from any working directory.
    """
    url = data or os.environ.get(DATA_ENV) or spec.path
    if not url:
        raise SpecError(f"dataset spec {spec.name!r} names no path; pass --data or set {DATA_ENV}")
    if "://" not in url and not os.path.isabs(url) and not data and not os.environ.get(DATA_ENV):
        url = str((repo_root() / url).resolve())
    return url
