"""The patent claims the pure core implements, one test (or more) per claim.

Claim numbers refer to shared/seeds/000_dd95fe36d7ca22ab.txt.  Each test drives
the committed pool state or the leader's planner directly: no actors, no clock.
"""

from __future__ import annotations

from collections.abc import Callable

from actors.core import planner, sources
from actors.core.pool import DOWN, FENCED, LIVE
from actors.protocol import entries as log_entries
from actors.protocol.client import HeldLease
from tests.factories import Pool, addon_code, lease_id, license_code

KEY = ("cad", "2.0")


def ids() -> Callable[[], str]:
    counter = iter(range(1, 10_000))
    return lambda: f"t{next(counter)}"


def spare_from_registry(pool: Pool) -> Callable[[str, tuple[str, str]], int]:
    def spare(server: str, key: tuple[str, str]) -> int:
        table = pool.state.features[key]
        return table.allocated(server) - pool.state.registry.in_use(server, key)

    return spare


def test_claim_1_borrow_when_quotient_exceeds_threshold() -> None:
    assert not sources.borrow_threshold_exceeded(9, 10, 0.9)  # 0.9 is not above 0.9
    assert sources.borrow_threshold_exceeded(10, 10, 0.9)
    assert sources.borrow_threshold_exceeded(4, 4, 0.9)
    assert not sources.borrow_threshold_exceeded(2, 4, 0.9)


def test_claim_1_borrow_amount_brings_server_back_under_threshold() -> None:
    assert sources.seats_to_borrow(10, 10, 0.9) == 2  # 10/12 <= 0.9, 10/11 > 0.9
    assert sources.seats_to_borrow(9, 9, 0.9) == 1
    assert sources.seats_to_borrow(0, 0, 0.9) == 1  # at least one
    for in_use in range(60):
        for alloc in range(in_use + 1):
            n = sources.seats_to_borrow(in_use, alloc, 0.9)
            assert n >= 1 and in_use / (alloc + n) <= 0.9 + 1e-12


def test_claim_3_and_31_server_with_no_seats_asks_when_a_request_arrives() -> None:
    # Allocation 0, in use 0: the threshold test alone never fires ...
    assert not sources.borrow_threshold_exceeded(0, 0, 0.9)
    # ... but the waiting request counts, and one seat is asked for.
    assert sources.seats_to_borrow(1, 0, 0.9) == 2  # 1/1 > 0.9, 1/2 <= 0.9


def test_claim_4_leader_state_stores_distribution_for_all_servers() -> None:
    pool = Pool()
    assert pool.apply(log_entries.AddLicense(code=license_code(10))) == [True]
    assert pool.table().alloc == {"s1": 4, "s2": 3, "s3": 3}
    assert pool.table().free == 0 and pool.table().total == 10


def test_claim_5_source_order_for_request_free_pool_first() -> None:
    pool = Pool()
    pool.apply(log_entries.AddLicense(code=license_code(10, distribution="s1:3^s2:3^s3:2")))  # 2 in the free pool
    entries = planner.plan_borrow(pool.state, "s1", "s2", KEY, 1, spare_from_registry(pool), ids())
    assert entries == [
        log_entries.Grant(
            feature="cad", version="2.0", server="s2", count=1, source=log_entries.FREE_POOL, reason="borrow"
        )
    ]


def test_claim_5_source_order_for_request_down_servers_before_leader() -> None:
    pool = Pool()
    pool.apply(log_entries.AddLicense(code=license_code(9)))
    pool.apply(log_entries.Fence(server="s3", incarnation=1), log_entries.Reclaim(server="s3"))
    assert pool.state.status("s3") == DOWN
    entries = planner.plan_borrow(pool.state, "s1", "s2", KEY, 2, spare_from_registry(pool), ids())
    assert entries == [
        log_entries.Grant(feature="cad", version="2.0", server="s2", count=2, source="s3", reason="borrow")
    ]


