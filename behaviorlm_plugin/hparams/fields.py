"""What the parser reads off a config dataclass: its user fields, their types, and the blocks nested in them."""

from __future__ import annotations

import dataclasses
import types
import typing
from typing import Any, Union, get_args, get_origin


def type_hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def is_internal(f: dataclasses.Field) -> bool:
    """Fields set by the program (e.g. a config file's folder), never by the user."""
    return bool(f.metadata.get("internal"))


def user_fields(cls: type) -> list[dataclasses.Field]:
    return [f for f in dataclasses.fields(cls) if f.init and not is_internal(f)]


def is_dataclass_type(tp: Any) -> bool:
    return isinstance(tp, type) and dataclasses.is_dataclass(tp)


def block_type(tp: Any) -> type | None:
    """The dataclass a field holds (also through ``X | None``), else None."""
    if is_dataclass_type(tp):
        return tp
    if get_origin(tp) in (Union, types.UnionType):
        inner = [a for a in get_args(tp) if a is not type(None)]
        if len(inner) == 1 and is_dataclass_type(inner[0]):
            return inner[0]
    return None


def field_names(cls: type) -> set[str]:
    return {f.name for f in dataclasses.fields(cls)}
