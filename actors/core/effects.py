"""What the pure core asks its shell to do: persist, then send, then wake up.

Every core handler returns a ``Ready`` (etcd-raft's name for it).  The shell
(the Thespian actor, or the simulator) must carry it out in this order:

1. append every record in ``persist`` to the node's journal and fsync it;
2. only then send every message in ``send``;
3. call ``tick`` again at ``wake_at`` (local clock) at the latest.

Records are the typed journal records of ``actors.core.records``; the store
turns them into plain tuples of builtins (``records.to_plain``), so the safe
unpickler can load them, and a snapshot is just the plain-data form of the state.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from actors.core.records import Record
from actors.protocol import client, pool, raft

__all__ = ["ClientRef", "Message", "Outgoing", "Event", "Ready", "Record"]

Message = (
    raft.VoteRequest
    | raft.VoteReply
    | raft.DistributionCriteriaSync
    | raft.SyncReply
    | raft.InstallSnapshot
    | pool.BorrowRequest
    | pool.BorrowReply
    | pool.TransferRequest
    | pool.TransferConfirm
    | pool.FailoverForward
    | pool.ReleaseForward
    | pool.FailoverOutcome
    | pool.AddLicenseCode
    | pool.AddAllocations
    | pool.ChangeDistributionCriteria
    | pool.ForceReleaseLease
    | pool.DeclareServerDown
    | pool.SetIdleTimeout
    | pool.AdminReply
    | pool.QueueJoinRequest
    | pool.QueueLeaveRequest
    | pool.QueueFull
    | client.CheckoutRequest
    | client.CheckoutGranted
    | client.CheckoutDenied
    | client.SessionHeartbeat
    | client.HeartbeatAck
    | client.ReleaseRequest
    | client.ReleaseAck
    | client.FailoverUpdate
    | client.FailoverReply
    | client.CheckoutQueued
)
"""Every message a core sends: to a server (raft, pool) or between a client
session and a server (client)."""


@dataclass(frozen=True)
class ClientRef:
    """Where a client session's replies go.  The core treats it as opaque; the
    shell maps it to an actor address, the simulator to a client model."""

    session_id: str


@dataclass(frozen=True)
class Outgoing:
    """A message to a server (by config name) or to a client session."""

    to: str | ClientRef
    msg: Message


@dataclass(frozen=True)
class Event:
    """Something worth an audit line or a demo line: grant, release, expiry,
    denial, borrow, transfer, leader change, fail-over, fence, reclaim, rejoin."""

    kind: str
    fields: tuple[tuple[str, Any], ...] = ()

    def get(self, name: str, default: Any = None) -> Any:
        return dict(self.fields).get(name, default)


@dataclass
class Ready:
    persist: list[Record] = field(default_factory=list)
    send: list[Outgoing] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    wake_at: float | None = None

    def merge(self, other: Ready) -> Ready:
        self.persist.extend(other.persist)
        self.send.extend(other.send)
        self.events.extend(other.events)
        if other.wake_at is not None:
            self.wake_at = other.wake_at if self.wake_at is None else min(self.wake_at, other.wake_at)
        return self

    def to(self, to: str | ClientRef, msg: Message) -> None:
        self.send.append(Outgoing(to, msg))

    def event(self, kind: str, **fields: Any) -> None:
        self.events.append(Event(kind, tuple(sorted(fields.items()))))
