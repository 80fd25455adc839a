"""The client session core, driven by hand with a fake clock (plain floats)."""

from __future__ import annotations

import itertools
from typing import Any, TypeVar

import pytest
from hypothesis import given
from hypothesis import strategies as st

from actors.core.effects import Message, Ready
from actors.core.session import ClientSessionCore, start_server
from actors.core.timing import Timing
from actors.protocol.client import (
    CheckoutDenied,
    CheckoutGranted,
    CheckoutRequest,
    DenyReason,
    FailoverReply,
    FailoverUpdate,
    HeartbeatAck,
    ReleaseRequest,
    SessionHeartbeat,
)

T = Timing()
SERVERS = ("s1", "s2", "s3")
VALID = T.holder_valid_for(T.lease_ttl)
M = TypeVar("M", bound=Message)


def session(prefer: str | None = "s1") -> ClientSessionCore:
    return ClientSessionCore("ws17/cad", "sess-1", SERVERS, T, prefer=prefer)


def sent(ready: Ready, kind: type[M]) -> list[tuple[str, M]]:
    """The ``kind`` messages ``ready`` sends, with the server each goes to."""
    found: list[tuple[str, M]] = []
    for out in ready.send:
        if isinstance(out.msg, kind):
            assert isinstance(out.to, str)
            found.append((out.to, out.msg))
    return found


def events(ready: Ready, kind: str) -> list[dict[str, Any]]:
    return [dict(ev.fields) for ev in ready.events if ev.kind == kind]


def grant(
    core: ClientSessionCore,
    lease_id: str = "L1",
    at: float = 0.0,
    reply_at: float = 0.05,
    server: str = "s1",
    request_id: int = 1,
) -> Ready:
    core.checkout("cad", "2.0", request_id, at)
    return core.receive(
        server,
        CheckoutGranted(
            request_id=request_id, lease_id=lease_id, server=server, feature="cad", version="2.0", ttl=T.lease_ttl
        ),
        reply_at,
    )


class Driver:
    """Ticks a session at every wake-up and answers its heartbeats from live servers."""

    def __init__(self, core: ClientSessionCore, live: set[str], delay: float = 0.01) -> None:
        self.core, self.live, self.delay = core, live, delay
        self.sent: list[tuple[float, str, Message]] = []
        self.events: list[tuple[float, str, dict[str, Any]]] = []
        self.inbox: list[tuple[float, str, HeartbeatAck]] = []

    def absorb(self, ready: Ready, now: float) -> None:
        for out in ready.send:
            assert isinstance(out.to, str)
            self.sent.append((now, out.to, out.msg))
            if out.to in self.live and isinstance(out.msg, SessionHeartbeat):
                ack = HeartbeatAck(seq=out.msg.seq, server=out.to, renewed=out.msg.lease_ids, ttl=T.lease_ttl)
                self.inbox.append((now + self.delay, out.to, ack))
        self.events.extend((now, ev.kind, dict(ev.fields)) for ev in ready.events)

    def run(self, start: float, until: float, wake: float | None) -> None:
        now = start
        while True:
            due = [t for t, _, _ in self.inbox]
            nxt = min([*due, wake if wake is not None else until, until])
            if nxt >= until:
                return
            now = max(now, nxt)
            arrived = [m for m in self.inbox if m[0] <= now]
            self.inbox = [m for m in self.inbox if m[0] > now]
            for _, server, msg in arrived:
                ready = self.core.receive(server, msg, now)
                self.absorb(ready, now)
                wake = ready.wake_at
            ready = self.core.tick(now)
            self.absorb(ready, now)
            wake = ready.wake_at


# ---- start server ---------------------------------------------------------------


def test_prefer_names_the_start_server_and_the_rest_rotate() -> None:
    core = ClientSessionCore("c", "s", SERVERS, T, prefer="s2")
    assert core.order == ("s2", "s3", "s1")
    ready = core.checkout("cad", "2.0", 1, 0.0)
    assert [to for to, _ in sent(ready, CheckoutRequest)] == ["s2"]


def test_default_start_is_a_stable_hash_of_the_client_id() -> None:
    picks = {start_server(f"ws{i}/cad", SERVERS) for i in range(40)}
    assert picks == set(SERVERS)  # spread over the pool
    assert start_server("ws17/cad", SERVERS) == start_server("ws17/cad", SERVERS)
    assert ClientSessionCore("ws17/cad", "x", SERVERS, T).current == start_server("ws17/cad", SERVERS)
    with pytest.raises(ValueError):
        start_server("c", SERVERS, prefer="s9")


