"""LicenseClient's checkout against a fake session (no Thespian): one request
id for the whole checkout, retries included, and replies matched by request id
and kind, so a late CheckoutResult is never read as the abandon's answer
(issue 11, defect 3)."""

from __future__ import annotations

import itertools
import threading
import time
from collections import deque
from typing import Any

import pytest

from actors.core.timing import Timing
from actors.protocol import admin
from actors.protocol.client import CheckoutDenied, CheckoutGranted, CheckoutRequest, DenyReason
from actors.shell import client_proxy
from actors.shell.client_proxy import LicenseClient, LicenseDenied


class FakeContext:
    """``asys.private()``: ``ask`` sends and returns the first message queued
    for this context (None at its timeout); ``listen`` returns the next one."""

    def __init__(self, session: FakeSession) -> None:
        self.session = session
        self.inbox: deque[Any] = deque()

    def __enter__(self) -> FakeContext:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def ask(self, to: Any, msg: Any, timeout: float) -> Any:
        self.session.asked.append(msg)
        self.inbox.extend(self.session.answer(msg))
        return self.listen(timeout)

    def listen(self, timeout: float) -> Any:
        return self.inbox.popleft() if self.inbox else None

    def tell(self, to: Any, msg: Any) -> None:
        self.session.asked.append(msg)


class FakeSession:
    def __init__(self, script: dict[type, list[list[Any]]]) -> None:
        self.script = script
        self.asked: list[Any] = []

    def answer(self, msg: Any) -> list[Any]:
        answers = self.script.get(type(msg), [])
        return answers.pop(0) if answers else []


class FakeSystem:
    def __init__(self, session: FakeSession) -> None:
        self.session = session

    def private(self) -> FakeContext:
        return FakeContext(self.session)


class Started:
    def __init__(self, session: FakeSession) -> None:
        self.asys = FakeSystem(session)


def proxy(session: FakeSession) -> LicenseClient:
    client = LicenseClient.__new__(LicenseClient)
    started = Started(session)
    client._started = started  # type: ignore[assignment]
    client.session = "session"
    client._ids = itertools.count(1)
    client._auths = {}
    client._lock = threading.Lock()
    client._closing = threading.Event()
    client.client_id, client.session_id = "ws17/cad", "sess-1"
    client.timing = Timing()
    client._direct, client._route, client._direct_off_until = True, None, 0.0
    client.grants = {"direct": 0, "session": 0, "direct_unanswered": 0, "direct_denied": 0}
    client._endpoints = client_proxy._Endpoints(started.asys)
    client._adopter = client_proxy._Adopter(client._endpoints, "session")
    return client


