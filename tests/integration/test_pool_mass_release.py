"""The mass release through real actors (docs/performance.md, "The mass
release"): four ``LicenseClient``s hold 60 leases each on a 3-server pool and
give 54 each back at once, one thread per client (a loop of
``auth.release()``, as the scale run's apps did).  Every release reaches a
server (the pool counts only the kept leases soon after), and no kept lease is
lost over two lease times: the paced releases neither hang in the session nor
cost the kept leases their renewals.  The overload itself (a loaded host) is
the simulator's ``mass_release`` scenario; this checks the real paths."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

pytestmark = pytest.mark.integration

_CLIENTS, _LEASES, _KEEP = 4, 60, 6


def _in_use(status: Any) -> int:
    feature = next(f for f in status.features if (f.feature, f.version) == ("cad", "2.0"))
    return sum(u.in_use for u in feature.servers)


def _each(work: Any, n: int) -> None:
    errors: list[BaseException] = []

    def run(i: int) -> None:
        try:
            work(i)
        except BaseException as exc:  # the test reports it below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]


def test_a_burst_of_releases_reaches_the_servers_and_costs_no_kept_lease(licpool_pool: Any) -> None:
    pool = licpool_pool()
    pool.wait_formed()
    pool.add_license(pool.license(_CLIENTS * _LEASES + 30))
    clients = [pool.client(f"ws{i}/cad", prefer=pool.names[i % len(pool.names)]) for i in range(_CLIENTS)]
    held: list[list[Any]] = [[] for _ in clients]

    def take(i: int) -> None:
        for _ in range(_LEASES):
            held[i].append(clients[i].checkout("cad:2.0", timeout=20.0))

    _each(take, _CLIENTS)
    pool.wait_status(lambda s: _in_use(s) == _CLIENTS * _LEASES, 20.0, "every grant counted", name=pool.leader())

    def give_back(i: int) -> None:
        while len(held[i]) > _KEEP:
            held[i].pop().release()

    epoch = pool.wait_formed().epoch
    started = time.monotonic()
    _each(give_back, _CLIENTS)
    kept = [auth for h in held for auth in h]
    pool.wait_status(
        lambda s: _in_use(s) == len(kept), 20.0, "the pool to count only the kept leases", name=pool.leader()
    )
    released_after = time.monotonic() - started
    # Two lease times (T = 8 s): a kept lease that stopped being renewed is lost by then.
    until = time.monotonic() + 2 * pool.cfg.timing.lease_ttl
    while time.monotonic() < until:
        lost = [a.lease_id for a in kept if a.lost.is_set()]
        assert not lost, f"kept leases lost after the burst: {lost}"
        time.sleep(0.2)
    status = pool.wait_formed()
    assert _in_use(status) == len(kept)
    print(
        f"{_CLIENTS * (_LEASES - _KEEP)} releases counted by the pool {released_after:.2f} s after the burst "
        f"began; epoch {epoch} -> {status.epoch}"
    )