# ---- deadlines ------------------------------------------------------------------


def test_grant_deadline_is_timed_from_the_request_send() -> None:
    core = session()
    ready = grant(core, at=10.0, reply_at=10.4)
    assert events(ready, "granted") == [
        {"request_id": 1, "lease_id": "L1", "server": "s1", "feature": "cad", "version": "2.0", "resumed": False}
    ]
    assert core.held(10.5)["L1"].deadline == pytest.approx(10.0 + VALID)
    assert "L1" not in core.held(10.0 + VALID)


def test_heartbeat_ack_renews_from_the_heartbeat_send() -> None:
    core = session()
    grant(core)
    ready = core.tick(0.5)
    [(to, hb)] = sent(ready, SessionHeartbeat)
    assert (to, hb.lease_ids) == ("s1", ("L1",))
    core.receive("s1", HeartbeatAck(seq=hb.seq, server="s1", renewed=("L1",), ttl=T.lease_ttl), 1.9)
    assert core.held(2.0)["L1"].deadline == pytest.approx(0.5 + VALID)


def test_lost_at_the_deadline_without_renewals() -> None:
    core = session()
    grant(core)
    ready = core.tick(VALID)
    assert events(ready, "lost") == [{"lease_id": "L1", "why": "deadline", "server": "s1"}]
    assert core.held(VALID) == {}


def test_a_stale_ack_for_an_unknown_seq_extends_nothing() -> None:
    core = session()
    grant(core)
    core.receive("s1", HeartbeatAck(seq=999, server="s1", renewed=("L1",)), 1.0)
    assert core.held(1.0)["L1"].deadline == pytest.approx(VALID)


# ---- heartbeats -----------------------------------------------------------------


@given(st.integers(min_value=1, max_value=30), st.integers(min_value=1, max_value=3))
def test_one_heartbeat_per_server_per_interval_whatever_the_lease_count(leases: int, servers: int) -> None:
    core = session()
    for i in range(leases):
        server = SERVERS[i % servers]
        core.checkout("cad", "2.0", i, 0.0)
        core.receive(
            server,
            CheckoutGranted(
                request_id=i, lease_id=f"L{i}", server=server, feature="cad", version="2.0", ttl=T.lease_ttl
            ),
            0.01,
        )
    driver = Driver(core, live=set(SERVERS))
    driver.run(0.01, 10.0, core.tick(0.01).wake_at)
    beats = [(at, to) for at, to, msg in driver.sent if isinstance(msg, SessionHeartbeat)]
    used = set(SERVERS[: min(servers, leases)])
    assert {to for _, to in beats} == used
    for server in used:
        times = [at for at, to in beats if to == server]
        assert 19 <= len(times) <= 20  # 10 s / 0.5 s
        assert all(b - a >= T.heartbeat_interval - 1e-9 for a, b in itertools.pairwise(times))
    assert all(len(msg.lease_ids) >= 1 for _, _, msg in driver.sent if isinstance(msg, SessionHeartbeat))
    assert not [ev for ev in driver.events if ev[1] == "lost"]


# ---- fail-over ------------------------------------------------------------------


def test_silence_for_failure_timeout_fails_over_with_one_update() -> None:
    core = session()
    for i, lid in enumerate(("L1", "L2", "L3")):
        grant(core, lease_id=lid, request_id=i)
    driver = Driver(core, live={"s2", "s3"})
    driver.run(0.05, 3.0, core.tick(0.05).wake_at)
    updates = [(at, to, msg) for at, to, msg in driver.sent if isinstance(msg, FailoverUpdate)]
    first_hb = min(at for at, to, msg in driver.sent if isinstance(msg, SessionHeartbeat))
    assert len(updates) == 1
    at, to, update = updates[0]
    assert to == "s2"
    assert at == pytest.approx(first_hb + T.failure_timeout)
    assert sorted(h.lease_id for h in update.leases) == ["L1", "L2", "L3"]
    assert update.client_id == "ws17/cad" and update.seq > 0