def test_retries_through_no_majority_keep_one_request_id(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(client_proxy, "_RETRY_FIRST", 0.001)
    denied = admin.CheckoutResult(request_id=1, granted=False, reason="NO_MAJORITY")
    session = FakeSession(
        {
            admin.OpenCheckout: [
                [denied],
                [admin.CheckoutResult(request_id=1, granted=False, reason="NOT_SERVING")],
                [admin.CheckoutResult(request_id=1, granted=True, lease_id="L1", server="s2", deadline=1e12)],
            ]
        }
    )
    auth = proxy(session).checkout("cad", "2.0", timeout=5.0)
    assert auth.lease_id == "L1"
    assert [m.request_id for m in session.asked if isinstance(m, admin.OpenCheckout)] == [1, 1, 1]


def test_a_late_grant_is_not_read_as_the_abandons_answer() -> None:
    """The ask timed out; the grant came after all and its CheckoutResult
    reaches the context before CheckoutAbandoned.  The app is told TIMEOUT (the
    session heard a server, and releases the grant), never handed the seat."""
    late = admin.CheckoutResult(request_id=1, granted=True, lease_id="L1", server="s1", deadline=1e12)
    session = FakeSession(
        {admin.OpenCheckout: [[]], admin.AbandonCheckout: [[late, admin.CheckoutAbandoned(request_id=1, heard=True)]]}
    )
    client = proxy(session)
    with pytest.raises(LicenseDenied) as denied:
        client.checkout("cad", "2.0", timeout=0.01)
    assert denied.value.reason.value == "TIMEOUT"
    assert client.held() == []


def test_an_answer_for_another_request_is_skipped() -> None:
    session = FakeSession(
        {
            admin.OpenCheckout: [
                [
                    admin.CheckoutResult(request_id=9, granted=True, lease_id="L9", server="s1", deadline=1e12),
                    admin.CheckoutResult(request_id=1, granted=True, lease_id="L1", server="s1", deadline=1e12),
                ]
            ]
        }
    )
    assert proxy(session).checkout("cad", "2.0", timeout=1.0).lease_id == "L1"


def test_a_queued_checkout_asks_the_session_to_queue_a_little_less_than_its_timeout() -> None:
    session = FakeSession(
        {admin.OpenCheckout: [[admin.CheckoutResult(request_id=1, granted=False, reason="QUEUE_TIMEOUT")]]}
    )
    with pytest.raises(LicenseDenied) as denied:
        proxy(session).checkout("cad", "2.0", timeout=20.0, queue=True)
    assert denied.value.reason.value == "QUEUE_TIMEOUT"
    (opened,) = [m for m in session.asked if isinstance(m, admin.OpenCheckout)]
    assert opened.queue and 18.0 <= opened.queue_timeout < 20.0  # the session answers before the ask gives up


def test_a_queued_checkout_whose_ask_times_out_is_queue_timeout_and_holds_no_seat() -> None:
    late = admin.CheckoutResult(request_id=1, granted=True, lease_id="L1", server="s1", deadline=1e12)
    session = FakeSession(
        {admin.OpenCheckout: [[]], admin.AbandonCheckout: [[late, admin.CheckoutAbandoned(request_id=1, heard=True)]]}
    )
    client = proxy(session)
    with pytest.raises(LicenseDenied) as denied:
        client.checkout("cad", "2.0", timeout=0.01, queue=True)
    assert denied.value.reason.value == "QUEUE_TIMEOUT"
    assert client.held() == []


def test_queue_full_is_raised_at_once() -> None:
    session = FakeSession(
        {admin.OpenCheckout: [[admin.CheckoutResult(request_id=1, granted=False, reason="QUEUE_FULL", detail="x")]]}
    )
    with pytest.raises(LicenseDenied) as denied:
        proxy(session).checkout("cad", "2.0", timeout=20.0, queue=True)
    assert denied.value.reason.value == "QUEUE_FULL"
    assert len(session.asked) == 1


def test_count_linger_idle_busy_and_the_idle_reason_reach_the_session_and_the_app() -> None:
    granted = admin.CheckoutResult(request_id=1, granted=True, lease_id="L1", server="s1", deadline=1e12, seats=3)
    session = FakeSession({admin.OpenCheckout: [[granted]]})
    client = proxy(session)
    auth = client.checkout("cad:2.0", timeout=1.0, count=3, linger=2.5)
    (opened,) = [m for m in session.asked if isinstance(m, admin.OpenCheckout)]
    assert (opened.count, opened.linger) == (3, 2.5) and auth.seats == 3
    auth.idle()
    auth.busy()
    marks = [m for m in session.asked if isinstance(m, admin.MarkIdle)]
    assert [(m.lease_id, m.idle) for m in marks] == [("L1", True), ("L1", False)]
    client._notice(admin.LeaseNotice(kind="lost", lease_id="L1", server="s1", detail="s1 says lost", reason="IDLE"))
    assert auth.lost.is_set() and auth.lost_reason == "IDLE: s1 says lost"
    for bad in ({"count": 0}, {"count": True}, {"linger": -1.0}):
        with pytest.raises(ValueError):
            client.checkout("cad:2.0", timeout=1.0, **bad)


def test_a_queued_multi_seat_checkout_is_refused_with_one_line() -> None:
    session = FakeSession({})
    with pytest.raises(ValueError, match="queue=True with count > 1 is not supported"):
        proxy(session).checkout("cad:2.0", timeout=5.0, queue=True, count=2)
    assert session.asked == []


# ---- lever 4: the app asks its server directly (docs/performance.md) -------------------------


def _granted_through_session(request_id: int = 1, lease_id: str = "L1") -> admin.CheckoutResult:
    return admin.CheckoutResult(
        request_id=request_id, granted=True, lease_id=lease_id, server="s2", deadline=1e12, route="addr-s2"
    )


def _direct_grant(request_id: int, lease_id: str) -> CheckoutGranted:
    return CheckoutGranted(
        request_id=request_id, lease_id=lease_id, server="s2", feature="cad", version="2.0", ttl=30.0
    )


def test_after_a_grant_the_next_checkout_asks_that_server_and_the_session_adopts_it() -> None:
    session = FakeSession(
        {admin.OpenCheckout: [[_granted_through_session()]], CheckoutRequest: [[_direct_grant(2, "L2")]]}
    )
    client = proxy(session)
    client.checkout("cad", "2.0", timeout=5.0)
    t0 = time.monotonic()
    auth = client.checkout("cad", "2.0", timeout=5.0)
    client._adopter.stop()  # its thread tells the session; stop waits for it
    (req,) = [m for m in session.asked if isinstance(m, CheckoutRequest)]
    assert req.direct and req.request_id == 2 and req.session_id == "sess-1" and not req.exact_version
    (adopt,) = [m for m in session.asked if isinstance(m, admin.AdoptGrant)]
    assert adopt.grant.lease_id == "L2" and t0 <= adopt.sent_at <= time.monotonic()
    assert (auth.lease_id, auth.server, auth.direct) == ("L2", "s2", True)
    assert auth.deadline == adopt.sent_at + client.timing.holder_valid_for(30.0)  # as the session times it
    assert client.grants["direct"] == 1 and client.grants["session"] == 1
    auth.release()
    (rel,) = [m for m in session.asked if isinstance(m, admin.ReleaseLease)]
    assert (rel.lease_id, rel.server) == ("L2", "s2")  # the session may not have adopted it yet


def test_an_unanswered_direct_ask_falls_back_to_the_session_which_asks_that_server_first() -> None:
    session = FakeSession(
        {
            admin.OpenCheckout: [[_granted_through_session()], [_granted_through_session(2, "L2")]],
            CheckoutRequest: [[]],
        }
    )
    client = proxy(session)
    client.timing = Timing(heartbeat_interval=0.01)  # client_retry 0.02 s: the direct ask's wait
    client.checkout("cad", "2.0", timeout=5.0)
    auth = client.checkout("cad", "2.0", timeout=5.0)
    opened = [m for m in session.asked if isinstance(m, admin.OpenCheckout)]
    assert [(m.request_id, m.server) for m in opened] == [(1, ""), (2, "s2")]
    assert auth.lease_id == "L2" and not auth.direct and client.grants["direct_unanswered"] == 1
    # Direct asks pause: the next checkout goes through the session at once.
    session.script[admin.OpenCheckout] = [[_granted_through_session(3, "L3")]]
    client.checkout("cad", "2.0", timeout=5.0)
    assert len([m for m in session.asked if isinstance(m, CheckoutRequest)]) == 1


def test_a_direct_denial_is_asked_again_through_the_session_which_has_the_last_word() -> None:
    denied = CheckoutDenied(request_id=2, reason=DenyReason.NO_SEATS, server="s2")
    session = FakeSession(
        {
            admin.OpenCheckout: [
                [_granted_through_session()],
                [admin.CheckoutResult(request_id=2, granted=False, reason="NO_SEATS", detail="none left")],
            ],
            CheckoutRequest: [[denied]],
        }
    )
    client = proxy(session)
    client.checkout("cad", "2.0", timeout=5.0)
    with pytest.raises(LicenseDenied) as refused:
        client.checkout("cad", "2.0", timeout=5.0)
    assert refused.value.reason.value == "NO_SEATS" and client.grants["direct_denied"] == 1
    assert [m.server for m in session.asked if isinstance(m, admin.OpenCheckout)] == ["", "s2"]


def test_queued_resumed_and_disabled_checkouts_never_ask_directly(monkeypatch: pytest.MonkeyPatch) -> None:
    session = FakeSession(
        {
            admin.OpenCheckout: [
                [_granted_through_session()],
                [_granted_through_session(2, "L1")],
                [_granted_through_session(3, "L3")],
            ]
        }
    )
    client = proxy(session)
    client.checkout("cad", "2.0", timeout=5.0)
    client.checkout("cad", "2.0", timeout=5.0, lease_id="L1")
    client._direct = False
    client.checkout("cad", "2.0", timeout=5.0)
    assert not [m for m in session.asked if isinstance(m, CheckoutRequest)]
    monkeypatch.setenv("LICPOOL_DIRECT", "0")
    assert not client_proxy.direct_enabled()


def test_one_endpoint_per_thread_is_kept_and_closed_with_the_client() -> None:
    system = FakeSystem(FakeSession({}))
    endpoints = client_proxy._Endpoints(system)
    with endpoints.get() as first, endpoints.get() as again:
        assert first is again
    seen: list[Any] = []

    def other() -> None:
        with endpoints.get() as ctx:
            seen.append(ctx)

    for _ in range(2):
        t = threading.Thread(target=other)
        t.start()
        t.join()
    assert seen[0] is not first and seen[1] is not seen[0]
    # The first worker's endpoint was closed when the second opened its own (the
    # only time a call scans); a thread's later calls take its own at once.
    assert [x[2] for x in endpoints._open.values()] == [first, seen[1]]
    endpoints.close()
    assert endpoints._open == {}


def test_direct_grants_within_the_adopt_window_reach_the_session_in_one_message_in_order() -> None:
    """A tell and a session step per direct grant cost a checkout 0.63 of its
    1.46 ms (docs/performance.md, "Coalesced adopts"): the adopter waits
    ``ADOPT_WINDOW`` after a grant and tells the session of every grant since
    in one ``AdoptGrants``; a grant alone still goes as ``AdoptGrant``."""
    session = FakeSession(
        {
            admin.OpenCheckout: [[_granted_through_session()]],
            CheckoutRequest: [[_direct_grant(n, f"L{n}")] for n in (2, 3, 4, 5)],
        }
    )
    client = proxy(session)
    client._adopter.stop()
    client._adopter = client_proxy._Adopter(client._endpoints, "session", window=0.5)
    client.checkout("cad", "2.0", timeout=5.0)
    held = [client.checkout("cad", "2.0", timeout=5.0) for _ in range(3)]  # well inside 0.5 s
    deadline = time.monotonic() + 5.0
    while not any(isinstance(m, admin.AdoptGrants) for m in session.asked) and time.monotonic() < deadline:
        time.sleep(0.01)
    (batch,) = [m for m in session.asked if isinstance(m, admin.AdoptGrants)]
    assert [a.grant.lease_id for a in batch.adopts] == ["L2", "L3", "L4"]
    assert [a.grant.lease_id for a in batch.adopts] == [h.lease_id for h in held]
    assert not [m for m in session.asked if isinstance(m, admin.AdoptGrant)]
    alone = client.checkout("cad", "2.0", timeout=5.0)
    client._adopter.stop()  # a grant waiting in the window is sent before the adopter ends
    (single,) = [m for m in session.asked if isinstance(m, admin.AdoptGrant)]
    assert single.grant.lease_id == alone.lease_id == "L5"
