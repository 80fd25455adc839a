"""The simulator's readable trace: one line per event, and a hash of all of them.

Every line is ``time node text`` with the simulator's real time.  The whole
trace feeds a running sha256, so two runs of one seed can be compared by hash
(replay must be exact); only the last ``keep`` lines stay in memory, for the
failure report.  Messages are shortened (lease ids to ``server.inc.counter``,
log batches to their index range) so a line stays readable.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
from collections import deque
from typing import Any

__all__ = ["Trace", "short", "short_id"]

_LEASE_ID = re.compile(r"\b([A-Za-z0-9_-]+\.\d+\.\d+)\.[0-9a-f]{16}\.[0-9a-f]{32}\b")


def short_id(text: str) -> str:
    """Lease ids without nonce and MAC: ``s1.2.17``."""
    return _LEASE_ID.sub(r"\1", text)


_FIELDS: dict[type, tuple[str, ...]] = {}
_SKIP = frozenset({"auth", "settings_hash", "state", "code", "addon"})


_ADDED = frozenset({"seats", "count", "linger", "idle", "reasons", "moved_to", "digest", "resend"})
"""Fields added with defaults by issue 14 (and ``ReleaseAck.moved_to``, issue
11, and the heartbeat digests of issue 12): traced only when they differ from
their default, so a schedule that never
uses them keeps its trace hash."""
_DEFAULTS: dict[type, dict[str, Any]] = {}


def _names(cls: type) -> tuple[str, ...] | None:
    names = _FIELDS.get(cls)
    if names is None and dataclasses.is_dataclass(cls):
        names = _FIELDS[cls] = tuple(f.name for f in dataclasses.fields(cls) if f.name not in _SKIP)
        _DEFAULTS[cls] = {
            f.name: f.default
            for f in dataclasses.fields(cls)
            if f.name in _ADDED and f.default is not dataclasses.MISSING
        }
    return names


def _field(value: Any) -> str:
    kind = type(value)
    if kind is float:
        return f"{value:.4g}"
    if kind is tuple and len(value) > 6:
        return f"({len(value)} items)"
    if kind is dict:
        return f"{{{len(value)} keys}}"
    if kind in (int, str, bool):
        return repr(value)
    if _names(kind) is not None:
        return _short(value)
    return _repr(value)


def _repr(value: Any) -> str:
    """``repr``, but dataclasses inside tuples (a report's changes, an update's
    leases) leave out the issue-14 fields that hold their default."""
    kind = type(value)
    if kind is tuple:
        inner = ", ".join(_repr(x) for x in value)
        return f"({inner},)" if len(value) == 1 else f"({inner})"
    if dataclasses.is_dataclass(kind) and _names(kind) is not None:
        added = _DEFAULTS[kind]
        shown = [
            f"{f.name}={_repr(getattr(value, f.name))}"
            for f in dataclasses.fields(kind)
            if f.repr and not (f.name in added and getattr(value, f.name) == added[f.name])
        ]
        return f"{kind.__qualname__}({', '.join(shown)})"
    return repr(value)


def _short(msg: Any) -> str:
    names = _names(type(msg))
    if names is None:
        return repr(msg)
    parts = []
    added = _DEFAULTS[type(msg)]
    for name in names:
        value = getattr(msg, name)
        if value is None or value is False or value == () or value == "":
            continue
        if name in added and value == added[name]:
            continue
        if name == "entries" and type(value) is tuple:
            parts.append(f"entries={value[0].index}..{value[-1].index}" if value else "entries=-")
            continue
        parts.append(f"{name}={_field(value)}")
    return f"{type(msg).__name__}({', '.join(parts)})"


def short(msg: Any) -> str:
    """A one-line summary of a protocol message or record."""
    text = _short(msg) if _names(type(msg)) is not None else repr(msg)[:200]
    return short_id(text) if "." in text else text


class Trace:
    """Append-only trace with a running hash and a bounded tail."""

    def __init__(self, keep: int = 200, echo: bool = False) -> None:
        self._hash = hashlib.sha256()
        self.tail: deque[str] = deque(maxlen=keep)
        self.lines = 0
        self.echo = echo

    def add(self, time: float, node: str, text: str) -> None:
        line = f"{time:12.6f} {node:>8} {text}"
        self._hash.update(line.encode("utf-8", "replace"))
        self._hash.update(b"\n")
        self.tail.append(line)
        self.lines += 1
        if self.echo:
            print(line)

    @property
    def digest(self) -> str:
        return self._hash.hexdigest()

    def last(self, n: int = 200) -> str:
        lines = list(self.tail)[-n:]
        return "\n".join(lines)
