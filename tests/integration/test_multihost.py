"""Across machines: three servers and a client app in four network namespaces.

Each "host" is a network namespace with one veth link to a bridge that lives in
a fifth namespace (the switch), on 10.77.0.0/24.  Nothing is added to the
test's own namespace, and no traffic goes anywhere but these addresses.  Each
server runs as ``ip netns exec <ns> python -m actors server ...`` (``ip netns
exec`` execs in place, so the launcher is still the leader of its process
group) and binds its namespace's address from the config (``wire.restrict_bind``);
the client app (tests/integration/clientapp.py) runs in the client's namespace
and binds the address that routes to the servers.

The test cuts the cable of the client's server (``ip link set eth0 down`` in
that server's namespace, the server keeps running) and checks that the client
fails over to another server and keeps its lease, renewed there.

Needs root and ``ip netns``; skipped elsewhere.  The namespace plumbing is
tests/netns.py (shared with tests/chaos/).  Teardown stops every process,
kills whatever is still inside a namespace, deletes every namespace (which
deletes the veths and the bridge with them) and fails the test if anything
had to be killed or could not be deleted.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.netns import Network, netns_unavailable

pytestmark = pytest.mark.multihost

SUBNET = "10.77.0"
SERVER_HOSTS = {"s1": f"{SUBNET}.1", "s2": f"{SUBNET}.2", "s3": f"{SUBNET}.3"}
CLIENT_HOST = ("c", f"{SUBNET}.10")
ADMIN_PORT = 1950


class NamespacedPool:
    """A licpool pool whose servers and client apps live in their own namespaces."""

    def __init__(self, network: Network, harness: Any, make_app: Callable[..., Any]) -> None:
        self.network = network
        self.harness = harness
        self._make_app = make_app
        self.apps: list[Any] = []

    def app(self, client_id: str, prefer: str | None = None) -> Any:
        app = self._make_app(self.harness.config, client_id, prefer, tuple(self.network.exec_prefix("c")))
        self.apps.append(app)
        return app

    def close(self) -> list[str]:
        problems = [x for app in reversed(self.apps) for x in app.close()]
        problems += self.harness.close()
        return problems + self.network.destroy()


@pytest.fixture
def namespaced_pool(licpool_pool: Any, client_apps: Any) -> Iterator[NamespacedPool]:
    """Set up after ``licpool_pool`` and ``client_apps``, so torn down before
    them: the apps and servers are stopped here, before their namespaces go
    (those fixtures' own checks then find nothing left)."""
    why = netns_unavailable()
    if why is not None:
        pytest.skip(why)
    network = Network()
    pool: NamespacedPool | None = None
    try:
        try:
            network.build({**SERVER_HOSTS, CLIENT_HOST[0]: CLIENT_HOST[1]})
        except subprocess.CalledProcessError as exc:
            if not network.created:
                pytest.skip(f"cannot create a network namespace here: {exc.stderr.strip()}")
            raise
        harness = licpool_pool(
            start=False, addresses=[(a, ADMIN_PORT) for a in SERVER_HOSTS.values()], wrap=network.exec_prefix
        )
        pool = NamespacedPool(network, harness, client_apps)
        harness.start()
        yield pool
    finally:
        problems = pool.close() if pool is not None else network.destroy()
    if problems:
        pytest.fail("; ".join(problems))


def _poll(predicate: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        found = predicate()
        if found:
            return found
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.05)


def _feature(status: dict[str, Any]) -> dict[str, Any]:
    return next(f for f in status["features"] if (f["feature"], f["version"]) == ("cad", "2.0"))


def _listen_addresses(pid: int, port: int) -> set[str]:
    """Addresses that listen on ``port`` in the network namespace of ``pid``."""
    import socket

    found = set()
    for line in Path(f"/proc/{pid}/net/tcp").read_text().splitlines()[1:]:
        cols = line.split()
        hex_ip, hex_port = cols[1].rsplit(":", 1)
        if cols[3] == "0A" and int(hex_port, 16) == port:
            found.add(socket.inet_ntoa(int(hex_ip, 16).to_bytes(4, "little")))
    return found


def test_a_client_keeps_its_lease_when_its_servers_link_is_cut(namespaced_pool: NamespacedPool) -> None:
    pool = namespaced_pool
    harness = pool.harness
    admin = pool.app("mh-admin")

    def formed() -> dict[str, Any] | None:
        s = admin.call("status")
        ups = {x["name"] for x in s.get("servers", ()) if x["up"] and x["status"] == "live"}
        ok = s["ok"] and s["leader"] is not None and s["answered_by"] == s["leader"] and s["serving"]
        return s if ok and ups == set(SERVER_HOSTS) else None

    status = _poll(formed, 30.0, "a leader and all three servers up across the namespaces")
    leader = status["leader"]
    for name, address in SERVER_HOSTS.items():
        pid = harness.procs.procs[name].pid
        assert _listen_addresses(pid, ADMIN_PORT) == {address}, f"{name} must bind only {address}"

    added = admin.call("add_license", code=harness.license(10))
    assert added["ok"], added
    for name in SERVER_HOSTS:

        def applied(n: str = name) -> Any:
            s = admin.call("status", name=n)
            return s["ok"] and s["applied"] >= added["index"]

        _poll(applied, 10.0, f"{name} to apply the license")

    victim = next(n for n in SERVER_HOSTS if n != leader)
    client = pool.app("mh-client", prefer=victim)
    granted = client.checkout(timeout=5.0)
    assert granted["ok"] and granted["server"] == victim, granted
    _poll(
        lambda: _feature(admin.call("status"))["servers"][victim]["in_use"] == 1,
        10.0,
        f"the lease at {victim} to be committed",
    )

    cut_at = time.monotonic()
    pool.network.cut(victim)

    def moved() -> dict[str, Any] | None:
        (auth,) = client.state()
        return auth if auth["server"] != victim or auth["lost"] else None

    auth = _poll(moved, 15.0, "the client to fail over")
    gap = time.monotonic() - cut_at
    assert not auth["lost"], auth["lost_reason"]
    assert harness.procs.procs[victim].poll() is None, "the cut server is partitioned, not dead"

    t = harness.cfg.timing
    renewed_past = cut_at + t.lease_ttl * (1 - t.clock_drift)
    auth = _poll(lambda: (a := client.state()[0])["deadline"] > renewed_past and a, 10.0, "a renewal at the new server")
    assert not auth["lost"] and auth["server"] != victim

    def settled() -> dict[str, Any] | None:
        s = admin.call("status")
        if not s["ok"] or s["leader"] is None:
            return None
        cut_off = next(x for x in s["servers"] if x["name"] == victim)
        uses = _feature(s)["servers"]
        return s if not cut_off["up"] and uses[auth["server"]]["in_use"] == 1 else None

    status = _poll(settled, 15.0, f"the pool to show {victim} down and the seat at {auth['server']}")
    feature = _feature(status)
    allocated = sum(x["allocated"] for x in feature["servers"].values())
    assert allocated + feature["free_pool"] + feature["in_flight"] == feature["total"]
    shown = next(x["status"] for x in status["servers"] if x["name"] == victim)
    print(
        f"\n{victim}'s link cut (leader {leader}): the client's lease seated at {auth['server']} {gap:.3f} s "
        f"after the cut, renewed there; {victim} shown {shown}"
    )