def test_seated_moves_the_lease_and_renews_from_the_update_send() -> None:
    core = session()
    grant(core)
    ready = core.receive("s1", HeartbeatAck(seq=0, server="s1", fail_over=True), 1.0)
    assert ready.send == []  # seq 0 was never sent: nothing to act on
    hb = sent(core.tick(0.5), SessionHeartbeat)[0][1]
    ready = core.receive("s1", HeartbeatAck(seq=hb.seq, server="s1", fail_over=True), 1.0)
    [(to, update)] = sent(ready, FailoverUpdate)
    assert to == "s2"
    ready = core.receive("s2", FailoverReply(seq=update.seq, server="s2", seated=("L1",), ttl=T.lease_ttl), 1.3)
    assert events(ready, "failed_over") == [{"from_server": "s1", "to_server": "s2", "lease_ids": ("L1",)}]
    info = core.held(1.3)["L1"]
    assert (info.server, info.failing_over) == ("s2", False) and info.deadline == pytest.approx(1.0 + VALID)
    assert [to for to, _ in sent(core.tick(1.6), SessionHeartbeat)] == ["s2"]


def test_pending_never_extends_the_deadline_and_is_resent_to_the_same_server() -> None:
    core = session()
    grant(core)
    hb = sent(core.tick(0.5), SessionHeartbeat)[0][1]
    update = sent(core.receive("s1", HeartbeatAck(seq=hb.seq, server="s1", fail_over=True), 1.0), FailoverUpdate)[0][1]
    core.receive("s2", FailoverReply(seq=update.seq, server="s2", pending=("L1",), ttl=T.lease_ttl), 1.1)
    assert core.held(1.1)["L1"].deadline == pytest.approx(VALID)
    assert core.held(1.1)["L1"].failing_over
    assert sent(core.tick(1.5), FailoverUpdate) == []
    [(to, again)] = sent(core.tick(1.0 + T.client_retry), FailoverUpdate)
    assert to == "s2" and again.seq > update.seq
    # Pending until the deadline: then lost, and no more updates.
    last = core.tick(VALID)
    assert events(last, "lost") == [{"lease_id": "L1", "why": "deadline", "server": "s1"}]
    # Only the start server's fail-back probe (an empty heartbeat) is still sent.
    assert [(o.to, o.msg) for o in core.tick(VALID + 5).send] == [
        ("s1", SessionHeartbeat(client_id=core.client_id, session_id=core.session_id, seq=5))
    ]


def test_a_silent_target_is_replaced_by_the_next_server_after_2h() -> None:
    core = session()
    grant(core)
    hb = sent(core.tick(0.5), SessionHeartbeat)[0][1]
    update = sent(core.receive("s1", HeartbeatAck(seq=hb.seq, server="s1", fail_over=True), 1.0), FailoverUpdate)[0][1]
    [(to, again)] = sent(core.tick(1.0 + T.client_retry), FailoverUpdate)
    assert to == "s3" and again.seq > update.seq
    # A stale reply to the first update neither refuses nor extends anything.
    core.receive("s2", FailoverReply(seq=update.seq, server="s2", refused=("L1",)), 2.1)
    assert "L1" in core.held(2.1)


def test_refused_is_lost_at_once() -> None:
    core = session()
    grant(core)
    hb = sent(core.tick(0.5), SessionHeartbeat)[0][1]
    update = sent(core.receive("s1", HeartbeatAck(seq=hb.seq, server="s1", fail_over=True), 1.0), FailoverUpdate)[0][1]
    ready = core.receive("s2", FailoverReply(seq=update.seq, server="s2", refused=("L1",)), 1.1)
    assert events(ready, "lost") == [{"lease_id": "L1", "why": "s2 refused the fail-over", "server": "s2"}]
    assert core.held(1.1) == {}


def test_a_lease_the_server_says_is_lost_is_dead_and_never_failed_over() -> None:
    core = session()
    grant(core, lease_id="L1", request_id=1)
    grant(core, lease_id="L2", request_id=2)
    hb = sent(core.tick(0.5), SessionHeartbeat)[0][1]
    ready = core.receive("s1", HeartbeatAck(seq=hb.seq, server="s1", renewed=("L2",), lost=("L1",)), 0.6)
    assert events(ready, "lost") == [{"lease_id": "L1", "why": "s1 says lost", "server": "s1"}]
    assert sent(ready, FailoverUpdate) == []
    assert list(core.held(0.6)) == ["L2"]