def test_claim_5_source_order_for_request_leader_then_other_live_servers() -> None:
    pool = Pool(("s1", "s2", "s3", "s4"))
    pool.apply(log_entries.AddLicense(code=license_code(8)))  # 2 each, nothing free, nobody down
    entries = planner.plan_borrow(pool.state, "s3", "s1", KEY, 3, spare_from_registry(pool), ids())
    # the leader (s3) first, then the other live servers in priority order
    assert [(x.giver, x.count) for x in entries if isinstance(x, log_entries.TransferIntent)] == [("s3", 2), ("s2", 1)]


def test_claim_5_full_order_across_every_source() -> None:
    pool = Pool(("s1", "s2", "s3", "s4"))
    pool.apply(log_entries.AddLicense(code=license_code(9, distribution="s1:2^s2:2^s3:2^s4:2")))  # 1 free
    pool.apply(log_entries.Fence(server="s4", incarnation=1), log_entries.Reclaim(server="s4"))
    plan = sources.find_sources(
        pool.state, KEY, "s1", 7, sources.REQUEST_ORDER, "s2", lambda s: pool.table().allocated(s)
    )
    assert [(p.kind, p.server, p.count) for p in plan] == [
        ("free", None, 1),
        ("down", "s4", 2),
        ("leader", "s2", 2),
        ("live", "s3", 2),
    ]


def test_claim_6_every_server_applying_the_sync_reaches_the_same_table() -> None:
    log: list[log_entries.Entry] = [
        log_entries.AddLicense(code=license_code(10)),
        log_entries.AddAddon(code=addon_code(count=4)),
        log_entries.Grant(feature="cad", version="2.0", server="s2", count=3, source=log_entries.FREE_POOL),
        log_entries.TransferIntent(transfer_id="t1", feature="cad", version="2.0", giver="s1", taker="s3", count=2),
        log_entries.TransferComplete(transfer_id="t1", given=2),
    ]
    replicas = [Pool() for _ in range(3)]
    for replica in replicas:
        replica.apply(*log)
    plains = [r.state.to_plain() for r in replicas]
    assert plains[0] == plains[1] == plains[2]
    assert replicas[0].table().alloc == {"s1": 2, "s2": 6, "s3": 5}


def test_claim_7_and_8_change_distribution_criteria_sets_targets() -> None:
    pool = Pool()
    pool.apply(log_entries.AddLicense(code=license_code(10)))
    assert pool.apply(log_entries.SetCriteria(feature="cad", version="2.0", targets=(("s1", 6), ("s2", 2)))) == [True]
    assert pool.table().targets == {"s1": 6, "s2": 2, "s3": 0}
    # in-use seats are never taken away: the change applies as seats come free
    assert pool.table().alloc == {"s1": 4, "s2": 3, "s3": 3}


def test_claim_7_criteria_naming_unknown_server_or_too_many_seats_is_refused() -> None:
    pool = Pool()
    pool.apply(log_entries.AddLicense(code=license_code(10)))
    assert pool.apply(log_entries.SetCriteria(feature="cad", version="2.0", targets=(("s9", 1),))) == [False]
    assert pool.apply(log_entries.SetCriteria(feature="cad", version="2.0", targets=(("s1", 11),))) == [False]


def test_claim_9_and_10_add_allocations_from_a_signed_addon_go_to_free_pool() -> None:
    pool = Pool()
    pool.apply(log_entries.AddLicense(code=license_code(10)))
    assert pool.apply(log_entries.AddAddon(code=addon_code(count=5))) == [True]
    assert pool.table().total == 15 and pool.table().free == 5
    # the same add-on twice is a no-op
    assert pool.apply(log_entries.AddAddon(code=addon_code(count=5))) == [False]
    assert pool.table().total == 15


def test_claim_9_addon_for_unknown_serial_or_forged_is_refused() -> None:
    pool = Pool()
    pool.apply(log_entries.AddLicense(code=license_code(10)))
    assert pool.apply(log_entries.AddAddon(code=addon_code(of_serial="NOPE", serial="A9"))) == [False]
    forged = addon_code(count=5, serial="A2").replace("A", "B", 1)
    assert pool.apply(log_entries.AddAddon(code=forged)) == [False]
    assert pool.table().total == 10


