"""One server's local lease table: the fast path of leadership.md M2.

A server grants, renews and releases client leases from its own committed
allocation, with no log round trip.  This module keeps those leases and the
numbered changes the server reports to the leader:

* ``in_use`` counts live leases *and* released seats whose release report is not
  yet committed: a released seat is handed out again only after the pool knows
  it was released, so a late fail-over of that lease can never find its seat
  sold twice.
* A lease id this server issued and no longer holds is dead for ever; resuming
  it is refused.  The counter inside ids makes that a single comparison.
* Expiry is grantor-side: ``now + ttl * (1 + rho)`` from the renewal's receipt,
  never earlier than the client's own deadline.

Pure: times are passed in (the shell's monotonic clock), nothing is read.
"""

from __future__ import annotations

import dataclasses
import heapq
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from actors.core.plain import flat
from actors.core.registry import lease_origin
from actors.core.table import FeatureKey
from actors.protocol.entries import LeaseChange, LeaseReport

__all__ = ["LocalLease", "LocalLeases", "GRANT", "RELEASE", "EXPIRE"]

GRANT, RELEASE, EXPIRE = "grant", "release", "expire"


@dataclass
class LocalLease:
    lease_id: str
    client_id: str
    session_id: str
    feature: str
    version: str
    expires_at: float
    """Grantor-side expiry on this server's clock."""
    granted_at: float = 0.0
    revoked: bool = False
    """Force-released: never renewed again; its seat frees when it expires."""
    client_seq: int = 0
    """The newest fail-over or resume sequence number this server served for
    it: a handover asked with an older one is refused (a stale copy)."""
    seats: int = 1
    """Seats it holds (a multi-seat checkout, times the table's token weight)."""
    linger: float = 0.0
    """Seconds its seats stay held after the client releases it."""
    lingering: bool = False
    """Released by its client, held for ``linger`` seconds (until ``expires_at``):
    never renewed; the same client may take its seats back (``retake``)."""
    idle_since: float | None = None
    """When its session first reported it idle (``auth.idle()``); None: busy."""

    @property
    def key(self) -> FeatureKey:
        return (self.feature, self.version)


