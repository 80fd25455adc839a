"""A release is final wherever it is made (issue 11, simulator seed 8752).

An app released lease L at s2 while the pool, behind s2's back, was moving L
to s1: s2 had been fenced, and a fail-over seat of L at s1 was in the log but
not yet committed.  The fail-over seat committed first; s2's report of the
release came after it and was ignored, because the registry no longer placed
L at s2.  So L stayed at s1, held by nobody, and when the app restarted and
resumed L from a stale file the leader handed the released id back to it
(S3).

The rule: a release reported by any server kills the lease if the registry
holds it for the same client, wherever it is; the holder drops it and its
seat is free there.  An *expiry* at a server the lease has left is not a
release and kills nothing.  A lease killed while a handover of it is under
way is not adopted by the taker, and the id never comes back.
"""

from __future__ import annotations

from actors.core.leases import LocalLease
from actors.core.member import Member
from actors.protocol import entries
from tests.factories import apply_to_all, lease_id, members_of, verify

SERVERS = ("s1", "s2", "s3")
KEY = ("cad", "2.0")


def granted_at_s2(members: dict[str, Member], index: list[int]) -> str:
    """c6 holds lease L at s2, reported and committed."""
    lease = lease_id("s2", 1, "c6")
    members["s2"].leases.grant(LocalLease(lease, "c6", "c6/1", "cad", "2.0", 40.0))
    apply_to_all(members, index, members["s2"].report())
    assert members["s1"].pool.registry.holder(lease) == "s2"
    return lease


def seat_at_s1(lease: str, client_seq: int = 15) -> entries.FailoverSeat:
    return entries.FailoverSeat(
        lease_id=lease,
        client_id="c6",
        feature="cad",
        version="2.0",
        to_server="s1",
        client_seq=client_seq,
        source="s2",
    )


def test_a_release_at_the_server_a_lease_moved_from_kills_it_where_it_went() -> None:
    members, index = members_of(6)  # 2 / 2 / 2
    lease = granted_at_s2(members, index)
    s1, s2 = members["s1"], members["s2"]

    # s2, cut off and unaware that it is being fenced, accepts c6's release.
    assert s2.leases.release(lease, "c6")
    release_report = s2.report()
    # The fence and the fail-over seat commit before s2's report of the release.
    apply_to_all(members, index, entries.Fence(server="s2", incarnation=1))
    apply_to_all(members, index, seat_at_s1(lease))
    assert s1.pool.registry.holder(lease) == "s1" and lease in s1.leases.leases
    spare_before = s1.spare(KEY)

    apply_to_all(members, index, release_report)

    for member in members.values():
        assert member.pool.registry.holder(lease) is None
        assert member.pool.registry.is_dead(lease), "the released id must be dead for ever"
    assert lease not in s1.leases.leases, "the lease its client released stayed held at s1"
    assert s1.spare(KEY) == spare_before + 1
    # A stale resume of it can be neither handed over nor seated again.
    index[0] += 1
    applied, _ = s1.apply(seat_at_s1(lease, client_seq=99), index[0], 1, verify, 11.0)
    assert not applied.ok


def test_an_expiry_at_the_server_a_lease_moved_from_kills_nothing() -> None:
    members, index = members_of(6)
    lease = granted_at_s2(members, index)
    s1, s2 = members["s1"], members["s2"]

    assert [gone.lease_id for gone in s2.leases.expire(now=50.0)] == [lease]  # c6 renews it at s1 now
    expiry_report = s2.report()
    apply_to_all(members, index, entries.Fence(server="s2", incarnation=1))
    apply_to_all(members, index, seat_at_s1(lease))
    apply_to_all(members, index, expiry_report)

    assert s1.pool.registry.holder(lease) == "s1"
    assert lease in s1.leases.leases


def test_a_release_by_another_client_kills_nothing() -> None:
    members, index = members_of(6)
    lease = granted_at_s2(members, index)
    apply_to_all(members, index, entries.Fence(server="s2", incarnation=1))
    apply_to_all(members, index, seat_at_s1(lease))
    forged = entries.LeaseReport(
        server="s3",
        changes=(
            entries.LeaseChange(seq=1, kind="release", lease_id=lease, client_id="c9", feature="cad", version="2.0"),
        ),
        watermark=0,
    )
    apply_to_all(members, index, forged)
    assert members["s1"].pool.registry.holder(lease) == "s1"
    assert lease in members["s1"].leases.leases


def test_a_lease_released_during_its_handover_is_not_adopted_by_the_taker() -> None:
    members, index = members_of(6)
    lease = granted_at_s2(members, index)
    s1, s2, s3 = members["s1"], members["s2"], members["s3"]
    assert s2.leases.release(lease, "c6")
    release_report = s2.report()
    apply_to_all(members, index, entries.Fence(server="s2", incarnation=1))
    apply_to_all(members, index, seat_at_s1(lease))
    # The stale resume arrives at s3 first: the leader hands L over from s1.
    intent = entries.TransferIntent(
        transfer_id="t1",
        feature="cad",
        version="2.0",
        giver="s1",
        taker="s3",
        count=1,
        lease_id=lease,
        client_id="c6",
        client_seq=20,
        reason="handover",
    )
    assert apply_to_all(members, index, intent) == {"s1": 1}
    apply_to_all(members, index, release_report)  # commits between the intent and the completion
    apply_to_all(members, index, entries.TransferComplete(transfer_id="t1", given=1))

    for member in members.values():
        assert member.pool.registry.is_dead(lease)
        assert lease not in member.leases.leases, f"{member.name} holds a released id"
    assert s3.spare(KEY) == s3.pool.features[KEY].allocated("s3"), "the seat moved to s3 as a spare"
    assert s1.leases.in_use(KEY) == 0
