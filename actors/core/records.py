"""The journal records a server's core asks its shell to persist (``Ready.persist``).

Five kinds, each a frozen dataclass:

* ``HardRecord``: Raft's hard state (term, vote, incarnation), before any reply
  that depends on it;
* ``LogRecord``: truncate the log after ``start - 1`` and append ``entries``;
* ``CommitRecord``: every entry up to ``index`` is applied;
* ``InstallRecord``: a snapshot of the pool state installed at ``index``;
* ``LeaseRecord``: one change of the local lease table (``LocalLeases.ops``).

On disk every record is a plain tuple of builtins, ``(kind, *fields)``, so the
safe unpickler can load it.  ``to_plain`` and ``from_plain`` are that codec;
only the store calls them (``actors.shell.persistence.NodeStore``).  The plain
form is the format of every journal written so far: changing it needs a new
store schema version, never an edit here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from actors.protocol import codec
from actors.protocol.raft import LogEntry

__all__ = [
    "HardRecord",
    "LogRecord",
    "CommitRecord",
    "InstallRecord",
    "LeaseRecord",
    "Record",
    "to_plain",
    "from_plain",
]


@dataclass(frozen=True, slots=True)
class HardRecord:
    """Raft's hard state: what a server must remember before it answers."""

    term: int
    voted_for: str | None
    incarnation: int


@dataclass(frozen=True, slots=True)
class LogRecord:
    """Truncate the log after ``start - 1``, then append ``entries``."""

    start: int
    entries: tuple[LogEntry, ...]


@dataclass(frozen=True, slots=True)
class CommitRecord:
    """The committed entries up to ``index`` are applied."""

    index: int


@dataclass(frozen=True, slots=True)
class InstallRecord:
    """A leader's snapshot was installed: the pool state (plain form) at ``index``."""

    index: int
    epoch: int
    state: dict[str, Any]


@dataclass(frozen=True, slots=True)
class LeaseRecord:
    """One durable change of the local lease table, as ``LocalLeases.ops`` has it
    (``("grant", {...})``, ``("drop", lease_id)``, ``("consent", id, given)``, ...)."""

    op: tuple[Any, ...]


Record = HardRecord | LogRecord | CommitRecord | InstallRecord | LeaseRecord


def to_plain(record: Record) -> tuple[Any, ...]:
    """The on-disk form: ``(kind, *fields)`` of builtins only."""
    match record:
        case HardRecord(term, voted_for, incarnation):
            return ("hard", term, voted_for, incarnation)
        case LogRecord(start, entries):
            return ("log", start, [codec.to_plain(x) for x in entries])
        case CommitRecord(index):
            return ("commit", index)
        case InstallRecord(index, epoch, state):
            return ("install", index, epoch, state)
        case LeaseRecord(op):
            return ("lease", op)
    raise TypeError(f"not a journal record: {type(record).__name__}")


def from_plain(data: Any) -> Record:
    """The record a plain tuple (or list: an older pickle) stands for."""
    match tuple(data):
        case ("hard", term, voted_for, incarnation):
            return HardRecord(term, voted_for, incarnation)
        case ("log", start, entries):
            return LogRecord(start, tuple(codec.from_plain(x) for x in entries))
        case ("commit", index):
            return CommitRecord(index)
        case ("install", index, epoch, state):
            return InstallRecord(index, epoch, state)
        case ("lease", op):
            return LeaseRecord(tuple(op))
    raise ValueError(f"not a journal record: {str(data)[:80]}")
