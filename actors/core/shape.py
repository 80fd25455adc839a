"""Is a decoded message shaped as its class says?  Checked before the core sees it.

The wire allowlist (``actors.shell.wire``) only limits *which* classes a frame may
name.  Pickle builds a dataclass without calling its constructor (``NEWOBJ``
then ``BUILD`` with a peer-chosen ``__dict__``), so a frame can deliver a
``CheckoutRequest`` whose ``feature`` is a list, or that has no ``feature`` at
all.  ``problem(msg)`` walks a protocol object against its type hints:

* every field is present, and holds the declared type: ``str``, ``bytes``, ``int`` (not
  ``bool``), ``float`` (an ``int`` too; finite), ``bool``, an ``Enum``, a
  protocol dataclass (checked recursively), ``X | None``, a union of
  dataclasses, ``tuple[X, ...]`` and fixed ``tuple[A, B]``, ``dict[str, Any]``;
* fields typed ``Any`` (actor addresses, message bodies) are left to their
  handlers, and strings, bytes and tuples longer than the limits below are refused.

Pure: no I/O.  Returns ``None`` for a well-formed message, else one line.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from collections.abc import Callable
from enum import Enum
from typing import Any

__all__ = ["MAX_BYTES", "MAX_ITEMS", "MAX_TEXT", "problem"]

MAX_TEXT = 64 * 1024
"""Longest string accepted in any field (a license code is a few hundred characters)."""
MAX_ITEMS = 100_000
"""Most items accepted in one tuple field."""
MAX_BYTES = 32 * 1024 * 1024
"""Longest ``bytes`` value accepted (a sealed peer message; Thespian's frame limit)."""
_MAX_DEPTH = 8


_HINTS: dict[type, dict[str, Any]] = {}


def _hints(cls: type) -> dict[str, Any]:
    hints = _HINTS.get(cls)
    if hints is None:
        hints = _HINTS[cls] = typing.get_type_hints(cls)
    return hints


def problem(msg: Any) -> str | None:
    """``None`` if ``msg`` (a protocol dataclass instance) is well formed, else why not."""
    if not dataclasses.is_dataclass(msg) or isinstance(msg, type):
        return f"{type(msg).__name__} is not a protocol message"
    if _object_check(type(msg))(msg, 0):
        return None
    return _object(msg, type(msg).__name__, 0)


# ---- the fast path: one compiled check per type, no text --------------------------------
#
# Every message a server receives is checked, and a peer's sync carries hundreds of
# nested values: walking the type hints and formatting a field path per value cost
# a follower most of its time for a sync under load (performance.md, "The 30-session
# run loses its leader under load").  So each type's check is built once, as a tree
# of closures that only answer yes or no; a message they refuse is walked again by
# the slow path below, which says why.  They accept exactly what it accepts
# (``tests/unit/test_shape_fast.py`` compares the two on the handler fuzz's messages).

_Check = Callable[[Any, int], bool]
_MISSING = object()
_FAST: dict[Any, _Check] = {}
_OBJECTS: dict[type, _Check] = {}


def _fast(hint: Any) -> _Check:
    check = _FAST.get(hint)
    if check is None:
        check = _FAST[hint] = _build(hint)
    return check


def _object_check(cls: type) -> _Check:
    """The check of an instance of dataclass ``cls`` (built on first use)."""
    check = _OBJECTS.get(cls)
    if check is None:
        check = _OBJECTS[cls] = _build_object(cls)
    return check


def _build_object(cls: type) -> _Check:
    try:
        hints = _hints(cls)
    except Exception:
        return lambda obj, depth: False
    fields = [(f.name, _fast(hints.get(f.name, Any))) for f in dataclasses.fields(cls)]

    def check(obj: Any, depth: int) -> bool:
        if depth > _MAX_DEPTH:
            return False
        for name, field_check in fields:
            value = getattr(obj, name, _MISSING)
            if value is _MISSING or not field_check(value, depth):
                return False
        return True

    return check


def _build(hint: Any) -> _Check:  # one branch per kind of type hint, as in _value
    if hint is Any:
        return lambda value, depth: True
    origin = typing.get_origin(hint)
    if origin is typing.Union or origin is types.UnionType:
        return _build_union(typing.get_args(hint))
    if origin is tuple:
        return _build_tuple(typing.get_args(hint))
    if origin is dict:
        return lambda value, depth: isinstance(value, dict) and all(isinstance(k, str) for k in value)
    if not isinstance(hint, type):
        return lambda value, depth: False
    scalar = _FAST_SCALARS.get(hint)
    if scalar is not None:
        return scalar
    if issubclass(hint, Enum):
        return lambda value, depth: isinstance(value, hint)
    if dataclasses.is_dataclass(hint):
        cls: type = hint
        return lambda value, depth: type(value) is cls and _object_check(cls)(value, depth + 1)
    return lambda value, depth: False


def _build_union(options: tuple[Any, ...]) -> _Check:
    allows_none = type(None) in options
    others = [_fast(x) for x in options if x is not type(None)]

    def check(value: Any, depth: int) -> bool:
        if value is None and allows_none:
            return True
        kind = type(value)
        if kind in options:  # as _union: judged by its own declared type only
            return _fast(kind)(value, depth)
        return any(option(value, depth) for option in others)

    return check


def _build_tuple(args: tuple[Any, ...]) -> _Check:
    if len(args) == 2 and args[1] is Ellipsis:
        item = _fast(args[0])

        def homogeneous(value: Any, depth: int) -> bool:
            return isinstance(value, tuple) and len(value) <= MAX_ITEMS and all(item(x, depth + 1) for x in value)

        return homogeneous
    items = [_fast(a) for a in args]

    def fixed(value: Any, depth: int) -> bool:
        return (
            isinstance(value, tuple)
            and len(value) <= MAX_ITEMS
            and len(value) == len(items)
            and all(check(x, depth + 1) for check, x in zip(items, value, strict=True))
        )

    return fixed


_FAST_SCALARS: dict[type, _Check] = {
    bool: lambda value, depth: isinstance(value, bool),
    int: lambda value, depth: isinstance(value, int) and not isinstance(value, bool),
    float: lambda value, depth: (
        isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    ),
    str: lambda value, depth: isinstance(value, str) and len(value) <= MAX_TEXT,
    bytes: lambda value, depth: isinstance(value, bytes) and len(value) <= MAX_BYTES,
    type(None): lambda value, depth: value is None,
}


# ---- the slow path: says what is wrong ----------------------------------------------------


def _object(obj: Any, where: str, depth: int) -> str | None:
    if depth > _MAX_DEPTH:
        return f"{where}: nested too deep"
    try:
        hints = _hints(type(obj))
    except Exception:  # a class whose hints do not resolve is not ours to accept
        return f"{where}: unknown field types"
    missing = object()
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name, missing)
        if value is missing:
            return f"{where}.{f.name} is missing"
        bad = _value(value, hints.get(f.name, Any), f"{where}.{f.name}", depth)
        if bad is not None:
            return bad
    return None


