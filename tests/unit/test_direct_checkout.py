"""Lever 4 of issue 12: the app asks its server directly (docs/performance.md).

A plain checkout is app -> server -> app, two hops instead of four; the app
then tells its session to adopt the grant (``AdoptGrant``, a one-way local
message), and the session renews, fails over and releases it like its own.
What must hold:

* the session's lease is timed from the app's send, as the app's is;
* a release that reaches the session before the adopt (they travel apart)
  still gives the lease back, and the adopt that follows does not bring it back;
* an app whose direct ask gave up asks through its session, which asks that
  server first; the server answers a repeat of the request id with the grant
  it made (never a second seat), and a repeat of a request it still decides
  moves the answer to the newer asker (the app's closed ask would lose it);
* a direct ask that arrives late (the app's own transmits may wait up to T,
  ``Timing.app_transmit``) never takes a second seat: not after its fall-back's
  grant was given back, and never the answer of a fall-back still waiting.
"""

from __future__ import annotations

import pytest

from actors.core import serving
from actors.core.effects import ClientRef
from actors.protocol import client
from actors.protocol.client import CheckoutGranted, CheckoutRequest, ReleaseRequest, SessionHeartbeat
from tests.unit.test_node_smoke import Net, started_pool
from tests.unit.test_session import T, events, sent, session


def direct_grant(lease_id: str = "L1", server: str = "s2", request_id: int = 5) -> CheckoutGranted:
    return CheckoutGranted(
        request_id=request_id, lease_id=lease_id, server=server, feature="cad", version="2.0", ttl=T.lease_ttl
    )


def test_an_adopted_grant_is_held_from_the_apps_send_and_renewed_at_its_server() -> None:
    core = session()
    ready = core.adopt("s2", direct_grant(), sent_at=1.0, now=1.004)
    assert events(ready, "adopted") == [
        {"request_id": 5, "lease_id": "L1", "server": "s2", "feature": "cad", "version": "2.0"}
    ]
    held = core.held(1.004)["L1"]
    assert held.server == "s2" and held.deadline == 1.0 + T.holder_valid_for(T.lease_ttl)
    assert core.current == "s2"  # new checkouts go where the app's route is
    beats = [m for to, m in sent(core.tick(1.0 + T.heartbeat_interval), SessionHeartbeat) if to == "s2"]
    assert beats and "L1" in beats[0].lease_ids


def test_a_release_that_comes_before_the_adopt_gives_the_lease_back_there() -> None:
    core = session()
    [(to, rel)] = sent(core.release("L1", 1.01, server="s2"), ReleaseRequest)
    assert (to, rel.lease_id) == ("s2", "L1")
    ready = core.adopt("s2", direct_grant(), sent_at=1.0, now=1.02)
    assert "L1" not in core.held(1.02) and not events(ready, "adopted")
    # Acknowledged, then an adopt that comes even later still does not keep it.
    core.receive("s2", client.ReleaseAck(request_id=rel.request_id, lease_id="L1", released=True), 1.03)
    core.adopt("s2", direct_grant(), sent_at=1.0, now=1.04)
    assert "L1" not in core.held(1.04)


def test_a_release_without_a_server_of_an_unknown_lease_sends_nothing() -> None:
    """A session-path lease the session forgot (lost) is not re-released blindly."""
    core = session()
    assert sent(core.release("L9", 1.0), ReleaseRequest) == []


def test_an_adopt_after_close_gives_the_lease_back() -> None:
    core = session()
    core.close(1.0)
    ready = core.adopt("s2", direct_grant(), sent_at=1.0, now=1.01)
    assert [m.lease_id for _, m in sent(ready, ReleaseRequest)] == ["L1"]
    assert "L1" not in core.held(1.01)


def test_an_adopt_of_a_request_the_session_asks_itself_is_left_to_the_session() -> None:
    """The app fell back: the session's own ask gets the same grant from the server."""
    core = session()
    core.checkout("cad", "2.0", 5, 1.0, server="s2")
    core.adopt("s2", direct_grant(), sent_at=0.9, now=1.01)
    assert "L1" not in core.held(1.01) and core.outstanding() == (5,)


def test_a_fall_back_asks_the_apps_server_first() -> None:
    core = session(prefer="s1")
    [(to, req)] = sent(core.checkout("cad", "2.0", 5, 1.0, server="s3"), CheckoutRequest)
    assert (to, req.request_id) == ("s3", 5)
    [(to, _)] = sent(core.checkout("cad", "2.0", 6, 1.0, server="nope"), CheckoutRequest)
    assert to == "s3"  # not a server of the pool: the current one


# ---- the server core ---------------------------------------------------------------------


def _req(direct: bool = False) -> CheckoutRequest:
    return CheckoutRequest(
        client_id="c1", session_id="sess-c1", request_id=7, feature="cad", version="2.0", direct=direct
    )


def test_a_repeat_through_the_session_gets_the_grant_the_direct_ask_got() -> None:
    net = started_pool(3)
    net.send("app-c1", "s2", _req(direct=True))
    net.run(net.now + 0.5)
    (direct,) = net.replies("app-c1", CheckoutGranted)
    net.send("sess-c1", "s2", _req())
    net.run(net.now + 0.5)
    assert net.replies("sess-c1", CheckoutGranted) == [direct]
    assert len(net.nodes["s2"].member.leases.leases) == 1