def test_a_lease_the_server_says_moved_is_followed_to_its_new_server_not_lost() -> None:
    # Two fail-over updates were in flight; the earlier seated the lease at s1,
    # the later handed it on to s2.  s1 says "moved to s2": the session follows.
    core = session()
    grant(core, lease_id="L1", request_id=1)
    hb = sent(core.tick(0.5), SessionHeartbeat)[0][1]
    ready = core.receive("s1", HeartbeatAck(seq=hb.seq, server="s1", moved=(("L1", "s2"),)), 0.6)
    assert events(ready, "lost") == []
    [(to, upd)] = sent(ready, FailoverUpdate)
    assert to == "s2" and [x.lease_id for x in upd.leases] == ["L1"]
    assert events(ready, "failing_over")[0]["why"] == "moved"
    core.receive("s2", FailoverReply(seq=upd.seq, server="s2", seated=("L1",), ttl=T.lease_ttl), 0.7)
    assert core.held(0.7)["L1"].server == "s2"


# ---- checkouts ------------------------------------------------------------------


def test_checkout_retries_at_the_next_server_after_2h_and_denies_only_for_pool_reasons() -> None:
    core = session()
    core.checkout("cad", "2.0", 7, 0.0)
    [(to, retry)] = sent(core.tick(T.client_retry), CheckoutRequest)
    assert (to, retry.request_id) == ("s2", 7)
    ready = core.receive("s2", CheckoutDenied(request_id=7, reason=DenyReason.NOT_SERVING), 1.1)
    assert events(ready, "denied") == []
    assert [to for to, _ in sent(ready, CheckoutRequest)] == ["s3"]
    ready = core.receive("s3", CheckoutDenied(request_id=7, reason=DenyReason.NO_MAJORITY), 1.2)
    assert events(ready, "denied")[0]["reason"] == "NO_MAJORITY"  # every server tried
    core.checkout("cad", "2.0", 8, 2.0)
    ready = core.receive(core.current, CheckoutDenied(request_id=8, reason=DenyReason.NO_SEATS), 2.1)
    assert events(ready, "denied")[0]["reason"] == "NO_SEATS"


def test_grant_after_a_retry_is_timed_from_the_send_to_the_granting_server() -> None:
    core = session()
    core.checkout("cad", "2.0", 1, 0.0)
    core.tick(T.client_retry)
    core.receive(
        "s2",
        CheckoutGranted(request_id=1, lease_id="L1", server="s2", feature="cad", version="2.0", ttl=T.lease_ttl),
        1.2,
    )
    assert core.held(1.2)["L1"].deadline == pytest.approx(T.client_retry + VALID)


def test_a_grant_for_an_abandoned_request_is_released_at_once() -> None:
    core = session()
    core.checkout("cad", "2.0", 1, 0.0)
    core.abandon(1, 0.1)
    ready = core.receive(
        "s1",
        CheckoutGranted(request_id=1, lease_id="L1", server="s1", feature="cad", version="2.0", ttl=T.lease_ttl),
        0.5,
    )
    assert [(to, m.lease_id) for to, m in sent(ready, ReleaseRequest)] == [("s1", "L1")]
    assert core.held(0.5) == {} and events(ready, "granted") == []


def test_a_second_grant_for_a_retried_request_is_released() -> None:
    core = session()
    core.checkout("cad", "2.0", 1, 0.0)
    core.tick(T.client_retry)
    core.receive(
        "s2",
        CheckoutGranted(request_id=1, lease_id="L2", server="s2", feature="cad", version="2.0", ttl=T.lease_ttl),
        1.1,
    )
    ready = core.receive(
        "s1",
        CheckoutGranted(request_id=1, lease_id="L1", server="s1", feature="cad", version="2.0", ttl=T.lease_ttl),
        1.2,
    )
    assert [(to, m.lease_id) for to, m in sent(ready, ReleaseRequest)] == [("s1", "L1")]
    assert list(core.held(1.2)) == ["L2"]


