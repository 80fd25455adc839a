"""Trivial stand-ins for the server node and the client session, to test the
simulator's own machinery (clocks, storage, crash points, replay) apart from
the real cores.

``CounterNode`` counts the pings it received, persists the count, and only
then acknowledges it: so an acknowledged count must survive any crash, and an
ack sent after a restart must never show a count an earlier boot acknowledged.
The world's store takes the core's journal records only, so the count goes in
a ``CommitRecord`` and the boot number in a ``HardRecord``'s incarnation (Ping
and Ack are no protocol messages either; the world carries them all the same).
``PingSession`` pings server ``s1`` every ``interval`` and records every ack; a
count that goes back is a lost durable write.  With
``durable_before_send=False`` the world sends the ack before the sync, and a
crash in between shows up as ``regressions``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, cast

from actors.core.effects import ClientRef, Message, Ready
from actors.core.records import CommitRecord, HardRecord
from actors.core.timing import Timing

__all__ = ["Ping", "Ack", "CounterNode", "PingSession"]


@dataclass(frozen=True)
class Ping:
    seq: int


@dataclass(frozen=True)
class Ack:
    seq: int
    count: int
    boots: int
    """The node's boot number: an ack of a later boot was sent after every ack of an earlier one."""


class _Raft:
    commit_index = 0

    class log:
        last_index = 0
        snap_index = 0


class CounterNode:
    role = "follower"
    epoch = 0
    applied = 0
    raft = _Raft()

    def __init__(self, name: str) -> None:
        self.name = name
        self.count = 0
        self.boots = 0

    @classmethod
    def boot(cls, settings: Any, durable: tuple[Any, list[Any]] | None, now: float) -> tuple[CounterNode, Ready]:
        node = cls(settings.name)
        if durable is not None:
            snapshot, records = durable
            node.count = snapshot["count"] if snapshot else 0
            node.boots = snapshot["boots"] if snapshot else 0
            for record in records:
                if isinstance(record, CommitRecord):
                    node.count = max(node.count, record.index)
                elif isinstance(record, HardRecord):
                    node.boots = max(node.boots, record.incarnation)
        node.boots += 1
        return node, Ready(persist=[HardRecord(0, None, node.boots)], wake_at=now + 1.0)

    def receive(self, sender: str, msg: Any, now: float) -> Ready:
        return Ready()

    def from_client(self, ref: ClientRef, msg: Any, now: float) -> Ready:
        ready = Ready()
        if isinstance(msg, Ping):
            self.count += 1
            ready.persist.append(CommitRecord(self.count))
            ready.to(ref, cast(Message, Ack(msg.seq, self.count, self.boots)))
        return ready

    def tick(self, now: float) -> Ready:
        return Ready(wake_at=now + 1.0)

    def snapshot(self) -> dict[str, Any]:
        return {"count": self.count, "boots": self.boots}


@dataclass
class PingSession:
    client_id: str
    session_id: str
    servers: tuple[str, ...]
    timing: Timing
    interval: float = 0.05
    seq: int = 0
    acks: list[tuple[int, int]] = field(default_factory=list)
    """(boots, count) of every ack."""
    regressions: list[tuple[int, int]] = field(default_factory=list)
    """(highest count acked by an earlier boot, the count a later boot acked)."""

    def tick(self, now: float) -> Ready:
        self.seq += 1
        ready = Ready(wake_at=now + self.interval)
        ready.to(self.servers[0], cast(Message, Ping(self.seq)))
        return ready

    def receive(self, server: str, msg: Any, now: float) -> Ready:
        if isinstance(msg, Ack):
            earlier = [count for boots, count in self.acks if boots < msg.boots]
            if earlier and msg.count <= max(earlier):
                self.regressions.append((max(earlier), msg.count))
            self.acks.append((msg.boots, msg.count))
        return Ready()

    def held(self, now: float) -> dict[str, Any]:
        return {}

    def checkout(self, *args: Any, **kwargs: Any) -> Ready:
        return Ready()

    def release(self, lease_id: str, now: float) -> Ready:
        return Ready()

    def abandon(self, request_id: int, now: float) -> Ready:
        return Ready()
