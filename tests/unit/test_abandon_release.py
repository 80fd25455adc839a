"""Issue 11, defect 3: a checkout the app gave up on ends with no seat held,
whatever the timing; a retry reuses its request id and the server answers it
idempotently; a release sent while its server is down is delivered later.

The session core is driven by hand with a fake clock (plain floats); the
server side runs on test_node_smoke's in-memory pool of ServerNodes."""

from __future__ import annotations

from actors.core.effects import ClientRef
from actors.protocol import client
from actors.protocol.client import CheckoutGranted, ReleaseAck, ReleaseRequest, SessionHeartbeat
from tests.unit.test_node_smoke import Net, started_pool
from tests.unit.test_session import VALID, T, events, grant, sent, session

H2, F = T.client_retry, T.failure_timeout


# ---- the session core -------------------------------------------------------------------


def test_an_abandon_after_the_grant_releases_it() -> None:
    """The grant reached the session after the app's ask timed out, before its
    AbandonCheckout: the app never learns of the lease, so the session gives it
    back, and no heartbeat renews it."""
    core = session()
    ready = grant(core, lease_id="L1", at=0.0, reply_at=2.0)
    assert events(ready, "granted")  # its CheckoutResult goes to an ask that already gave up
    ready = core.abandon(1, 2.1)
    assert [(to, m.lease_id) for to, m in sent(ready, ReleaseRequest)] == [("s1", "L1")]
    assert events(ready, "released") == [{"lease_id": "L1"}]
    assert core.held(2.1) == {}
    assert sent(core.tick(2.1 + T.heartbeat_interval), SessionHeartbeat) == []


def test_an_abandon_before_the_grant_releases_every_grant_for_it_from_any_server() -> None:
    core = session()
    core.checkout("cad", "2.0", 1, 0.0)
    core.tick(H2)  # retried at s2, same request id
    core.abandon(1, 1.5)
    for server, lid, at in (("s2", "L2", 1.6), ("s1", "L1", 1.7)):
        ready = core.receive(
            server,
            CheckoutGranted(request_id=1, lease_id=lid, server=server, feature="cad", version="2.0", ttl=T.lease_ttl),
            at,
        )
        assert [(to, m.lease_id) for to, m in sent(ready, ReleaseRequest)] == [(server, lid)]
    assert core.held(1.7) == {} and sorted(core.releasing()) == ["L1", "L2"]


def test_an_abandon_of_a_request_the_app_got_the_answer_of_is_harmless() -> None:
    """A denial was the answer: nothing to release."""
    core = session()
    core.checkout("cad", "2.0", 1, 0.0)
    core.receive(
        "s1", client.CheckoutDenied(request_id=1, reason=client.DenyReason.NO_SEATS, detail="", server="s1"), 0.1
    )
    assert core.abandon(1, 0.2).send == []


def test_a_release_is_resent_until_its_server_acknowledges_it_and_goes_to_the_next_server_too() -> None:
    core = session()
    grant(core, lease_id="L1")
    ready = core.release("L1", 1.0)  # s1 is down: lost
    assert [to for to, _ in sent(ready, ReleaseRequest)] == ["s1"]
    assert ready.wake_at is not None and ready.wake_at <= 1.0 + H2
    # Re-sent to its own server every 2h; once that has been silent for f, to
    # the next server of the fail-over list as well (it has the id killed).
    sends: list[tuple[float, str]] = []
    now = 1.0 + H2
    while now < 1.0 + 3 * F:
        sends += [(now, to) for to, m in sent(core.tick(now), ReleaseRequest) if m.lease_id == "L1"]
        now += H2
    assert [to for at, to in sends if at < 1.0 + F] == ["s1"] * len([at for at, _ in sends if at < 1.0 + F])
    assert ("s2" in [to for _, to in sends]) and all(
        any(to == "s1" for at2, to in sends if at2 == at) for at, _ in sends
    ), sends
    # s2 recorded it (it does not hold the lease): the id dies, but the seat is
    # s1's to free, so s1 still gets it, and only s1.
    core.receive("s2", ReleaseAck(request_id=0, lease_id="L1", released=False), now)
    assert [to for to, m in sent(core.tick(now + H2), ReleaseRequest)] == ["s1"]
    # s1 came back and released it: done.
    core.receive("s1", ReleaseAck(request_id=0, lease_id="L1", released=True), now + H2 + 0.01)
    assert core.releasing() == ()
    assert sent(core.tick(now + 10 * H2), ReleaseRequest) == []


