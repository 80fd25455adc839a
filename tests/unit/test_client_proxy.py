"""LicenseClient's checkout against a fake session (no Thespian): one request
id for the whole checkout, retries included, and replies matched by request id
and kind, so a late CheckoutResult is never read as the abandon's answer
(issue 11, defect 3)."""

from __future__ import annotations

import itertools
import threading
from collections import deque
from typing import Any

import pytest

from actors.protocol import admin
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
    client._started = Started(session)  # type: ignore[assignment]
    client.session = "session"
    client._ids = itertools.count(1)
    client._auths = {}
    client._lock = threading.Lock()
    client._closing = threading.Event()
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
