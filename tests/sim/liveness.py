"""The timing bounds the liveness checks use, and the S3 and L1 trackers.

Bounds are in *real* seconds, so each includes the worst clock rate: a
duration ``d`` measured on a clock running at ``1-rho`` lasts ``d/(1-rho)``.

* **S3**: when a client crashes, every lease carrying its client id must be
  gone from every running server's local table, registry and pending updates
  by ``crash + s3_base``.  Any fault touching the servers during that time
  pushes the deadline to ``fault end + s3_extended`` (the server may have been
  down, fenced, rejoining: one more lease time plus the fence bound), so the
  check lands once the pool has been quiet long enough.
* **L1**: in the quiet tail, once ``settle`` has passed, every checkout must be
  granted within ``l1_bound`` unless, at some moment of that wait, the pool had
  no unused seat: the clients' view, or the servers' own count (live leases,
  releases not yet committed, seats in flight) reached the total, or some
  server's committed queue of waiting checkouts was not empty (its seats go to
  the queue first).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

from actors.core.table import FeatureKey
from actors.core.timing import Timing
from actors.protocol.client import DenyReason
from tests.sim.checks import InvariantViolation

if TYPE_CHECKING:
    from tests.sim.checks import Checker
    from tests.sim.hosts import ClientHost
    from tests.sim.world import World

__all__ = ["Bounds", "S3Tracker", "L1Tracker"]


@dataclass(frozen=True)
class Bounds:
    timing: Timing
    servers: int
    max_delay: float

    @property
    def slow(self) -> float:
        """Real seconds per local second on the slowest clock."""
        return 1.0 / (1.0 - self.timing.clock_drift)

    @property
    def report_interval(self) -> float:
        """2h + max delay: a grant is in the committed registry after this."""
        return 2 * self.timing.heartbeat_interval + self.max_delay

    @property
    def lease_hold(self) -> float:
        """Longest a server keeps an unrenewed lease: T(1+rho) on the slowest clock."""
        return self.timing.grantor_valid_for(self.timing.lease_ttl) * self.slow

    @property
    def fence(self) -> float:
        """Suspect a silent server, elect around it, wait out leases, fence it."""
        t = self.timing
        h, f = t.heartbeat_interval, t.failure_timeout
        election = f + self.servers * h + 2 * h
        return (f + election + t.new_leader_wait + t.grantor_valid_for(t.fence_timeout) + 4 * h) * self.slow

    @property
    def slack(self) -> float:
        return 8 * self.timing.heartbeat_interval + 10 * self.max_delay

    @property
    def s3_base(self) -> float:
        return self.lease_hold + self.timing.failure_timeout * self.slow + self.slack

    @property
    def s3_extended(self) -> float:
        return self.lease_hold + self.fence + self.slack

    @property
    def settle(self) -> float:
        return self.fence + self.slack

    @property
    def l1_bound(self) -> float:
        t = self.timing
        waits = t.new_leader_wait + t.grantor_valid_for(t.fence_timeout)
        return (6 * t.heartbeat_interval + waits) * self.slow + 4 * self.max_delay


class S3Tracker:
    def __init__(self, world: World, checker: Checker) -> None:
        self.w, self.c = world, checker
        self.crashed: dict[str, float] = {}
        self._cache: dict[str, tuple[int, float]] = {}

    def client_crashed(self, client: ClientHost) -> None:
        self.crashed[client.name] = self.w.now

    def deadline(self, name: str, crashed_at: float) -> float:
        version = len(self.w.history.faults), sum(math.isinf(f.end) for f in self.w.history.faults)
        key = hash(version)
        cached = self._cache.get(name)
        if cached is not None and cached[0] == key:
            return cached[1]
        b = self.w.bounds
        due = crashed_at + b.s3_base
        servers = set(self.w.servers)
        faults = sorted(
            (f for f in self.w.history.faults if f.subjects & servers or f.kind == "lossy"), key=lambda f: f.start
        )
        changed = True
        while changed and not math.isinf(due):
            changed = False
            for f in faults:
                if f.start <= due and f.end >= crashed_at and f.end + b.s3_extended > due:
                    due, changed = f.end + b.s3_extended, True
        self._cache[name] = (key, due)
        return due

    def due(self, final: bool = False) -> None:
        for name, crashed_at in list(self.crashed.items()):
            if self.w.now < crashed_at + self.w.bounds.s3_base:
                if final:
                    self.c.stats["S3 unfinished"] += 1
                continue
            due = self.deadline(name, crashed_at)
            if self.w.now < due:
                if final:
                    self.c.stats["S3 unfinished"] += 1
                continue
            del self.crashed[name]
            self.c.stats["S3 checked"] += 1
            self._check(name, crashed_at, due)

    def _check(self, name: str, crashed_at: float, due: float) -> None:
        for host in self.w.servers.values():
            node = host.node
            if node is None:
                continue
            local = [lid for lid, x in node.member.leases.leases.items() if x.client_id == name]
            reg = [lid for lid, x in node.pool.registry.leases.items() if x.client_id == name]
            pending = [lid for lid, x in node.pool.registry.pending.items() if x.client_id == name]
            if local or reg or pending:
                raise InvariantViolation(
                    "S3",
                    f"client {name} crashed at {crashed_at:.3f}; at {self.w.now:.3f} (due {due:.3f}) {host.name} "
                    f"still has local={local} registry={reg} pending={pending}",
                )


@dataclass
class _Wait:
    client: str
    request_id: int
    key: FeatureKey
    sent: float
    due: float
    blocked: bool = False
    seats: int = 1
    """Seats asked for in one lease: it is blocked while fewer than that are unused."""


class L1Tracker:
    def __init__(self, world: World, checker: Checker) -> None:
        self.w, self.c = world, checker
        self.open: dict[tuple[str, int], _Wait] = {}
        self.direct_before: set[tuple[str, int]] = set()
        """Direct asks made before the check was active (their fall-backs are not checked either)."""

    def active(self) -> bool:
        q = self.w.quiet_at
        return q is not None and self.w.now >= q + self.w.bounds.settle

    def checkout(
        self, client: ClientHost, request_id: int, key: FeatureKey, seats: int = 1, direct: bool = False
    ) -> None:
        """A checkout is asked.  An app's direct ask that falls back to its session is one checkout, timed
        from the direct ask: a wait open for it keeps that send, and one asked before the check was active
        stays unchecked (``direct``: this is the direct ask)."""
        if (client.name, request_id) in self.direct_before:
            return
        if direct and not self.active():
            self.direct_before.add((client.name, request_id))
        if self.active() and (client.name, request_id) not in self.open:
            now = self.w.now
            wait = _Wait(client.name, request_id, key, now, now + self.w.bounds.l1_bound, seats=seats)
            self.open[(client.name, request_id)] = wait
            self._sample(wait)

    def granted(self, client: ClientHost, request_id: int) -> None:
        if self.open.pop((client.name, request_id), None) is not None:
            self.c.stats["L1 granted"] += 1

    def denied(self, client: ClientHost, request_id: int, reason: str) -> None:
        wait = self.open.pop((client.name, request_id), None)
        if wait is None:
            return
        self._sample(wait)
        if wait.blocked or reason not in (DenyReason.NO_SEATS, DenyReason.NOT_SERVING, DenyReason.NO_MAJORITY):
            self.c.stats["L1 denied, pool full"] += 1
            return
        raise InvariantViolation(
            "L1",
            f"{client.name} request {request_id} for {wait.key} denied {reason} at {self.w.now:.3f} "
            f"though a seat was unused all along (sent {wait.sent:.3f})",
        )

    def abandoned(self, client: ClientHost, request_id: int) -> None:
        self.open.pop((client.name, request_id), None)

    def used(self, key: FeatureKey) -> int:
        """Seats of ``key`` that cannot be granted now: the union, by lease id,
        of every view that blocks a seat. The clients' (held, plus leases a
        restarted app is resuming), the servers' own (live leases and
        uncommitted releases), and the leader's committed registry, plus the
        leader's seats in flight.

        A union, not the largest single view: a seat can be blocked in one
        view only (a release not yet committed is only in its server's view; a
        handover committed but not yet applied by its taker is only in the
        registry and the client's), and the largest view then undercounts
        (seed 5005: four seats blocked, no view showing more than three)."""
        w = self.w
        ids: dict[str, int] = {}
        """lease id -> seats (a multi-seat lease counts its seats)."""
        anonymous = 0
        for client in w.clients.values():
            if client.alive:
                ids.update(
                    (lid, x.seats)
                    for lid, x in client.core.held(client.clock.local(w.now)).items()
                    if (x.feature, x.version) == key
                )
                ids.update((lid, client.seats.get(lid, 1)) for lid, k in client.resuming.values() if k == key)
        in_flight = 0
        for host in w.servers.values():
            if host.node is None:
                continue
            leases = host.node.member.leases
            ids.update((lid, x.seats) for lid, x in leases.leases.items() if x.key == key)
            released = {c.seq: (c.lease_id, c.seats) for c in leases.changes if c.kind == "release"}
            for seq, k in leases.releasing.items():
                if k != key:
                    continue
                if seq in released:
                    ids[released[seq][0]] = released[seq][1]
                else:
                    anonymous += leases.releasing_seats.get(seq, 1)
            table = host.node.pool.features.get(key)
            if table is not None and host.node.role == "leader":
                in_flight = table.in_flight
                ids.update((lid, x.seats) for lid, x in host.node.pool.registry.leases.items() if x.key == key)
        return sum(ids.values()) + anonymous + in_flight

    def queued(self, key: FeatureKey) -> bool:
        """Some server's committed queue of ``key`` is not empty: by design every
        seat of it goes to the queue's oldest waiters first, and a newcomer is
        refused NO_SEATS (docs/licenses.md, "Queued checkouts"), so the wait
        counts as one where the pool had no seat to give."""
        return any(h.node is not None and h.node.pool.queues.get(key) for h in self.w.servers.values())

    def _sample(self, wait: _Wait) -> None:
        if self.queued(wait.key) or self.used(wait.key) > self.c.total.get(wait.key, 0) - wait.seats:
            wait.blocked = True

    def sample(self) -> None:
        if not self.open:
            return
        used: dict[FeatureKey, int] = {}
        for key in {x.key for x in self.open.values()}:
            used[key] = self.used(key)
        for ident, wait in list(self.open.items()):
            if used[wait.key] > self.c.total.get(wait.key, 0) - wait.seats or self.queued(wait.key):
                wait.blocked = True
            if self.w.now >= wait.due:
                del self.open[ident]
                self._expired(wait)

    def _expired(self, wait: _Wait) -> None:
        if wait.blocked:
            self.c.stats["L1 waited, pool full"] += 1
            return
        raise InvariantViolation(
            "L1",
            f"{wait.client} request {wait.request_id} for {wait.key} sent at {wait.sent:.3f} not granted "
            f"by {wait.due:.3f} though a seat was unused all along",
        )

    def finish(self) -> None:
        for wait in list(self.open.values()):
            if self.w.now >= wait.due:
                self._expired(wait)
