"""Lever 4 of issue 12 through real actors: after its first grant an app asks
its server directly (two hops, not four), its session adopts the grant and
renews it, and a release gives the seat back (docs/performance.md, "Lever 4")."""

from __future__ import annotations

import time
from typing import Any

import pytest


def _in_use(status: Any, server: str) -> int:
    feature = next(f for f in status.features if (f.feature, f.version) == ("cad", "2.0"))
    return int(next(u.in_use for u in feature.servers if u.server == server))


def test_a_direct_checkout_is_adopted_renewed_past_its_first_deadline_and_released(licpool_pool: Any) -> None:
    pool = licpool_pool()
    pool.wait_formed()
    pool.add_license(pool.license(10))
    client = pool.client("ws1/cad", prefer="s2")
    first = client.checkout("cad:2.0", timeout=5.0)
    direct = [client.checkout("cad:2.0", timeout=5.0) for _ in range(3)]
    assert client.grants["session"] == 1 and client.grants["direct"] == 3, client.grants
    assert all(a.direct and a.server == "s2" for a in direct) and not first.direct
    pool.wait_status(lambda s: _in_use(s, "s2") == 4, 5.0, "s2 to count four leases", name="s2")
    leases, _ = pool.link.sessions("cad", "2.0")
    assert {x.lease_id for x in leases} == {a.lease_id for a in [first, *direct]}
    # Only the session renews a lease: the direct ones outlive their first deadline.
    until = max(a.deadline for a in direct) + 2 * pool.cfg.timing.heartbeat_interval
    while time.monotonic() < until:
        time.sleep(0.05)
    assert not any(a.lost.is_set() for a in direct)
    assert all(a.deadline > until for a in direct)
    for a in direct:
        a.release()
    pool.wait_status(lambda s: _in_use(s, "s2") == 1, 5.0, "the direct leases' releases", name="s2")
    first.release()
    pool.wait_status(lambda s: _in_use(s, "s2") == 0, 5.0, "the last release", name="s2")


def test_licpool_direct_0_keeps_every_checkout_on_the_session(
    licpool_pool: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LICPOOL_DIRECT", "0")
    pool = licpool_pool()
    pool.wait_formed()
    pool.add_license(pool.license(10))
    client = pool.client("ws1/cad", prefer="s2")
    held = [client.checkout("cad:2.0", timeout=5.0) for _ in range(3)]
    assert client.grants["session"] == 3 and client.grants["direct"] == 0
    for a in held:
        a.release()
    pool.wait_status(lambda s: _in_use(s, "s2") == 0, 5.0, "the releases", name="s2")