def _value(value: Any, hint: Any, where: str, depth: int) -> str | None:
    if hint is Any:
        return None
    origin = typing.get_origin(hint)
    if origin is typing.Union or origin is types.UnionType:
        return _union(value, typing.get_args(hint), where, depth)
    if origin is tuple:
        return _tuple(value, typing.get_args(hint), where, depth)
    if origin is dict:
        if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
            return f"{where} is a {type(value).__name__}, not a dict with str keys"
        return None
    if not isinstance(hint, type):
        return f"{where}: field type {hint} is not checked"
    scalar = _SCALARS.get(hint)
    if scalar is not None:
        return scalar(value, where)
    if issubclass(hint, Enum):
        return None if isinstance(value, hint) else f"{where} is a {type(value).__name__}, not {hint.__name__}"
    if dataclasses.is_dataclass(hint):
        if type(value) is not hint:
            return f"{where} is a {type(value).__name__}, not {hint.__name__}"
        return _object(value, where, depth + 1)
    return f"{where}: field type {hint} is not checked"


def _union(value: Any, options: tuple[Any, ...], where: str, depth: int) -> str | None:
    if value is None and type(None) in options:
        return None
    if type(value) in options:  # a dataclass or scalar of one of the declared types: say what is wrong in it
        return _value(value, type(value), where, depth)
    for option in options:
        if option is not type(None) and _value(value, option, where, depth) is None:
            return None
    names = " | ".join(getattr(x, "__name__", str(x)) for x in options)
    return f"{where} is a {type(value).__name__}, not {names}"


def _bool(value: Any, where: str) -> str | None:
    return None if isinstance(value, bool) else f"{where} is a {type(value).__name__}, not bool"


def _int(value: Any, where: str) -> str | None:
    ok = isinstance(value, int) and not isinstance(value, bool)
    return None if ok else f"{where} is a {type(value).__name__}, not int"


def _float(value: Any, where: str) -> str | None:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    return None if ok else f"{where} is {value!r:.40}, not a finite float"


def _str(value: Any, where: str) -> str | None:
    if not isinstance(value, str):
        return f"{where} is a {type(value).__name__}, not str"
    return None if len(value) <= MAX_TEXT else f"{where} is longer than {MAX_TEXT} characters"


def _bytes(value: Any, where: str) -> str | None:
    if not isinstance(value, bytes):
        return f"{where} is a {type(value).__name__}, not bytes"
    return None if len(value) <= MAX_BYTES else f"{where} is longer than {MAX_BYTES} bytes"


def _none(value: Any, where: str) -> str | None:
    return None if value is None else f"{where} is not None"


_SCALARS: dict[type, Callable[[Any, str], str | None]] = {
    bool: _bool,
    int: _int,
    float: _float,
    str: _str,
    bytes: _bytes,
    type(None): _none,
}
"""The check for each scalar field type (``bool`` is not an ``int`` here)."""


def _tuple(value: Any, args: tuple[Any, ...], where: str, depth: int) -> str | None:
    if not isinstance(value, tuple):
        return f"{where} is a {type(value).__name__}, not a tuple"
    if len(value) > MAX_ITEMS:
        return f"{where} has more than {MAX_ITEMS} items"
    if len(args) == 2 and args[1] is Ellipsis:
        for i, item in enumerate(value):
            bad = _value(item, args[0], f"{where}[{i}]", depth + 1)
            if bad is not None:
                return bad
        return None
    if len(value) != len(args):
        return f"{where} has {len(value)} items, not {len(args)}"
    for i, (item, hint) in enumerate(zip(value, args, strict=True)):
        bad = _value(item, hint, f"{where}[{i}]", depth + 1)
        if bad is not None:
            return bad
    return None
