"""Dataset specs: a YAML file that maps a user's transactions table onto canonical roles.

The spec names the table (local path, file:// or gs:// URL, parquet or csv), which of
its columns play the canonical roles of ``schema.TRANSACTION_COLUMNS``, the cleaning
rules and the validation thresholds. ``load_spec()`` with no argument returns the spec
of the embedded default dataset (Online Retail II).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import fsspec
import yaml

from quantrec.data import schema

DATA_ENV = "QUANTREC_DATA"
SPEC_ENV = "QUANTREC_SPEC"
REQUIRED_ROLES = (schema.USER, schema.ITEM, schema.TS, schema.QUANTITY)
OPTIONAL_ROLES = (schema.ORDER, schema.COUNTRY, schema.UNIT_PRICE, "value")
UCI_HINT = (
    "The default dataset is Online Retail II (UCI Machine Learning Repository, "
    "DOI 10.24432/C5CG6D). Download the workbook from UCI yourself and convert it with "
    "`quantrec import-uci online_retail_II.xlsx OUT.parquet`, then pass --data OUT.parquet "
    "or set QUANTREC_DATA."
)


class SpecError(ValueError):
    """The dataset spec is malformed or does not match the table it describes."""


@dataclass(frozen=True)
class CleaningRules:
    cancellation_prefix: str | None = None
    non_product_codes: tuple[str, ...] = ()
    non_product_patterns: tuple[str, ...] = ()
    drop_duplicates: bool = True
    outlier_quantile: float | None = 0.9999


@dataclass(frozen=True)
class ValidationThresholds:
    freshness_days: int = 14
    row_count_ratio: tuple[float, float] = (0.2, 5.0)
    row_count_reference_days: int = 28
    max_cancellation_share: float = 0.2
    max_duplicate_share: float = 0.05
    max_null_user_share: float = 0.5


@dataclass(frozen=True)
class DatasetSpec:
    """Roles, location and rules of one transactions table.

    ``columns`` maps canonical role -> source column. Either ``unit_price`` or
    ``value`` must be mapped; with ``value`` the GMV of a line is that column.
    """

    name: str
    path: str
    columns: dict[str, str]
    format: str = "parquet"
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
        columns = {str(k): str(v) for k, v in dict(raw["columns"]).items()}
        unknown = set(columns) - set(REQUIRED_ROLES) - set(OPTIONAL_ROLES)
        if unknown:
            raise SpecError(f"dataset spec maps unknown roles {sorted(unknown)}; "
                            f"known roles: {sorted(REQUIRED_ROLES + OPTIONAL_ROLES)}")
        missing = [r for r in REQUIRED_ROLES if r not in columns]
        if missing:
            raise SpecError(f"dataset spec does not map the required roles {missing}")
        if schema.UNIT_PRICE not in columns and "value" not in columns:
            raise SpecError("dataset spec must map 'unit_price' or 'value'")
        fmt = str(raw.get("format", "parquet"))
        if fmt not in ("parquet", "csv"):
            raise SpecError(f"dataset spec format must be parquet or csv, not {fmt!r}")
        clean = dict(raw.get("cleaning") or {})
        val = dict(raw.get("validation") or {})
        if "row_count_ratio" in val:
            val["row_count_ratio"] = tuple(float(x) for x in val["row_count_ratio"])
        for key in ("non_product_codes", "non_product_patterns"):
            if key in clean:
                clean[key] = tuple(str(x) for x in clean[key])
        try:
            cleaning = CleaningRules(**clean)
            validation = ValidationThresholds(**val)
        except TypeError as exc:
            raise SpecError(f"dataset spec has an unknown cleaning/validation key: {exc}") from None
        return cls(name=str(raw["name"]), path=str(raw.get("path", "")), columns=columns,
                   format=fmt, cleaning=cleaning, validation=validation, source_file=source_file)

    def to_dict(self) -> dict[str, Any]:
        from dataclasses import asdict
        out = asdict(self)
        out.pop("source_file")
        return out


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
