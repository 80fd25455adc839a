"""The leader's decisions, as log entries to propose.

The leader never changes the pool state directly: it turns a borrow request, a
fail-over update, an idle period or a criteria change into entries, proposes
them, and every server (the leader included) applies them once committed.  The
functions here read the committed ``PoolState`` and return those entries; they
decide, they do not act.  Pure: no clock, no I/O.

Transfer ids are handed in by the caller (``new_id``), so that ids stay unique
across leaders: the Raft layer builds them from the leader's epoch.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from actors.core import sources as src
from actors.core.pool import DOWN, FENCED, LIVE, PoolState
from actors.core.table import FeatureKey
from actors.protocol import entries as log_entries
from actors.protocol.client import HeldLease

__all__ = [
    "SpareOf",
    "FailoverPlan",
    "plan_borrow",
    "plan_failover",
    "plan_pending",
    "plan_rebalance",
]

SpareOf = Callable[[str, FeatureKey], int]
"""The leader's best knowledge of a live server's unused seats of a feature."""


def _entries_for(
    plan: list[src.Source], key: FeatureKey, taker: str, new_id: Callable[[], str], reason: str
) -> list[log_entries.Entry]:
    out: list[log_entries.Entry] = []
    for step in plan:
        if step.needs_consent:
            assert step.server is not None
            out.append(
                log_entries.TransferIntent(
                    transfer_id=new_id(),
                    feature=key[0],
                    version=key[1],
                    giver=step.server,
                    taker=taker,
                    count=step.count,
                    reason=reason,
                )
            )
        else:
            out.append(
                log_entries.Grant(
                    feature=key[0],
                    version=key[1],
                    server=taker,
                    count=step.count,
                    source=step.server or log_entries.FREE_POOL,
                    reason=reason,
                )
            )
    return out


def _in_flight_to(state: PoolState, key: FeatureKey, taker: str) -> int:
    return sum(t.count for t in state.transfers.values() if t.key == key and t.taker == taker)


def plan_borrow(
    state: PoolState,
    leader: str,
    borrower: str,
    key: FeatureKey,
    count: int,
    spare_of: SpareOf,
    new_id: Callable[[], str],
) -> list[log_entries.Entry]:
    """Claims 5 and 19: seats for ``borrower`` in the request order.

    Seats already in flight to the borrower count against the request, so a
    repeated borrow request never moves seats twice.
    """
    if state.features.get(key) is None or state.servers.get(borrower) is None:
        return []
    if state.status(borrower) != LIVE:
        return []
    need = count - _in_flight_to(state, key, borrower)
    plan = src.find_sources(state, key, borrower, need, src.REQUEST_ORDER, leader, lambda s: spare_of(s, key))
    return _entries_for(plan, key, borrower, new_id, "borrow")


@dataclass
class FailoverPlan:
    """What the leader does with one forwarded fail-over update."""

    entries: list[log_entries.Entry] = field(default_factory=list)
    seated: list[str] = field(default_factory=list)
    """Already at the new server, or seated by an entry that needs no consent."""
    moving: list[str] = field(default_factory=list)
    """Handed over from a live holder: seated once the holder consents."""
    pending: list[str] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)
    stale: list[str] = field(default_factory=list)
    """Placed elsewhere by a newer update of the same client: nothing to do."""


def plan_failover(
    state: PoolState,
    leader: str,
    to_server: str,
    client_id: str,
    client_seq: int,
    leases: tuple[HeldLease, ...],
    spare_of: SpareOf,
    new_id: Callable[[], str],
) -> FailoverPlan:
    """Claims 13-15 and 27-29, with leadership.md M5 and M8.

    For each lease the client lists:
    * dead (released, reclaimed, revoked) or another client's: refused;
    * live at a fenced server: it moves together with its seat, at once;
    * live at another live server: a handover transfer with the holder's consent;
    * not live anywhere (never reported): a fresh seat in the claim-14 order
      (leader, free pool, down servers, live servers), else held as pending.
    The caller has already checked each lease id's MAC against ``client_id``.
    """
    out = FailoverPlan()
    reg = state.registry
    taken: dict[FeatureKey, dict[str, int]] = {}

    for held in leases:
        key = (held.feature, held.version)
        live = reg.leases.get(held.lease_id)
        if state.features.get(key) is None or reg.is_dead(held.lease_id):
            out.refused.append(held.lease_id)
        elif live is not None and (live.client_id != client_id or live.revoked or live.key != key):
            out.refused.append(held.lease_id)
        elif live is not None and live.holder == to_server:
            out.seated.append(held.lease_id)
        elif live is not None and live.client_seq >= client_seq:
            # A newer (or the same) update of this client already placed it:
            # a late duplicate never moves it back.
            out.stale.append(held.lease_id)
        elif live is not None and state.status(live.holder) == FENCED and state.features[key].majority:
            out.entries.append(
                log_entries.FailoverSeat(
                    lease_id=held.lease_id,
                    client_id=client_id,
                    feature=key[0],
                    version=key[1],
                    to_server=to_server,
                    client_seq=client_seq,
                    source=live.holder,
                    seats=live.seats,
                )
            )
            out.seated.append(held.lease_id)
        elif live is not None and state.status(live.holder) == LIVE:
            out.entries.append(
                log_entries.TransferIntent(
                    transfer_id=new_id(),
                    feature=key[0],
                    version=key[1],
                    giver=live.holder,
                    taker=to_server,
                    count=live.seats,
                    lease_id=held.lease_id,
                    client_id=client_id,
                    client_seq=client_seq,
                    reason="handover",
                )
            )
            out.moving.append(held.lease_id)
        else:
            # Never reported, or a --no-majority lease whose holder is fenced
            # (its seats are never touched then): it needs a seat of its own.
            seats = live.seats if live is not None else max(1, held.seats)
            step = _one_seat(state, key, to_server, leader, spare_of, taken, seats)
            if step is None:
                out.entries.append(
                    log_entries.FailoverPending(
                        lease_id=held.lease_id,
                        client_id=client_id,
                        feature=key[0],
                        version=key[1],
                        to_server=to_server,
                        client_seq=client_seq,
                        seats=seats,
                    )
                )
                out.pending.append(held.lease_id)
            elif step.needs_consent:
                assert step.server is not None
                out.entries.append(
                    log_entries.TransferIntent(
                        transfer_id=new_id(),
                        feature=key[0],
                        version=key[1],
                        giver=step.server,
                        taker=to_server,
                        count=seats,
                        lease_id=held.lease_id,
                        client_id=client_id,
                        client_seq=client_seq,
                        reason="failover",
                    )
                )
                out.moving.append(held.lease_id)
            else:
                out.entries.append(
                    log_entries.FailoverSeat(
                        lease_id=held.lease_id,
                        client_id=client_id,
                        feature=key[0],
                        version=key[1],
                        to_server=to_server,
                        client_seq=client_seq,
                        source=step.server or log_entries.FREE_POOL,
                        seats=seats,
                    )
                )
                out.seated.append(held.lease_id)
    return out


def _one_seat(
    state: PoolState,
    key: FeatureKey,
    taker: str,
    leader: str,
    spare_of: SpareOf,
    taken: dict[FeatureKey, dict[str, int]],
    seats: int = 1,
) -> src.Source | None:
    """``seats`` seats from one source, in the claim-14 order, minus what this
    round already planned.  A multi-seat lease is seated whole from a single
    source or not at all (it stays pending): never a partial hold."""
    used = taken.setdefault(key, {})
    table = state.features.get(key)
    need = seats if seats == 1 or table is None else max(seats, table.total)
    plan = src.find_sources(state, key, taker, need, src.FAILOVER_ORDER, leader, lambda s: spare_of(s, key), used)
    whole = [step for step in plan if step.count >= seats]
    if not whole:
        return None
    name = whole[0].server or log_entries.FREE_POOL
    used[name] = used.get(name, 0) + seats
    return whole[0]


def plan_pending(
    state: PoolState, leader: str, spare_of: SpareOf, new_id: Callable[[], str]
) -> list[log_entries.Entry]:
    """Seat pending fail-over updates whose feature now has a source, in the
    claim-14 order.  A live giver is asked through a transfer."""
    moving = {t.lease_id for t in state.transfers.values() if t.lease_id}
    out: list[log_entries.Entry] = []
    taken: dict[FeatureKey, dict[str, int]] = {}
    for p in state.registry.pending.values():
        if p.lease_id in moving or state.servers.get(p.to_server) is None or state.status(p.to_server) != LIVE:
            continue
        step = _one_seat(state, p.key, p.to_server, leader, spare_of, taken, p.seats)
        if step is None:
            continue
        source = step.server or log_entries.FREE_POOL
        if step.needs_consent:
            out.append(
                log_entries.TransferIntent(
                    transfer_id=new_id(),
                    feature=p.feature,
                    version=p.version,
                    giver=source,
                    taker=p.to_server,
                    count=p.seats,
                    lease_id=p.lease_id,
                    client_id=p.client_id,
                    client_seq=p.client_seq,
                    reason="failover",
                )
            )
        else:
            out.append(
                log_entries.FailoverSeat(
                    lease_id=p.lease_id,
                    client_id=p.client_id,
                    feature=p.feature,
                    version=p.version,
                    to_server=p.to_server,
                    client_seq=p.client_seq,
                    source=source,
                    seats=p.seats,
                )
            )
    return out


def plan_rebalance(
    state: PoolState,
    idle: Callable[[str, FeatureKey], bool],
    thresholds: Callable[[str], float],
    spare_of: SpareOf,
    new_id: Callable[[], str],
) -> list[log_entries.Entry]:
    """Claim 32 and leadership.md M9: idle seats above target go back to the
    free pool (by consented transfer), then the free pool refills servers that
    are below their target (an increase, applied on commit).

    ``idle(server, key)`` says whether that server's excess has been unused for
    the configured time (the leader's own timer; times never enter the log).
    """
    out: list[log_entries.Entry] = []
    busy = {(t.giver, t.key) for t in state.transfers.values()}
    for key, table in state.features.items():
        free = table.free
        for name, server in state.servers.items():
            if server.status != LIVE:
                continue
            have = table.allocated(name)
            target = table.targets.get(name, 0)
            if have > target and (name, key) not in busy and idle(name, key):
                in_use = state.registry.in_use(name, key)
                excess = min(src.idle_excess(have, in_use, target, thresholds(name)), spare_of(name, key))
                if excess > 0:
                    out.append(
                        log_entries.TransferIntent(
                            transfer_id=new_id(),
                            feature=key[0],
                            version=key[1],
                            giver=name,
                            taker=log_entries.FREE_POOL,
                            count=excess,
                            reason="rebalance",
                        )
                    )
            elif have < target and free > 0 and server.status != DOWN:
                n = min(free, target - have)
                free -= n
                out.append(
                    log_entries.Grant(
                        feature=key[0],
                        version=key[1],
                        server=name,
                        count=n,
                        source=log_entries.FREE_POOL,
                        reason="criteria",
                    )
                )
    return out
