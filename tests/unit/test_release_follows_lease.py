"""A release follows its lease (issue 11 defect 3; the 10-minute chaos run's
"releases no server recorded").

The chaos run's two cases: an app released lease L while its session was
failing L over from its dead (or cut-off) server s2 to s3.  The release went
to s2 and to s3, and reached s3 a few milliseconds before the committed
fail-over seat brought L there.  s3, not holding L yet, answered "not
released" and had the leader kill the id (``ForceRelease``: L is revoked, its
seat frees only when L expires); the session took that answer as "recorded
elsewhere" and went on re-sending to s2 alone.  s2, back, no longer held L
and answered "not released" too, which the session took as the end.  Nobody
told s3, which kept L's seat until L expired (T later).

The rule: a release goes, every 2h, to every server that may hold the lease:
its server, and the servers it was failing over to (a fail-over committed
after the release reached them may still seat it there).  A server that does
not hold it says where its committed registry places it (``moved_to``), and
the release goes there too.  The retries end when a server releases it, when
every place has said it does not hold it (a fail-over target only once it
knows the lease live nowhere), or at the lease's deadline.
"""

from __future__ import annotations

from actors.core.session import ClientSessionCore
from actors.protocol import client
from actors.protocol.client import FailoverUpdate, HeartbeatAck, ReleaseAck, ReleaseRequest, SessionHeartbeat
from actors.protocol.entries import FailoverSeat
from tests.unit.test_abandon_release import lease_moved_from_s3_to_s2
from tests.unit.test_leader_change_quiet import SessionNet, started_net
from tests.unit.test_session import T, grant, sent, session

H2, F = T.client_retry, T.failure_timeout


def failing_over_from_s1_to_s2() -> ClientSessionCore:
    """L1 is at s1 (prefer s1), which sent it away: the session moves it to s2."""
    core = session()
    grant(core, lease_id="L1")
    hb = sent(core.tick(0.5), SessionHeartbeat)[0][1]
    [(to, _)] = sent(core.receive("s1", HeartbeatAck(seq=hb.seq, server="s1", fail_over=True), 1.0), FailoverUpdate)
    assert to == "s2" and core.held(1.0)["L1"].failing_over
    return core


def release_targets(core: ClientSessionCore, now: float) -> list[str]:
    return sorted(to for to, m in sent(core.tick(now), ReleaseRequest) if m.lease_id == "L1")


# ---- the session core -------------------------------------------------------------------


def test_a_release_of_a_moving_lease_is_resent_to_the_server_it_was_moving_to() -> None:
    """s2 answered before the fail-over seat committed there: it gets the release
    again, and releases the lease once it holds it."""
    core = failing_over_from_s1_to_s2()
    now = 3.0
    assert sorted(to for to, _ in sent(core.release("L1", now), ReleaseRequest)) == ["s1", "s2"]
    core.receive("s2", ReleaseAck(request_id=2, lease_id="L1", released=False, moved_to="s1"), now + 0.01)
    assert release_targets(core, now + H2) == ["s1", "s2"]
    # s1 came back, without the lease: it moved to s2.  Not the end.
    core.receive("s1", ReleaseAck(request_id=3, lease_id="L1", released=False, moved_to="s2"), now + H2 + 0.01)
    assert core.releasing() == ("L1",)
    assert release_targets(core, now + 2 * H2) == ["s2"]
    core.receive("s2", ReleaseAck(request_id=5, lease_id="L1", released=True), now + 2 * H2 + 0.01)
    assert core.releasing() == ()


def test_a_release_follows_the_lease_where_its_server_says_it_moved() -> None:
    core = session()
    grant(core, lease_id="L1")
    core.release("L1", 1.0)
    ready = core.receive("s1", ReleaseAck(request_id=1, lease_id="L1", released=False, moved_to="s3"), 1.05)
    assert [to for to, m in sent(ready, ReleaseRequest)] == ["s3"], "sent on to where the lease went, at once"
    assert release_targets(core, 1.0 + H2) == ["s3"]
    core.receive("s3", ReleaseAck(request_id=3, lease_id="L1", released=True), 1.0 + H2 + 0.01)
    assert core.releasing() == ()


