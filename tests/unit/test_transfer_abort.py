"""Aborting a transfer that carries a lease id (issue 11, defect 6).

A handover moves a lease with its seat: the giver consents by letting the
lease go, and if the transfer is aborted the lease comes back to it (seed
116).  A fail-over seat from a spare (``reason="failover"``) also carries the
lease id, but the giver only gives a spare seat: the lease was never its own.
Aborting that transfer used to make the giver adopt the lease anyway -- a
phantom lease holding a seat, renewed by nobody, and reported as expired.
"""

from __future__ import annotations

from typing import Any

from actors.core.leases import LocalLease
from actors.core.registry import LeaseRegistry
from actors.protocol import entries
from tests.factories import apply_to_all, lease_id, members_of, verify

SERVERS = ("s1", "s2", "s3")
KEY = ("cad", "2.0")


def _intent(lease: str, reason: str) -> entries.TransferIntent:
    """Transfer t1: one seat of c1's ``lease`` from s2 to s1."""
    return entries.TransferIntent(
        transfer_id="t1",
        feature="cad",
        version="2.0",
        giver="s2",
        taker="s1",
        count=1,
        lease_id=lease,
        client_id="c1",
        client_seq=1,
        reason=reason,
    )


def test_an_aborted_failover_seat_leaves_no_lease_at_the_giver() -> None:
    members, index = members_of(6)  # 2 / 2 / 2, nothing in use
    lease = lease_id("s3", 1, "c1")  # c1's lease, never reported: it needs a seat of its own at s1
    intent = _intent(lease, "failover")
    assert apply_to_all(members, index, intent) == {"s2": 1}  # s2 gives a spare seat
    apply_to_all(members, index, entries.TransferAbort(transfer_id="t1"))  # e.g. s2 was fenced before the completion
    giver = members["s2"]
    assert lease not in giver.leases.leases, "the giver adopted a lease it never held"
    assert giver.leases.in_use(KEY) == 0 and giver.spare(KEY) == 2
    assert lease not in members["s1"].leases.leases


def test_an_aborted_handover_gives_the_lease_back_to_its_giver() -> None:
    members, index = members_of(6)
    giver = members["s2"]
    lease = lease_id("s2", 1, "c1")
    giver.leases.grant(LocalLease(lease, "c1", "c1/1", "cad", "2.0", 40.0))
    report = giver.report()
    apply_to_all(members, index, report)
    intent = _intent(lease, "handover")
    assert apply_to_all(members, index, intent) == {"s2": 1}
    assert lease not in giver.leases.leases  # it left with its seat
    apply_to_all(members, index, entries.TransferAbort(transfer_id="t1"))
    assert lease in giver.leases.leases and giver.leases.in_use(KEY) == 1


def test_the_leaders_planning_copy_shares_the_registry_and_copies_the_rest(monkeypatch: Any) -> None:
    """The leader plans the fail-over of an aborted handover on a copy of the
    pool (``LeaderDuties._transfers``).  The copy must not cost a copy of every
    lease or every transfer: with 3,000 leases held, a burst of aborts kept the
    leader inside one step for 17 s and cost it its leader lease.  It shares the
    registry and the transfers (which ``TransferAbort`` does not change) and
    copies what the abort changes."""
    members, index = members_of(6)
    giver = members["s2"]
    lease = lease_id("s2", 1, "c1")
    giver.leases.grant(LocalLease(lease, "c1", "c1/1", "cad", "2.0", 40.0))
    apply_to_all(members, index, giver.report())
    intent = _intent(lease, "handover")
    apply_to_all(members, index, intent)
    pool = members["s1"].pool
    before = pool.to_plain()

    def no_copy(self: LeaseRegistry) -> dict[str, Any]:
        raise AssertionError("the planning copy copied every lease")

    monkeypatch.setattr(LeaseRegistry, "to_plain", no_copy)
    copy = pool.planning_copy()
    monkeypatch.undo()
    assert copy.registry is pool.registry
    assert copy.transfers is not pool.transfers and copy.transfers["t1"] is pool.transfers["t1"]  # no copy per transfer
    assert copy.apply(entries.TransferAbort(transfer_id="t1"), pool.index + 1, 1, verify).ok
    assert "t1" not in copy.transfers and copy.features[KEY].in_flight == 0
    assert copy.features[KEY].alloc["s2"] == pool.features[KEY].alloc["s2"] + 1  # the seat is back at the giver
    assert pool.to_plain() == before, "applying the abort to the copy changed the pool"
