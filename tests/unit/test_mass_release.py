"""A burst of releases must not cost the leases that are kept (docs/performance.md,
"The mass release"; simulator scenario ``mass_release``).

20 apps gave 1,800 of 2,000 leases back at once on a loaded 3-server pool, and
afterwards every kept lease was lost: the servers lagged past the transport's
bound and dropped messages; each session re-sent every late release every
``2h`` and, after ``f``, to a second server too; a server that got a release
for a lease it did not hold (or no longer held: a copy of one it had made
itself) forwarded it to the leader, and with every new one forwarded all the
earlier ones again.  The leader drowned in its own mailbox, no leader held for
25 s, and no lease was renewed until the deadlines passed.

The rules pinned here:

* a session keeps at most ``RELEASE_WINDOW`` releases unanswered at a server,
  the rest wait, oldest first, for its answers (``close`` excepted);
* it sends no copy of a release to a server that is only slow (answering older
  messages), nor sends the release to another server while that one answers;
  a release that was lost is still sent again, and a silent server still gets
  it again and has the next server kill the id;
* a server forwards a release it did not make once when it comes, resends at
  most ``FORWARD_BATCH`` at a time, and never forwards a repeat of a release
  it made itself.
"""

from __future__ import annotations

import heapq
from typing import Any

from actors.core.effects import Ready
from actors.core.serving import FORWARD_BATCH
from actors.core.session import RELEASE_WINDOW, ClientSessionCore
from actors.protocol import client
from actors.protocol.client import CheckoutGranted, HeartbeatAck, ReleaseAck, ReleaseRequest, SessionHeartbeat
from actors.protocol.pool import ReleaseForward
from tests.unit.test_node_smoke import Net, started_pool
from tests.unit.test_session import T, sent, session

H, H2, F = T.heartbeat_interval, T.client_retry, T.failure_timeout


def holding(count: int, server: str = "s1") -> ClientSessionCore:
    """A session holding leases L0..L<count-1> at ``server``, granted at t=0."""
    core = session(prefer=server)
    for i in range(count):
        core.checkout("cad", "2.0", i + 1, 0.0)
        core.receive(
            server,
            CheckoutGranted(
                request_id=i + 1, lease_id=f"L{i}", server=server, feature="cad", version="2.0", ttl=T.lease_ttl
            ),
            0.01,
        )
    return core


def releases(ready: Ready) -> list[tuple[str, str]]:
    return [(to, m.lease_id) for to, m in sent(ready, ReleaseRequest)]


# ---- the session ------------------------------------------------------------------------


def test_a_burst_of_releases_keeps_the_window_unanswered_and_each_answer_lets_one_more_go() -> None:
    core = holding(40)
    out: list[tuple[str, str]] = []
    for i in range(36):  # the app's loop of auth.release(): one ask after another
        out += releases(core.release(f"L{i}", 1.0 + i * 0.001))
    assert len(out) == RELEASE_WINDOW, out
    assert out == [("s1", f"L{i}") for i in range(RELEASE_WINDOW)]
    assert len(core.releasing()) == 36 and len(core.held(1.1)) == 4  # forgotten at once, all of them
    # Each answer from s1 lets the oldest waiting release go, and only one.
    for i in range(36):
        ready = core.receive("s1", ReleaseAck(request_id=0, lease_id=f"L{i}", released=True), 1.1 + i * 0.01)
        nxt = i + RELEASE_WINDOW
        assert releases(ready) == ([("s1", f"L{nxt}")] if nxt < 36 else []), (i, releases(ready))
    assert core.releasing() == ()


