"""Issue 14, items 3-6: multi-seat checkouts and token weights, linger, the
idle timeout, and unmet demand.  Claim-style tests on the committed pool state
and the planner, and node-level tests on the fake-clock network of
``test_node_smoke``: each fails if its rule is missing."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from actors.core import codes, planner
from actors.core.codes import CodeError
from actors.core.effects import Ready
from actors.core.leases import LocalLease, LocalLeases
from actors.core.session import ClientSessionCore
from actors.core.timing import Timing
from actors.protocol import client as client_msgs
from actors.protocol import codec
from actors.protocol import entries as log_entries
from actors.protocol import pool as pool_msgs
from actors.protocol.client import DenyReason, HeldLease
from tests.factories import Pool, lease_id, license_code, vendor_key, verify
from tests.unit.test_node_smoke import Net

KEY = ("cad", "2.0")


def ids() -> Callable[[], str]:
    counter = iter(range(1, 10_000))
    return lambda: f"t{next(counter)}"


def spare_from_registry(pool: Pool) -> Callable[[str, tuple[str, str]], int]:
    def spare(server: str, key: tuple[str, str]) -> int:
        return pool.state.features[key].allocated(server) - pool.state.registry.in_use(server, key)

    return spare


def pool_with(code: str) -> Net:
    net = Net()
    net.run(8.0)
    net.send("admin", net.leader().name, pool_msgs.AddLicenseCode(sender="cli", epoch=0, request_id="r1", code=code))
    net.run(net.now + 1.0)
    return net


def checkout(
    net: Net,
    client: str,
    server: str,
    request_id: int = 1,
    count: int = 1,
    linger: float = 0.0,
    lease_id: str | None = None,
) -> None:
    net.send(
        client,
        server,
        client_msgs.CheckoutRequest(
            client_id=client,
            session_id=client,
            request_id=request_id,
            feature="cad",
            version="2.0",
            count=count,
            linger=linger,
            lease_id=lease_id,
        ),
    )


def granted(net: Net, client: str) -> list[client_msgs.CheckoutGranted]:
    return net.replies(client, client_msgs.CheckoutGranted)


def denied(net: Net, client: str) -> list[client_msgs.CheckoutDenied]:
    return net.replies(client, client_msgs.CheckoutDenied)


# ---- multi-seat: the committed state and the planner ---------------------------------


def report_seats(pool: Pool, server: str, lid: str, seats: int) -> None:
    seq = pool.state.registry.report_seq.get(server, 0) + 1
    change = log_entries.LeaseChange(
        seq=seq, kind="grant", lease_id=lid, client_id="c1", feature="cad", version="2.0", seats=seats
    )
    assert pool.apply(log_entries.LeaseReport(server=server, changes=(change,), watermark=1)) == [True]


def test_the_registry_counts_seats_not_leases() -> None:
    pool = Pool()
    pool.apply(log_entries.AddLicense(code=license_code(10)))
    report_seats(pool, "s1", lease_id("s1", 1), 3)
    assert pool.state.registry.in_use("s1", KEY) == 3
    assert spare_from_registry(pool)("s1", KEY) == 4 - 3


def test_failover_of_a_multi_seat_lease_moves_all_its_seats_with_it() -> None:
    pool = Pool()
    pool.apply(log_entries.AddLicense(code=license_code(10)))  # 4 / 3 / 3
    lid = lease_id("s1", 1)
    report_seats(pool, "s1", lid, 3)
    pool.apply(log_entries.Fence(server="s1", incarnation=1))
    held = (HeldLease(lease_id=lid, feature="cad", version="2.0", seats=3),)
    plan = planner.plan_failover(pool.state, "s2", "s3", "c1", 1, held, spare_from_registry(pool), ids())
    assert plan.seated == [lid]
    assert pool.apply(*plan.entries) == [True]
    assert pool.table().alloc == {"s1": 1, "s2": 3, "s3": 6}
    assert pool.state.registry.in_use("s3", KEY) == 3


def test_a_failover_seat_is_all_or_nothing() -> None:
    pool = Pool()
    pool.apply(log_entries.AddLicense(code=license_code(10, distribution="s1:4^s2:3^s3:1")))  # 2 free
    lid = lease_id("s1", 1)
    seat = log_entries.FailoverSeat(
        lease_id=lid, client_id="c1", feature="cad", version="2.0", to_server="s2", client_seq=1, source="", seats=3
    )
    assert pool.apply(seat) == [False]  # the free pool has 2 of the 3 seats: nothing is seated
    assert pool.table().free == 2 and pool.state.registry.holder(lid) is None


def test_a_multi_seat_failover_waits_for_one_source_with_all_its_seats() -> None:
    pool = Pool()
    pool.apply(log_entries.AddLicense(code=license_code(10, distribution="s1:4^s2:4^s3:0")))  # 2 free
    lid = lease_id("s3", 1, client_id="c1")
    held = (HeldLease(lease_id=lid, feature="cad", version="2.0", seats=5),)
    plan = planner.plan_failover(pool.state, "s1", "s3", "c1", 1, held, spare_from_registry(pool), ids())
    # No single source has 5 spare seats (s1 4, free 2, s2 4): pending, never a partial seat.
    assert plan.pending == [lid]
    assert pool.apply(*plan.entries) == [True]
    assert pool.state.registry.pending[lid].seats == 5
    held = (HeldLease(lease_id=lid, feature="cad", version="2.0", seats=3),)
    plan = planner.plan_failover(pool.state, "s1", "s3", "c1", 2, held, spare_from_registry(pool), ids())
    (intent,) = plan.entries  # the leader itself has 4 spare: one transfer of all 3
    assert isinstance(intent, log_entries.TransferIntent) and intent.count == 3 and intent.giver == "s1"


def test_a_lease_transfer_moves_nothing_on_a_partial_consent() -> None:
    pool = Pool()
    pool.apply(log_entries.AddLicense(code=license_code(10)))  # 4 / 3 / 3
    lid = lease_id("s3", 1)
    intent = log_entries.TransferIntent(
        transfer_id="1.1",
        feature="cad",
        version="2.0",
        giver="s1",
        taker="s3",
        count=3,
        lease_id=lid,
        client_id="c1",
        client_seq=1,
        reason="failover",
    )
    assert pool.apply(intent, log_entries.TransferComplete(transfer_id="1.1", given=2)) == [True, True]
    assert pool.table().alloc == {"s1": 4, "s2": 3, "s3": 3}
    assert pool.state.registry.holder(lid) is None


def test_a_handover_must_carry_all_the_seats_of_its_lease() -> None:
    pool = Pool()
    pool.apply(log_entries.AddLicense(code=license_code(10)))
    lid = lease_id("s1", 1)
    report_seats(pool, "s1", lid, 3)
    part = log_entries.TransferIntent(
        transfer_id="1.1",
        feature="cad",
        version="2.0",
        giver="s1",
        taker="s2",
        count=1,
        lease_id=lid,
        reason="handover",
    )
    assert pool.apply(part) == [False]


# ---- multi-seat and token weight: a server ------------------------------------------------


def test_count_3_takes_three_seats_in_one_lease_borrowing_the_shortfall() -> None:
    net = pool_with(license_code(6))  # 2 / 2 / 2
    checkout(net, "c1", "s2", count=3)
    net.run(net.now + 2.0)
    (grant,) = granted(net, "c1")
    assert grant.seats == 3
    assert net.nodes["s2"].member.leases.in_use(KEY) == 3
    assert net.nodes["s1"].pool.registry.in_use("s2", KEY) == 3  # reported and committed as 3 seats


def test_count_is_all_or_nothing() -> None:
    net = pool_with(license_code(4))
    checkout(net, "c1", "s1", count=3)
    net.run(net.now + 2.0)
    assert granted(net, "c1")[0].seats == 3
    checkout(net, "c2", "s2", count=2)
    net.run(net.now + 6.0)
    (no,) = denied(net, "c2")
    assert no.reason == DenyReason.NO_SEATS and not granted(net, "c2")
    for node in net.nodes.values():  # no server holds a part of c2's checkout
        assert not [x for x in node.member.leases.leases.values() if x.client_id == "c2"]
    checkout(net, "c3", "s2", count=1)
    net.run(net.now + 2.0)
    assert granted(net, "c3")[0].seats == 1
    unmet = net.nodes["s2"].serving.book.unmet
    assert unmet[("cad", "2.0", "NO_SEATS")] == 1 and unmet[("cad", "2.0", "QUEUED")] >= 1


def test_more_seats_than_the_feature_has_are_refused_at_once() -> None:
    net = pool_with(license_code(4))
    checkout(net, "c1", "s1", count=5)
    net.run(net.now + 0.1)
    (no,) = denied(net, "c1")
    assert no.reason == DenyReason.NO_SEATS and "5 seats" in no.detail


def test_a_token_weight_multiplies_the_seats_of_a_checkout() -> None:
    heavy = codes.sign_license(
        vendor_key(), feature="cad", version="2.0", count=9, expires="2099-12-31", serial="LW", weight=3
    )
    net = pool_with(heavy)
    checkout(net, "c1", "s1")
    checkout(net, "c2", "s2", count=2)
    net.run(net.now + 2.0)
    assert granted(net, "c1")[0].seats == 3 and granted(net, "c2")[0].seats == 6
    checkout(net, "c3", "s3")
    net.run(net.now + 6.0)
    assert denied(net, "c3")[0].reason == DenyReason.NO_SEATS


def test_weight_and_linger_are_signed_and_old_codes_read_as_before() -> None:
    plain = verify(license_code(4))
    assert isinstance(plain, codes.LicenseCode) and (plain.weight, plain.linger) == (1, 0.0)
    assert "weight" not in plain.text and codes.verify_code(plain.text, vendor_key().public_key()) == plain
    text = codes.sign_license(
        vendor_key(), feature="cad", version="2.0", count=4, expires="2099-12-31", serial="L9", weight=2, linger=3.5
    )
    code = verify(text)
    assert isinstance(code, codes.LicenseCode) and (code.weight, code.linger) == (2, 3.5)
    with pytest.raises(CodeError, match="weight"):
        codes.sign_license(vendor_key(), feature="f", version="1", count=4, expires="2099-12-31", serial="S", weight=0)
    with pytest.raises(CodeError, match="linger"):
        codes.sign_license(vendor_key(), feature="f", version="1", count=4, expires="2099-12-31", serial="S", linger=-1)


def test_single_seat_data_is_encoded_exactly_as_before() -> None:
    change = log_entries.LeaseChange(seq=1, kind="grant", lease_id="x", client_id="c1", feature="cad", version="2.0")
    assert "seats" not in codec.to_plain(change)[2]
    multi = log_entries.LeaseChange(
        seq=1, kind="grant", lease_id="x", client_id="c1", feature="cad", version="2.0", seats=3
    )
    assert codec.to_plain(multi)[2]["seats"] == 3 and codec.from_plain(codec.to_plain(multi)) == multi


# ---- linger ----------------------------------------------------------------------------


def lease(lid: str, seats: int = 2, linger: float = 5.0) -> LocalLease:
    return LocalLease(lid, "c1", "c1", "cad", "2.0", 100.0, seats=seats, linger=linger)


def test_a_released_lease_lingers_holding_its_seats_then_expires() -> None:
    table = LocalLeases("s1")
    table.grant(lease("L1"))
    assert table.release("L1", "c1", now=10.0)
    assert table.in_use(KEY) == 2 and table.lingering(KEY) == 2
    assert table.renew("c1", "c1", ("L1",), 50.0) == ([], ["L1"])  # never renewed while lingering
    assert table.expire(14.9) == [] and table.in_use(KEY) == 2
    assert [x.lease_id for x in table.expire(15.0)] == ["L1"]
    assert table.in_use(KEY) == 2 and table.lingering(KEY) == 0  # freed once the expiry report commits
    table.report_committed(table.change_seq)
    assert table.in_use(KEY) == 0


def test_the_same_client_takes_its_lingering_seats_back_without_another_seat() -> None:
    table = LocalLeases("s1")
    table.grant(lease("L1"))
    table.release("L1", "c1", now=10.0)
    old = table.find_lingering("c1", KEY, 2)
    assert old is not None and table.find_lingering("c2", KEY, 2) is None
    table.retake(old, lease("L2"))
    assert table.in_use(KEY) == 2 and table.lingering(KEY) == 0
    assert [(c.kind, c.lease_id) for c in table.changes] == [("grant", "L1"), ("release", "L1"), ("grant", "L2")]
    table.report_committed(table.change_seq)
    assert table.in_use(KEY) == 2  # L2 holds the seats; the release of L1 freed none


def test_a_client_with_no_lingering_lease_is_not_scanned_and_the_count_survives_a_restart() -> None:
    """A checkout looks for a lingering lease of its client to take back; the
    table counts them per client, so a client with none costs no scan of its
    leases, and the count is rebuilt from a snapshot and follows every exit."""
    table = LocalLeases("s1")
    for i in range(3):
        table.grant(lease(f"L{i}"))
    assert table.find_lingering("c1", KEY, 2) is None and not table._lingering
    table.release("L1", "c1", now=10.0)
    restored = LocalLeases.from_plain(table.to_plain())
    for t in (table, restored):
        found = t.find_lingering("c1", KEY, 2)
        assert found is not None and found.lease_id == "L1" and t._lingering == {"c1": 1}
    assert [x.lease_id for x in restored.expire(15.0)] == ["L1"]
    assert restored.find_lingering("c1", KEY, 2) is None and not restored._lingering
    table.retake(table.leases["L1"], lease("L9"))
    assert not table._lingering


def test_linger_through_a_server_keeps_the_seat_and_gives_it_back_to_its_client() -> None:
    net = pool_with(license_code(3))  # 1 / 1 / 1
    checkout(net, "c1", "s1", linger=3.0)
    net.run(net.now + 1.0)
    (first,) = granted(net, "c1")
    net.send("c1", "s1", client_msgs.ReleaseRequest(client_id="c1", lease_id=first.lease_id, request_id=1))
    net.run(net.now + 0.5)
    s1 = net.nodes["s1"].member.leases
    assert s1.lingering(KEY) == 1 and s1.in_use(KEY) == 1
    borrows = net.nodes["s1"].serving.book.borrow_no
    checkout(net, "c1", "s1", request_id=2)
    net.run(net.now + 0.01)
    again = granted(net, "c1")[-1]
    assert again.resumed and again.lease_id != first.lease_id  # taken back at once, under a new id
    # A fresh grant would hold a second seat next to the lingering one.
    assert s1.in_use(KEY) == 1 and s1.lingering(KEY) == 0 and len(s1.leases) == 1
    assert net.nodes["s1"].serving.book.borrow_no == borrows  # no borrow: the lingering seat was reused
    net.run(net.now + 1.0)
    assert net.nodes["s2"].pool.registry.is_dead(first.lease_id)  # the released id stays dead


def test_after_the_linger_the_seat_is_free_for_others() -> None:
    net = pool_with(license_code(3))
    checkout(net, "c1", "s1", linger=2.0)
    net.run(net.now + 1.0)
    (first,) = granted(net, "c1")
    net.send("c1", "s1", client_msgs.ReleaseRequest(client_id="c1", lease_id=first.lease_id, request_id=1))
    net.run(net.now + 4.0)
    assert net.nodes["s1"].member.leases.in_use(KEY) == 0
    assert net.nodes["s2"].pool.registry.is_dead(first.lease_id)


# ---- idle timeout ------------------------------------------------------------------------


def heartbeat(net: Net, lid: str, seq: int, idle: bool) -> None:
    msg = client_msgs.SessionHeartbeat(
        client_id="c1", session_id="c1", seq=seq, lease_ids=(lid,), idle=(lid,) if idle else ()
    )
    net.send("c1", "s1", msg)


def test_idle_timeout_reclaims_an_idle_lease_even_while_it_is_renewed() -> None:
    net = pool_with(license_code(3))
    net.send(
        "admin",
        "s2",
        pool_msgs.SetIdleTimeout(
            sender="cli", epoch=0, request_id="r2", feature="cad", version="2.0", idle_timeout=2.0
        ),
    )
    net.run(net.now + 1.0)
    assert {r.request_id: r for r in net.replies("admin", pool_msgs.AdminReply)}["r2"].ok
    assert all(n.pool.features[KEY].idle_timeout == 2.0 for n in net.nodes.values())
    checkout(net, "c1", "s1")
    net.run(net.now + 0.5)
    lid = granted(net, "c1")[0].lease_id
    for seq in range(1, 4):  # busy: renewed, never reclaimed
        heartbeat(net, lid, seq, idle=False)
        net.run(net.now + 1.0)
    for seq in range(4, 8):
        heartbeat(net, lid, seq, idle=True)
        net.run(net.now + 0.9)
    acks = net.replies("c1", client_msgs.HeartbeatAck)
    assert all(lid in a.renewed for a in acks[:5])
    (lost,) = [a for a in acks if lid in a.lost]
    assert lost.reasons == ((lid, "IDLE"),) and lost.seq == 7  # idle since seq 4's receipt: 2.7 s by seq 7
    assert lid not in net.nodes["s1"].member.leases.leases


def test_an_idle_timeout_is_refused_for_an_unknown_feature_or_a_bad_value() -> None:
    net = pool_with(license_code(3))
    for rid, feature, value in (("a", "nope", 5.0), ("b", "cad", -1.0)):
        net.send(
            "admin",
            "s1",
            pool_msgs.SetIdleTimeout(
                sender="cli", epoch=0, request_id=rid, feature=feature, version="2.0", idle_timeout=value
            ),
        )
    net.run(net.now + 1.0)
    replies = {r.request_id: r for r in net.replies("admin", pool_msgs.AdminReply)}
    assert not replies["a"].ok and "no license" in replies["a"].error
    assert not replies["b"].ok and "idle_timeout" in replies["b"].error


def test_the_session_reports_idle_leases_and_loses_them_with_the_reason() -> None:
    core = ClientSessionCore("c1", "c1/1", ("s1",), Timing())
    ready = core.checkout("cad", "2.0", 1, 0.0, count=2)
    (req,) = [o.msg for o in ready.send]
    assert isinstance(req, client_msgs.CheckoutRequest) and req.count == 2
    core.receive(
        "s1",
        client_msgs.CheckoutGranted(
            request_id=1, lease_id="L1", server="s1", feature="cad", version="2.0", ttl=30.0, seats=2
        ),
        0.01,
    )
    assert core.held(0.02)["L1"].seats == 2
    core.set_idle("L1", True)
    ready = core.tick(1.0)
    (hb,) = [o.msg for o in ready.send if isinstance(o.msg, client_msgs.SessionHeartbeat)]
    assert hb.idle == ("L1",)
    ready = core.receive(
        "s1", client_msgs.HeartbeatAck(seq=hb.seq, server="s1", lost=("L1",), reasons=(("L1", "IDLE"),)), 1.01
    )
    (ev,) = [e for e in ready.events if e.kind == "lost"]
    assert ev.get("reason") == "IDLE" and "L1" not in core.held(1.02)


def test_checkout_arguments_are_checked() -> None:
    core = ClientSessionCore("c1", "c1/1", ("s1",), Timing())
    with pytest.raises(ValueError, match="count"):
        core.checkout("cad", "2.0", 1, 0.0, count=0)
    with pytest.raises(ValueError, match="linger"):
        core.checkout("cad", "2.0", 2, 0.0, linger=-1.0)
    assert isinstance(core.checkout("cad", "2.0", 3, 0.0), Ready)


def test_a_resume_of_a_lingering_lease_never_brings_its_released_id_back() -> None:
    net = pool_with(license_code(3))
    checkout(net, "c1", "s1", linger=3.0)
    net.run(net.now + 1.0)
    (first,) = granted(net, "c1")
    net.send("c1", "s1", client_msgs.ReleaseRequest(client_id="c1", lease_id=first.lease_id, request_id=1))
    net.run(net.now + 0.5)
    checkout(net, "c1", "s1", request_id=2, lease_id=first.lease_id)  # a stale file lists the released lease
    net.run(net.now + 0.5)
    again = granted(net, "c1")[-1]
    assert again.lease_id != first.lease_id and len(net.nodes["s1"].member.leases.leases) == 1


def test_the_idle_clock_and_the_lingering_state_across_a_snapshot() -> None:
    table = LocalLeases("s1")
    table.grant(lease("L1", linger=0.0))
    table.grant(lease("L2"))
    table.leases["L1"].idle_since = 12.0
    table.release("L2", "c1", now=10.0)
    again = LocalLeases.from_plain(table.to_plain())
    assert again.leases["L1"].idle_since is None  # another process's clock: the idle time starts again
    assert again.leases["L2"].lingering and again.in_use(KEY) == 4 and again.lingering(KEY) == 2


def test_status_shows_unmet_demand_lingering_seats_and_the_policies(capsys: pytest.CaptureFixture[str]) -> None:
    from actors.cli.pool import _print_status
    from actors.protocol.admin import FeatureStatus, ServerStatus, ServerUse, StatusReply
    from actors.shell.remote import status_json

    reply = StatusReply(
        request_id="r",
        answered_by="s1",
        pool="p",
        epoch=1,
        leader="s1",
        role="leader",
        applied=5,
        servers=(ServerStatus(name="s1", address="h:1", up=True, leader=True),),
        features=(
            FeatureStatus(
                feature="cad",
                version="2.0",
                total=4,
                free_pool=0,
                in_flight=0,
                majority=True,
                expires="2099-12-31",
                servers=(ServerUse(server="s1", allocated=4, in_use=4, lingering=2),),
                unmet=(("NO_SEATS", 3), ("QUEUED", 5)),
                weight=3,
                idle_timeout=60.0,
            ),
        ),
    )
    _print_status(reply)
    out = capsys.readouterr().out
    assert "lingering 2" in out and "unmet demand at s1 since it started: NO_SEATS 3, QUEUED 5" in out
    assert "token weight 3, idle_timeout 60 s" in out
    (feature,) = status_json(reply)["features"]
    assert feature["unmet"] == {"NO_SEATS": 3, "QUEUED": 5} and feature["servers"]["s1"]["lingering"] == 2
    assert (feature["weight"], feature["idle_timeout"]) == (3, 60.0)
