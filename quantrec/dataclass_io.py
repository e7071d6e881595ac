"""Build (nested) config dataclasses from plain dicts, with types enforced.

Configs travel as JSON: through the KFP UI and protobuf Structs every number becomes
a float (``eval_days: 2.0``), so values are coerced to the annotated field type here,
once, instead of at each use. Unknown keys and uncoercible values raise ValueError
naming the field (``strict=False``: unknown keys are dropped, at every level, which is
how saved model configs stay loadable after a field is removed).
"""

from __future__ import annotations

import dataclasses
import typing
from typing import Any, TypeVar

T = TypeVar("T")


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
        raise ValueError(f"config field {where}: {value!r} does not fit {tp}")
    if dataclasses.is_dataclass(tp):
        if isinstance(value, tp):
            return value
        return build_dataclass(tp, value, prefix=f"{where}.", strict=strict)
    if origin in (tuple, list):
        seq = [_coerce(v, args[0], where, strict) for v in value] if args else list(value)
        return tuple(seq) if origin is tuple else seq
    if origin is dict or tp is dict:
        return dict(value)
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ValueError(f"config field {where}: expected true/false, got {value!r}")
    if tp is int:
        if not isinstance(value, (int, float)) or isinstance(value, bool) or not float(value).is_integer():
            raise ValueError(f"config field {where}: expected an integer, got {value!r}")
        return int(value)
    if tp is float:
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            raise ValueError(f"config field {where}: expected a number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ValueError(f"config field {where}: expected a string, got {value!r}")
        return value
    return value


def build_dataclass(cls: type[T], raw: dict[str, Any] | None, prefix: str = "",
                    strict: bool = True) -> T:
    """``cls(**raw)`` with nested dataclasses built and scalars coerced to field types.

    strict: unknown keys raise ValueError (user input); False drops them (saved configs).
    """
    raw = dict(raw or {})
    hints = typing.get_type_hints(cls)
    fields = {f.name for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(raw) - fields)
    if unknown and not strict:
        raw = {k: v for k, v in raw.items() if k in fields}
    elif unknown:
        raise ValueError(f"unknown config field(s) {[prefix + u for u in unknown]}; "
                         f"known: {sorted(prefix + f for f in fields)}")
    kwargs = {k: _coerce(v, hints[k], prefix + k, strict) for k, v in raw.items()}
    return cls(**kwargs)
