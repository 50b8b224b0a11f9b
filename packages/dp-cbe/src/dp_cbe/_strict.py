"""Strict, declarative config dataclasses (pydantic v2) whose errors are one line.

Every config class of the project (``dp_mock.MockConfig``, ``dp_flows.FlowConfig``,
``dp_cbe.FitConfig`` and the pipeline's own TOML sections) is declared with `strict_config`:
types, ranges and finiteness sit next to each field as ``Annotated[int, Field(ge=1)]``, and one
rule set applies everywhere:

- no coercion: ``"16"`` is not an integer, ``16.5`` is not an integer, ``"false"`` is not a
  bool, ``1`` is not a bool and ``True`` is not a number;
- an integer is fine where a float is expected (it is stored as a float), and NumPy integer
  and floating scalars count as the Python numbers they stand for;
- floats are finite unless a field says otherwise (``Field(allow_inf_nan=True)``);
- unknown keys are an error, and so is a key that was renamed (the error names the new one);
- an error is a `ValueError` of one line naming the class and the field, built from the field's
  declaration: ``FlowConfig.width must be an integer ≥ 1, got 16.5``.

Why pydantic dataclasses rather than hand-written checks, attrs or msgspec: the classes stay
standard library dataclasses (`dataclasses.replace`, `dataclasses.fields`, `dataclasses.asdict`,
frozen, hashable, picklable), which the pipeline relies on; pydantic's strict mode already has
the wanted semantics (in particular int → float is allowed, bool → int is not), rejects NaN and
infinities with ``allow_inf_nan=False``, and its constraints are data we can turn into the
one-line message. The library is widely used, maintained and ships wheels for every platform.

This file is copied, identical, into each package that has a config (``dp_mock``, ``dp_flows``,
``dp_cbe``, ``deep_potential``), so that every package still installs and works alone; the root
test ``tests/test_config_strict.py`` checks that the copies agree. Edit them together.
"""

from __future__ import annotations

import functools
import numbers
import os
import sys
import types
from collections.abc import Callable, Mapping
from typing import Annotated, Any, Literal, TypeVar, Union, get_args, get_origin

import pydantic
from pydantic import ConfigDict
from pydantic.dataclasses import dataclass as _pydantic_dataclass
from pydantic.fields import FieldInfo

if sys.version_info >= (3, 11):
    from typing import dataclass_transform
else:  # pragma: no cover - Python 3.10 (typing_extensions comes with pydantic)
    from typing_extensions import dataclass_transform

__all__ = ["STRICT", "describe", "strict_config"]

STRICT = ConfigDict(strict=True, extra="forbid", allow_inf_nan=False)
"""Strict types, no unknown keys, finite floats (a field may allow ``inf`` explicitly)."""

_T = TypeVar("_T")


def _plain(value: Any) -> Any:
    """NumPy integer / floating scalars → int / float; anything else (bools too) unchanged."""
    if isinstance(value, bool | int | float) or not isinstance(value, numbers.Real):
        return value
    return int(value) if isinstance(value, numbers.Integral) else float(value)


@dataclass_transform(frozen_default=True, field_specifiers=(pydantic.Field,))
def strict_config(
    *, label: str = "{cls}.{field}", renamed: Mapping[str, str] | None = None
) -> Callable[[type[_T]], type[_T]]:
    """Class decorator: a frozen, strict pydantic dataclass raising one-line `ValueError`s.

    Args:
        label: how an error names a field; ``{cls}`` and ``{field}`` are filled in (the TOML
            sections of the pipeline use ``"key '{field}'"``).
        renamed: old key → new key; passing an old key is an error that names the new one.

    A ``__post_init__`` of the class runs after every field is valid, for rules that tie
    fields together; a `ValueError` it raises reaches the caller with its message unchanged.
    """

    def wrap(cls: type[_T]) -> type[_T]:
        pcls: Any = _pydantic_dataclass(cls, frozen=True, config=STRICT)
        init = pcls.__init__

        @functools.wraps(init)
        def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
            args = tuple(_plain(a) for a in args)
            kwargs = {k: _plain(v) for k, v in kwargs.items()}
            try:
                init(self, *args, **kwargs)
            except pydantic.ValidationError as err:
                raise ValueError(_one_line(pcls, err)) from None

        pcls.__init__ = __init__
        pcls._strict_label = label
        pcls._strict_renamed = dict(renamed or {})
        return pcls  # type: ignore[no-any-return]

    return wrap


