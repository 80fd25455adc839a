"""The ClientSession actor carries out a core step whole or not at all (issue
11, defect 6).  The real actor object runs here without Thespian: ``send``,
``createActor`` and ``wakeupAfter`` are recorded, and the core is made to
raise in the middle of a step, after it has changed its state."""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

import pytest
from loguru import logger

from actors.core.effects import Ready
from actors.core.session import ClientSessionCore
from actors.core.timing import Timing
from actors.protocol import admin, client
from actors.shell import session_actor
from actors.shell.session_actor import ClientSession

SERVERS = ("s1", "s2", "s3")


class SessionUnderTest(ClientSession):
    def __init__(self) -> None:
        super().__init__()
        self.sent: list[tuple[Any, Any]] = []

    def send(self, targetAddr: Any, msg: Any) -> None:
        self.sent.append((targetAddr, msg))

    def createActor(self, actorClass: Any, *args: Any, **kwargs: Any) -> Any:
        return f"child:{actorClass.__name__}"

    def wakeupAfter(self, timePeriod: timedelta, payload: Any = None) -> None:
        pass


@pytest.fixture
def session(monkeypatch: pytest.MonkeyPatch) -> SessionUnderTest:
    monkeypatch.setattr(session_actor, "_quiet_below", lambda level: None)  # keeps the test's log sinks
    actor = SessionUnderTest()
    t = Timing()
    timing = (t.heartbeat_interval, t.failure_timeout, t.leader_lease, t.fence_timeout, t.lease_ttl, t.clock_drift)
    targets = tuple(admin.ResolveTarget(name=name, host="127.0.0.1", port=1000 + k) for k, name in enumerate(SERVERS))
    actor.receiveMsg_SessionStart(
        admin.SessionStart(
            pool="pool", client_id="ws1", session_id="ws1/1", servers=targets, timing=timing, prefer="s1"
        ),
        "app",
    )
    for name in SERVERS:
        actor.receiveMsg_PeerResolved(admin.PeerResolved(name=name, address=f"srv:{name}"), "child:Resolver")
    actor.receiveMsg_OpenCheckout(admin.OpenCheckout(request_id=1, feature="cad", version="2.0"), "app")
    assert any(isinstance(msg, client.CheckoutRequest) for _, msg in actor.sent)
    return actor


def test_a_step_that_raises_is_undone_and_its_message_dropped(
    session: SessionUnderTest, monkeypatch: pytest.MonkeyPatch
) -> None:
    original = ClientSessionCore.receive

    def half_done(self: ClientSessionCore, server: str, msg: Any, now: float) -> Ready:
        original(self, server, msg, now)  # the lease is taken...
        raise RuntimeError("core bug")  # ...and its Ready never leaves

    grant = client.CheckoutGranted(request_id=1, lease_id="s1.1.1", server="s1", feature="cad", version="2.0", ttl=30.0)
    lines: list[str] = []
    sink = logger.add(lines.append, level="ERROR")
    try:
        monkeypatch.setattr(ClientSessionCore, "receive", half_done)
        session.receiveMsg_CheckoutGranted(grant, "srv:s1")
    finally:
        logger.remove(sink)
    assert session.core is not None
    assert session.core.held(0.0) == {}, "the half-done step was kept: a lease the app never heard of"
    assert not any(isinstance(msg, admin.CheckoutResult) for _, msg in session.sent)
    assert any("core bug" in line or "RuntimeError" in line for line in lines), lines

    # The session goes on from the state before the step: the same grant, delivered again, is taken whole.
    monkeypatch.setattr(ClientSessionCore, "receive", original)
    session.receiveMsg_CheckoutGranted(grant, "srv:s1")
    assert list(session.core.held(1.0)) == ["s1.1.1"]
    results = [msg for to, msg in session.sent if isinstance(msg, admin.CheckoutResult)]
    assert [(r.granted, r.lease_id) for r in results] == [(True, "s1.1.1")]


def test_a_grant_that_came_before_the_abandon_is_released(session: SessionUnderTest) -> None:
    """Issue 11 defect 3: the grant reaches the session after the app's ask
    timed out but before its AbandonCheckout.  Its CheckoutResult goes to an
    ask nobody reads any more, so the abandon must give the seat back."""
    session.receiveMsg_CheckoutGranted(
        client.CheckoutGranted(request_id=1, lease_id="s1.1.1", server="s1", feature="cad", version="2.0", ttl=30.0),
        "srv:s1",
    )
    assert any(isinstance(msg, admin.CheckoutResult) and msg.granted for _, msg in session.sent)
    session.sent.clear()
    session.receiveMsg_AbandonCheckout(admin.AbandonCheckout(request_id=1), "app")
    assert (
        "srv:s1",
        client.ReleaseRequest(client_id="ws1", lease_id="s1.1.1", request_id=1, session_id="ws1/1"),
    ) in session.sent
    assert session.core is not None and session.core.held(0.0) == {}
    assert "s1.1.1" not in session.deadlines
    assert session.sent[-1] == (
        "app",
        admin.CheckoutAbandoned(request_id=1, heard=True),
    )  # a server did answer: TIMEOUT, not UNREACHABLE


def test_coalesced_adopts_are_adopted_in_one_step_and_a_released_one_is_given_back(
    session: SessionUnderTest,
) -> None:
    """``AdoptGrants``: every direct grant the app's adopter coalesced is held
    and renewed from now on, in one core step; one the app released before
    the adopts came (its release named the server) is given back, not kept."""
    grants = [
        client.CheckoutGranted(
            request_id=10 + k, lease_id=f"s2.1.{k}", server="s2", feature="cad", version="2.0", ttl=30.0
        )
        for k in range(3)
    ]
    session.receiveMsg_ReleaseLease(admin.ReleaseLease(lease_id="s2.1.1", server="s2"), "app")
    session.sent.clear()
    sent_at = time.monotonic()  # the session's own clock, as the app's adopter reads it
    session.receiveMsg_AdoptGrants(
        admin.AdoptGrants(adopts=tuple(admin.AdoptGrant(grant=g, sent_at=sent_at) for g in grants)), "app"
    )
    assert session.core is not None
    assert sorted(session.core.held(time.monotonic())) == ["s2.1.0", "s2.1.2"]
    assert not any(isinstance(msg, client.ReleaseRequest) and msg.lease_id != "s2.1.1" for _, msg in session.sent), (
        "an adopted lease was released"
    )
