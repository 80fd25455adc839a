"""Messages of the replicated pool log: elections, log sync and heartbeats.

The distribution criteria sync of claims 6, 8, 10, 12 is the log's append
message: the leader sends every committed change to every live server through
it, and the same message is the leader's heartbeat, carrying the serving lease
(leadership.md M4).  Every message carries ``sender`` and ``epoch`` (Raft's
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


@dataclass(frozen=True, kw_only=True)
class LogEntry:
    """One slot of the replicated log."""

    index: int
    """The slot's log index, from 1; consecutive within one sync."""
    epoch: int
    """The epoch of the leader that appended it (Raft's entry term)."""
    entry: Entry
    """The pool log entry (``actors.protocol.entries``)."""


@dataclass(frozen=True, kw_only=True)
class ServingGrant:
    """The serving lease: the holder may serve from its committed allocation
    until its own send time of request ``request`` plus ``duration * (1 - rho)``.

    ``grant_id`` must be echoed by the holder's next heartbeat, or the lease is
    not renewed (a one-way link fences in either direction).
    """

    grant_id: int
    """Unique across leaders: the leader's epoch times 10**9 plus its grant counter.  The holder echoes it in
    ``SyncReply.echo_grant``."""
    request: int
    """The holder's ``SyncReply.renewal`` number this grant answers."""
    duration: float
    """Seconds: at most ``fence_timeout`` and what remains of the leader's own lease; 0 for a server that may not
    serve (fenced, or a fence on its way): a probe that only shows the link works."""


@dataclass(frozen=True, kw_only=True)
class VoteRequest:
    """Candidate -> every server: vote for me in ``epoch`` (or, with
    ``pre_vote``, would you vote for me in ``epoch``?).  Reply: ``VoteReply``,
    sent only after a granted vote is persisted."""

    sender: str
    epoch: int
    """The epoch the candidate runs in; for a pre-vote, the epoch it would run in (its term + 1, not adopted by
    anyone)."""
    last_index: int
    """The candidate's last log index (a voter grants only a log at least as up to date)."""
    last_epoch: int
    """The epoch of the candidate's last log entry."""
    pre_vote: bool = False
    """True: a PreVote round, which changes no term and persists no vote."""


@dataclass(frozen=True, kw_only=True)
class VoteReply:
    """Server -> candidate: the vote.  No reply."""

    sender: str
    epoch: int
    """The voter's term; for a pre-vote weighed on its merits (not refused as stale), the asked epoch."""
    granted: bool
    """The vote (or pre-vote) is granted; a real one was persisted before this reply was sent."""
    pre_vote: bool = False
    """Echoes ``VoteRequest.pre_vote``."""


@dataclass(frozen=True, kw_only=True)
class DistributionCriteriaSync:
    """Leader -> every other server: log entries after ``prev_index``, the
    commit index, and the serving lease (claims 6, 8, 10, 12).

    Sent every ``heartbeat_interval`` even when empty; it is the heartbeat.
    Reply: ``SyncReply``.
    """

    sender: str
    epoch: int
    prev_index: int
    """The log index just before ``entries`` (the follower's next index minus 1)."""
    prev_epoch: int
    """The epoch of the entry at ``prev_index``: the follower accepts only if its own matches."""
    entries: tuple[LogEntry, ...]
    """Consecutive slots after ``prev_index``, at most ``max_batch`` (64) of them; empty for a plain heartbeat."""
    commit_index: int
    """The leader's commit index: the follower applies up to it (and no further than the entries it has from this
    leader)."""
    round: int
    """The leader's heartbeat round; acknowledged rounds renew its leader lease."""
    serving: ServingGrant | None = None
    """A serving lease for the follower, in answer to its latest ``SyncReply.renewal``; None when none is due."""
    settings_hash: str = ""
    """sha256 hex of the settings every server must share (``PoolConfig.settings_hash``); a follower with another
    hash ignores the sync.  Empty: not checked."""


@dataclass(frozen=True, kw_only=True)
class SyncReply:
    """Server -> leader: log match or mismatch, plus this server's heartbeat.

    ``echo_grant`` is the last serving grant id received; ``renewal`` numbers
    this request for the next serving lease, timed from this send.  ``report``
    carries the lease changes not yet seen committed.  No reply.
    """

    sender: str
    epoch: int
    success: bool
    """The entries matched at ``prev_index`` and were stored."""
    match_index: int
    """On success, the last index known to match the leader's log; on failure, where the leader should look next (it
    resends from ``match_index + 1`` at the latest)."""
    round: int
    """Echoes ``DistributionCriteriaSync.round`` (or ``InstallSnapshot.round``): a majority's acks extend the leader
    lease from that round's send, and the shell's send window frees on it."""
    echo_grant: int = 0
    """The id of the last ``ServingGrant`` this server received (0: none yet)."""
    renewal: int = 0
    """Numbers this request for the next serving lease (the holder's counter, timed from this send); 0: no request."""
    incarnation: int = 0
    """The sender's incarnation (it grows at every restart): the leader resets its grants on a change and proposes
    ``Rejoin`` for it."""
    settings_hash: str = ""
    """The sender's settings hash; the leader ignores a reply whose hash differs from its own."""
    report: LeaseReport | None = None
    """The sender's lease changes not yet seen committed; None when it has nothing new."""
    table_lost: bool = False
    """The sender's lease table may lack leases an earlier incarnation of it granted (it was rebuilt on an empty
    disk): the leader fences and reclaims that incarnation before it proposes ``Rejoin``."""
    empty_boot: bool = False
    """The sender booted on an empty data directory and has not taken its own ``Rejoin`` since.  Unlike
    ``table_lost`` it does not wait for the sender to apply the pool's record of it: the leader, which has that record,
    treats the table as lost when the record names an earlier incarnation (leadership.md, "Rejoin after a lost
    disk")."""


@dataclass(frozen=True, kw_only=True)
class InstallSnapshot:
    """Leader -> lagging server: the pool state's plain-data form up to
    ``last_index``, replacing a log prefix compacted away.  Reply: ``SyncReply``."""

    sender: str
    epoch: int
    last_index: int
    """The log index the snapshot covers up to (the leader's compacted prefix)."""
    last_epoch: int
    """The epoch of the entry at ``last_index``."""
    state: dict[str, Any]
    """``PoolState.to_plain()`` at ``last_index``; installed only if every count matches the signed codes it holds
    and its servers are the configured ones."""
    round: int = 0
    """The leader's current heartbeat round, echoed in the ``SyncReply``."""