def test_release_forgets_at_once_and_close_releases_everything() -> None:
    core = session()
    grant(core, lease_id="L1", request_id=1)
    grant(core, lease_id="L2", request_id=2)
    ready = core.release("L1", 1.0)
    assert [(to, m.lease_id) for to, m in sent(ready, ReleaseRequest)] == [("s1", "L1")]
    assert events(ready, "released") == [{"lease_id": "L1"}]
    assert list(core.held(1.0)) == ["L2"]
    # A late renewal of a released lease does not bring it back.
    hb = sent(core.tick(1.0), SessionHeartbeat)[0][1]
    core.receive("s1", HeartbeatAck(seq=hb.seq, server="s1", renewed=("L1", "L2")), 1.1)
    assert list(core.held(1.1)) == ["L2"]
    ready = core.close(2.0)
    assert [m.lease_id for _, m in sent(ready, ReleaseRequest)] == ["L2"]
    # Nothing is renewed any more; only releases no server acknowledged are re-sent.
    assert core.held(2.0) == {}
    assert {type(out.msg) for out in core.tick(3.0).send} <= {ReleaseRequest}


# ---- fail-back: new checkouts return to the start server once it serves again ----


def _sent_away(core: ClientSessionCore, at: float = 0.0) -> None:
    """The start server s1 refuses (restarting, not rejoined): the checkout is
    granted at s2, and new checkouts go there."""
    [(to, _req)] = sent(core.checkout("cad", "2.0", 1, at), CheckoutRequest)
    assert to == "s1"
    core.receive("s1", CheckoutDenied(request_id=1, reason=DenyReason.NOT_SERVING, server="s1"), at + 0.01)
    core.receive(
        "s2",
        CheckoutGranted(request_id=1, lease_id="L1", server="s2", feature="cad", version="2.0", ttl=T.lease_ttl),
        at + 0.02,
    )
    assert core.current == "s2"
    core.release("L1", at + 0.03)


def _probes(ready: Ready) -> list[tuple[str, SessionHeartbeat]]:
    return [(to, hb) for to, hb in sent(ready, SessionHeartbeat) if hb.lease_ids == ()]


def test_a_session_sent_away_from_its_start_server_asks_it_again_every_2f() -> None:
    core = session()
    _sent_away(core)
    every = core.home_probe_every
    assert every == pytest.approx(2 * T.failure_timeout)
    assert _probes(core.tick(every / 2)) == []
    [(to, probe)] = _probes(core.tick(0.03 + every))
    assert to == "s1"
    # Not serving yet (a server that is up but not rejoined says so): stay away, ask again later.
    core.receive("s1", HeartbeatAck(seq=probe.seq, server="s1", serving=False), 0.05 + every)
    assert core.current == "s2"
    [(to, again)] = _probes(core.tick(0.04 + 2 * every))
    assert to == "s1" and again.seq > probe.seq


def test_new_checkouts_go_home_once_the_start_server_says_it_serves() -> None:
    core = session()
    _sent_away(core)
    [(_, probe)] = _probes(core.tick(0.03 + core.home_probe_every))
    core.receive("s1", HeartbeatAck(seq=probe.seq, server="s1", serving=True), 2.0)
    assert core.current == "s1"
    [(to, _)] = sent(core.checkout("cad", "2.0", 2, 2.1), CheckoutRequest)
    assert to == "s1"
    # Home again: no more probes.
    assert _probes(core.tick(2.1 + 5 * core.home_probe_every)) == []


def test_a_serving_ack_from_another_server_or_an_old_server_does_not_move_checkouts() -> None:
    core = session()
    _sent_away(core)
    [(_, probe)] = _probes(core.tick(0.03 + core.home_probe_every))
    core.receive("s3", HeartbeatAck(seq=probe.seq, server="s3", serving=True), 2.0)  # not the server asked
    core.receive("s1", HeartbeatAck(seq=probe.seq, server="s1"), 2.0)  # an older server: no ``serving``
    assert core.current == "s2"


def test_no_probe_while_a_lease_is_settled_at_the_start_server() -> None:
    """Its own heartbeats ask instead."""
    core = session()
    grant(core, server="s1")
    core.current = "s2"  # a later checkout went elsewhere
    hbs = sent(core.tick(T.heartbeat_interval + 0.1), SessionHeartbeat)
    assert [(to, hb.lease_ids) for to, hb in hbs] == [("s1", ("L1",))]
    core.receive("s1", HeartbeatAck(seq=hbs[0][1].seq, server="s1", renewed=("L1",), serving=True), 0.5)
    assert core.current == "s1"
