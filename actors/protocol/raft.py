"""Messages of the replicated pool log: elections, log sync and heartbeats.

The distribution criteria sync of claims 6, 8, 10, 12 is the log's append
message: the leader sends every committed change to every live server through
it, and the same message is the leader's heartbeat, carrying the serving lease
(DESIGN.md 2b item 4).  Every message carries ``sender`` and ``epoch`` (Raft's
term); a message from an older epoch is ignored and logged.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from actors.protocol.entries import Entry, LeaseReport

__all__ = [
    "LogEntry",
    "ServingGrant",
    "VoteRequest",
    "VoteReply",
    "DistributionCriteriaSync",
    "SyncReply",
    "InstallSnapshot",
]


@dataclass(frozen=True)
class LogEntry:
    """One slot of the replicated log."""

    index: int
    epoch: int
    entry: Entry


@dataclass(frozen=True)
class ServingGrant:
    """The serving lease: the holder may serve from its committed allocation
    until its own send time of request ``request`` plus ``duration * (1 - rho)``.

    ``grant_id`` must be echoed by the holder's next heartbeat, or the lease is
    not renewed (a one-way link fences in either direction).
    """

    grant_id: int
    request: int
    """The holder's ``SyncReply.renewal`` number this grant answers."""
    duration: float


@dataclass(frozen=True)
class VoteRequest:
    """Candidate -> every server: vote for me in ``epoch`` (or, with
    ``pre_vote``, would you vote for me in ``epoch``?).  Reply: ``VoteReply``,
    sent only after a granted vote is persisted."""

    sender: str
    epoch: int
    last_index: int
    last_epoch: int
    pre_vote: bool = False


@dataclass(frozen=True)
class VoteReply:
    """Server -> candidate: the vote.  No reply."""

    sender: str
    epoch: int
    granted: bool
    pre_vote: bool = False


@dataclass(frozen=True)
class DistributionCriteriaSync:
    """Leader -> every other server: log entries after ``prev_index``, the
    commit index, and the serving lease (claims 6, 8, 10, 12).

    Sent every ``heartbeat_interval`` even when empty; it is the heartbeat.
    Reply: ``SyncReply``.
    """

    sender: str
    epoch: int
    prev_index: int
    prev_epoch: int
    entries: tuple[LogEntry, ...]
    commit_index: int
    round: int
    """The leader's heartbeat round; acknowledged rounds renew its leader lease."""
    serving: ServingGrant | None = None
    settings_hash: str = ""


@dataclass(frozen=True)
class SyncReply:
    """Server -> leader: log match or mismatch, plus this server's heartbeat.

    ``echo_grant`` is the last serving grant id received; ``renewal`` numbers
    this request for the next serving lease, timed from this send.  ``report``
    carries the lease changes not yet seen committed.  No reply.
    """

    sender: str
    epoch: int
    success: bool
    match_index: int
    round: int
    echo_grant: int = 0
    renewal: int = 0
    incarnation: int = 0
    settings_hash: str = ""
    report: LeaseReport | None = None


@dataclass(frozen=True)
class InstallSnapshot:
    """Leader -> lagging server: the pool state's plain-data form up to
    ``last_index``, replacing a log prefix compacted away.  Reply: ``SyncReply``."""

    sender: str
    epoch: int
    last_index: int
    last_epoch: int
    state: dict[str, Any]
    round: int = 0
