"""Network namespaces for tests: "hosts" on a private bridge, and their teardown.

Each host is a network namespace with one veth link (``eth0``) to a bridge
(``br0``) that lives in a namespace of its own (the switch).  Nothing is added
to the caller's namespace, so traffic stays between the addresses the test
gives; processes run inside a host through :meth:`Network.exec_prefix`
(``ip netns exec NS``, which execs in place: the launched program is still the
leader of its own process group).

:meth:`Network.destroy` kills whatever still runs inside a namespace, deletes
every namespace (which deletes the veths and the bridge with them) and returns
a description of anything it had to kill or could not delete, so that a test
can fail on leftovers.  Used by tests/integration/test_multihost.py and
tests/chaos/.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time

__all__ = ["Network", "ip", "netns_unavailable"]


def ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run ``ip ARGS`` (iproute2) with a timeout; raise on failure if ``check``."""
    return subprocess.run(["ip", *args], capture_output=True, text=True, timeout=15, check=check)


def netns_unavailable() -> str | None:
    """Why namespaces cannot be used here (a skip reason), or None."""
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        return "needs root to create network namespaces and veth links (CI runs as root)"
    if shutil.which("ip") is None:
        return "the 'ip' command (iproute2) is not installed"
    try:
        listed = ip("netns", "list", check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"'ip netns list' failed: {exc}"
    if listed.returncode != 0:
        return f"'ip netns' is unavailable: {listed.stderr.strip()}"
    return None


class Network:
    """Namespaces ``<tag>-<host>`` around a bridge in ``<tag>-sw``.

    ``prefix`` keeps the namespaces of different test kinds apart (the tag
    also carries this process's pid, so parallel runs do not collide)."""

    def __init__(self, prefix: str = "lp") -> None:
        self.tag = f"{prefix}{os.getpid() % 100000}"
        self.created: list[str] = []
        self.hosts: dict[str, str] = {}

    def ns(self, host: str) -> str:
        return f"{self.tag}-{host}"

    def exec_prefix(self, host: str) -> list[str]:
        """The command prefix that runs a program inside ``host``."""
        return ["ip", "netns", "exec", self.ns(host)]

    def _add_ns(self, host: str) -> str:
        name = self.ns(host)
        ip("netns", "add", name)
        self.created.append(name)
        ip("-n", name, "link", "set", "lo", "up")
        return name

    def build(self, hosts: dict[str, str], prefix_len: int = 24) -> None:
        """One namespace per ``{host: address}``, each linked to the switch."""
        switch = self._add_ns("sw")
        ip("-n", switch, "link", "add", "br0", "type", "bridge")
        ip("-n", switch, "link", "set", "br0", "up")
        for host, address in hosts.items():
            ns = self._add_ns(host)
            port = f"v-{host}"
            ip("-n", switch, "link", "add", port, "type", "veth", "peer", "name", "eth0", "netns", ns)
            ip("-n", switch, "link", "set", port, "master", "br0")
            ip("-n", switch, "link", "set", port, "up")
            ip("-n", ns, "addr", "add", f"{address}/{prefix_len}", "dev", "eth0")
            ip("-n", ns, "link", "set", "eth0", "up")
            self.hosts[host] = address

    def cut(self, host: str) -> None:
        """Pull the host's cable: its only link goes down; its processes keep running."""
        ip("-n", self.ns(host), "link", "set", "eth0", "down")

    def mend(self, host: str) -> None:
        """Plug the cable back in (the address stays; the route comes back with the link)."""
        ip("-n", self.ns(host), "link", "set", "eth0", "up")

    def pids(self) -> set[int]:
        """Every process that lives inside one of the namespaces."""
        found: set[int] = set()
        for name in self.created:
            listed = ip("netns", "pids", name, check=False)
            found.update(int(x) for x in listed.stdout.split())
        return found

    def destroy(self) -> list[str]:
        """Kill what still runs inside, delete every namespace; describe trouble."""
        problems: list[str] = []
        left = self.pids()
        if left:
            problems.append(f"processes still inside the namespaces (killed now): {sorted(left)}")
            for pid in left:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGCONT)
                    os.kill(pid, signal.SIGKILL)
            deadline = time.monotonic() + 5.0
            while self.pids() and time.monotonic() < deadline:
                time.sleep(0.05)
        for name in reversed(self.created):
            done = ip("netns", "delete", name, check=False)
            if done.returncode != 0:
                problems.append(f"could not delete namespace {name}: {done.stderr.strip()}")
        remaining = set(ip("netns", "list", check=False).stdout.split()) & set(self.created)
        if remaining:
            problems.append(f"namespaces still listed: {sorted(remaining)}")
        self.created.clear()
        return problems
