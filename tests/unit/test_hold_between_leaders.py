"""A checkout held for a borrow survives a leader change (issue 12, "leader fail-over").

The leader dies while a follower holds a checkout for a borrow.  Before, the
follower answered it ``NO_MAJORITY`` as soon as its serving lease lapsed, and
the session went on to the next server in its list: often the dead leader,
silent for 2h.  Measured (``python -m actors.bench.pool --only
leader-failover``): the borrow came up to 0.95 s after the new leader acted.

Now a held checkout is kept while the only thing missing is a serving lease,
within ``hold_limit`` as before (a queued checkout is kept the same way), and
the step in which the server serves again (it won, or a new leader renewed
it) retries what it holds at once, not at the next tick.
"""

from __future__ import annotations

from collections.abc import Callable

from actors.protocol import client, pool
from tests.factories import license_code
from tests.unit.test_node_smoke import Net


def _pool_with_free_seats(holder: str = "s2") -> Net:
    """``holder`` holds 2 seats; the free pool the other 8 (the bench's (c))."""
    net = Net()
    net.run(8.0)
    leader = net.leader()
    code = license_code(10, distribution=f"{holder}:2")
    net.send("admin", leader.name, pool.AddLicenseCode(sender="cli", epoch=0, request_id="r1", code=code))
    net.run(net.now + 1.0)
    return net


def _checkout(net: Net, client_id: str, server: str) -> None:
    net.send(
        client_id,
        server,
        client.CheckoutRequest(client_id=client_id, session_id=client_id, request_id=1, feature="cad", version="2.0"),
    )


def _kill_the_leader_and_hold(net: Net, at: str) -> float:
    """Kill the leader s1, then take 3 seats at ``at``: two local ones, and a
    third that waits for a borrow only a new leader can commit."""
    assert net.leader().name == "s1"
    net.kill("s1")
    killed_at = net.now
    for i in range(3):
        _checkout(net, f"c{i}", at)
    net.run(net.now + 0.1)
    assert net.replies("c2", client.CheckoutGranted) == []
    return killed_at


def _until_answered(net: Net, until: float, watch: Callable[[float], None]) -> client.CheckoutGranted:
    """Run in 5 ms steps, calling ``watch`` after each, until c2 is answered:
    granted, never refused."""
    while net.now < until:
        net.run(net.now + 0.005)
        watch(net.now)
        if net.replies("c2", client.CheckoutGranted) or net.replies("c2", client.CheckoutDenied):
            break
    assert net.replies("c2", client.CheckoutDenied) == []
    (grant,) = net.replies("c2", client.CheckoutGranted)
    assert isinstance(grant, client.CheckoutGranted)
    return grant


def test_a_checkout_held_for_a_borrow_is_granted_by_the_next_leader_not_refused() -> None:
    net = _pool_with_free_seats()
    killed_at = _kill_the_leader_and_hold(net, "s2")
    active: list[float] = []

    def watch(now: float) -> None:
        if not active and net.nodes["s2"].raft.leader_active(now):
            active.append(now)

    grant = _until_answered(net, killed_at + 6.0, watch)
    assert grant.server == "s2" and active
    # Granted once the borrow commits (one round trip to s3), not a tick (h) later.
    assert net.now - active[0] < 0.05, (active[0] - killed_at, net.now - killed_at)


def test_a_follower_serving_again_asks_its_borrow_afresh_of_the_new_leader() -> None:
    """s3 holds the checkout; s2 wins.  s3's borrows went to the dead leader
    (asked again every 2h at most; here the last one just before): the step in
    which the new leader renews s3 asks again at once, not up to 2h later."""
    net = _pool_with_free_seats("s3")
    killed_at = _kill_the_leader_and_hold(net, "s3")
    lapsed: list[float] = []
    again: list[float] = []

    def watch(now: float) -> None:
        serving = net.nodes["s3"].raft.holds_serving_lease(now)
        if not serving:
            lapsed.append(now)
            # As if s3 had just asked the dead leader (the throttle allows one ask per 2h).
            net.nodes["s3"].serving.book.borrow_asked[("cad", "2.0")] = now
        elif lapsed and not again:
            again.append(now)

    grant = _until_answered(net, killed_at + 6.0, watch)
    assert grant.server == "s3" and again
    assert net.now - again[0] < 0.05, (again[0] - killed_at, net.now - killed_at)


def test_a_held_checkout_is_still_refused_at_its_hold_limit_when_no_leader_comes() -> None:
    """Two of three servers down: no leader can come.  The hold keeps its
    limit (2f): then NO_MAJORITY, and the session moves on."""
    net = _pool_with_free_seats()
    net.kill("s1")
    net.kill("s3")
    sent_at = net.now
    for i in range(3):
        _checkout(net, f"c{i}", "s2")
    net.run(net.now + 0.1)
    assert net.replies("c2", client.CheckoutGranted) == []
    hold = 2 * net.settings["s2"].timing.failure_timeout
    net.run(sent_at + hold - 0.05)
    assert net.replies("c2", client.CheckoutDenied) == []
    net.run(sent_at + hold + net.settings["s2"].timing.heartbeat_interval + 0.05)
    (denied,) = net.replies("c2", client.CheckoutDenied)
    assert denied.reason == client.DenyReason.NO_MAJORITY


def test_a_fresh_checkout_between_leaders_is_refused_at_once() -> None:
    """Only a checkout already held is kept: a new one between leaders is
    answered NO_MAJORITY at once, so its session tries the next server."""
    net = _pool_with_free_seats()
    net.kill("s1")
    net.kill("s3")
    net.run(net.now + 3.5)  # past s2's serving lease
    assert not net.nodes["s2"].raft.holds_serving_lease(net.now)
    _checkout(net, "late", "s2")
    net.run(net.now + 0.01)
    (denied,) = net.replies("late", client.CheckoutDenied)
    assert denied.reason == client.DenyReason.NO_MAJORITY
