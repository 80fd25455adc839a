"""The replicated pool state machine: what every committed log entry does.

``PoolState`` holds everything the servers share (leadership.md M1): license
codes and add-ons, the distribution table of every feature, the lease registry,
each server's status (live, fenced, down) and the transfers under way.

``apply(entry)`` is deterministic: every server applies the same committed
entries in the same order and reaches the same state.  An entry that is no
longer possible when it is applied (a grant the source cannot cover, a transfer
that does not exist) is a no-op, reported in the returned ``Applied``; the
leader decides with the state it has, and the log order settles races.

Signatures are checked again on apply through an injected ``verify`` function,
so a forged entry in a sync can never raise a total (counts come only from
vendor signatures).  Pure: no clock, no I/O.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from actors.core import codes
from actors.core.adminauth import NONCE_KEEP
from actors.core.registry import LeaseRegistry, PendingUpdate, RegisteredLease
from actors.core.table import FeatureKey, FeatureTable
from actors.protocol import entries as log_entries

__all__ = [
    "LIVE",
    "FENCED",
    "DOWN",
    "ServerState",
    "down_source",
    "Transfer",
    "Waiter",
    "Applied",
    "PoolState",
    "Verifier",
]

LIVE, FENCED, DOWN = "live", "fenced", "down"
"""Server statuses.  ``down`` means fenced and reclaimed: its seats are a source."""

Verifier = Callable[[str], "codes.LicenseCode | codes.AddOn"]
"""Checks a vendor signature and decodes a code; raises ``codes.CodeError``."""


@dataclass
class ServerState:
    name: str
    status: str = LIVE
    incarnation: int = 0
    all_reclaimed: bool = False
    """Set by ``ServerDown``: its ``--no-majority`` seats were taken back too."""
    reclaims: int = 0
    """How many times its seats were reclaimed: reports built before are void."""


def down_source(server: ServerState, table: FeatureTable) -> bool:
    """May ``server``'s seats of ``table`` be taken without its consent?  A
    majority-ruled feature's once it is down (fenced and reclaimed); a
    ``--no-majority`` one's only after ``ServerDown`` (fenced or down)."""
    if table.majority:
        return server.status == DOWN
    return server.all_reclaimed and server.status != LIVE


@dataclass
class Transfer:
    """A committed ``TransferIntent`` whose outcome is not committed yet."""

    transfer_id: str
    feature: str
    version: str
    giver: str
    taker: str
    count: int
    lease_id: str | None = None
    client_id: str = ""
    client_seq: int = 0
    reason: str = "borrow"

    @property
    def key(self) -> FeatureKey:
        return (self.feature, self.version)


@dataclass
class Waiter:
    """A queued checkout in its table's queue (``QueueJoin``): the queue's order
    is the log order of the joins, so every server and every leader sees it the same."""

    waiter_id: str
    client_id: str
    server: str
    """Where its session waits now (moved by a re-registration)."""
    seats: int = 1
    joined_index: int = 0
    """The log index of its first join: its place."""
    timeout: float = 0.0
    """Seconds it had left when it joined (the leader's backstop)."""


@dataclass(frozen=True)
class Applied:
    """What applying one entry did: ``ok`` False means it was a no-op."""

    ok: bool
    note: str = ""
    dropped_leases: tuple[str, ...] = ()
    """Leases that stopped being live (reclaim, kill), for holders to drop."""