def test_claim_11_and_12_add_license_code_new_feature_and_more_seats() -> None:
    pool = Pool()
    assert pool.apply(log_entries.AddLicense(code=license_code(10))) == [True]
    assert pool.apply(log_entries.AddLicense(code=license_code(10))) == [False]  # same serial: no-op
    assert pool.apply(log_entries.AddLicense(code=license_code(6, serial="L2"))) == [True]
    assert pool.table().total == 16 and pool.table().free == 6
    # the distribution table stores the codes, so any server can become leader
    assert set(pool.state.licenses) == {"L1", "L2"}


def test_claim_13_and_14_failover_moves_lease_with_seat_from_fenced_holder() -> None:
    pool = Pool()
    pool.apply(log_entries.AddLicense(code=license_code(10)))
    lid = lease_id("s1", 1)
    pool.report("s1", ("grant", lid, "c1"), watermark=1)
    pool.apply(log_entries.Fence(server="s1", incarnation=1))
    plan = planner.plan_failover(
        pool.state,
        "s2",
        "s3",
        "c1",
        1,
        (HeldLease(lease_id=lid, feature="cad", version="2.0"),),
        spare_from_registry(pool),
        ids(),
    )
    assert plan.seated == [lid]
    assert pool.apply(*plan.entries) == [True]
    assert pool.table().alloc == {"s1": 3, "s2": 3, "s3": 4}
    assert pool.state.registry.holder(lid) == "s3"


def test_claim_14_source_order_for_failover_leader_first() -> None:
    pool = Pool()
    pool.apply(log_entries.AddLicense(code=license_code(10, distribution="s1:3^s2:3^s3:3")))  # 1 free
    unreported = lease_id("s3", 7)  # never reported by s3
    plan = planner.plan_failover(
        pool.state,
        "s1",
        "s2",
        "c1",
        1,
        (HeldLease(lease_id=unreported, feature="cad", version="2.0"),),
        spare_from_registry(pool),
        ids(),
    )
    # leader (s1) before the free pool: a consented transfer from the leader
    assert len(plan.entries) == 1
    intent = plan.entries[0]
    assert isinstance(intent, log_entries.TransferIntent) and intent.giver == "s1" and intent.lease_id == unreported


def test_claim_14_then_free_pool_then_down_servers() -> None:
    pool = Pool()
    pool.apply(log_entries.AddLicense(code=license_code(7, distribution="s2:3^s3:3")))  # leader s1 holds 0, 1 free
    pool.apply(log_entries.Fence(server="s3", incarnation=1), log_entries.Reclaim(server="s3"))
    held = tuple(HeldLease(lease_id=lease_id("s9x", n), feature="cad", version="2.0") for n in (1, 2))
    plan = planner.plan_failover(pool.state, "s1", "s2", "c1", 1, held, spare_from_registry(pool), ids())
    assert [x.source for x in plan.entries if isinstance(x, log_entries.FailoverSeat)] == [log_entries.FREE_POOL, "s3"]


def test_claim_15_other_live_servers_last_then_pending() -> None:
    pool = Pool()
    pool.apply(log_entries.AddLicense(code=license_code(2, distribution="s2:2")))  # only s2 has seats
    held = (HeldLease(lease_id=lease_id("s3", 1), feature="cad", version="2.0"),)
    plan = planner.plan_failover(pool.state, "s1", "s3", "c1", 1, held, spare_from_registry(pool), ids())
    assert isinstance(plan.entries[0], log_entries.TransferIntent) and plan.entries[0].giver == "s2"
    # s2's seats in use (reported): nothing anywhere -> held as pending, not denied
    pool.report("s2", ("grant", lease_id("s2", 1, "a"), "a"), ("grant", lease_id("s2", 2, "b"), "b"), watermark=2)
    plan = planner.plan_failover(pool.state, "s1", "s3", "c1", 2, held, spare_from_registry(pool), ids())
    assert plan.pending == [held[0].lease_id]
    assert pool.apply(*plan.entries) == [True]
    assert held[0].lease_id in pool.state.registry.pending
    # a seat comes free: the pending update is seated
    pool.report("s2", ("release", lease_id("s2", 1, "a"), "a"), watermark=2)
    again = planner.plan_pending(pool.state, "s1", spare_from_registry(pool), ids())
    assert [type(x).__name__ for x in again] == ["TransferIntent"]