@dataclass
class LocalLeases:
    server: str
    leases: dict[str, LocalLease] = field(default_factory=dict)
    counter: int = 0
    """The last lease counter issued; persisted before an id is handed out."""
    change_seq: int = 0
    changes: list[LeaseChange] = field(default_factory=list)
    """Changes not yet seen committed, re-sent in every report until they are."""
    committed_seq: int = 0
    releasing: dict[int, FeatureKey] = field(default_factory=dict)
    """change seq -> feature of a release whose report is not committed yet."""
    releasing_seats: dict[int, int] = field(default_factory=dict)
    """change seq -> seats of such a release, for the multi-seat ones only (absent: 1)."""
    ops: list[tuple[Any, ...]] = field(default_factory=list, repr=False)
    """Journal records of every durable change since the last drain (renewals
    are not durable: restored leases get a fresh ``lease_ttl`` instead)."""
    _held: Counter[FeatureKey] = field(default_factory=Counter, repr=False)
    _by_client: dict[str, dict[str, None]] = field(default_factory=dict, repr=False, compare=False)
    """client id -> ids of its leases here, in the order of ``leases`` (a lease's
    client never changes): a heartbeat's digest and a retake are looked up among
    the client's leases, not all of them."""
    _lingering: Counter[str] = field(default_factory=Counter, repr=False, compare=False)
    """client id -> its lingering leases here: a checkout looks for one to take
    back only when there is one (a scan of the client's leases, twice per checkout)."""
    _expiry: list[tuple[float, str]] = field(default_factory=list, repr=False, compare=False)
    """Min-heap of (expires_at, lease id), checked lazily: an expiry only ever
    grows while a lease is held (``restart`` rebuilds the heap), so a stale
    entry is re-pushed at its lease's current expiry when it reaches the top,
    and an entry of a lease gone is dropped there.  The next wake-up and
    ``expire`` cost O(log n), not a scan of every lease per message."""

    # ---- queries -------------------------------------------------------------

    def held(self, key: FeatureKey) -> int:
        """Seats of live leases of ``key`` here (lingering ones included)."""
        return self._held[key]

    def in_use(self, key: FeatureKey) -> int:
        """Seats of ``key`` that cannot be granted: live (and lingering) leases
        plus releases not yet committed."""
        return self._held[key] + sum(self.releasing_seats.get(s, 1) for s, k in self.releasing.items() if k == key)

    def bound_to(self, client_id: str, session_id: str) -> tuple[str, ...]:
        """The sorted ids of the leases a heartbeat of this client and session
        would renew here: bound to that session, neither released (lingering)
        nor revoked.  A digest heartbeat is checked against them."""
        found = []
        for lease_id in self._by_client.get(client_id, ()):
            lease = self.leases[lease_id]
            if lease.session_id == session_id and not lease.lingering and not lease.revoked:
                found.append(lease_id)
        return tuple(sorted(found))

    def lingering(self, key: FeatureKey) -> int:
        """Seats of ``key`` held only because a released lease lingers."""
        return sum(lease.seats for lease in self.leases.values() if lease.lingering and lease.key == key)

    # ---- the fast path -----------------------------------------------------------

    def next_counter(self) -> int:
        """Reserve the counter for a new lease id (persist before using it)."""
        self.counter += 1
        self.ops.append(("counter", self.counter))
        return self.counter

    def grant(self, lease: LocalLease) -> None:
        """Record a new lease.  The caller has checked the allocation."""
        if lease.lease_id in self.leases:
            raise ValueError(f"lease {lease.lease_id} already held")
        self._add(lease)
        self._record(GRANT, lease)
        self.ops.append(("grant", flat(lease)))

    def adopt(self, lease: LocalLease) -> None:
        """Take a lease that moved here with its seat (fail-over, handover).

        The registry already shows it here, so nothing is reported.
        """
        if lease.lease_id not in self.leases:
            self._add(lease)
            self.ops.append(("adopt", flat(lease)))

    def renew(
        self, client_id: str, session_id: str, lease_ids: tuple[str, ...], expires_at: float, seq: int | None = None
    ) -> tuple[list[str], list[str]]:
        """Renew the listed leases of one session; returns (renewed, lost).

        Leases are bound to their client, not to one session: a lease that
        moved here by fail-over, or whose client restarted and resumed it,
        belongs to whichever session of that client heartbeats it now.  Except
        a heartbeat numbered below the lease's ``client_seq`` (``seq``): it was
        sent by an older session of the client, before the resume or fail-over
        that placed the lease, so it does not take the lease back for that
        session (a late heartbeat of an app that released the lease and died
        would otherwise let its release kill the lease its restart resumed:
        simulator seed 2663)."""
        renewed, lost = [], []
        for lease_id in lease_ids:
            lease = self.leases.get(lease_id)
            if lease is None or lease.client_id != client_id or lease.revoked or lease.lingering:
                lost.append(lease_id)
                continue
            if seq is None or seq >= lease.client_seq:
                lease.session_id = session_id
            lease.expires_at = max(lease.expires_at, expires_at)
            renewed.append(lease_id)
        return renewed, lost

    def release(self, lease_id: str, client_id: str, now: float = 0.0) -> bool:
        """The client gives the seat back.  Its seat stays in use until the
        release report is committed.  A lease with ``linger`` stays held,
        lingering, until ``now + linger`` (it then expires)."""
        lease = self.leases.get(lease_id)
        if lease is None or lease.client_id != client_id or lease.lingering:
            return False
        if lease.linger > 0 and not lease.revoked:
            lease.lingering, lease.session_id, lease.idle_since = True, "", None
            self._lingering[lease.client_id] += 1
            lease.expires_at = now + lease.linger
            heapq.heappush(self._expiry, (lease.expires_at, lease.lease_id))
            self.ops.append(("linger", lease_id, lease.linger))
            return True
        self._remove(lease)
        self._note_release(self._record(RELEASE, lease), lease)
        self.ops.append(("release", lease_id))
        return True

    def find_lingering(self, client_id: str, key: FeatureKey, seats: int) -> LocalLease | None:
        """A lease of this client lingering on ``seats`` seats of ``key``."""
        if not self._lingering.get(client_id):
            return None
        for lease_id in self._by_client.get(client_id, ()):
            lease = self.leases[lease_id]
            if lease.lingering and lease.key == key and lease.seats == seats:
                return lease
        return None

    def retake(self, old: LocalLease, new: LocalLease) -> None:
        """The client takes back the seats of its lingering lease ``old`` as the
        new lease ``new`` (the released id stays dead): the old one is reported
        released and the new one granted, and no seat frees in between."""
        self._remove(old)
        self._record(RELEASE, old)
        self.ops.append(("retake", old.lease_id))
        self.grant(new)

    def _note_release(self, seq: int, lease: LocalLease) -> None:
        self.releasing[seq] = lease.key
        if lease.seats != 1:
            self.releasing_seats[seq] = lease.seats

    def next_expiry(self) -> float | None:
        """The earliest grantor-side expiry of a lease held here."""
        heap = self._expiry
        while heap:
            at, lease_id = heap[0]
            lease = self.leases.get(lease_id)
            if lease is None:
                heapq.heappop(heap)
            elif lease.expires_at != at:
                heapq.heapreplace(heap, (lease.expires_at, lease_id))
            else:
                return at
        return None

    def expire(self, now: float) -> list[LocalLease]:
        """Drop every lease whose grantor-side expiry has passed."""
        gone = []
        while (at := self.next_expiry()) is not None and at <= now:
            lease = self.leases[heapq.heappop(self._expiry)[1]]
            self._expire_one(lease)
            gone.append(lease)
        return gone

    def _expire_one(self, lease: LocalLease) -> None:
        self._remove(lease)
        self._note_release(self._record(EXPIRE, lease), lease)
        self.ops.append(("expire", lease.lease_id))

    def drop(self, lease_id: str) -> LocalLease | None:
        """The committed log took this lease away (moved, reclaimed): its seat
        went with it, so it is not reported and frees nothing here."""
        lease = self.leases.get(lease_id)
        if lease is not None:
            self._remove(lease)
            self.ops.append(("drop", lease_id))
        return lease

    def revoke(self, lease_id: str) -> bool:
        lease = self.leases.get(lease_id)
        if lease is None:
            return False
        lease.revoked = True
        self.ops.append(("revoke", lease_id))
        return True

    def forget_changes(self, matches: Callable[[FeatureKey], bool]) -> None:
        """Forget unreported changes (and the release holds) of the features
        ``matches`` selects: their seats were reclaimed, so the pool must never
        see them."""
        keys = {(c.feature, c.version) for c in self.changes} | set(self.releasing.values())
        self._forget({k for k in keys if matches(k)})

    def _forget(self, keys: set[FeatureKey]) -> None:
        self.changes = [c for c in self.changes if (c.feature, c.version) not in keys]
        self.releasing = {s: k for s, k in self.releasing.items() if k not in keys}
        self._prune_seats()
        self.ops.append(("forget", sorted(keys)))

    def _prune_seats(self) -> None:
        self.releasing_seats = {s: n for s, n in self.releasing_seats.items() if s in self.releasing}

    # ---- reports ---------------------------------------------------------------

    def report(self, generation: int) -> LeaseReport:
        """Every change not yet seen committed (cumulative, so a lost report is
        covered by the next one).  ``generation``: reclaims of this server
        applied so far."""
        return LeaseReport(
            server=self.server, changes=tuple(self.changes), watermark=self.counter, generation=generation
        )

    def report_committed(self, seq: int) -> None:
        """The pool committed this server's changes up to ``seq``."""
        if seq <= self.committed_seq:
            return
        self.committed_seq = seq
        self.changes = [c for c in self.changes if c.seq > seq]
        self.releasing = {s: k for s, k in self.releasing.items() if s > seq}
        self._prune_seats()
        self.ops.append(("committed", seq))

    def behind(self, watermark: int, report_seq: int) -> bool:
        """The pool committed more of this server than this table remembers: a
        counter or a change number above its own.  Only a table that lost its
        disk can be behind (both are persisted before they are reported)."""
        return self.counter < watermark or self.change_seq < report_seq

    def continue_after(self, watermark: int, report_seq: int) -> None:
        """Number new lease ids above ``watermark`` and new changes above
        ``report_seq`` (the pool's committed marks of this server), so that a
        table rebuilt on an empty disk never mints an id the registry counts
        dead nor sends a change the registry skips as already applied.  Changes
        made meanwhile (releases of adopted leases) are renumbered above it."""
        if not self.behind(watermark, report_seq):
            return
        self.counter = max(self.counter, watermark)
        if self.change_seq < report_seq:
            renumber = {c.seq: report_seq + i for i, c in enumerate(self.changes, 1)}
            self.changes = [dataclasses.replace(c, seq=renumber[c.seq]) for c in self.changes]
            self.releasing = {renumber[s]: k for s, k in self.releasing.items() if s in renumber}
            self.releasing_seats = {renumber[s]: n for s, n in self.releasing_seats.items() if s in renumber}
            self.change_seq = report_seq + len(renumber)
            self.committed_seq = max(self.committed_seq, report_seq)
        self.ops.append(("continue", watermark, report_seq))

    # ---- journal replay --------------------------------------------------------

    def drain(self) -> list[tuple[Any, ...]]:
        ops, self.ops = self.ops, []
        return ops

    def replay(self, op: tuple[Any, ...], now: float, hold: float) -> None:
        """Redo one journaled change after a restart.  Every restored lease gets
        one fresh ``hold`` from ``now``: its renewals were not journaled."""
        kind = op[0]
        if kind == "counter":
            self.counter = max(self.counter, op[1])
        elif kind in ("grant", "adopt"):
            lease = LocalLease(**op[1])
            lease.expires_at = now + hold
            if kind == "grant":
                self.counter = max(self.counter, (lease_origin(lease.lease_id) or ("", 0))[1])
                self.grant(lease)
            else:
                self.adopt(lease)
        elif kind == "release":
            held = self.leases.get(op[1])
            if held is not None:
                self.release(op[1], held.client_id)
        elif kind in ("linger", "retake"):
            self._replay_linger(op, now)
        elif kind == "expire":
            held = self.leases.get(op[1])
            if held is not None:
                self._expire_one(held)
        elif kind == "drop":
            self.drop(op[1])
        elif kind == "revoke":
            self.revoke(op[1])
        elif kind == "forget":
            self._forget({(k[0], k[1]) for k in op[1]})
        elif kind == "committed":
            self.report_committed(op[1])
        elif kind == "continue":
            self.continue_after(op[1], op[2])
        self.ops.clear()

    def _replay_linger(self, op: tuple[Any, ...], now: float) -> None:
        held = self.leases.get(op[1])
        if held is None:
            return
        if op[0] == "linger":
            held.linger = op[2]
            self.release(op[1], held.client_id, now)
        else:  # retake: its seats went to the grant replayed next
            self._remove(held)
            self._record(RELEASE, held)

    def restart(self, now: float, hold: float) -> None:
        """After loading a snapshot: every lease gets one fresh ``hold``."""
        for lease in self.leases.values():
            lease.expires_at = now + hold
        self._expiry = [(lease.expires_at, lease_id) for lease_id, lease in self.leases.items()]
        heapq.heapify(self._expiry)

    # ---- internals -------------------------------------------------------------

    def _add(self, lease: LocalLease) -> None:
        self.leases[lease.lease_id] = lease
        self._held[lease.key] += lease.seats
        self._by_client.setdefault(lease.client_id, {})[lease.lease_id] = None
        if lease.lingering:
            self._lingering[lease.client_id] += 1
        heapq.heappush(self._expiry, (lease.expires_at, lease.lease_id))

    def _remove(self, lease: LocalLease) -> None:
        del self.leases[lease.lease_id]
        self._held[lease.key] -= lease.seats
        ids = self._by_client.get(lease.client_id)
        if ids is not None:
            ids.pop(lease.lease_id, None)
            if not ids:
                del self._by_client[lease.client_id]
        if lease.lingering:
            self._lingering[lease.client_id] -= 1
            if self._lingering[lease.client_id] <= 0:
                del self._lingering[lease.client_id]

    def _record(self, kind: str, lease: LocalLease) -> int:
        self.change_seq += 1
        self.changes.append(
            LeaseChange(
                seq=self.change_seq,
                kind=kind,
                lease_id=lease.lease_id,
                client_id=lease.client_id,
                feature=lease.feature,
                version=lease.version,
                seats=lease.seats,
            )
        )
        return self.change_seq

    # ---- plain data ------------------------------------------------------------

    def to_plain(self) -> dict[str, Any]:
        return {
            "server": self.server,
            # idle_since is a time on this process's clock: not kept across a restart.
            "leases": [{k: v for k, v in flat(lease).items() if k != "idle_since"} for lease in self.leases.values()],
            "counter": self.counter,
            "change_seq": self.change_seq,
            "changes": [flat(c) for c in self.changes],
            "committed_seq": self.committed_seq,
            "releasing": {seq: list(k) for seq, k in self.releasing.items()},
            "releasing_seats": dict(self.releasing_seats),
        }

    @classmethod
    def from_plain(cls, data: dict[str, Any]) -> LocalLeases:
        table = cls(
            server=data["server"],
            counter=data.get("counter", 0),
            change_seq=data.get("change_seq", 0),
            changes=[LeaseChange(**c) for c in data.get("changes", [])],
            committed_seq=data.get("committed_seq", 0),
            releasing={int(s): (k[0], k[1]) for s, k in data.get("releasing", {}).items()},
            releasing_seats={int(s): int(n) for s, n in data.get("releasing_seats", {}).items()},
        )
        for raw in data.get("leases", []):
            table._add(LocalLease(**raw))
        return table
