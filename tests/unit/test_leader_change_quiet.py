"""A leader change is invisible to the clients of live servers (docs/leadership.md, M14).

Three ``ServerNode``s and real ``ClientSessionCore``s on the perfect network
of test_node_smoke, with a fake clock.  Without a serving lease a server
answers a heartbeat "held, not renewed"; a session moves a lease only on
silence, on ``NOT_SERVING``, or when its remaining time falls to
``failover_seat_bound``.
"""

from __future__ import annotations

import heapq

import pytest

from actors.core.effects import ClientRef, Event, Ready
from actors.core.session import ClientSessionCore
from actors.core.timing import Timing, failover_seat_bound
from actors.protocol.client import (
    CheckoutGranted,
    CheckoutRequest,
    DenyReason,
    FailoverUpdate,
    HeartbeatAck,
    ReleaseAck,
    ReleaseRequest,
    SessionHeartbeat,
)
from actors.protocol.pool import AddLicenseCode
from tests.factories import license_code
from tests.unit.test_node_smoke import DELAY, SERVERS, Net

T = Timing()


class SessionNet(Net):
    """``Net`` plus client sessions: their sends, replies and wake-ups."""

    def __init__(self) -> None:
        super().__init__()
        self.sessions: dict[str, ClientSessionCore] = {}
        self.events: dict[str, list[tuple[float, Event]]] = {}

    def add_session(self, client_id: str, prefer: str) -> ClientSessionCore:
        core = ClientSessionCore(client_id, f"{client_id}/1", SERVERS, T, prefer=prefer)
        self.sessions[core.session_id] = core
        return core

    def carry_session(self, sid: str, ready: Ready) -> None:
        self.events.setdefault(sid, []).extend((self.now, ev) for ev in ready.events)
        for out in ready.send:
            assert isinstance(out.to, str)
            heapq.heappush(self.queue, (self.now + DELAY, next(self.seq), out.to, (sid, out.msg)))
        if ready.wake_at is not None:
            heapq.heappush(self.queue, (max(ready.wake_at, self.now), next(self.seq), sid, ("tick", None)))

    def run(self, until: float) -> None:
        while self.queue and self.queue[0][0] <= until:
            at, _, dest, (sender, msg) = heapq.heappop(self.queue)
            self.now = max(self.now, at)
            core = self.sessions.get(dest)
            node = self.nodes.get(dest)
            if core is not None:
                ready = core.tick(self.now) if sender == "tick" else core.receive(sender, msg, self.now)
                self.carry_session(dest, ready)
            elif dest in self.down or node is None:
                continue
            elif sender == "tick":
                self.carry(dest, node.tick(self.now))
            elif sender in self.nodes or sender in self.down:
                self.carry(dest, node.receive(sender, msg, self.now))
            else:
                self.carry(dest, node.from_client(ClientRef(sender), msg, self.now))
        self.now = until

    def kinds(self, sid: str) -> list[str]:
        return [ev.kind for _, ev in self.events.get(sid, [])]


def started_net() -> SessionNet:
    """A pool led by s1, with a license of 10 seats of cad 2.0 committed."""
    net = SessionNet()
    net.run(8.0)
    assert net.leader().name == "s1"
    net.send("admin", "s1", AddLicenseCode(sender="cli", epoch=0, request_id="r1", code=license_code(10)))
    net.run(net.now + 1.0)
    return net


def pool_with_sessions() -> tuple[SessionNet, list[ClientSessionCore]]:
    net = started_net()
    cores = [net.add_session(f"ws{i}", prefer) for i, prefer in enumerate(SERVERS, start=1)]
    for core in cores:
        net.carry_session(core.session_id, core.checkout("cad", "2.0", 1, net.now))
    net.run(net.now + 1.0)
    for core in cores:
        assert net.kinds(core.session_id) == ["granted"], net.events[core.session_id]
    return net, cores


