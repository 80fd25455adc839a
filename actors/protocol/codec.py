"""Plain-data form of protocol objects, for journals and snapshots.

Stored data is loaded by an unpickler that admits builtin types only, so log
entries (frozen dataclasses) are stored as ``("@", ClassName, {field: value})``
and rebuilt from the protocol package's own classes by name.  Unknown class
names or fields are refused, never imported.
"""

from __future__ import annotations

import dataclasses
from dataclasses import MISSING
from enum import Enum
from typing import Any

from actors.protocol import client, entries, pool, raft

__all__ = ["to_plain", "from_plain", "CodecError"]

_CLASSES: dict[str, type] = {}
for _module in (client, entries, pool, raft):
    for _name in _module.__all__:
        _obj = getattr(_module, _name)
        if isinstance(_obj, type) and (dataclasses.is_dataclass(_obj) or issubclass(_obj, Enum)):
            _CLASSES[_name] = _obj


class CodecError(ValueError):
    """Stored data names a class or field the protocol does not have."""


_SCALARS = frozenset({str, int, float, bool, type(None), bytes})
"""Exact types returned as they are (an Enum or a str subclass is not one)."""
_FIELDS: dict[type, tuple[str, ...]] = {}
"""Field names per dataclass, looked up once: every peer message's MAC and
every journal record goes through ``to_plain`` (docs/performance.md)."""
_ADDED_FIELDS = frozenset({"seats", "count", "linger", "idle", "reasons"})
"""Fields added with defaults by issue 14: left out while they hold their
default, so single-seat data is encoded exactly as before (rolling upgrade)."""
_ADDED: dict[type, dict[str, Any]] = {}
"""Per dataclass, its ``_ADDED_FIELDS`` with their defaults."""


def to_plain(obj: Any) -> Any:
    """Protocol dataclasses and enums become tagged tuples; containers recurse."""
    kind = type(obj)
    if kind in _SCALARS:
        return obj
    names = _FIELDS.get(kind)
    if names is None and dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        names = _FIELDS[kind] = tuple(f.name for f in dataclasses.fields(obj))
        _ADDED[kind] = {
            f.name: f.default for f in dataclasses.fields(obj) if f.name in _ADDED_FIELDS and f.default is not MISSING
        }
    if names is not None:
        added = _ADDED[kind]
        return (
            "@",
            kind.__name__,
            {
                name: to_plain(getattr(obj, name))
                for name in names
                if name not in added or getattr(obj, name) != added[name]
            },
        )
    if isinstance(obj, Enum):
        return ("#", kind.__name__, obj.value)
    if isinstance(obj, tuple):
        return tuple(to_plain(x) for x in obj)
    if isinstance(obj, list):
        return [to_plain(x) for x in obj]
    if isinstance(obj, dict):
        return {k: to_plain(v) for k, v in obj.items()}
    return obj


def from_plain(data: Any) -> Any:
    if isinstance(data, tuple) and len(data) == 3 and data[0] in ("@", "#") and isinstance(data[1], str):
        cls = _CLASSES.get(data[1])
        if cls is None:
            raise CodecError(f"unknown protocol class {data[1]!r} in stored data")
        if data[0] == "#":
            return cls(data[2])
        if not isinstance(data[2], dict):
            raise CodecError(f"bad fields for {data[1]}")
        known = {f.name for f in dataclasses.fields(cls)}
        extra = set(data[2]) - known
        if extra:
            raise CodecError(f"{data[1]} has unknown field(s) {sorted(extra)} in stored data")
        return cls(**{k: from_plain(v) for k, v in data[2].items()})
    if isinstance(data, tuple):
        return tuple(from_plain(x) for x in data)
    if isinstance(data, list):
        return [from_plain(x) for x in data]
    if isinstance(data, dict):
        return {k: from_plain(v) for k, v in data.items()}
    return data
