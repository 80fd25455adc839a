"""The simulator's hosts: drifting clocks, server hosts with crashable storage,
and client hosts running one session each.

A host's clock is ``local = offset + rate * real`` with ``rate`` within
``[1-rho, 1+rho]``; changing the rate keeps the local time continuous, and it
keeps running across a process crash (it is the host's monotonic clock).

A ``ServerHost`` owns the durable image of its server: a
``CrashingMemoryStorage`` plus the shell's own ``NodeStore`` over it.  Its node object exists only while
the process is up; a crash keeps the storage (minus what was not synced) and
throws the node away.  ``gen`` counts incarnations of the process, so timers
and delayed syncs of a dead process are ignored.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any

from actors.core.session import ClientSessionCore
from actors.persist import CrashingMemoryStorage
from actors.shell.persistence import STREAM, NodeStore

__all__ = ["Clock", "ServerHost", "ClientHost", "STREAM", "ADMIN", "FEATURE"]

ADMIN = "cli"
"""The admin CLI's endpoint and session id."""
FEATURE = ("cad", "2.0")
"""The feature every run licenses at t=0.1 (serial ``L1``)."""


@dataclass
class Clock:
    offset: float
    rate: float

    def local(self, real: float) -> float:
        return self.offset + self.rate * real

    def real(self, local: float) -> float:
        """The real time at which this clock shows ``local``."""
        return (local - self.offset) / self.rate

    def set_rate(self, real_now: float, rate: float) -> None:
        here = self.local(real_now)
        self.rate = rate
        self.offset = here - rate * real_now


@dataclass
class ServerHost:
    name: str
    clock: Clock
    storage: CrashingMemoryStorage
    compact_every: int = 200
    node: Any = None
    """The ServerNode while the process runs, else None."""
    store: NodeStore | None = None
    gen: int = 0
    """Process incarnation counter: bumps at every crash."""
    wake_gen: int = 0
    wake_real: float | None = None
    """Real time of the earliest timer scheduled for this process."""
    stalled_until: float | None = None
    backlog: list[tuple[str, Any, str]] = field(default_factory=list)
    """Messages that arrived during a stall: (sender, message, session)."""
    down_since: float | None = 0.0
    up_since: float | None = None
    applied_seen: int = 0
    """The node's applied index at the last check (it must never go backwards)."""
    # ---- the shell model (tests/sim/shell.py); unused in the classic model ----
    nstore: Any = None
    """The shell's ``NodeStore`` over ``storage`` while the process runs."""
    inbox: deque[Any] = field(default_factory=deque)
    step: Any = None
    """The step in progress (``shell.Step``): its records and sends are due at its end."""
    step_frozen: bool = False
    """The step's end came during a stall: it ends when the process resumes."""
    outbox: list[tuple[Any, float]] = field(default_factory=list)
    """Group commit: the burst's Readies (and local times) whose sends wait for its fsync."""
    unsynced: bool = False
    """Group commit: records appended in this burst and not yet synced."""
    batched: int = 0
    """Group commit: steps handled in this burst."""
    book: Any = None
    clients: set[str] = field(default_factory=set)
    """Sessions this process has heard from (the shell replies only to those)."""
    window: Any = None
    window_term: int = -1
    wake_due: float = float("inf")
    kill_armed: bool = False
    """A kill waits for the next step with two or more records (a crash inside a step)."""

    @property
    def up(self) -> bool:
        return self.node is not None

    @property
    def stalled(self) -> bool:
        return self.stalled_until is not None

    def open_store(self) -> NodeStore:
        self.store = NodeStore.over(self.storage, compact_every_records=self.compact_every)
        return self.store

    def crash(self, real_now: float, power_loss: bool = True) -> None:
        self.storage.crash(power_loss=power_loss)
        self.node = None
        self.store = None
        self.gen += 1
        self.wake_real = None
        self.stalled_until = None
        self.backlog.clear()
        self.down_since, self.up_since = real_now, None
        self.applied_seen = 0
        self.nstore = None
        self.inbox.clear()
        self.step = None
        self.step_frozen = False
        self.outbox.clear()
        self.unsynced = False
        self.batched = 0
        self.book = None
        self.clients.clear()
        self.window = None
        self.window_term = -1
        self.wake_due = float("inf")
        self.kill_armed = False


@dataclass
class ClientHost:
    name: str
    """Also the client id and the network endpoint."""
    session_id: str
    clock: Clock
    core: ClientSessionCore
    alive: bool = True
    wake_gen: int = 0
    wake_real: float | None = None
    app_gen: int = 0
    app_real: float | None = None
    deadlines: dict[str, float] = field(default_factory=dict)
    """lease id -> its local deadline as last seen (for S2's window)."""
    placed: dict[str, list[tuple[float, str]]] = field(default_factory=dict)
    """lease id -> [(real time, server)] where it was granted or seated."""
    lost: list[tuple[float, str, str]] = field(default_factory=list)
    """(real time, lease id, why) of every loss."""
    grants: int = 0
    crashed_at: float | None = None
    session_no: int = 1
    reconnected_at: float = 0.0
    """Real time of the app's last restart."""
    resuming: dict[int, tuple[str, tuple[str, str]]] = field(default_factory=dict)
    """request id -> (lease id, feature) a reconnected session asked to resume."""
    features: dict[str, tuple[str, str]] = field(default_factory=dict)
    seats: dict[str, int] = field(default_factory=dict)
    """lease id -> seats, for the multi-seat leases it was granted (absent: 1)."""
    """lease id -> feature, for every lease this client was ever granted."""
    released: set[str] = field(default_factory=set)
    """Lease ids this client gave back: dead for ever (S3)."""
    released_at: dict[str, float] = field(default_factory=dict)
    """lease id -> real time of its (last) release by this client."""
    queued: set[int] = field(default_factory=set)
    """Request ids of this client's queued checkouts (``queue=True``)."""
    failing: dict[str, tuple[float, str, str]] = field(default_factory=dict)
    """lease id -> (real time, server, why) when the session decided to move it off that server."""
    # ---- the shell model ----
    actor: Any = None
    """The ``shell.SessionActor`` of the current session."""
    proxy: Any = None
    """The app's ``shell.ClientProxy`` (LicenseClient)."""
    resume_ids: set[str] = field(default_factory=set)
    """Leases the app held when it last restarted (the shell model's reconnect)."""
    orphan_since: dict[str, float] = field(default_factory=dict)
    """lease id -> real time since the session holds it and the app does not know it."""
