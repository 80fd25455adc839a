"""Queued checkouts through real actors (issue 14 item 1; docs/licenses.md,
"Queued checkouts"): ``LicenseClient.checkout(..., queue=True)`` waits for a
seat, in the pool's order, across servers and across the leader's SIGKILL."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from actors.protocol.client import DenyReason
from actors.shell.client_proxy import LicenseDenied

pytestmark = pytest.mark.integration

# The sessions re-send a queued checkout every 2h and a server drops a waiter
# silent for f: a little more room than FAST_TIMING on a loaded test host.
TIMING = {
    "heartbeat_interval": 0.2,
    "failure_timeout": 1.0,
    "leader_lease": 1.5,
    "fence_timeout": 1.5,
    "lease_ttl": 15.0,
}


class Waiter(threading.Thread):
    """One app thread blocked in ``checkout(queue=True)``."""

    def __init__(self, client: Any, timeout: float = 60.0) -> None:
        super().__init__(daemon=True)
        self.client, self.timeout = client, timeout
        self.auth: Any = None
        self.error: BaseException | None = None
        self.done_at = 0.0

    def run(self) -> None:
        try:
            self.auth = self.client.checkout("cad:2.0", timeout=self.timeout, queue=True)
        except BaseException as exc:  # the test reports it
            self.error = exc
        self.done_at = time.monotonic()


def _queued(pool: Any, n: int, timeout: float = 10.0) -> None:
    """Wait until the leader's committed queue of cad 2.0 holds ``n`` waiters."""
    pool.wait_status(lambda s: len(s.queue) == n, timeout, f"{n} waiter(s) in the committed queue")


def test_a_queued_checkout_is_granted_when_another_app_releases_at_a_different_server(licpool_pool: Any) -> None:
    pool = licpool_pool(timing=TIMING)
    leader = pool.wait_formed().leader
    holder_at, waiter_at = [n for n in pool.names if n != leader]
    pool.add_license(pool.license(1, distribution=f"{holder_at}:1"))
    held = pool.client("ws-holder", prefer=holder_at).checkout("cad:2.0", timeout=5.0)
    assert held.server == holder_at
    plain = pool.client("ws-plain", prefer=waiter_at)
    waiting = Waiter(pool.client("ws-queued", prefer=waiter_at))
    waiting.start()
    _queued(pool, 1)
    with pytest.raises(LicenseDenied) as denied:  # a plain checkout is still refused at once
        plain.checkout("cad:2.0", timeout=5.0)
    assert denied.value.reason is DenyReason.NO_SEATS
    assert waiting.is_alive()
    released_at = time.monotonic()
    held.release()
    waiting.join(20.0)
    assert waiting.error is None, waiting.error
    assert waiting.auth is not None and waiting.auth.server == waiter_at
    gap = waiting.done_at - released_at
    print(f"\nqueued checkout at {waiter_at} granted {gap:.3f} s after the release at {holder_at}")
    _queued(pool, 0)


def test_a_queued_checkout_keeps_its_place_across_the_leaders_sigkill(licpool_pool: Any) -> None:
    pool = licpool_pool(timing=TIMING)
    leader = pool.wait_formed().leader
    holder_at, other = [n for n in pool.names if n != leader]
    pool.add_license(pool.license(1, distribution=f"{holder_at}:1"))
    held = pool.client("ws-holder", prefer=holder_at).checkout("cad:2.0", timeout=5.0)
    first = Waiter(pool.client("ws-first", prefer=other))  # waits at the server without the seat
    first.start()
    _queued(pool, 1)
    second = Waiter(pool.client("ws-second", prefer=holder_at))  # waits where the seat will free
    second.start()
    _queued(pool, 2)

    pool.procs.kill(leader)
    rest = tuple(n for n in pool.names if n != leader)
    status = pool.wait_formed(up=rest, timeout=30.0)
    assert status.leader != leader
    assert [w.client_id for w in status.queue] == ["ws-first", "ws-second"]

    held.release()  # at holder_at, where the second waits: the seat goes to the first, at the other server
    first.join(30.0)
    assert first.error is None, first.error
    assert first.auth is not None and first.auth.server == other
    assert second.is_alive() and second.auth is None
    first.auth.release()
    second.join(30.0)
    assert second.error is None, second.error
    assert second.auth is not None
