"""The replicated lease registry: which lease ids are live where, and which are dead.

Servers report their lease changes (numbered, cumulative) and the leader appends
the reports to the log, so every server holds the same registry.  It answers the
questions fail-over needs (leadership.md M5, M6, M8):

* Is this lease live, and at which server?  (``holder``)
* Is this lease id dead for ever?  A lease id carries its origin server and a
  counter.  Ids at or below the origin's reported *watermark* that are not live
  are dead; so are the few ids above it killed before their origin reported
  them (``tombstones``).  Tombstones are dropped once the watermark passes them,
  so the registry stays bounded without ever resurrecting an id.
* Which fail-over updates wait for a seat?  (``pending``)

Pure plain data: no clock, no I/O.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from actors.core.leaseid import parse_lease_id
from actors.core.plain import flat
from actors.core.table import FeatureKey

__all__ = ["RegisteredLease", "PendingUpdate", "LeaseRegistry", "lease_origin"]


def lease_origin(lease_id: str) -> tuple[str, int] | None:
    """(origin server, counter) of a lease id, or None when it is malformed."""
    try:
        parts = parse_lease_id(lease_id)
    except ValueError:
        return None
    return parts.server, parts.counter


@dataclass
class RegisteredLease:
    """A live lease as the pool knows it."""

    lease_id: str
    client_id: str
    feature: str
    version: str
    holder: str
    client_seq: int = 0
    """The highest fail-over sequence number applied to it."""
    revoked: bool = False
    """Force-released: its holder stops renewing it; its seat frees at expiry."""
    seats: int = 1
    """Seats it holds (a multi-seat checkout)."""

    @property
    def key(self) -> FeatureKey:
        return (self.feature, self.version)


@dataclass
class PendingUpdate:
    """A fail-over update held until a seat appears (leadership.md M8)."""

    lease_id: str
    client_id: str
    feature: str
    version: str
    to_server: str
    client_seq: int
    seats: int = 1
    """Seats the lease holds: it is seated whole, from one source."""

    @property
    def key(self) -> FeatureKey:
        return (self.feature, self.version)


@dataclass
class LeaseRegistry:
    leases: dict[str, RegisteredLease] = field(default_factory=dict)
    watermark: dict[str, int] = field(default_factory=dict)
    tombstones: dict[str, set[str]] = field(default_factory=dict)
    report_seq: dict[str, int] = field(default_factory=dict)
    pending: dict[str, PendingUpdate] = field(default_factory=dict)
    _counts: Counter[tuple[str, str, str]] = field(default_factory=Counter, repr=False)

    # ---- queries -------------------------------------------------------------

    def holder(self, lease_id: str) -> str | None:
        lease = self.leases.get(lease_id)
        return lease.holder if lease else None

    def is_killed(self, lease_id: str) -> bool:
        """Dead, or revoked (a ``ForceRelease`` applied: it waits only for its
        holder's report to go): no one may renew, resume or move it again."""
        lease = self.leases.get(lease_id)
        return lease.revoked if lease is not None else self.is_dead(lease_id)

    def is_dead(self, lease_id: str) -> bool:
        """True when the id can never be resumed or failed over again."""
        if lease_id in self.leases:
            return False
        origin = lease_origin(lease_id)
        if origin is None:
            return True
        server, counter = origin
        return counter <= self.watermark.get(server, 0) or lease_id in self.tombstones.get(server, set())

    def in_use(self, server: str, key: FeatureKey) -> int:
        """Seats of live leases of ``key`` at ``server``, as reported and committed."""
        return self._counts[(server, key[0], key[1])]

    def held_at(self, server: str) -> list[RegisteredLease]:
        return [lease for lease in self.leases.values() if lease.holder == server]

    # ---- changes (called only while applying committed entries) -------------

    def add(self, lease: RegisteredLease) -> bool:
        """Register a live lease; refuses dead ids and ids live elsewhere."""
        if lease.lease_id in self.leases or self.is_dead(lease.lease_id):
            return False
        self.leases[lease.lease_id] = lease
        self._counts[(lease.holder, lease.feature, lease.version)] += lease.seats
        self.pending.pop(lease.lease_id, None)
        return True

    def kill(self, lease_id: str) -> RegisteredLease | None:
        """The lease is released, expired or reclaimed: dead for ever."""
        lease = self.leases.pop(lease_id, None)
        if lease is not None:
            self._counts[(lease.holder, lease.feature, lease.version)] -= lease.seats
        self.pending.pop(lease_id, None)
        origin = lease_origin(lease_id)
        if origin is not None and origin[1] > self.watermark.get(origin[0], 0):
            self.tombstones.setdefault(origin[0], set()).add(lease_id)
        return lease

    def move(self, lease_id: str, to_server: str, client_seq: int) -> None:
        lease = self.leases[lease_id]
        self._counts[(lease.holder, lease.feature, lease.version)] -= lease.seats
        lease.holder = to_server
        lease.client_seq = max(lease.client_seq, client_seq)
        self._counts[(to_server, lease.feature, lease.version)] += lease.seats
        self.pending.pop(lease_id, None)

    def raise_watermark(self, server: str, watermark: int) -> None:
        if watermark <= self.watermark.get(server, 0):
            return
        self.watermark[server] = watermark
        stones = self.tombstones.get(server)
        if stones:
            # Ids at or below the watermark are dead by the watermark rule alone.
            kept = {i for i in stones if (lease_origin(i) or (server, 0))[1] > watermark}
            if kept:
                self.tombstones[server] = kept
            else:
                del self.tombstones[server]

    # ---- plain data ------------------------------------------------------------

    def to_plain(self) -> dict[str, Any]:
        return {
            "leases": [flat(lease) for lease in self.leases.values()],
            "watermark": dict(self.watermark),
            "tombstones": {s: sorted(ids) for s, ids in self.tombstones.items()},
            "report_seq": dict(self.report_seq),
            "pending": [flat(p) for p in self.pending.values()],
        }

    @classmethod
    def from_plain(cls, data: dict[str, Any]) -> LeaseRegistry:
        reg = cls(
            watermark=dict(data.get("watermark", {})),
            tombstones={s: set(ids) for s, ids in data.get("tombstones", {}).items()},
            report_seq=dict(data.get("report_seq", {})),
            pending={p["lease_id"]: PendingUpdate(**p) for p in data.get("pending", [])},
        )
        for raw in data.get("leases", []):
            lease = RegisteredLease(**raw)
            reg.leases[lease.lease_id] = lease
            reg._counts[(lease.holder, lease.feature, lease.version)] += lease.seats
        return reg