def test_a_release_another_server_did_ends_the_retries() -> None:
    """The lease was moving when the app released it: its new server released it."""
    core = session()
    grant(core, lease_id="L1")
    core.release("L1", 1.0)
    core.receive("s2", ReleaseAck(request_id=0, lease_id="L1", released=True), 1.1)
    assert core.releasing() == ()


def test_a_release_is_given_up_at_the_lease_deadline() -> None:
    core = session()
    grant(core, lease_id="L1", at=0.0)
    core.release("L1", 1.0)
    assert core.releasing() == ("L1",)
    core.tick(VALID + 0.01)
    assert core.releasing() == ()
    assert sent(core.tick(VALID + 10 * H2), ReleaseRequest) == []


def test_the_release_of_an_abandoned_grant_is_retried_too() -> None:
    core = session()
    core.checkout("cad", "2.0", 1, 0.0)
    core.abandon(1, 0.5)
    core.receive(
        "s1",
        CheckoutGranted(request_id=1, lease_id="L1", server="s1", feature="cad", version="2.0", ttl=T.lease_ttl),
        0.6,
    )
    assert [m.lease_id for _, m in sent(core.tick(0.6 + H2), ReleaseRequest)] == ["L1"]


def test_a_repeat_of_a_grant_the_session_gave_back_is_not_taken() -> None:
    """The checkout is asked again with the same request id (a LicenseClient
    retry) after the session released a late grant for it: a server answering
    the repeat with that dead lease must not hand it to the app."""
    core = session()
    core.checkout("cad", "2.0", 1, 0.0)
    core.abandon(1, 0.5)  # in effect: the proxy's attempt ended, its checkout is not outstanding
    core.receive(
        "s1",
        CheckoutGranted(request_id=1, lease_id="L1", server="s1", feature="cad", version="2.0", ttl=T.lease_ttl),
        0.6,
    )
    core.checkout("cad", "2.0", 1, 0.7)
    ready = core.receive(
        "s1",
        CheckoutGranted(request_id=1, lease_id="L1", server="s1", feature="cad", version="2.0", ttl=T.lease_ttl),
        0.8,
    )
    assert events(ready, "granted") == [] and core.outstanding() == (1,)
    ready = core.receive(
        "s2",
        CheckoutGranted(request_id=1, lease_id="L2", server="s2", feature="cad", version="2.0", ttl=T.lease_ttl),
        0.9,
    )
    assert [e["lease_id"] for e in events(ready, "granted")] == ["L2"]


# ---- the server side --------------------------------------------------------------------


def test_a_repeat_of_a_granted_request_gets_the_same_grant_never_a_second_seat() -> None:
    net = started_pool(3)  # 1 / 1 / 1
    req = client.CheckoutRequest(client_id="c1", session_id="sess-c1", request_id=7, feature="cad", version="2.0")
    net.send("c1", "s2", req)
    net.run(net.now + 0.5)
    net.send("c1", "s2", req)
    net.run(net.now + 0.5)
    grants = net.replies("c1", client.CheckoutGranted)
    assert len(grants) == 2 and grants[0] == grants[1]
    assert len(net.nodes["s2"].member.leases.leases) == 1


def test_a_repeat_of_a_request_still_being_decided_is_ignored() -> None:
    net = started_pool(3)
    node = net.nodes["s2"]
    first = client.CheckoutRequest(client_id="c0", session_id="sess-c0", request_id=1, feature="cad", version="2.0")
    net.carry("s2", node.from_client(ClientRef("c0"), first, net.now))  # s2's only seat
    req = client.CheckoutRequest(client_id="c1", session_id="sess-c1", request_id=1, feature="cad", version="2.0")
    net.carry("s2", node.from_client(ClientRef("c1"), req, net.now))  # in the same instant: waits while s2 borrows
    net.carry("s2", node.from_client(ClientRef("c1"), req, net.now))
    assert len(node.serving.book.waiting) == 1
    net.run(net.now + 3.0)
    answers = net.replies("c1", client.CheckoutGranted) + net.replies("c1", client.CheckoutDenied)
    assert len(answers) == 1, answers