def test_a_leader_kill_moves_no_lease_off_a_live_follower() -> None:
    net, (at_leader, at_s2, at_s3) = pool_with_sessions()
    net.kill("s1")
    net.run(net.now + 2 * T.lease_ttl)
    for core in (at_s2, at_s3):
        kinds = net.kinds(core.session_id)
        assert "failing_over" not in kinds and "failed_over" not in kinds and "lost" not in kinds, kinds
        [info] = core.held(net.now).values()
        assert info.server == core.order[0] and not info.failing_over
        assert info.deadline > net.now + failover_seat_bound(T, len(SERVERS))  # renewed again by now
    # The dead leader's client moved, and kept its lease.
    assert "failed_over" in net.kinds(at_leader.session_id)
    [moved] = at_leader.held(net.now).values()
    assert moved.server != "s1"


def test_without_a_serving_lease_a_heartbeat_is_held_not_renewed_and_not_refused() -> None:
    net, (_, at_s2, _) = pool_with_sessions()
    [lease_id] = at_s2.held(net.now)
    node = net.nodes["s2"]
    net.kill("s1")
    net.kill("s3")  # no majority, so no new leader (with the defaults one acts about f after the kill)
    net.run(net.now + T.fence_timeout * 1.1)  # s2's serving lease has run out
    assert node.serve_problem(None, net.now) is DenyReason.NO_MAJORITY
    before = node.member.leases.leases[lease_id].expires_at
    ready = node.from_client(
        ClientRef(at_s2.session_id),
        SessionHeartbeat(client_id="ws2", session_id=at_s2.session_id, seq=10**6, lease_ids=(lease_id,)),
        net.now,
    )
    [ack] = [out.msg for out in ready.send if isinstance(out.msg, HeartbeatAck)]
    assert (ack.renewed, ack.lost, ack.fail_over, ack.held) == ((), (), False, (lease_id,))
    assert node.member.leases.leases[lease_id].expires_at == before  # no renewal without a serving lease


def test_a_fenced_server_still_sends_its_clients_away() -> None:
    net, (_, at_s2, _) = pool_with_sessions()
    [lease_id] = at_s2.held(net.now)
    node = net.nodes["s2"]
    node.raft.incarnation += 1  # as if restarted and not yet rejoined: NOT_SERVING
    ready = node.from_client(
        ClientRef(at_s2.session_id),
        SessionHeartbeat(client_id="ws2", session_id=at_s2.session_id, seq=10**6, lease_ids=(lease_id,)),
        net.now,
    )
    [ack] = [out.msg for out in ready.send if isinstance(out.msg, HeartbeatAck)]
    assert ack.fail_over and ack.renewed == () and ack.held == ()


def seated_session() -> tuple[ClientSessionCore, str]:
    core = ClientSessionCore("ws2", "ws2/1", SERVERS, T, prefer="s2")
    core.checkout("cad", "2.0", 1, 0.0)
    core.receive(
        "s2",
        CheckoutGranted(request_id=1, lease_id="L1", server="s2", feature="cad", version="2.0", ttl=T.lease_ttl),
        0.01,
    )
    return core, "L1"


def held_acks_until(core: ClientSessionCore, until: float) -> list[tuple[float, FailoverUpdate]]:
    """Tick the session and answer each heartbeat "held, not renewed" at once,
    until it sends a fail-over update or ``until``; return the updates sent."""
    moves: list[tuple[float, FailoverUpdate]] = []
    now = 0.02
    ready = core.tick(now)
    while True:
        acks = Ready()
        for out in ready.send:
            if isinstance(out.msg, SessionHeartbeat) and isinstance(out.to, str):
                acks.merge(
                    core.receive(
                        out.to,
                        HeartbeatAck(seq=out.msg.seq, server=out.to, held=out.msg.lease_ids, ttl=T.lease_ttl),
                        now,
                    )
                )
            elif isinstance(out.msg, FailoverUpdate):
                moves.append((now, out.msg))
        wake = acks.wake_at if acks.wake_at is not None else ready.wake_at
        if moves or wake is None or wake > until:
            return moves
        now = max(wake, now)
        ready = core.tick(now)


