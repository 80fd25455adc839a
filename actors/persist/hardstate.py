"""Raft hard state: term, vote and incarnation, durable before any answer.

Raft is only safe if a vote is on disk before the vote reply leaves. The hard
state is tiny and changes rarely (once per term at most, plus once per
restart), so it is simply a snapshot file rewritten atomically on every change:
when :func:`save_hard_state` returns, the new value has been fsynced and
renamed into place.
"""

from __future__ import annotations

from dataclasses import dataclass

from .errors import CorruptSnapshot
from .snapshot import read_snapshot, write_snapshot
from .storage import Storage

__all__ = ["HARD_STATE_FILE", "HardState", "load_hard_state", "save_hard_state"]

HARD_STATE_FILE = "hardstate.snap"
_SCHEMA_VERSION = 1


@dataclass(frozen=True)
class HardState:
    """What a Raft server must remember across restarts."""

    term: int = 0
    """The latest term this server has seen."""
    voted_for: str | None = None
    """The server it voted for in ``term``, if any."""
    incarnation: int = 0
    """Bumped on every restart, so peers can tell a restarted server apart."""


def save_hard_state(storage: Storage, hard_state: HardState) -> None:
    """Durably replace the hard state; returns only once it is on disk."""
    write_snapshot(
        storage,
        HARD_STATE_FILE,
        {
            "term": hard_state.term,
            "voted_for": hard_state.voted_for,
            "incarnation": hard_state.incarnation,
        },
        schema_version=_SCHEMA_VERSION,
        meta={"kind": "hardstate"},
    )


def load_hard_state(storage: Storage) -> HardState | None:
    """Return the saved hard state, or None on a first start."""
    snapshot = read_snapshot(storage, HARD_STATE_FILE, schema_version=_SCHEMA_VERSION)
    if snapshot is None:
        return None
    state = snapshot.state
    if (
        type(state) is not dict
        or type(state.get("term")) is not int
        or type(state.get("incarnation")) is not int
        or not (state.get("voted_for") is None or type(state.get("voted_for")) is str)
    ):
        raise CorruptSnapshot(snapshot.name, "not a hard state (term, voted_for, incarnation)")
    return HardState(state["term"], state["voted_for"], state["incarnation"])