def test_a_server_that_answers_everything_late_gets_each_release_once() -> None:
    """s1 works through a backlog: it answers each message 1.5 s after it was
    sent (more than 2h, less than the transport's bound).  Copies of the
    releases waiting in that backlog only made it longer, and sending them to
    s2 as well made s2 forward each one to the leader."""
    core = holding(28)
    lag = 1.5
    pending: list[tuple[float, int, Any]] = []  # (answer time, order, message sent to s1)
    order = iter(range(1 << 30))
    copies: list[tuple[str, str]] = []

    def carry(ready: Ready, now: float) -> None:
        for to, msg in [(out.to, out.msg) for out in ready.send]:
            if isinstance(msg, ReleaseRequest):
                copies.append((str(to), msg.lease_id))
            if to == "s1":
                heapq.heappush(pending, (now + lag, next(order), msg))

    now = 0.05
    while now < 28.0:  # 24 releases at 5 s, RELEASE_WINDOW (2) per 1.5 s round trip: 12 rounds
        now = round(now + 0.05, 3)
        while pending and pending[0][0] <= now:
            at, _, msg = heapq.heappop(pending)
            if isinstance(msg, ReleaseRequest):
                answer: Any = ReleaseAck(request_id=msg.request_id, lease_id=msg.lease_id, released=True)
            else:
                assert isinstance(msg, SessionHeartbeat)
                answer = HeartbeatAck(seq=msg.seq, server="s1", renewed=msg.lease_ids, ttl=T.lease_ttl)
            carry(core.receive("s1", answer, at), at)
        if now == 5.0:
            for i in range(24):  # the app's loop of auth.release()
                carry(core.release(f"L{i}", now + i * 0.001), now + i * 0.001)
        carry(core.tick(now), now)
    assert core.releasing() == ()
    assert sorted(copies) == sorted(("s1", f"L{i}") for i in range(24)), "a release was sent twice, or elsewhere"
    assert sorted(core.held(now)) == [f"L{i}" for i in range(24, 28)]


def test_a_release_lost_on_the_way_is_sent_again_once_a_later_message_is_answered() -> None:
    core = holding(2)
    assert releases(core.release("L0", 1.0)) == [("s1", "L0")]  # lost
    hb = sent(core.tick(1.0 + H), SessionHeartbeat)  # sent h after the release
    assert [to for to, _ in hb] == ["s1"]
    core.receive("s1", HeartbeatAck(seq=hb[0][1].seq, server="s1", renewed=("L1",), ttl=T.lease_ttl), 1.0 + H + 0.01)
    assert releases(core.tick(1.0 + H2)) == [("s1", "L0")]


def test_a_release_to_a_silent_server_is_sent_again_and_to_the_next_server() -> None:
    core = holding(1)
    core.release("L0", 1.0)  # s1 is down: lost, and nothing comes back
    assert releases(core.tick(1.0 + H2)) == [("s1", "L0")]
    assert ("s2", "L0") in releases(core.tick(1.0 + F + 0.01))


def test_close_sends_every_release_at_once() -> None:
    """The session ends with ``close``: nothing it holds back would ever leave."""
    core = holding(10)
    assert sorted(releases(core.close(1.0))) == sorted(("s1", f"L{i}") for i in range(10))


def test_the_window_is_per_server() -> None:
    core = session(prefer="s1")
    for i, server in enumerate(("s1",) * 6 + ("s2",) * 6):
        core.checkout("cad", "2.0", i + 1, 0.0)
        core.receive(
            server,
            CheckoutGranted(request_id=i + 1, lease_id=f"L{i}", server=server, feature="cad", version="2.0", ttl=30),
            0.01,
        )
    out = []
    for i in range(12):
        out += releases(core.release(f"L{i}", 1.0))
    assert [to for to, _ in out].count("s1") == RELEASE_WINDOW == [to for to, _ in out].count("s2")


# ---- the servers ------------------------------------------------------------------------


def _count_forwards(net: Net) -> list[ReleaseForward]:
    """Record every ReleaseForward any node sends from now on."""
    forwards: list[ReleaseForward] = []
    carry = net.carry

    def counting(name: str, ready: Ready) -> None:
        forwards.extend(out.msg for out in ready.send if isinstance(out.msg, ReleaseForward))
        carry(name, ready)

    net.carry = counting  # type: ignore[method-assign]
    return forwards