def test_claim_30_each_server_grants_from_its_own_allocation() -> None:
    from actors.core.leases import LocalLease, LocalLeases

    local = LocalLeases("s1")
    lid = lease_id("s1", local.next_counter())
    local.grant(LocalLease(lid, "c1", "sess", "cad", "2.0", expires_at=30.0))
    assert local.in_use(KEY) == 1 and local.report(0).changes[0].kind == "grant"


def test_claim_32_initial_distribution_of_zero_to_a_server() -> None:
    pool = Pool()
    pool.apply(log_entries.AddLicense(code=license_code(6, distribution="s1:3^s2:3")))
    assert pool.table().alloc["s3"] == 0
    entries = planner.plan_borrow(pool.state, "s1", "s3", KEY, 1, spare_from_registry(pool), ids())
    assert entries and isinstance(entries[0], log_entries.TransferIntent) and entries[0].giver == "s1"


def test_claim_32_idle_rebalancing_returns_excess_to_free_pool() -> None:
    pool = Pool()
    pool.apply(log_entries.AddLicense(code=license_code(10)))
    pool.apply(
        log_entries.TransferIntent(transfer_id="t1", feature="cad", version="2.0", giver="s1", taker="s2", count=3),
        log_entries.TransferComplete(transfer_id="t1", given=3),
    )
    assert pool.table().alloc == {"s1": 1, "s2": 6, "s3": 3}
    entries = planner.plan_rebalance(pool.state, lambda s, k: True, lambda s: 0.9, spare_from_registry(pool), ids())
    # s2 holds 6, target 3, none in use: keeps max(3, 0 + 1) = 3, gives 3 back
    cut = [x for x in entries if isinstance(x, log_entries.TransferIntent)]
    assert [(x.giver, x.taker, x.count) for x in cut] == [("s2", log_entries.FREE_POOL, 3)]
    pool.apply(*cut, log_entries.TransferComplete(transfer_id=cut[0].transfer_id, given=3))
    assert pool.table().free == 3
    # then the free pool refills s1 below its target
    refill = planner.plan_rebalance(pool.state, lambda s, k: False, lambda s: 0.9, spare_from_registry(pool), ids())
    assert refill == [
        log_entries.Grant(
            feature="cad", version="2.0", server="s1", count=3, source=log_entries.FREE_POOL, reason="criteria"
        )
    ]


def test_claim_32_rebalancing_never_fights_borrowing() -> None:
    # in use 5 at threshold 0.9 needs 6; rebalancing keeps ceil(5/0.9) + 1 = 7
    assert sources.idle_excess(allocated=9, in_use=5, target=3, threshold=0.9) == 2
    assert sources.idle_excess(allocated=7, in_use=5, target=3, threshold=0.9) == 0


def test_claim_33_transfer_needs_giver_consent_and_never_counts_a_seat_twice() -> None:
    pool = Pool()
    pool.apply(log_entries.AddLicense(code=license_code(10)))
    pool.apply(
        log_entries.TransferIntent(transfer_id="t1", feature="cad", version="2.0", giver="s1", taker="s2", count=2)
    )
    # in flight: the giver lost them, the taker has not got them
    assert pool.table().alloc == {"s1": 2, "s2": 3, "s3": 3} and pool.table().in_flight == 2
    # the giver consents to one only (the other turned out to be in use)
    pool.apply(log_entries.TransferComplete(transfer_id="t1", given=1))
    assert pool.table().alloc == {"s1": 3, "s2": 4, "s3": 3} and pool.table().in_flight == 0


def test_claim_33_abandoned_transfer_rolls_back_from_table_alone() -> None:
    pool = Pool()
    pool.apply(log_entries.AddLicense(code=license_code(10)))
    pool.apply(
        log_entries.TransferIntent(transfer_id="t1", feature="cad", version="2.0", giver="s1", taker="s2", count=2)
    )
    assert [t.transfer_id for t in pool.state.transfers.values()] == ["t1"]
    pool.apply(log_entries.TransferAbort(transfer_id="t1"))
    assert pool.table().alloc == {"s1": 4, "s2": 3, "s3": 3} and not pool.state.transfers