def _one_line(cls: Any, err: pydantic.ValidationError) -> str:
    """The errors of one validation as a single line naming the class and each field."""
    fields: dict[str, FieldInfo] = cls.__pydantic_fields__
    unknown: list[str] = []
    parts: list[str] = []
    for e in err.errors(include_url=False):
        loc, kind = e["loc"], e["type"]
        name = loc[0] if loc else None
        if kind == "unexpected_keyword_argument":
            unknown.append(str(name))
        elif not loc and "error" in e.get("ctx", {}):  # raised by __post_init__
            parts.append(str(e.get("ctx", {})["error"]))
        elif isinstance(name, str) and name in fields:
            label = cls._strict_label.format(cls=cls.__name__, field=name)
            if kind in ("missing", "missing_argument"):
                parts.append(f"{label} is required")
            else:
                parts.append(f"{label} must be {describe(fields[name])}, got {e['input']!r}")
        else:
            parts.append(f"{cls.__name__}: {e['msg']}")
    if unknown:
        msg = f"{cls.__name__}: unknown key(s) {sorted(unknown)}"
        renamed: dict[str, str] = cls._strict_renamed
        moved = [f"{old!r} is now {new!r}" for old, new in renamed.items() if old in unknown]
        msg += f" (renamed: {'; '.join(moved)})" if moved else ""
        msg += f"; valid keys: {sorted(fields)}" if set(unknown) - set(renamed) else ""
        parts.insert(0, msg)
    return "; ".join(dict.fromkeys(parts))


def describe(info: FieldInfo) -> str:
    """What a field accepts, in words, from its declaration (``an integer ≥ 1``)."""
    return _describe(info.annotation, list(info.metadata))


def _describe(tp: Any, meta: list[Any]) -> str:
    optional = False
    while True:
        origin = get_origin(tp)
        if origin is Annotated:
            tp, *extra = get_args(tp)
            meta = [*meta, *extra]
        elif origin in (Union, types.UnionType):
            members = [a for a in get_args(tp) if a is not type(None)]
            optional = optional or len(members) < len(get_args(tp))
            if len(members) > 1:  # e.g. bool | Literal["auto"]: each member with its own rules
                text = " or ".join(_describe(a, []) for a in members)
                return text + (" (or None)" if optional else "")
            tp = members[0]
        else:
            break
    flat: list[Any] = []
    for m in meta:
        flat += m.metadata if isinstance(m, FieldInfo) else [m]
    c: dict[str, Any] = {}
    for m in flat:
        for key in ("ge", "gt", "le", "lt", "multiple_of", "min_length", "allow_inf_nan"):
            if getattr(m, key, None) is not None:
                c[key] = getattr(m, key)
    if get_origin(tp) is Literal:
        values = list(get_args(tp))
        text = repr(values[0]) if len(values) == 1 else f"one of {values}"
    elif tp is bool:
        text = "true or false"
    elif tp is int:
        step = c.get("multiple_of")
        text = "an even integer" if step == 2 else "an integer"
        text += f" multiple of {step}" if step not in (None, 2) else ""
    elif tp is float:
        text = "a number" if c.get("allow_inf_nan") else "a finite number"
    elif tp is str:
        text = "a non-empty string" if c.get("min_length") else "a string"
    elif isinstance(tp, type) and issubclass(tp, os.PathLike):  # pyright: ignore[reportGeneralTypeIssues]  # an ABC at runtime, not a data protocol
        text = "a path"
    elif get_origin(tp) in (tuple, list):
        text = "a list"
    else:
        text = getattr(tp, "__name__", str(tp))
    lo = ("≥", c["ge"]) if "ge" in c else (">", c["gt"]) if "gt" in c else None
    hi = ("≤", c["le"]) if "le" in c else ("<", c["lt"]) if "lt" in c else None
    if lo and hi:
        left, right = "[" if lo[0] == "≥" else "(", "]" if hi[0] == "≤" else ")"
        text += f" in {left}{_num(lo[1])}, {_num(hi[1])}{right}"
    elif lo or hi:
        op, bound = lo or hi  # type: ignore[misc]
        text += f" {op} {_num(bound)}"
    if tp is float and c.get("allow_inf_nan"):
        text += " or inf"
    return text + (" (or None)" if optional else "")


def _num(x: Any) -> str:
    return f"{x:g}" if isinstance(x, float) else str(x)
