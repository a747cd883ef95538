"""Rows into typed objects, at the SQL boundary: :func:`typed_row`.

A named query's row is a dict of column values; the code above the database layer reads frozen
dataclasses instead. :func:`typed_row` builds one from a row by the dataclass's own field
declarations, so a row type is declared once (its fields) rather than once more as a list of
``field=int(row["field"])`` lines.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping
from typing import Any, TypeVar

T = TypeVar("T")
# Declared types a column value is converted to; any other type is taken as the driver gives it
# (datetime, UUID, dict from jsonb, ...).
_CONVERTED: dict[Any, Any] = {int: int, float: float, str: str, bool: bool, bytes: bytes}


def typed_row(cls: type[T], row: Mapping[str, Any], /, **values: Any) -> T:
    """An instance of the dataclass ``cls`` from a query's ``row``.

    Each field is ``values[name]`` when given (what needs more than a cast: a parsed plan, a
    column under another name), else the row's column of the same name, converted to the
    field's declared type (``int``, ``float``, ``str``, ``bool``, ``bytes``; NULL stays None for
    an optional field). A field with a default may be missing from the row.
    """
    fields: dict[str, Any] = {}
    for name, (kind, required) in _declared(cls).items():
        if name in values:
            fields[name] = values[name]
        elif name in row:
            fields[name] = _convert(kind, row[name])
        elif required:
            raise KeyError(f"{cls.__name__}: the row has no column {name!r}")
    return cls(**fields)


_DECLARED: dict[type[Any], dict[str, tuple[Any, bool]]] = {}


def _declared(cls: type[Any]) -> dict[str, tuple[Any, bool]]:
    """Field name -> (declared type, whether the field has no default); read once per class."""
    if cls in _DECLARED:
        return _DECLARED[cls]
    hints = typing.get_type_hints(cls)
    _DECLARED[cls] = {
        field.name: (
            hints[field.name],
            field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING,
        )
        for field in dataclasses.fields(cls)
        if field.init
    }
    return _DECLARED[cls]


def _convert(kind: Any, value: Any) -> Any:
    if value is None:
        return None
    if isinstance(kind, types.UnionType) or typing.get_origin(kind) is typing.Union:
        # X | None: convert to X.
        kind = next((arg for arg in typing.get_args(kind) if arg is not type(None)), kind)
    convert = _CONVERTED.get(kind)
    return value if convert is None else convert(value)