def test_a_release_ends_when_every_place_holds_the_lease_no_more() -> None:
    """Not held at its server, and its fail-over target knows it live nowhere
    (dead: released, expired or killed): nothing is left to release."""
    core = failing_over_from_s1_to_s2()
    core.release("L1", 3.0)
    core.receive("s1", ReleaseAck(request_id=1, lease_id="L1", released=False), 3.01)
    assert core.releasing() == ("L1",), "s2 may still seat it"
    core.receive("s2", ReleaseAck(request_id=2, lease_id="L1", released=False), 3.02)
    assert core.releasing() == ()
    assert sent(core.tick(3.0 + 4 * H2), ReleaseRequest) == []


def test_a_server_it_was_not_sent_to_only_adds_where_the_lease_went() -> None:
    """A server of the fail-over list (the lease's server silent for f) that
    does not hold it has the id killed, and says where the lease is."""
    core = session()
    grant(core, lease_id="L1")
    core.release("L1", 1.0)
    core.receive("s2", ReleaseAck(request_id=1, lease_id="L1", released=False, moved_to="s3"), 1.0 + F + 0.1)
    assert release_targets(core, 1.0 + F + H2) == ["s1", "s3"]


# ---- the server side --------------------------------------------------------------------


def test_a_server_the_lease_moved_away_from_says_where_it_went() -> None:
    net, g = lease_moved_from_s3_to_s2()
    net.send("c1", "s1", client.ReleaseRequest(client_id="c1", lease_id=g.lease_id, request_id=1, session_id="sess-c1"))
    # Another client's release of it says nothing of where it is.
    net.send("c9", "s1", client.ReleaseRequest(client_id="c9", lease_id=g.lease_id, request_id=1, session_id="sess-c9"))
    net.run(net.now + 0.5)
    (ack,) = net.replies("c1", client.ReleaseAck)
    assert not ack.released and ack.moved_to == "s2"
    (other,) = net.replies("c9", client.ReleaseAck)
    assert not other.released and other.moved_to == ""


# ---- the chaos run's case, on three ServerNodes and a real session ----------------------


def released_while_its_fail_over_commits() -> tuple[SessionNet, ClientSessionCore, str]:
    """ws9 holds L at s2; s2 dies; ws9's session fails L over to s3, and the
    app releases L just after the leader appended the fail-over seat, so the
    release reaches s3 before s3 applies it."""
    net = started_net()
    core = net.add_session("ws9", "s2")
    net.carry_session(core.session_id, core.checkout("cad", "2.0", 1, net.now))
    net.run(net.now + 1.0)
    (lease,) = core.held(net.now)
    net.kill("s2")
    leader = net.leader()
    while not any(isinstance(e.entry, FailoverSeat) and e.entry.lease_id == lease for e in leader.raft.log.entries):
        assert net.now < 30.0, "the fail-over seat was never proposed"
        net.run(net.now + 0.0005)
    assert lease not in net.nodes["s3"].member.leases.leases
    net.carry_session(core.session_id, core.release(lease, net.now))
    return net, core, lease


def test_a_release_that_reached_the_fail_over_target_before_the_lease_frees_the_seat_soon() -> None:
    net, core, lease = released_while_its_fail_over_commits()
    released_at = net.now
    net.run(released_at + 2 * H2 + 0.1)
    for name, node in net.nodes.items():
        assert lease not in node.member.leases.leases, f"{name} still holds the released lease"
        assert node.pool.registry.is_dead(lease), name
    assert core.releasing() == ()
    assert net.nodes["s3"].member.leases.in_use(("cad", "2.0")) == 0


def test_two_servers_that_name_each_other_get_the_release_at_the_retry_pace() -> None:
    """Views that lag each other (each names the other as the lease's server)
    cost one release each per 2h, never a burst."""
    core = session()
    grant(core, lease_id="L1")
    core.release("L1", 1.0)
    ready = core.receive("s1", ReleaseAck(request_id=1, lease_id="L1", released=False, moved_to="s2"), 1.01)
    assert [to for to, _ in sent(ready, ReleaseRequest)] == ["s2"]
    ready = core.receive("s2", ReleaseAck(request_id=2, lease_id="L1", released=False, moved_to="s1"), 1.02)
    assert sent(ready, ReleaseRequest) == [], "s1 was asked already: the next retry goes there"
    assert release_targets(core, 1.0 + H2) == ["s1"]