def test_a_repeat_of_a_request_still_being_decided_moves_its_answer_to_the_new_asker() -> None:
    net = started_pool(3)
    node = net.nodes["s2"]
    first = CheckoutRequest(client_id="c0", session_id="sess-c0", request_id=1, feature="cad", version="2.0")
    # s2's only seat, taken in the same instant: the next checkout waits while s2 borrows.
    net.carry("s2", node.from_client(ClientRef("c0"), first, net.now))
    net.carry("s2", node.from_client(ClientRef("app-c1"), _req(direct=True), net.now))
    assert len(node.serving.book.waiting) == 1
    net.carry("s2", node.from_client(ClientRef("sess-c1"), _req(), net.now))  # the app gave up: its session asks
    assert [w.client for w in node.serving.book.waiting] == [ClientRef("sess-c1")]
    net.run(net.now + 3.0)
    answers = net.replies("sess-c1", CheckoutGranted) + net.replies("sess-c1", client.CheckoutDenied)
    assert len(answers) == 1 and net.replies("app-c1", CheckoutGranted) == []


def _grant_and_give_back(net: Net) -> CheckoutGranted:
    """c1's session asks s2 for request 7 (the app's fall-back) and gives the grant back."""
    net.send("sess-c1", "s2", _req())
    net.run(net.now + 0.5)
    grant: CheckoutGranted
    (grant,) = net.replies("sess-c1", CheckoutGranted)
    net.send(
        "sess-c1", "s2", ReleaseRequest(client_id="c1", lease_id=grant.lease_id, request_id=1, session_id="sess-c1")
    )
    net.run(net.now + 0.5)
    assert net.nodes["s2"].member.leases.leases == {}
    return grant


def test_a_late_direct_ask_after_its_fall_back_was_given_back_takes_no_seat() -> None:
    net = started_pool(3)
    _grant_and_give_back(net)
    net.send("app-c1", "s2", _req(direct=True))  # the app's first ask, delivered last
    net.run(net.now + 0.5)
    assert net.nodes["s2"].member.leases.leases == {}
    assert net.replies("app-c1", CheckoutGranted) == []
    (denied,) = net.replies("app-c1", client.CheckoutDenied)
    # NOT_SERVING: an app that still waited would fall back to its session at once.
    assert denied.reason is client.DenyReason.NOT_SERVING and "answered here already" in denied.detail


def test_a_session_repeat_after_a_give_back_still_takes_a_seat() -> None:
    """Only the direct ask is judged late: the session's own repeat of a request
    whose grant it gave back (it came after the app gave up) asks afresh."""
    net = started_pool(3)
    first = _grant_and_give_back(net)
    net.send("sess-c1", "s2", _req())
    net.run(net.now + 0.5)
    second = net.replies("sess-c1", CheckoutGranted)[-1]
    assert second.lease_id != first.lease_id
    assert list(net.nodes["s2"].member.leases.leases) == [second.lease_id]


def test_a_late_direct_ask_leaves_the_answer_of_a_waiting_fall_back_to_the_session() -> None:
    net = started_pool(3)
    node = net.nodes["s2"]
    first = CheckoutRequest(client_id="c0", session_id="sess-c0", request_id=1, feature="cad", version="2.0")
    net.carry("s2", node.from_client(ClientRef("c0"), first, net.now))  # s2's only seat
    net.carry("s2", node.from_client(ClientRef("sess-c1"), _req(), net.now))  # the fall-back waits for a borrow
    net.carry("s2", node.from_client(ClientRef("app-c1"), _req(direct=True), net.now))  # the late direct ask
    assert [w.client for w in node.serving.book.waiting] == [ClientRef("sess-c1")]
    net.run(net.now + 3.0)
    assert len(net.replies("sess-c1", CheckoutGranted) + net.replies("sess-c1", client.CheckoutDenied)) == 1
    assert net.replies("app-c1", CheckoutGranted) == []


def test_a_grants_request_is_kept_for_the_apps_transmit_bound_and_never_beyond_the_cap(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(serving, "RECENT_GRANTS_KEEP", 2)
    monkeypatch.setattr(serving, "RECENT_GRANTS_MAX", 4)
    net = started_pool(10)
    side = net.nodes["s2"].serving
    horizon = side.timing.app_transmit
    assert horizon == side.timing.lease_ttl

    def grant(rid: int, at: float) -> None:
        side._remember_grant(("sess", rid), direct_grant(lease_id=f"L{rid}", request_id=rid), at)

    for rid in range(4):
        grant(rid, 100.0 + rid)
    assert [k[1] for k in side.book.recent_grants] == [0, 1, 2, 3]  # all younger than T
    grant(4, 104.0)
    assert [k[1] for k in side.book.recent_grants] == [1, 2, 3, 4]  # the cap
    grant(5, 101.0 + horizon + 0.5)  # 0 and 1 are older than T now; KEEP = 2 stay whatever their age
    assert [k[1] for k in side.book.recent_grants] == [2, 3, 4, 5]
    grant(6, 104.0 + horizon + 0.5)
    assert [k[1] for k in side.book.recent_grants] == [5, 6]


def test_an_abandon_that_overtakes_its_open_still_gives_back_a_grant_made_for_it() -> None:
    """A direct ask went unanswered with no time left: the app's fall-back asks its
    session and gives up at once, and the abandon may come first (seed 67 of the
    shell model).  The request is still sent once, not kept; its grant, made for
    the direct ask, comes back and is given back."""
    core = session()
    core.abandon(5, 1.0)
    [(to, req)] = sent(core.checkout("cad", "2.0", 5, 1.001, server="s2"), CheckoutRequest)
    assert (to, req.request_id) == ("s2", 5) and core.outstanding() == ()
    [(to, rel)] = sent(core.receive("s2", direct_grant(request_id=5), 1.01), ReleaseRequest)
    assert (to, rel.lease_id) == ("s2", "L1") and core.held(1.01) == {}
    # Only once: a later checkout with another id is kept as usual.
    core.checkout("cad", "2.0", 6, 1.02)
    assert core.outstanding() == (6,)