def test_claim_33_handover_moves_lease_with_its_seat() -> None:
    pool = Pool()
    pool.apply(log_entries.AddLicense(code=license_code(10)))
    lid = lease_id("s1", 1)
    pool.report("s1", ("grant", lid, "c1"), watermark=1)
    plan = planner.plan_failover(
        pool.state,
        "s3",
        "s2",
        "c1",
        1,
        (HeldLease(lease_id=lid, feature="cad", version="2.0"),),
        spare_from_registry(pool),
        ids(),
    )
    assert plan.moving == [lid]
    (intent,) = plan.entries
    assert isinstance(intent, log_entries.TransferIntent)
    pool.apply(intent, log_entries.TransferComplete(transfer_id=intent.transfer_id, given=1))
    assert pool.state.registry.holder(lid) == "s2"
    assert pool.table().alloc == {"s1": 3, "s2": 4, "s3": 3}


def test_fenced_server_seats_come_back_only_at_reclaim() -> None:
    pool = Pool()
    pool.apply(log_entries.AddLicense(code=license_code(9)))
    pool.apply(log_entries.Fence(server="s3", incarnation=1))
    assert pool.state.status("s3") == FENCED
    # fenced but not reclaimed: not a source
    plan = sources.find_sources(pool.state, KEY, "s1", 1, sources.REQUEST_ORDER, "s1", lambda s: 0)
    assert plan == []
    pool.apply(log_entries.Reclaim(server="s3"))
    plan = sources.find_sources(pool.state, KEY, "s1", 1, sources.REQUEST_ORDER, "s1", lambda s: 0)
    assert [(p.kind, p.server) for p in plan] == [("down", "s3")]


def test_reclaim_after_rejoin_does_nothing() -> None:
    pool = Pool()
    pool.apply(log_entries.AddLicense(code=license_code(9)))
    lid = lease_id("s3", 1)
    pool.report("s3", ("grant", lid, "c1"), watermark=1)
    pool.apply(log_entries.Fence(server="s3", incarnation=1), log_entries.Rejoin(server="s3", incarnation=1))
    assert pool.apply(log_entries.Reclaim(server="s3")) == [False]
    assert pool.state.status("s3") == LIVE and pool.state.registry.holder(lid) == "s3"


def test_released_lease_is_dead_for_ever() -> None:
    pool = Pool()
    pool.apply(log_entries.AddLicense(code=license_code(9)))
    lid = lease_id("s1", 1)
    pool.report("s1", ("grant", lid, "c1"), ("release", lid, "c1"), watermark=1)
    assert pool.state.registry.is_dead(lid)
    plan = planner.plan_failover(
        pool.state,
        "s2",
        "s2",
        "c1",
        5,
        (HeldLease(lease_id=lid, feature="cad", version="2.0"),),
        spare_from_registry(pool),
        ids(),
    )
    assert plan.refused == [lid] and plan.entries == []
    # a grant report arriving late never resurrects it
    pool.report("s1", ("grant", lid, "c1"))
    assert pool.state.registry.holder(lid) is None


def test_no_majority_seats_stay_with_fenced_server_until_server_down() -> None:
    pool = Pool()
    pool.apply(log_entries.AddLicense(code=license_code(9, majority=False)))
    pool.apply(log_entries.Fence(server="s3", incarnation=1), log_entries.Reclaim(server="s3"))
    plan = sources.find_sources(pool.state, KEY, "s1", 3, sources.REQUEST_ORDER, "s1", lambda s: 0)
    assert plan == []
    pool.apply(log_entries.ServerDown(server="s3"))
    plan = sources.find_sources(pool.state, KEY, "s1", 3, sources.REQUEST_ORDER, "s1", lambda s: 0)
    assert [(p.kind, p.server, p.count) for p in plan] == [("down", "s3", 3)]