def test_a_lease_held_but_not_renewed_fails_over_at_the_seat_bound_and_not_before() -> None:
    core, lease_id = seated_session()
    deadline = core.held(0.02)[lease_id].deadline
    bound = failover_seat_bound(T, len(SERVERS))
    [(at, update)] = held_acks_until(core, deadline)
    assert at == pytest.approx(deadline - bound, abs=T.heartbeat_interval)
    assert at >= deadline - bound - 1e-9
    assert [h.lease_id for h in update.leases] == [lease_id]


def test_new_checkouts_go_back_to_a_restarted_start_server_once_it_serves() -> None:
    """Fail-back (docs/architecture.md): ws3's start server s3 restarts; its
    first checkout after the restart, refused (not rejoined yet), is granted
    elsewhere.  Once s3 has rejoined, ws3's next checkout is served by s3,
    not by the server it was sent to (the lost-disk bring-up test needs it)."""
    net, (_, _, at_s3) = pool_with_sessions()
    net.kill("s3")
    net.run(net.now + 2.0)
    net.boot("s3")
    # At once, before s3 has rejoined: served elsewhere.
    net.carry_session(at_s3.session_id, at_s3.checkout("cad", "2.0", 2, net.now))
    net.run(net.now + 1.0)
    granted = [ev.fields for _, ev in net.events[at_s3.session_id] if ev.kind == "granted"]
    assert dict(granted[-1])["server"] != "s3"
    assert at_s3.current != "s3"
    net.run(net.now + 3 * at_s3.home_probe_every)
    assert net.nodes["s3"].serve_problem(None, net.now) is None  # rejoined and serving
    assert at_s3.current == "s3"
    net.carry_session(at_s3.session_id, at_s3.checkout("cad", "2.0", 3, net.now))
    net.run(net.now + 1.0)
    granted = [ev.fields for _, ev in net.events[at_s3.session_id] if ev.kind == "granted"]
    assert dict(granted[-1])["server"] == "s3"


def test_a_late_heartbeat_of_a_dead_session_does_not_let_its_release_kill_the_resumed_lease() -> None:
    """Simulator seed 2663: an app released lease L and died; its restart,
    from a stale file, resumed L from a new session.  The old session's last
    heartbeat and its release were still in flight and reached the server
    after the resume: the heartbeat took L back for the old session, so the
    release then killed the lease the new session had just been granted (S3:
    a released id granted again).  A heartbeat numbered below the resume's
    ``client_seq`` is an older session's: it renews, but does not rebind."""
    net, (holder, _, _) = pool_with_sessions()
    [lease_id] = holder.held(net.now)
    node = net.nodes["s1"]
    client_id, old, new = "ws1", holder.session_id, "ws1/2"
    resume = CheckoutRequest(
        client_id=client_id,
        session_id=new,
        request_id=1,
        feature="cad",
        version="2.0",
        lease_id=lease_id,
        client_seq=10**6,
    )
    ready = node.from_client(ClientRef(new), resume, net.now)
    [granted] = [out.msg for out in ready.send if isinstance(out.msg, CheckoutGranted)]
    assert granted.resumed and granted.lease_id == lease_id
    late = SessionHeartbeat(client_id=client_id, session_id=old, seq=7, lease_ids=(lease_id,))
    node.from_client(ClientRef(old), late, net.now)
    release = ReleaseRequest(client_id=client_id, session_id=old, lease_id=lease_id, request_id=3)
    ready = node.from_client(ClientRef(old), release, net.now)
    [ack] = [out.msg for out in ready.send if isinstance(out.msg, ReleaseAck)]
    assert not ack.released
    lease = node.member.leases.leases[lease_id]
    assert lease.session_id == new
