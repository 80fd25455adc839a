"""Crashes under a running pool: a client's server, the leader, a client app.

Every "host" crash is a SIGKILL of the server's whole process group (its
launcher, admin, logger and actors).  The measured gaps are printed (run with
``-s``) and bounded by the documented timing.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest


def _feature(status: Any, feature: str = "cad", version: str = "2.0") -> Any:
    return next(f for f in status.features if (f.feature, f.version) == (feature, version))


def _use(status: Any, server: str) -> Any:
    return next(u for u in _feature(status).servers if u.server == server)


def _wait(predicate: Any, timeout: float, what: str) -> float:
    start = time.monotonic()
    deadline = start + timeout
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.01)
    return time.monotonic() - start


def test_a_client_keeps_its_lease_when_its_server_host_dies(licpool_pool: Any) -> None:
    pool = licpool_pool()
    leader = pool.wait_formed().leader
    victim = next(n for n in pool.names if n != leader)
    pool.add_license(pool.license(10))
    client = pool.client("ws-fo", prefer=victim)
    auth = client.checkout("cad:2.0", timeout=5.0)
    assert auth.server == victim
    # Let the holder report the lease, so the registry knows it is live there.
    pool.wait_status(lambda s: _use(s, victim).in_use == 1, 5.0, "the lease to be committed")

    killed_at = time.monotonic()
    pool.procs.kill(victim)
    gap = _wait(lambda: auth.server != victim or auth.lost.is_set(), 7.0, "the client to fail over")
    assert not auth.lost.is_set(), auth.lost_reason
    t = pool.cfg.timing
    # Renewed at the new server: its deadline moves past the kill plus a fresh lease.
    _wait(lambda: auth.deadline > killed_at + t.lease_ttl * (1 - t.clock_drift), 5.0, "a renewal after fail-over")
    assert not auth.lost.is_set()
    bound = 2 * t.failure_timeout + 2 * t.fence_timeout * (1 + t.clock_drift) + 10 * t.heartbeat_interval
    print(
        f"\nclient fail-over after its server's SIGKILL: seated at {auth.server} {gap:.3f} s after the kill "
        f"(bound {bound:.2f} s, lease_ttl {t.lease_ttl} s)"
    )
    assert gap < bound


def test_after_the_leader_dies_a_new_leader_grants_a_borrow(licpool_pool: Any) -> None:
    pool = licpool_pool()
    old = pool.wait_formed().leader
    borrower = next(n for n in pool.names if n != old)
    pool.add_license(pool.license(10, distribution=f"{borrower}:2"))
    client = pool.client("ws-borrow", prefer=borrower)
    held = [client.checkout("cad:2.0", timeout=5.0) for _ in range(2)]
    # Holding 2 of 2 passes the threshold, so the borrower may already have
    # borrowed from the old leader: measure what the survivors own before the kill.
    rest = tuple(n for n in pool.names if n != old)
    settled = pool.wait_status(lambda s: _feature(s).in_flight == 0, 5.0, "the borrow before the kill to settle")
    owned = sum(_use(settled, n).allocated for n in rest)

    killed_at = time.monotonic()
    pool.procs.kill(old)
    new = pool.wait_formed(up=rest).leader
    elected = time.monotonic() - killed_at
    assert new != old
    # Past every seat the survivors owned (the others sit at the dead leader or
    # in the free pool): only a borrow the new leader commits can seat the next.
    extra = [client.checkout("cad:2.0", timeout=10.0) for _ in range(owned - len(held) + 1)]
    granted = time.monotonic() - killed_at
    status = pool.wait_status(
        lambda s: (
            sum(_use(s, n).allocated for n in rest) > owned and sum(u.in_use for u in _feature(s).servers) == owned + 1
        ),
        5.0,
        "the new leader's borrow and the seats in use to show",
    )
    f = _feature(status)
    assert sum(u.allocated for u in f.servers) + f.free_pool + f.in_flight == f.total
    assert not any(x.lost.is_set() for x in held + extra)
    print(
        f"\nleader {old} SIGKILLed: {new} leads after {elected:.3f} s; the survivors owned {owned} seats; "
        f"seat {owned + 1} granted at {extra[-1].server} {granted:.3f} s after the kill"
    )


_CLIENT_APP = textwrap.dedent("""
    import sys, time
    from actors.client import LicenseClient
    client = LicenseClient.from_config(sys.argv[1], client_id="doomed", prefer=sys.argv[2])
    auth = client.checkout("cad:2.0", timeout=10)
    print(auth.lease_id, flush=True)
    time.sleep(600)
""")


def _processes_running(cmdline: bytes) -> list[int]:
    found = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                if Path(f"/proc/{name}/cmdline").read_bytes() == cmdline:
                    stat = Path(f"/proc/{name}/stat").read_text()
                    if stat[stat.rindex(")") + 2] not in "ZX":
                        found.append(int(name))
            except OSError:
                continue
    return found


def test_a_killed_client_app_gives_its_seat_back_within_ttl_plus_failure_timeout(
    licpool_pool: Any, tmp_path: Path
) -> None:
    pool = licpool_pool()
    leader = pool.wait_formed().leader
    pool.add_license(pool.license(10))
    script = tmp_path / "client_app.py"
    script.write_text(_CLIENT_APP)
    root = str(Path(__file__).resolve().parents[2])
    cmd = [sys.executable, str(script), str(pool.config), leader]
    app = subprocess.Popen(cmd, stdout=subprocess.PIPE, env={**os.environ, "PYTHONPATH": root})
    cmdline = b"\0".join(x.encode() for x in cmd) + b"\0"
    try:
        assert app.stdout is not None
        lease_id = app.stdout.readline().decode().strip()
        assert lease_id.startswith(f"{leader}.")
        pool.wait_status(lambda s: _use(s, leader).in_use == 1, 5.0, "the client's seat", name=leader)
        killed_at = time.monotonic()
        app.send_signal(signal.SIGKILL)
        app.wait(5)
        # The app's session actor notices its app is gone and stops the app's actor system.
        _wait(lambda: not _processes_running(cmdline), 5.0, "the app's actor system to stop")
        system_gone = time.monotonic() - killed_at
        t = pool.cfg.timing
        bound = t.lease_ttl + t.failure_timeout
        pool.wait_status(lambda s: _use(s, leader).in_use == 0, bound + 2.0, "the seat to come back", name=leader)
        freed = time.monotonic() - killed_at
    finally:
        if app.poll() is None:
            app.kill()
            app.wait(5)
        for pid in _processes_running(cmdline):
            os.kill(pid, signal.SIGKILL)
    print(
        f"\nclient app SIGKILLed: its actor system gone after {system_gone:.3f} s; seat free after "
        f"{freed:.3f} s (lease_ttl + failure_timeout = {bound:.2f} s)"
    )
    assert freed <= bound + 0.5