@dataclass
class PoolState:
    servers: dict[str, ServerState] = field(default_factory=dict)
    """Every configured server, in priority order."""
    features: dict[FeatureKey, FeatureTable] = field(default_factory=dict)
    licenses: dict[str, str] = field(default_factory=dict)
    """serial -> signed license code text (claims 12, 26: any server can lead)."""
    addons: dict[str, str] = field(default_factory=dict)
    """serial -> signed add-on text."""
    serial_feature: dict[str, FeatureKey] = field(default_factory=dict)
    registry: LeaseRegistry = field(default_factory=LeaseRegistry)
    transfers: dict[str, Transfer] = field(default_factory=dict)
    admin_nonces: dict[str, float] = field(default_factory=dict)
    """nonce -> operator timestamp of the signed admin changes applied lately (replay guard)."""
    queues: dict[FeatureKey, list[Waiter]] = field(default_factory=dict)
    """table -> its queued checkouts, oldest first (no empty lists are kept)."""
    index: int = 0
    """Index of the last applied log entry: the table's version."""
    epoch: int = 0
    """Epoch of the last applied log entry: the table is ordered by (epoch, index)."""

    @classmethod
    def new(cls, server_names: list[str] | tuple[str, ...]) -> PoolState:
        return cls(servers={name: ServerState(name) for name in server_names})

    # ---- queries ---------------------------------------------------------------

    @property
    def version(self) -> tuple[int, int]:
        return (self.epoch, self.index)

    def status(self, server: str) -> str:
        return self.servers[server].status

    def feature(self, feature: str, version: str) -> FeatureTable | None:
        return self.features.get((feature, version))

    def queue(self, key: FeatureKey) -> list[Waiter]:
        """The committed queue of a table, oldest first (empty: nobody waits)."""
        return self.queues.get(key, [])

    def waiter(self, key: FeatureKey, waiter_id: str) -> tuple[int, Waiter] | None:
        """A waiter's 0-based place in its table's queue, and the waiter."""
        for place, w in enumerate(self.queues.get(key, ())):
            if w.waiter_id == waiter_id:
                return place, w
        return None

    def problems(self) -> list[str]:
        """Every broken table invariant (empty when the state is sound)."""
        out: list[str] = []
        flight: dict[FeatureKey, int] = {}
        for t in self.transfers.values():
            flight[t.key] = flight.get(t.key, 0) + t.count
        for key, table in self.features.items():
            out.extend(table.problems())
            if table.in_flight != flight.get(key, 0):
                out.append(f"{key}: in_flight {table.in_flight} but transfers hold {flight.get(key, 0)}")
        return out

    def count_problems(self, verify: Verifier) -> list[str]:
        """Every feature whose seats are not exactly what its signed codes and
        add-ons grant (security.md: counts come only from vendor signatures).

        Each stored code and add-on is verified again; a table total that
        differs from the sum of the valid ones is a problem, as is a code that
        does not verify, and every broken table invariant (``problems``).
        """
        out: list[str] = []
        signed: dict[FeatureKey, int] = {}
        for serial, text in [*self.licenses.items(), *self.addons.items()]:
            try:
                code = verify(text)
            except codes.CodeError as err:
                out.append(f"serial {serial}: {err}")
                continue
            key = code.key if isinstance(code, codes.LicenseCode) else self.serial_feature.get(code.of_serial)
            if code.serial != serial or key is None or self.serial_feature.get(serial) != key:
                out.append(f"serial {serial}: stored under the wrong serial or feature")
                continue
            signed[key] = signed.get(key, 0) + code.count
        for key, table in self.features.items():
            if table.total != signed.get(key, 0):
                out.append(f"{key[0]} {key[1]}: total {table.total} but its signed codes grant {signed.get(key, 0)}")
        out.extend(self.problems())
        for key in signed:
            if key not in self.features:
                out.append(f"{key[0]} {key[1]}: signed codes but no table")
        return out

    # ---- apply -----------------------------------------------------------------

    def apply(self, entry: log_entries.Entry, index: int, epoch: int, verify: Verifier) -> Applied:
        """Apply one committed entry at (epoch, index)."""
        if index <= self.index:
            return Applied(False, f"index {index} already applied (at {self.index})")
        self.index, self.epoch = index, epoch
        handler = _HANDLERS.get(type(entry))
        if handler is None:
            return Applied(False, f"unknown entry {type(entry).__name__}")
        return handler(self, entry, verify)

    # -- admin

    def _add_license(self, entry: log_entries.AddLicense, verify: Verifier) -> Applied:
        try:
            code = verify(entry.code)
        except codes.CodeError as err:
            return Applied(False, f"refused code: {err}")
        if not isinstance(code, codes.LicenseCode):
            return Applied(False, "not a license code")
        if code.serial in self.licenses or code.serial in self.addons:
            return Applied(False, f"serial {code.serial} already present")
        table = self.features.get(code.key)
        if table is not None and table.majority != code.majority:
            return Applied(False, f"serial {code.serial}: majority flag differs from the feature's")
        if table is not None and table.exact != code.exact_version:
            return Applied(False, f"serial {code.serial}: version_match differs from the feature's")
        if table is not None and (table.weight, table.linger) != (code.weight, code.linger):
            return Applied(False, f"serial {code.serial}: weight or linger differs from the feature's")
        self.licenses[code.serial] = entry.code
        self.serial_feature[code.serial] = code.key
        names = list(self.servers)
        if table is None:
            criteria = codes.parse_criteria(code.distribution or "")
            known = tuple((s, n) for s, n in criteria if s in self.servers)
            alloc, free = codes.initial_distribution(code.count, known, names)
            self.features[code.key] = FeatureTable(
                code.feature,
                code.version,
                total=code.count,
                majority=code.majority,
                expires=code.expires,
                alloc=alloc,
                targets=dict(alloc),
                free=free,
                exact=code.exact_version,
                weight=code.weight,
                linger=code.linger,
            )
        else:
            # More seats for a feature already in the pool go to its free pool.
            table.total += code.count
            table.free += code.count
            table.expires = max(table.expires, code.expires)
        return Applied(True)

    def _add_addon(self, entry: log_entries.AddAddon, verify: Verifier) -> Applied:
        try:
            addon = verify(entry.code)
        except codes.CodeError as err:
            return Applied(False, f"refused add-on: {err}")
        if not isinstance(addon, codes.AddOn):
            return Applied(False, "not an add-on")
        if addon.serial in self.addons or addon.serial in self.licenses:
            return Applied(False, f"serial {addon.serial} already present")
        key = self.serial_feature.get(addon.of_serial)
        if key is None:
            return Applied(False, f"add-on for unknown serial {addon.of_serial}")
        self.addons[addon.serial] = entry.code
        self.serial_feature[addon.serial] = key
        table = self.features[key]
        table.total += addon.count
        table.free += addon.count
        return Applied(True)

    def _set_criteria(self, entry: log_entries.SetCriteria, _verify: Verifier) -> Applied:
        table = self.feature(entry.feature, entry.version)
        if table is None:
            return Applied(False, "unknown feature")
        targets = dict(entry.targets)
        if any(s not in self.servers or n < 0 for s, n in targets.items()) or sum(targets.values()) > table.total:
            return Applied(False, "criteria name an unknown server or exceed the total")
        table.targets = {s: targets.get(s, 0) for s in self.servers}
        return Applied(True)

    # -- seats

    def _grant(self, entry: log_entries.Grant, _verify: Verifier) -> Applied:
        table = self.feature(entry.feature, entry.version)
        if table is None or entry.count <= 0 or entry.server not in self.servers:
            return Applied(False, "bad grant")
        if not self._take_from(table, entry.source, entry.count):
            return Applied(False, f"source {entry.source or 'free pool'} cannot cover {entry.count}")
        table.alloc[entry.server] = table.allocated(entry.server) + entry.count
        return Applied(True)

    def _take_from(self, table: FeatureTable, source: str, count: int) -> bool:
        """Take seats from a source that needs no consent (free pool or down server)."""
        if source == log_entries.FREE_POOL:
            if table.free < count:
                return False
            table.free -= count
            return True
        server = self.servers.get(source)
        if server is None or not down_source(server, table) or table.allocated(source) < count:
            return False
        table.alloc[source] -= count
        return True

    def _transfer_intent(self, entry: log_entries.TransferIntent, _verify: Verifier) -> Applied:
        table = self.feature(entry.feature, entry.version)
        giver = self.servers.get(entry.giver)
        if table is None or giver is None or entry.count <= 0 or entry.transfer_id in self.transfers:
            return Applied(False, "bad transfer")
        if giver.status != LIVE or table.allocated(entry.giver) < entry.count:
            return Applied(False, f"giver {entry.giver} cannot give {entry.count}")
        if entry.taker != log_entries.FREE_POOL and entry.taker not in self.servers:
            return Applied(False, "unknown taker")
        if entry.lease_id is not None:
            lease = self.registry.leases.get(entry.lease_id)
            pending = self.registry.pending.get(entry.lease_id)
            # All of the lease's seats move, or it is no handover: the registry's
            # count when it knows the lease (or holds it pending), else the client's.
            seats = lease.seats if lease is not None else pending.seats if pending is not None else entry.count
            if entry.count != seats or self.registry.is_dead(entry.lease_id) or (lease is not None and lease.revoked):
                return Applied(False, "handover of a dead or revoked lease, or not of all its seats")
        table.alloc[entry.giver] -= entry.count
        table.in_flight += entry.count
        self.transfers[entry.transfer_id] = Transfer(**asdict(entry))
        return Applied(True)

    def _transfer_complete(self, entry: log_entries.TransferComplete, _verify: Verifier) -> Applied:
        t = self.transfers.pop(entry.transfer_id, None)
        if t is None:
            return Applied(False, "no such transfer")
        table = self.features[t.key]
        given = max(0, min(entry.given, t.count))
        table.in_flight -= t.count
        table.alloc[t.giver] += t.count - given
        if t.taker == log_entries.FREE_POOL:
            table.free += given
        else:
            table.alloc[t.taker] = table.allocated(t.taker) + given
        if t.lease_id is not None and given:
            if given < t.count:
                # A lease moves with all its seats or not at all: a partial
                # consent gives nothing (never a partial hold).
                table.alloc[t.taker] -= given
                table.alloc[t.giver] += given
                return Applied(True, "partial consent for a lease: nothing moved")
            self._seat_moved_lease(t.lease_id, t.client_id, t.key, t.taker, t.client_seq, t.count)
        return Applied(True)

    def _transfer_abort(self, entry: log_entries.TransferAbort, _verify: Verifier) -> Applied:
        t = self.transfers.pop(entry.transfer_id, None)
        if t is None:
            return Applied(False, "no such transfer")
        table = self.features[t.key]
        table.in_flight -= t.count
        table.alloc[t.giver] += t.count
        return Applied(True)

    def _seat_moved_lease(
        self, lease_id: str, client_id: str, key: FeatureKey, to: str, seq: int, seats: int = 1
    ) -> None:
        if lease_id in self.registry.leases:
            self.registry.move(lease_id, to, seq)
        else:
            self.registry.add(RegisteredLease(lease_id, client_id, key[0], key[1], to, seq, seats=seats))

    # -- leases

    def _lease_report(self, entry: log_entries.LeaseReport, _verify: Verifier) -> Applied:
        if entry.server not in self.servers:
            return Applied(False, "unknown server")
        reg = self.registry
        server = self.servers[entry.server]
        if entry.generation < server.reclaims:
            return Applied(False, "report from before a reclaim")
        status = server.status
        done = reg.report_seq.get(entry.server, 0)
        for change in entry.changes:
            if change.seq <= done:
                continue
            done = change.seq
            if change.kind == "grant":
                # A down server's leases were dropped at Reclaim; late grants are void.
                if status != DOWN:
                    reg.add(
                        RegisteredLease(
                            change.lease_id,
                            change.client_id,
                            change.feature,
                            change.version,
                            entry.server,
                            seats=change.seats,
                        )
                    )
            elif reg.holder(change.lease_id) == entry.server or (
                change.kind == "release" and self._released_elsewhere(change)
            ):
                reg.kill(change.lease_id)
        reg.report_seq[entry.server] = done
        reg.raise_watermark(entry.server, entry.watermark)
        return Applied(True)

    def _released_elsewhere(self, change: log_entries.LeaseChange) -> bool:
        """Its client gave the lease back at a server the registry no longer
        places it at: the release raced a move (a fail-over seat committed
        after it, seed 8752).  A released id is dead for ever wherever the
        lease went (S3); an expiry there is not a release and kills nothing."""
        live = self.registry.leases.get(change.lease_id)
        return live is not None and live.client_id == change.client_id

    def _failover_seat(self, entry: log_entries.FailoverSeat, _verify: Verifier) -> Applied:
        reg = self.registry
        table = self.feature(entry.feature, entry.version)
        if table is None or entry.to_server not in self.servers or reg.is_dead(entry.lease_id):
            return Applied(False, "dead lease or unknown feature")
        live = reg.leases.get(entry.lease_id)
        if live is not None and (
            live.revoked or live.client_id != entry.client_id or live.client_seq >= entry.client_seq
        ):
            return Applied(False, "revoked, stale or foreign fail-over update")
        seats = live.seats if live is not None else entry.seats
        if seats != entry.seats or seats < 1:
            return Applied(False, "fail-over of a part of a multi-seat lease")
        if live is not None and live.holder == entry.source:
            # The lease moves together with its seats from its fenced holder.
            if self.status(entry.source) != FENCED or table.allocated(entry.source) < seats or not table.majority:
                return Applied(False, "holder is not fenced, or its seats are --no-majority")
            table.alloc[entry.source] -= seats
        elif live is not None and (table.majority or self.status(live.holder) == LIVE):
            return Applied(False, "lease is live at its holder")
        elif not self._take_from(table, entry.source, seats):
            # (A --no-majority lease at a fenced holder gets seats of its own:
            # its holder's seats are never touched while it is fenced.)  All
            # of a lease's seats, or none: never a partial hold.
            return Applied(False, f"source {entry.source or 'free pool'} has not {seats} seats")
        table.alloc[entry.to_server] = table.allocated(entry.to_server) + seats
        self._seat_moved_lease(entry.lease_id, entry.client_id, table.key, entry.to_server, entry.client_seq, seats)
        return Applied(True)

    def _failover_pending(self, entry: log_entries.FailoverPending, _verify: Verifier) -> Applied:
        reg = self.registry
        if reg.is_dead(entry.lease_id) or entry.lease_id in reg.leases:
            return Applied(False, "lease is dead or already seated")
        held = reg.pending.get(entry.lease_id)
        if held is not None and held.client_seq >= entry.client_seq:
            return Applied(False, "stale fail-over update")
        reg.pending[entry.lease_id] = PendingUpdate(
            entry.lease_id,
            entry.client_id,
            entry.feature,
            entry.version,
            entry.to_server,
            entry.client_seq,
            seats=max(1, entry.seats),
        )
        return Applied(True)

    def _set_idle_policy(self, entry: log_entries.SetIdlePolicy, _verify: Verifier) -> Applied:
        table = self.feature(entry.feature, entry.version)
        limit = entry.idle_timeout
        if table is None or not isinstance(limit, (int, float)) or not 0 <= limit < float("inf"):
            return Applied(False, "unknown feature or bad idle_timeout")
        table.idle_timeout = float(limit)
        return Applied(True)

    def _force_release(self, entry: log_entries.ForceRelease, _verify: Verifier) -> Applied:
        lease = self.registry.leases.get(entry.lease_id)
        if lease is None:
            # Unreported or pending: make sure the id can never come back.
            self.registry.kill(entry.lease_id)
            return Applied(True, "not live", (entry.lease_id,))
        lease.revoked = True
        return Applied(True, "revoked", (entry.lease_id,))

    # -- membership

    def _fence(self, entry: log_entries.Fence, _verify: Verifier) -> Applied:
        server = self.servers.get(entry.server)
        if server is None or server.status != LIVE:
            return Applied(False, "not live")
        server.status = FENCED
        server.incarnation = max(server.incarnation, entry.incarnation)
        return Applied(True)

    def _reclaim(self, entry: log_entries.Reclaim, _verify: Verifier) -> Applied:
        server = self.servers.get(entry.server)
        if server is None or server.status != FENCED:
            # leadership.md M5: a Reclaim after a Rejoin must do nothing.
            return Applied(False, "not fenced")
        return self._take_down(server)

    def _server_down(self, entry: log_entries.ServerDown, _verify: Verifier) -> Applied:
        server = self.servers.get(entry.server)
        if server is None:
            return Applied(False, "unknown server")
        # leadership.md M11: the operator's assertion frees at once what the
        # fence rules never free, the --no-majority seats.  Majority-ruled
        # leases may still be held by clients until their own deadlines, so
        # those seats keep following the fence rules: they move with fail-overs
        # and the rest come back with Reclaim, T(1+rho) after the fence.
        if server.status == LIVE:
            server.status = FENCED
        server.all_reclaimed = True
        server.reclaims += 1
        dropped = []
        for lease in self.registry.held_at(server.name):
            table = self.features.get(lease.key)
            if table is not None and not table.majority:
                self.registry.kill(lease.lease_id)
                dropped.append(lease.lease_id)
        return Applied(True, "", tuple(dropped))

    def _take_down(self, server: ServerState) -> Applied:
        server.status = DOWN
        server.reclaims += 1
        dropped = []
        for lease in self.registry.held_at(server.name):
            table = self.features.get(lease.key)
            if server.all_reclaimed or table is None or table.majority:
                self.registry.kill(lease.lease_id)
                dropped.append(lease.lease_id)
        return Applied(True, "", tuple(dropped))

    def _rejoin(self, entry: log_entries.Rejoin, _verify: Verifier) -> Applied:
        server = self.servers.get(entry.server)
        if server is None:
            return Applied(False, "unknown server")
        server.status = LIVE
        server.incarnation = max(server.incarnation, entry.incarnation)
        server.all_reclaimed = False
        return Applied(True)

    def _noop(self, _entry: log_entries.NoOp, _verify: Verifier) -> Applied:
        return Applied(True)

    def _admin_nonce(self, entry: log_entries.AdminNonce, _verify: Verifier) -> Applied:
        if not isinstance(entry.nonce, str) or not isinstance(entry.stamp, (int, float)):
            return Applied(False, "malformed nonce")
        newest = max([float(entry.stamp), *self.admin_nonces.values()])
        self.admin_nonces = {n: t for n, t in self.admin_nonces.items() if t >= newest - NONCE_KEEP}
        if entry.nonce in self.admin_nonces:
            return Applied(False, "nonce used before")
        self.admin_nonces[entry.nonce] = float(entry.stamp)
        return Applied(True)

    # -- queue (docs/licenses.md, "Queued checkouts")

    def _queue_join(self, entry: log_entries.QueueJoin, _verify: Verifier) -> Applied:
        key = (entry.feature, entry.version)
        if key not in self.features or entry.server not in self.servers or entry.seats <= 0:
            return Applied(False, "bad queue join")
        found = self.waiter(key, entry.waiter_id)
        if found is not None:
            found[1].server = entry.server  # re-registered: same place, new server
            return Applied(True, "moved")
        self.queues.setdefault(key, []).append(
            Waiter(entry.waiter_id, entry.client_id, entry.server, entry.seats, self.index, entry.timeout)
        )
        return Applied(True)

    def _queue_leave(self, entry: log_entries.QueueLeave, _verify: Verifier) -> Applied:
        key = (entry.feature, entry.version)
        found = self.waiter(key, entry.waiter_id)
        if found is None:
            return Applied(False, "not queued")
        if entry.server and found[1].server != entry.server:
            return Applied(False, f"waiter moved to {found[1].server}")
        del self.queues[key][found[0]]
        if not self.queues[key]:
            del self.queues[key]
        return Applied(True)

    # ---- plain data --------------------------------------------------------------

    def planning_copy(self) -> PoolState:
        """A copy to plan a change on (apply an entry, then ask the planner), made
        in time independent of the number of leases and transfers: the lease
        registry and each ``Transfer`` and ``Waiter`` are *shared*, the
        containers that hold them copied, and the feature tables and server
        states copied whole.  So apply to it only entries that leave the
        registry, the transfers themselves and the waiters alone
        (``TransferAbort`` removes a transfer from the copy's dict and gives
        its seats back in the copy's table).

        The leader plans a fail-over on such a copy for every transfer it
        aborts.  A full copy cost O(leases + transfers) each, so a burst of
        aborted handovers cost O(transfers x (leases + transfers)): with
        3,000 leases held it kept the leader inside one step for 17 s, long
        enough to lose its leader lease (performance.md, "The 30-session run
        lost its leader under load")."""
        return PoolState(
            servers={name: replace(state) for name, state in self.servers.items()},
            features={key: FeatureTable.from_plain(table.to_plain()) for key, table in self.features.items()},
            licenses=dict(self.licenses),
            addons=dict(self.addons),
            serial_feature=dict(self.serial_feature),
            registry=self.registry,
            transfers=dict(self.transfers),
            admin_nonces=dict(self.admin_nonces),
            queues={key: list(waiters) for key, waiters in self.queues.items()},
            index=self.index,
            epoch=self.epoch,
        )

    def to_plain(self) -> dict[str, Any]:
        return {
            "servers": [asdict(s) for s in self.servers.values()],
            "features": [t.to_plain() for t in self.features.values()],
            "licenses": dict(self.licenses),
            "addons": dict(self.addons),
            "serial_feature": {s: list(k) for s, k in self.serial_feature.items()},
            "registry": self.registry.to_plain(),
            "transfers": [asdict(t) for t in self.transfers.values()],
            "admin_nonces": dict(self.admin_nonces),
            **({"queues": [[list(k), [asdict(w) for w in q]] for k, q in self.queues.items()]} if self.queues else {}),
            "index": self.index,
            "epoch": self.epoch,
        }

    @classmethod
    def from_plain(cls, data: dict[str, Any]) -> PoolState:
        state = cls(
            servers={s["name"]: ServerState(**s) for s in data["servers"]},
            licenses=dict(data.get("licenses", {})),
            addons=dict(data.get("addons", {})),
            serial_feature={s: (k[0], k[1]) for s, k in data.get("serial_feature", {}).items()},
            registry=LeaseRegistry.from_plain(data.get("registry", {})),
            admin_nonces={str(n): float(t) for n, t in data.get("admin_nonces", {}).items()},
            index=data.get("index", 0),
            epoch=data.get("epoch", 0),
        )
        for raw in data.get("features", []):
            table = FeatureTable.from_plain(raw)
            state.features[table.key] = table
        for raw in data.get("transfers", []):
            t = Transfer(**raw)
            state.transfers[t.transfer_id] = t
        for key, waiters in data.get("queues", []):
            state.queues[(key[0], key[1])] = [Waiter(**w) for w in waiters]
        return state