def _grants(net: Net, server: str, count: int) -> list[str]:
    for i in range(count):
        net.send(
            "c1",
            server,
            client.CheckoutRequest(
                client_id="c1", session_id="sess-c1", request_id=i + 1, feature="cad", version="2.0"
            ),
        )
    net.run(net.now + 2.0)
    return [g.lease_id for g in net.replies("c1", client.CheckoutGranted)]


def test_a_repeat_of_a_release_the_server_made_is_not_forwarded() -> None:
    """The session re-sent a release whose answer was late: the holder made
    that release itself, its own report tells the pool; a forward had the
    leader propose a ForceRelease for every copy."""
    net = started_pool(9)  # 3 / 3 / 3
    (lid,) = _grants(net, "s2", 1)
    forwards = _count_forwards(net)
    release = client.ReleaseRequest(client_id="c1", lease_id=lid, request_id=1, session_id="sess-c1")
    net.send("c1", "s2", release)
    net.send("c1", "s2", release)  # the copy, before the release report is committed
    net.run(net.now + 0.001)
    net.send("c1", "s2", release)  # and after
    net.run(net.now + 3.0)
    assert [a.released for a in net.replies("c1", client.ReleaseAck)] == [True, False, False]
    assert forwards == []
    assert net.nodes["s1"].pool.registry.is_dead(lid)


def test_releases_of_leases_held_elsewhere_are_forwarded_once_each() -> None:
    """s3 holds 30 leases of c1; c1's releases of all of them reach s2 (a
    session that found s3 silent), one every millisecond.  Each is forwarded
    to the leader once, not once more with every release that follows."""
    net = started_pool(100)  # 34 / 33 / 33
    lids = _grants(net, "s3", 30)
    assert len(lids) == 30
    forwards = _count_forwards(net)
    for i, lid in enumerate(lids):
        net.send("c1", "s2", client.ReleaseRequest(client_id="c1", lease_id=lid, request_id=i, session_id="sess-c1"))
        net.run(net.now + 0.001)
    net.run(net.now + 0.05)  # delivered and handled; no resend is due before 2h
    assert sorted(f.lease_id for f in forwards) == sorted(lids)
    net.run(net.now + 3.0)
    # Killed (revoked at s3, which still holds them): nothing more to forward.
    assert all(net.nodes["s1"].pool.registry.is_killed(lid) for lid in lids)
    assert not net.nodes["s2"].serving.book.released_here
    assert len(forwards) == 30


def test_releases_still_not_dead_are_resent_a_batch_at_a_time() -> None:
    """With no leader to take them, the releases made at s2 wait; the resend
    takes the ``FORWARD_BATCH`` forwarded longest ago, at most every 2h each."""
    net = started_pool(100)
    lids = _grants(net, "s3", 2 * FORWARD_BATCH + 5)
    s2 = net.nodes["s2"]
    now = net.now
    for i, lid in enumerate(lids):
        s2.serving.book.released_here[lid] = ("c1", now + i * 0.001)
        s2.serving.book.release_forwarded[lid] = now + i * 0.001
    ready = Ready()
    s2.serving.forward_releases(now + H2 - 0.01, ready)
    assert ready.send == []  # none forwarded 2h ago yet
    ready = Ready()
    s2.serving.forward_releases(now + H2 + 0.1, ready)
    assert _forwarded(ready) == lids[:FORWARD_BATCH]
    ready = Ready()
    s2.serving.forward_releases(now + H2 + 0.2, ready)
    assert _forwarded(ready) == lids[FORWARD_BATCH : 2 * FORWARD_BATCH]


def _forwarded(ready: Ready) -> list[str]:
    return [out.msg.lease_id for out in ready.send if isinstance(out.msg, ReleaseForward)]
