"""pydantic's problems with the file's shape, in our one-line form: the file, the section or tenant,
the key, the closest valid key, the bound and why; a secret's value is never echoed."""

from __future__ import annotations

import difflib
import types
import typing
from collections.abc import Mapping, Sequence
from typing import Any

from pydantic_core import ErrorDetails

from fetcher.config.constants import GUID, SECRET_KEYS
from fetcher.config.shape import CONTROL_CHARACTER, FileTable, Table
from fetcher.text import printable


def describe_errors(errors: Sequence[ErrorDetails], raw: Mapping[str, Any]) -> str:
    """The first problem pydantic found, in our words; the count of any others."""
    message = _describe(errors[0], raw)
    if len(errors) > 1:
        message += f" (and {len(errors) - 1} more problem{'s' if len(errors) > 2 else ''})"
    return message


def _describe(error: ErrorDetails, raw: Mapping[str, Any]) -> str:
    loc = tuple(error["loc"])
    kind = error["type"]
    if kind == "extra_forbidden":
        return f"{_where(loc[:-1], raw)}unknown key {loc[-1]!r}{_closest(str(loc[-1]), _model_at(loc[:-1]))}"
    if loc[:1] == ("tenants",) and len(loc) <= 2 and kind in ("list_type", "model_type"):
        return "tenants must be an array of tables: [[tenants]]"
    key = str(loc[-1])
    where = _where(loc[:-1], raw) + key
    if kind == "missing":
        return f"{where} is required"
    if kind == "model_type":
        table = "[" + ".".join(str(k) for k in loc) + "]" if len(loc) == 1 else where
        return f"{table} must be a table, got {type(error['input']).__name__}"
    if kind == CONTROL_CHARACTER:  # the value is not echoed: what it holds is said, escaped
        found = (error.get("ctx") or {}).get("found", "a control character")
        where = _where(loc[:-2], raw) + f"{loc[-2]}[{loc[-1]}]" if isinstance(loc[-1], int) else where
        return f"{where} holds {found}: remove it (a NUL fails every PostgreSQL statement; others reach terminals)"
    got = type(error["input"]).__name__ if key in SECRET_KEYS else repr(error["input"])
    return f"{where} must {_expected(error, _model_at(loc[:-1]), key)}, got {got}"


def _expected(error: ErrorDetails, model: type[Table], key: str) -> str:
    """What a key must be, from pydantic's error type and the bounds (and why) declared on the field."""
    simple = {
        "int_type": "be an integer",
        "float_type": "be a number",
        "bool_type": "be true or false",
        "string_type": "be a string",
        "finite_number": "be a finite number",
    }
    if error["type"] in simple:
        return simple[error["type"]]
    info = model.model_fields[key]
    bounds = {name: getattr(m, name) for m in info.metadata for name in ("ge", "le", "gt") if hasattr(m, name)}
    why = f" {info.description}" if info.description else ""
    if "ge" in bounds and "le" in bounds:
        return f"be between {bounds['ge']:g} and {bounds['le']:g}{why}"
    if bounds.get("gt") == 0:
        return "be positive"
    if bounds.get("ge") == 0:
        return "not be negative"
    if "ge" in bounds:
        return f"be at least {bounds['ge']:g}{why}"
    return "be " + error["msg"].removeprefix("Input should be ").lower()


def _where(loc: tuple[int | str, ...], raw: Mapping[str, Any]) -> str:
    """The prefix that names a table: "", "[fetch] ", "tenant X (Name): ", "tenant X: [tenants.auth] "."""
    if not loc:
        return ""
    if loc[0] == "alerts" and len(loc) > 2 and isinstance(loc[2], int):
        entry = raw["alerts"][loc[1]][loc[2]]
        name = entry.get("name") if isinstance(entry, dict) else None
        return f"[[alerts.{loc[1]}]] " + (f"{name!r}: " if isinstance(name, str) and name else f"#{loc[2] + 1}: ")
    if loc[0] != "tenants":
        return f"[{'.'.join(str(k) for k in loc)}] "
    index = int(loc[1])
    entry = raw["tenants"][index]
    label = tenant_label(entry.get("tenant_id"), entry.get("name"), f"[[tenants]] #{index + 1}")
    return f"{label}: [tenants.auth] " if len(loc) > 2 else f"{label}: "


def tenant_label(tenant_id: Any, name: Any, fallback: str) -> str:
    """`tenant <id> (<name>)` once the id is a GUID, else where the entry is."""
    if not (isinstance(tenant_id, str) and GUID.match(tenant_id)):
        return fallback
    return f"tenant {tenant_id.lower()}" + (f" ({printable(name)})" if isinstance(name, str) and name else "")


def _model_at(loc: tuple[int | str, ...]) -> type[Table]:
    """The table model at a location of `FileTable`."""
    model: type[Table] = FileTable
    for key in loc:
        if isinstance(key, int):
            continue
        annotation = model.model_fields[key].annotation
        if typing.get_origin(annotation) in (list, types.UnionType):  # list[_X] or an optional table, _X | None
            annotation = next(a for a in typing.get_args(annotation) if a is not type(None))
        model = typing.cast(type[Table], annotation)
    return model


def _closest(key: str, model: type[Table]) -> str:
    valid = tuple(info.alias or name for name, info in model.model_fields.items())
    close = difflib.get_close_matches(key, valid, n=1, cutoff=0.5)
    return f" (did you mean {close[0]!r}?)" if close else f" (valid keys: {', '.join(valid)})"