_HANDLERS: dict[type, Callable[[PoolState, Any, Verifier], Applied]] = {
    log_entries.NoOp: PoolState._noop,
    log_entries.AddLicense: PoolState._add_license,
    log_entries.AddAddon: PoolState._add_addon,
    log_entries.SetCriteria: PoolState._set_criteria,
    log_entries.Grant: PoolState._grant,
    log_entries.TransferIntent: PoolState._transfer_intent,
    log_entries.TransferComplete: PoolState._transfer_complete,
    log_entries.TransferAbort: PoolState._transfer_abort,
    log_entries.LeaseReport: PoolState._lease_report,
    log_entries.FailoverSeat: PoolState._failover_seat,
    log_entries.FailoverPending: PoolState._failover_pending,
    log_entries.ForceRelease: PoolState._force_release,
    log_entries.Fence: PoolState._fence,
    log_entries.Reclaim: PoolState._reclaim,
    log_entries.ServerDown: PoolState._server_down,
    log_entries.Rejoin: PoolState._rejoin,
    log_entries.AdminNonce: PoolState._admin_nonce,
    log_entries.QueueJoin: PoolState._queue_join,
    log_entries.QueueLeave: PoolState._queue_leave,
    log_entries.SetIdlePolicy: PoolState._set_idle_policy,
}
