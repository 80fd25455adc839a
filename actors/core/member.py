"""One server's side of the pool: its committed copy of the pool state, its local
lease table, and the decisions it makes alone.

* ``checkout``: the fast path (claims 3, 30, 31): grant from the committed
  allocation, resume a lease this client already holds, or wait for a borrow.
* ``apply``: a committed log entry reaches this server.  Besides updating the
  shared state it does the server's local part: consent to a transfer it gives
  (claim 33: only seats that are really unused), adopt a lease that moved here
  with its seat, drop one that moved away, free released seats once their
  report is committed, drop everything at a ``Reclaim`` of itself.

The server persists what these return *before* sending anything that depends
on it.  Pure: times are passed in.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from actors.core import sources
from actors.core.leases import LocalLease, LocalLeases
from actors.core.pool import Applied, PoolState, Verifier
from actors.core.table import FeatureKey
from actors.protocol import entries as log_entries
from actors.protocol.client import DenyReason

__all__ = ["Grant", "Deny", "Wait", "Consent", "Member"]


@dataclass(frozen=True)
class Grant:
    """Checkout decision: a seat (a new lease, or the client's own resumed)."""

    lease: LocalLease
    resumed: bool = False
    borrow: int = 0
    """Seats to ask the leader for now that use passed the threshold (claim 1)."""


@dataclass(frozen=True)
class Deny:
    reason: DenyReason
    detail: str = ""


@dataclass(frozen=True)
class Wait:
    """No spare seat here: ask the leader for ``borrow`` seats and hold the
    request until they are committed or the pool has none (claims 3, 31)."""

    borrow: int


@dataclass(frozen=True)
class Consent:
    """This server's persisted answer to a transfer it gives (claim 33)."""

    transfer_id: str
    given: int


@dataclass
class Member:
    name: str
    pool: PoolState
    leases: LocalLeases
    threshold: float = 0.9
    ttl_hold: float = 30.3
    """T(1+rho): how long a renewal keeps a lease here, from its receipt."""
    consents: dict[str, int] = field(default_factory=dict)
    """transfer_id -> seats given, for transfers whose outcome is not committed."""
    empty_boot: bool = False
    """This incarnation booted on an empty disk and has not rejoined yet (not
    persisted: a later boot reads ``leases.behind`` instead)."""

    @classmethod
    def new(cls, name: str, servers: tuple[str, ...], threshold: float = 0.9, ttl_hold: float = 30.3) -> Member:
        return cls(name, PoolState.new(servers), LocalLeases(name), threshold, ttl_hold)

    # ---- what this server may use --------------------------------------------

    def usable(self, key: FeatureKey) -> int:
        """Committed allocation plus seats it refused to give in transfers still
        in flight (they are its own, in use, and come back on completion)."""
        table = self.pool.features.get(key)
        if table is None:
            return 0
        held_back = sum(
            t.count - self.consents.get(t.transfer_id, t.count)
            for t in self.pool.transfers.values()
            if t.giver == self.name and t.key == key and t.transfer_id in self.consents
        )
        return table.allocated(self.name) + held_back

    def spare(self, key: FeatureKey) -> int:
        return self.usable(key) - self.leases.in_use(key)

    def can_seat(self, key: FeatureKey, seats: int) -> bool:
        """May a new lease of ``seats`` seats be granted here now?  Only if all
        of them are spare: never a partial hold (issue 14)."""
        return self.spare(key) >= seats

    def table_lost(self) -> bool:
        """This server's lease table may lack leases an earlier incarnation
        granted: it booted on an empty disk where the pool recorded an earlier
        incarnation, or the pool committed a lease counter or change number of
        it above what the table remembers.  Until its earlier incarnation is
        reclaimed it gives no seat away, and the leader rejoins it only then
        (docs/leadership.md, "Rejoin after a lost disk")."""
        reg = self.pool.registry
        return (self.empty_boot and self.pool.servers[self.name].incarnation > 0) or self.leases.behind(
            reg.watermark.get(self.name, 0), reg.report_seq.get(self.name, 0)
        )

    def recover_lost_table(self, now: float) -> list[str]:
        """Rejoined after its earlier incarnation was reclaimed: take what the
        committed registry still places here (``--no-majority`` leases the
        reclaim kept), with a fresh grace, and number new lease ids and changes
        above the pool's marks of this server.  Returns the leases adopted."""
        reg = self.pool.registry
        self.empty_boot = False
        adopted = self.reconcile_installed(now)
        self.leases.continue_after(reg.watermark.get(self.name, 0), reg.report_seq.get(self.name, 0))
        return adopted

    def report(self) -> log_entries.LeaseReport:
        """The lease changes to send with the next heartbeat."""
        return self.leases.report(self.pool.servers[self.name].reclaims)

    # ---- the fast path ----------------------------------------------------------

    def checkout(
        self,
        client_id: str,
        session_id: str,
        key: FeatureKey,
        now: float,
        today: str,
        new_lease_id: str,
        resume_id: str | None = None,
        waiting: int = 0,
        client_seq: int = 0,
        seats: int = 1,
        linger: float = 0.0,
    ) -> Grant | Deny | Wait:
        """Decide a checkout of ``seats`` seats in one lease: all of them or
        none, never a part.  ``new_lease_id`` is used only on a fresh grant;
        ``waiting`` counts seats already held for a borrow.  A lease of this
        client lingering on as many seats of ``key`` is taken back as the new
        lease, with no new seat.  The caller has checked that this server may
        serve ``key`` (serving lease or ``--no-majority``)."""
        table = self.pool.features.get(key)
        if table is None:
            return Deny(DenyReason.UNKNOWN_FEATURE, f"no license for {key[0]} {key[1]}")
        if table.expires and table.expires < today:
            return Deny(DenyReason.EXPIRED, f"{key[0]} {key[1]} expired on {table.expires}")
        if resume_id is not None:
            held = self.leases.leases.get(resume_id)
            if (
                held is not None
                and held.client_id == client_id
                and held.key == key
                and not held.revoked
                and not held.lingering  # released: its id is dead for ever (a retake gets a new id)
            ):
                held.expires_at = max(held.expires_at, now + self.ttl_hold)
                held.session_id = session_id
                held.client_seq = max(held.client_seq, client_seq)
                return Grant(held, resumed=True)
        if seats > max(table.total, 1):
            return Deny(DenyReason.NO_SEATS, f"{seats} seats asked, {key[0]} {key[1]} has {table.total} in all")
        lease = LocalLease(
            new_lease_id, client_id, session_id, key[0], key[1], now + self.ttl_hold, granted_at=now, seats=seats
        )
        lease.linger = linger
        old = self.leases.find_lingering(client_id, key, seats) if new_lease_id else None
        if old is not None:
            self.leases.retake(old, lease)
            return Grant(lease, resumed=True)
        if not new_lease_id or not self.can_seat(key, seats):
            in_use = self.leases.in_use(key) + waiting + seats
            return Wait(sources.seats_to_borrow(in_use, self.usable(key), self.threshold))
        self.leases.grant(lease)
        in_use, allocated = self.leases.in_use(key), self.usable(key)
        borrow = 0
        if sources.borrow_threshold_exceeded(in_use, allocated, self.threshold):
            borrow = sources.seats_to_borrow(in_use, allocated, self.threshold)
        return Grant(lease, borrow=borrow)

    # ---- committed entries ----------------------------------------------------

    def apply(
        self, entry: log_entries.Entry, index: int, epoch: int, verify: Verifier, now: float
    ) -> tuple[Applied, list[Consent]]:
        """Apply a committed entry here; returns the consents to persist and send."""
        transfer = (
            self.pool.transfers.get(entry.transfer_id)
            if isinstance(entry, (log_entries.TransferComplete, log_entries.TransferAbort))
            else None
        )
        applied = self.pool.apply(entry, index, epoch, verify)
        consents: list[Consent] = []
        if not applied.ok:
            return applied, consents
        if isinstance(entry, log_entries.TransferIntent) and entry.giver == self.name:
            consents.append(self._consent(entry))
        elif isinstance(entry, (log_entries.TransferComplete, log_entries.TransferAbort)):
            given = self.consents.pop(entry.transfer_id, 0)
            moved = (
                isinstance(entry, log_entries.TransferComplete)
                and entry.given > 0
                and (transfer is None or transfer.lease_id is None or entry.given >= transfer.count)
            )
            if transfer is not None and transfer.lease_id is not None and moved:
                self._lease_moved(
                    transfer.lease_id,
                    transfer.client_id,
                    transfer.key,
                    transfer.taker,
                    now,
                    transfer.client_seq,
                    transfer.count,
                )
            elif (
                transfer is not None
                and transfer.lease_id is not None
                and given
                and transfer.giver == self.name
                and transfer.reason == "handover"
            ):
                # A handover rolled back after we had let the lease go: its seat
                # is ours again, and so is the lease (its client may still hold
                # it).  Any other transfer gave only a spare seat: the lease was
                # never ours, and taking it would leave a phantom here.
                self._lease_moved(
                    transfer.lease_id, transfer.client_id, transfer.key, self.name, now, seats=transfer.count
                )
        elif isinstance(entry, log_entries.FailoverSeat):
            self._lease_moved(
                entry.lease_id,
                entry.client_id,
                (entry.feature, entry.version),
                entry.to_server,
                now,
                entry.client_seq,
                entry.seats,
            )
        elif isinstance(entry, log_entries.LeaseReport) and entry.server == self.name:
            self.leases.report_committed(self.pool.registry.report_seq.get(self.name, 0))
        elif isinstance(entry, log_entries.LeaseReport):
            # Its client released a lease held here at the server it moved
            # from (``PoolState._released_elsewhere``): the id is dead; its seat is free here.
            for change in entry.changes:
                if change.lease_id in self.leases.leases and self.pool.registry.is_dead(change.lease_id):
                    self.leases.drop(change.lease_id)
        elif isinstance(entry, log_entries.Reclaim) and entry.server == self.name:
            self._drop_leases(self._majority)
        elif isinstance(entry, log_entries.ServerDown) and entry.server == self.name:
            # The operator asserted this server was stopped: its --no-majority
            # seats went at once; majority-ruled leases follow the fence rules.
            self._drop_leases(lambda key: not self._majority(key))
        elif isinstance(entry, log_entries.ForceRelease):
            self.leases.revoke(entry.lease_id)
        return applied, consents

    def drop_moved_away(self) -> None:
        """Drop every lease the committed registry places at another server or
        has killed (moved, reclaimed, released elsewhere)."""
        reg = self.pool.registry
        for lid in list(self.leases.leases):
            holder = reg.holder(lid)
            if (holder is not None and holder != self.name) or (holder is None and reg.is_dead(lid)):
                self.leases.drop(lid)

    def reconcile_installed(self, now: float) -> list[str]:
        """After a snapshot install, do the lease-level part of the entries it
        folded in, which this server never applied one by one: drop what moved
        away; adopt, with a fresh grace, what the registry places here and the
        table lacks (a fail-over seat, a completed handover, a handover taken
        back on abort); revoke what was force-released.  Leases released or
        expired here and not yet reported stay gone, as do leases this server
        gave up in a handover still in flight.  Returns the leases adopted."""
        self.drop_moved_away()
        reg = self.pool.registry
        leaving = {change.lease_id for change in self.leases.changes}
        leaving.update(
            t.lease_id
            for t in self.pool.transfers.values()
            if t.lease_id is not None and t.giver == self.name and t.reason == "handover"
        )
        adopted = []
        for lid, here in reg.leases.items():
            if here.holder == self.name and lid not in self.leases.leases and lid not in leaving:
                self.leases.adopt(
                    LocalLease(
                        lid,
                        here.client_id,
                        "",
                        here.feature,
                        here.version,
                        now + self.ttl_hold,
                        granted_at=now,
                        client_seq=here.client_seq,
                        seats=here.seats,
                    )
                )
                adopted.append(lid)
        for lid, held in self.leases.leases.items():
            registered = reg.leases.get(lid)
            if registered is not None and registered.revoked and not held.revoked:
                self.leases.revoke(lid)
        return adopted

    def missing_consents(self) -> list[Consent]:
        """Decide the transfers this server gives whose intent it never applied:
        a snapshot install skips the entries, so the intent arrives already in
        ``pool.transfers`` (seed 4971: the giver never answered and was fenced).
        The allocation in the snapshot is already cut, which is what
        ``_consent`` assumes."""
        return [
            self._consent(
                log_entries.TransferIntent(
                    transfer_id=t.transfer_id,
                    feature=t.feature,
                    version=t.version,
                    giver=t.giver,
                    taker=t.taker,
                    count=t.count,
                    lease_id=t.lease_id,
                    client_id=t.client_id,
                    client_seq=t.client_seq,
                    reason=t.reason,
                )
            )
            for t in self.pool.transfers.values()
            if t.giver == self.name and t.transfer_id not in self.consents
        ]

    def _consent(self, intent: log_entries.TransferIntent) -> Consent:
        if intent.transfer_id in self.consents:
            # Already decided (and persisted): a replayed apply never re-decides.
            return Consent(intent.transfer_id, self.consents[intent.transfer_id])
        key = (intent.feature, intent.version)
        if intent.lease_id is not None and intent.reason == "handover":
            held = self.leases.leases.get(intent.lease_id)
            given = (
                held.seats
                if held is not None
                and (
                    held.client_id == intent.client_id
                    and not held.revoked
                    and not held.lingering
                    and held.seats == intent.count
                    and intent.client_seq > held.client_seq
                )
                else 0
            )
            if given:
                # The lease leaves with its seat; its new holder renews it.
                self.leases.drop(intent.lease_id)
        elif self.table_lost():
            # Leases an earlier incarnation granted may sit on these seats unseen.
            given = 0
        else:
            # The intent already cut the allocation: spare before it was spare + count.
            given = max(0, min(intent.count, self.spare(key) + intent.count))
        self.consents[intent.transfer_id] = given
        self.leases.ops.append(("consent", intent.transfer_id, given))
        return Consent(intent.transfer_id, given)

    # ---- journal ----------------------------------------------------------------

    def drain(self) -> list[tuple[Any, ...]]:
        """Journal records of the local changes since the last drain."""
        return self.leases.drain()

    def replay(self, op: tuple[Any, ...], now: float) -> None:
        if op[0] == "consent":
            self.consents[op[1]] = op[2]
        else:
            self.leases.replay(op, now, self.ttl_hold)

    def prune_consents(self) -> None:
        """Consents of transfers whose outcome is committed are no longer needed."""
        self.consents = {t: g for t, g in self.consents.items() if t in self.pool.transfers}

    def _lease_moved(
        self, lease_id: str, client_id: str, key: FeatureKey, to: str, now: float, client_seq: int = 0, seats: int = 1
    ) -> None:
        reg = self.pool.registry
        holder = reg.holder(lease_id)
        if to == self.name and (holder == self.name or (holder is None and not reg.is_dead(lease_id))):
            # Fresh grace from this commit: never shorter than the client's deadline.
            # (Never a dead id: a lease released by its client during a handover stays dead.)
            self.leases.adopt(
                LocalLease(
                    lease_id,
                    client_id,
                    "",
                    key[0],
                    key[1],
                    now + self.ttl_hold,
                    granted_at=now,
                    client_seq=client_seq,
                    seats=seats,
                )
            )
        else:
            self.leases.drop(lease_id)

    def _drop_leases(self, matches: Callable[[FeatureKey], bool]) -> None:
        """My seats were reclaimed before I rejoined: those leases have expired
        at their clients; forget them and their unreported changes."""
        for lease in list(self.leases.leases.values()):
            if matches(lease.key):
                self.leases.drop(lease.lease_id)
        self.leases.forget_changes(matches)

    def _majority(self, key: FeatureKey) -> bool:
        table = self.pool.features.get(key)
        return table is None or table.majority