def test_a_repeat_after_the_lease_was_given_back_is_decided_again() -> None:
    net = started_pool(3)
    req = client.CheckoutRequest(client_id="c1", session_id="sess-c1", request_id=7, feature="cad", version="2.0")
    net.send("c1", "s2", req)
    net.run(net.now + 0.5)
    (first,) = net.replies("c1", client.CheckoutGranted)
    net.send(
        "c1", "s2", client.ReleaseRequest(client_id="c1", lease_id=first.lease_id, request_id=1, session_id="sess-c1")
    )
    net.run(net.now + 0.5)
    net.send("c1", "s2", req)
    net.run(net.now + 0.5)
    second = net.replies("c1", client.CheckoutGranted)[-1]
    assert second.lease_id != first.lease_id
    assert list(net.nodes["s2"].member.leases.leases) == [second.lease_id]


def test_a_release_at_a_server_that_does_not_hold_the_lease_kills_the_id() -> None:
    """Where the session sends a release its own server never answered:
    another server has the leader kill the id in the log, and the holder
    revokes it (never renewed, never resumed); the holder's own release still
    frees the seat at once."""
    net = started_pool(3)
    net.send(
        "c1",
        "s3",
        client.CheckoutRequest(client_id="c1", session_id="sess-c1", request_id=1, feature="cad", version="2.0"),
    )
    net.run(net.now + 2.0)
    (g,) = net.replies("c1", client.CheckoutGranted)
    net.send("c1", "s2", client.ReleaseRequest(client_id="c1", lease_id=g.lease_id, request_id=1, session_id="sess-c1"))
    net.run(net.now + 3.0)
    (ack,) = net.replies("c1", client.ReleaseAck)
    assert ack.lease_id == g.lease_id and not ack.released
    assert net.nodes["s3"].member.leases.leases[g.lease_id].revoked
    # Dead for ever: a resume of it is refused, a heartbeat reports it lost.
    net.send(
        "c1",
        "s1",
        client.CheckoutRequest(
            client_id="c1",
            session_id="sess-c1b",
            request_id=2,
            feature="cad",
            version="2.0",
            lease_id=g.lease_id,
            client_seq=99,
        ),
    )
    net.send("c1", "s3", client.SessionHeartbeat(client_id="c1", session_id="sess-c1", seq=5, lease_ids=(g.lease_id,)))
    net.run(net.now + 3.0)
    assert not any(x.lease_id == g.lease_id for x in net.replies("c1", client.CheckoutGranted)[1:])
    assert g.lease_id in net.replies("c1", client.HeartbeatAck)[-1].lost
    # The holder's own release (the session's next retry) frees the seat now.
    net.send("c1", "s3", client.ReleaseRequest(client_id="c1", lease_id=g.lease_id, request_id=2, session_id="sess-c1"))
    net.run(net.now + 1.0)
    assert net.replies("c1", client.ReleaseAck)[-1].released
    assert g.lease_id not in net.nodes["s3"].member.leases.leases


def lease_moved_from_s3_to_s2() -> tuple[Net, CheckoutGranted]:
    """c1's lease, granted at s3, failed over to s2 after s3 died (committed)."""
    net = started_pool(3)
    net.send(
        "c1",
        "s3",
        client.CheckoutRequest(client_id="c1", session_id="sess-c1", request_id=1, feature="cad", version="2.0"),
    )
    net.run(net.now + 2.0)
    (g,) = net.replies("c1", client.CheckoutGranted)
    net.kill("s3")
    net.run(net.now + 2.0)
    net.send(
        "c1",
        "s2",
        client.FailoverUpdate(
            client_id="c1",
            session_id="sess-c1",
            seq=1,
            leases=(client.HeldLease(lease_id=g.lease_id, feature="cad", version="2.0"),),
        ),
    )
    net.run(net.now + 12.0)
    assert net.nodes["s1"].pool.registry.holder(g.lease_id) == "s2"
    return net, g


def test_a_release_after_a_move_is_accepted_by_the_new_holder() -> None:
    net, g = lease_moved_from_s3_to_s2()
    net.send("c1", "s2", client.ReleaseRequest(client_id="c1", lease_id=g.lease_id, request_id=1, session_id="sess-c1"))
    net.run(net.now + 2.0)
    (ack,) = net.replies("c1", client.ReleaseAck)
    assert ack.released
    net.run(net.now + 3.0)
    assert net.nodes["s1"].pool.registry.is_dead(g.lease_id)
