"""The run configuration: one JSON-able dict, passed as the pipeline's `config` parameter.

Every stage reads its own section; the whole config is saved with each artifact so a
result can be traced to the settings that made it. The whole tree is validated before
the first stage runs (``RunConfig.from_dict``): unknown keys and bad values are errors
naming the dotted key (``models.models.wlr.train.epochs``), so a typo in the KFP UI
fails the run at once instead of after training, or silently using a default.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from quantrec.data.tasks import TaskConfig
from quantrec.dataclass_io import ConfigError, build_dataclass
from quantrec.serving.refresh import CacheConfig
from quantrec.shadow.compare import ShadowConfig

PRESETS = ("small", "paper")


def _merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in override.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def _check_train(train: Any, where: str) -> None:
    """Values a TrainConfig must have for a run to mean anything."""
    checks = [("epochs", train.epochs >= 1, "at least 1 (0 epochs would publish an untrained model)"),
              ("batch_size", train.batch_size >= 1, "at least 1"),
              ("lr", train.lr > 0, "positive"),
              ("patience", train.patience >= 1, "at least 1")]
    for key, ok, what in checks:
        if not ok:
            raise ConfigError(f"{where}.train.{key}", f"must be {what}, got {getattr(train, key)!r}")


@dataclass(frozen=True)
class ModelsConfig:
    """Which models train every day, at which size, on how many rows.

    preset: "small" (the daily default: minutes on 2 cores) or "paper" (the authors'
        sizes; hours on CPU, meant for a cluster).
    max_train_rows: train the value models (GMV, LTV tables) on the most recent this-many
        rows of their table's train split; 0 = all rows (KFP dict parameters cannot carry
        null). The purchase table is capped per request by its model instead (e.g.
        ``dmqn.max_train_requests``): a row cut would split candidate lists. The default
        keeps `make run` within a few minutes on 2 cores; the benchmark-selected setting
        for the GMV models is 0 (all rows: -0.19 MAE, benchmarks/RESULTS.md gmv_quality),
        recommended on a cluster.
    daily: the models trained by every daily run (names of ``quantrec.models.MODELS``).
    baseline: the production GMV model the new models must beat (shadow comparison).
    models: per-model overrides of the preset's fields, keyed by model name, e.g.
        {"rqreg": {"train": {"epochs": 2}}, "wlr": {"d_model": 32}}.
    """

    preset: str = "small"
    max_train_rows: int = 100_000
    daily: tuple[str, ...] = ("rqreg", "wlr", "dmqn")
    baseline: str = "wlr"
    models: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        from quantrec.models import MODELS
        if self.preset not in PRESETS:
            raise ConfigError("preset", f"must be one of {PRESETS}, not {self.preset!r}")
        if self.max_train_rows < 0:
            raise ConfigError("max_train_rows", f"must be >= 0 (0 = all rows), got {self.max_train_rows}")
        for key, names in (("daily", self.daily), ("models", tuple(self.models)), ("baseline", (self.baseline,))):
            unknown = [n for n in names if n not in MODELS]
            if unknown:
                raise ConfigError(key, f"names unknown model(s) {unknown}; known: {sorted(MODELS)}")
        if not self.daily:
            raise ConfigError("daily", "is empty: a daily run must train a model")
        if len(set(self.daily)) != len(self.daily):
            raise ConfigError("daily", f"names a model twice: {list(self.daily)}")
        if self.baseline not in self.daily:
            raise ConfigError("baseline", f"{self.baseline!r} must be one of models.daily {list(self.daily)}: "
                                          "the shadow comparison needs it trained")
        for name in set(self.daily) | set(self.models):
            self.model_config(name)  # every override is built (and checked) before any stage runs

    def roles(self) -> dict[str, Any]:
        """What each daily model is for: {"baseline": name, "gmv": [challengers],
        "purchase": [names], "<other task>": [...]} (the shadow stage reads it)."""
        out: dict[str, Any] = {"baseline": self.baseline}
        for name in self.daily:
            if name != self.baseline:
                out.setdefault(self.model_config(name).task, []).append(name)
        return out

    def model_class(self, name: str) -> type:
        from quantrec.models import MODELS
        return MODELS[name]

    def model_config(self, name: str) -> Any:
        """The preset's config of model ``name`` with this run's overrides applied."""
        cls = self.model_class(name).config_cls
        base = dataclasses.asdict(getattr(cls, self.preset)())
        override = self.models.get(name, {})
        where = f"models.{name}"
        if not isinstance(override, dict):
            raise ConfigError(where, f"must be a mapping of overrides, got {override!r}")
        cfg = build_dataclass(cls, _merge(base, override), prefix=f"{where}.")
        if hasattr(cfg, "train"):
            _check_train(cfg.train, where)
        return cfg


@dataclass(frozen=True)
class CodebookConfig:
    """compare_baselines: also fit the paper's comparison codebooks (flat K-means with
    the same vocabulary size, GR's dynamic quantiles) and put them in the reconstruction
    report. Off by default: they cost time every day and decide nothing."""

    compare_baselines: bool = False


@dataclass(frozen=True)
class RunConfig:
    tasks: TaskConfig = field(default_factory=TaskConfig)
    codebook: CodebookConfig = field(default_factory=CodebookConfig)
    models: ModelsConfig = field(default_factory=ModelsConfig)
    shadow: ShadowConfig = field(default_factory=ShadowConfig)
    cache: CacheConfig = field(default_factory=CacheConfig)

    def __post_init__(self) -> None:
        if self.tasks.windows.val_days < 1:
            raise ConfigError("tasks.windows.val_days", "must be at least 1 for a run: the models "
                                                        "early-stop and are selected on the val window")

    @classmethod
    def from_dict(cls, raw: dict[str, Any] | None) -> "RunConfig":
        if raw is not None and not isinstance(raw, dict):
            raise ConfigError("<root>", f"the run config must be a JSON object, got {type(raw).__name__}")
        return build_dataclass(cls, raw)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)
