"""Finding each other (docs/discovery.md) and coming back: cold starts in any
order with servers down, restarts of one and then two servers in sequence, and
a server that stalls (SIGSTOP) for two failure timeouts.

A client holds a lease through all of it without doing anything.
"""

from __future__ import annotations

import signal
import threading
import time
from typing import Any


def _feature(status: Any) -> Any:
    return next(f for f in status.features if (f.feature, f.version) == ("cad", "2.0"))


def _in_use(status: Any) -> int:
    return int(sum(u.in_use for u in _feature(status).servers))


def _incarnation(status: Any, name: str) -> int:
    return int(next(s.incarnation for s in status.servers if s.name == name))


def test_cold_start_in_reverse_order_with_a_server_down_then_late(licpool_pool: Any) -> None:
    pool = licpool_pool(start=False)
    pool.start("s3")
    alone = pool.wait_status(lambda s: True, 10.0, "s3 to answer on its own", name="s3")
    assert alone.leader is None  # one of three is no majority: no leader, and no one else to find
    t0 = time.monotonic()
    pool.start("s2")
    formed = pool.wait_formed(up=("s2", "s3"))
    majority_after = time.monotonic() - t0
    assert formed.leader in ("s2", "s3")
    down = next(s for s in formed.servers if s.name == "s1")
    assert not down.up
    t0 = time.monotonic()
    pool.start("s1")
    pool.wait_formed()
    joined_after = time.monotonic() - t0

    # The lookup every server and client uses: the host admin's status, no convention.
    link = pool.link
    t0 = time.monotonic()
    for _ in range(20):
        assert link.resolve("s1", fresh=True) is not None
    lookup_ms = (time.monotonic() - t0) / 20 * 1000
    print(
        f"\ncold start s3, s2, s1: a leader {majority_after:.3f} s after the second server started; "
        f"s1 rejoined {joined_after:.3f} s after its start; one address lookup {lookup_ms:.2f} ms"
    )


def test_restart_one_server_then_two_in_sequence_while_a_client_holds_a_lease(licpool_pool: Any) -> None:
    pool = licpool_pool()
    pool.wait_formed()
    pool.add_license(pool.license(10))
    client = pool.client("ws-restart", prefer="s2")
    auth = client.checkout("cad:2.0", timeout=5.0)
    timings = []
    for name in ("s1", "s2", "s3"):
        before = pool.wait_formed()
        inc = _incarnation(before, name)
        t0 = time.monotonic()
        pool.procs.kill(name)
        pool.start(name)
        pool.wait_status(
            lambda s, n=name, i=inc: _incarnation(s, n) > i and all(x.up for x in s.servers) and s.leader is not None,
            20.0,
            f"{name} to rejoin as a new incarnation",
        )
        timings.append(f"{name} {time.monotonic() - t0:.2f} s")
        assert not auth.lost.is_set(), auth.lost_reason
    status = pool.wait_status(lambda s: _in_use(s) == 1, 10.0, "the one seat to be counted once")
    f = _feature(status)
    assert sum(u.allocated for u in f.servers) + f.free_pool + f.in_flight == f.total
    assert not auth.lost.is_set()
    print(f"\nkill + restart + rejoin, one after the other: {', '.join(timings)}; the lease is at {auth.server}")


def test_a_server_stopped_for_two_failure_timeouts_comes_back(licpool_pool: Any) -> None:
    pool = licpool_pool()
    leader = pool.wait_formed().leader
    pool.add_license(pool.license(10))
    client = pool.client("ws-stop", prefer=leader)
    auth = client.checkout("cad:2.0", timeout=5.0)
    stall = 2 * pool.cfg.timing.failure_timeout
    t0 = time.monotonic()
    pool.procs.signal(leader, signal.SIGSTOP)
    try:
        others = tuple(n for n in pool.names if n != leader)
        pool.wait_status(lambda s: s.leader in others, 10.0, "the others to elect a leader", name=others[0])
        elected = time.monotonic() - t0
        remaining = stall - (time.monotonic() - t0)
        if remaining > 0:
            time.sleep(remaining)  # the stall itself is the scenario: the stopped host stays stopped 2f
    finally:
        pool.procs.signal(leader, signal.SIGCONT)
    resumed = time.monotonic()
    pool.wait_formed()
    back = time.monotonic() - resumed
    assert not auth.lost.is_set(), auth.lost_reason
    status = pool.wait_status(lambda s: _in_use(s) == 1, 10.0, "the seat to be counted once")
    assert all(x.up for x in status.servers)
    # The client still renews: its deadline lies a fresh lease_ttl ahead.
    t = pool.cfg.timing
    deadline = time.monotonic() + 5.0
    while auth.deadline < time.monotonic() + t.lease_ttl * 0.9 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert auth.deadline >= time.monotonic() + t.lease_ttl * 0.8
    print(
        f"\nleader {leader} SIGSTOPped {stall:.1f} s: a new leader after {elected:.3f} s; all servers up "
        f"{back:.3f} s after SIGCONT; the lease is at {auth.server}"
    )


def test_a_checkout_waits_out_a_lost_majority_within_its_timeout(licpool_pool: Any) -> None:
    """With two of three servers stopped, the third answers NO_MAJORITY; the
    checkout keeps asking and is granted once one of them is back."""
    pool = licpool_pool()
    leader = pool.wait_formed().leader
    pool.add_license(pool.license(10))
    stopped = [n for n in pool.names if n != "s3"]
    for name in stopped:
        pool.procs.signal(name, signal.SIGSTOP)
    try:
        # s3's serving lease runs out: it now denies every checkout.
        pool.wait_status(lambda s: not s.serving, 10.0, "s3 to stop serving", name="s3")
        client = pool.client("ws-wait", prefer="s3")
        back_at: list[float] = []

        def resume() -> None:
            back_at.append(time.monotonic())
            pool.procs.signal(stopped[0], signal.SIGCONT)

        timer = threading.Timer(1.5, resume)
        timer.start()
        t0 = time.monotonic()
        try:
            auth = client.checkout("cad:2.0", timeout=20.0)
        finally:
            timer.cancel()
            timer.join()
        granted_at = time.monotonic()
        granted = granted_at - t0
    finally:
        for name in stopped:
            pool.procs.signal(name, signal.SIGCONT)
    # Without the retry the first NO_MAJORITY is raised at once, before the timer fires.
    assert back_at and back_at[0] <= granted_at, "granted while no majority was up"
    assert auth.lease_id and not auth.lost.is_set()
    print(
        f"\n{' and '.join(stopped)} SIGSTOPped (the leader was {leader}): a checkout at s3 was granted by "
        f"{auth.server} {granted:.3f} s after it was asked, {granted - 1.5:.3f} s after {stopped[0]} resumed"
    )
