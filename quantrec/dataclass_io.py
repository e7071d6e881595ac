"""Build (nested) config dataclasses from plain dicts, with types enforced.

Configs travel as JSON: through the KFP UI and protobuf Structs every number becomes
a float (``eval_days: 2.0``), so values are coerced to the annotated field type here,
once, instead of at each use. Unknown keys and uncoercible values raise ConfigError
(a ValueError) naming the dotted key (``strict=False``: unknown keys are dropped, at every level, which is
how saved model configs stay loadable after a field is removed).
"""

from __future__ import annotations

import dataclasses
import typing
from typing import Any, TypeVar

T = TypeVar("T")


class ConfigError(ValueError):
    """A config value is wrong; ``key`` is its dotted path (``models.models.wlr.train.epochs``).

    Raised with a path relative to the dataclass being built (also from a dataclass's
    ``__post_init__``); ``build_dataclass`` prefixes the path of every enclosing level.
    """

    def __init__(self, key: str, detail: str) -> None:
        self.key, self.detail = key, detail
        super().__init__(f"config field {key}: {detail}")


def _integral(value: Any) -> Any:
    """Free-form JSON (a dict-typed field) with integral floats as ints: KFP hands every
    number over as a float, and ``{"epochs": 2.0}`` must mean, print and hash like
    ``{"epochs": 2}`` (the typed fields it is later built into accept either)."""
    if isinstance(value, dict):
        return {k: _integral(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_integral(v) for v in value]
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        return int(value)
    return value


def _coerce(value: Any, tp: Any, where: str, strict: bool = True) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin is typing.Union or (origin is not None and str(origin) == "<class 'types.UnionType'>"):
        if value is None and type(None) in args:
            return None
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, where, strict)
            except (TypeError, ValueError):
                continue
        raise ConfigError(where, f"{value!r} does not fit {tp}")
    if dataclasses.is_dataclass(tp):
        if isinstance(value, tp):
            return value
        return build_dataclass(tp, value, prefix=f"{where}.", strict=strict)
    if origin in (tuple, list):
        if isinstance(value, (str, bytes, dict)) or not hasattr(value, "__iter__"):
            raise ConfigError(where, f"expected a list, got {value!r}")
        seq = [_coerce(v, args[0], where, strict) for v in value] if args else list(value)
        return tuple(seq) if origin is tuple else seq
    if origin is dict or tp is dict:
        if not isinstance(value, dict):
            raise ConfigError(where, f"expected a mapping, got {value!r}")
        return _integral(dict(value))
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ValueError(f"config field {where}: expected true/false, got {value!r}")
    if tp is int:
        if not isinstance(value, (int, float)) or isinstance(value, bool) or not float(value).is_integer():
            raise ConfigError(where, f"expected an integer, got {value!r}")
        return int(value)
    if tp is float:
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            raise ConfigError(where, f"expected a number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(where, f"expected a string, got {value!r}")
        return value
    return value


def build_dataclass(cls: type[T], raw: dict[str, Any] | None, prefix: str = "",
                    strict: bool = True) -> T:
    """``cls(**raw)`` with nested dataclasses built and scalars coerced to field types.

    strict: unknown keys raise ConfigError (user input); False drops them (saved configs).
    Errors (also those a ``__post_init__`` raises as ConfigError) name the dotted key.
    """
    if raw is not None and not isinstance(raw, dict):
        raise ConfigError(prefix.rstrip(".") or "<root>", f"expected a mapping, got {raw!r}")
    raw = dict(raw or {})
    hints = typing.get_type_hints(cls)
    fields = {f.name for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(raw) - fields)
    if unknown and not strict:
        raw = {k: v for k, v in raw.items() if k in fields}
    elif unknown:
        more = f" (also unknown: {unknown[1:]})" if len(unknown) > 1 else ""
        raise ConfigError(prefix + unknown[0], f"unknown key{more}; the keys at this level are {sorted(fields)}")
    kwargs = {k: _coerce(v, hints[k], prefix + k, strict) for k, v in raw.items()}
    try:
        return cls(**kwargs)
    except ConfigError as exc:  # raised by __post_init__, relative to cls: add our path
        if prefix:
            raise ConfigError(prefix + exc.key, exc.detail) from None
        raise
