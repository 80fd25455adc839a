"""``licpool demo``: a whole pool on loopback, a leader crash, and what follows.

No setup: a temporary directory gets a throwaway vendor key, an admin key and
a 3-server config on free ports (with short timings, so the story takes
seconds).  The demo starts the servers (each its own process group), issues a
demo license, runs a few client apps (``LicenseClient``s in this process),
SIGKILLs the leader's whole process group, restarts it later, and prints what
happens as it happens.  Every line about the pool comes from polling the same
status and sessions queries ``licpool status`` and ``licpool sessions`` use;
none of it is scripted.  It ends with the final status, exits 0, and leaves no
process, port or file behind (it checks).
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import click

from actors.core.codes import load_private_key, sign_license
from actors.protocol.admin import SessionInfo, StatusReply
from actors.protocol.pool import AddLicenseCode
from actors.shell import logs
from actors.shell.client_proxy import Authorization, LicenseClient, LicenseDenied
from actors.shell.config import default_config_text, write_default_pool
from actors.shell.launcher import PoolProcesses
from actors.shell.remote import PoolLink
from actors.shell.system import free_port, port_is_free

__all__ = ["run_demo"]

DEMO_TIMING = {
    "heartbeat_interval": 0.2,
    "failure_timeout": 0.8,
    "leader_lease": 1.2,
    "fence_timeout": 1.2,
    "lease_ttl": 10.0,
}
REBALANCE_IDLE = 3.0


def _write_pool(directory: Path) -> tuple[Path, list[int]]:
    config = write_default_pool(directory)
    ports = [free_port() for _ in range(3)]
    lines = []
    for line in default_config_text(None, ports, name="demo").splitlines():
        key = line.split("=")[0].strip()
        if key in DEMO_TIMING:
            line = f"{key} = {DEMO_TIMING[key]}"
        elif key == "rebalance_idle":
            line = f"rebalance_idle = {REBALANCE_IDLE}"
        lines.append(line)
    config.write_text("\n".join(lines) + "\n")
    return config, ports


class Narrator:
    """Prints what changed between two polls of the pool's real state."""

    def __init__(self, echo: Callable[[str], None]) -> None:
        self.echo = echo
        self.t0 = time.monotonic()
        self.leader: str | None = None
        self.epoch = 0
        self.up: dict[str, bool] = {}
        self.alloc: dict[tuple[str, str, str], int] = {}
        self.free: dict[tuple[str, str], int] = {}
        self.where: dict[str, str] = {}
        self.owner: dict[str, str] = {}

    def say(self, text: str) -> None:
        self.echo(f"[{time.monotonic() - self.t0:6.2f}s] {text}")

    def status(self, s: StatusReply) -> None:
        if s.leader != self.leader and s.leader is not None:
            self.say(f"leader: {s.leader} (epoch {s.epoch}){'' if self.leader is None else f', was {self.leader}'}")
            self.leader, self.epoch = s.leader, s.epoch
        for server in s.servers:
            was = self.up.get(server.name)
            if was is not None and was != server.up:
                state = (
                    "up again"
                    if server.up
                    else "down" + (" (not answering)" if server.status == "live" else f" ({server.status})")
                )
                self.say(f"server {server.name} is {state} (as {s.answered_by} sees it)")
            self.up[server.name] = server.up
        if s.answered_by != s.leader:
            return  # seat counts only from the leader's view: others may lag behind it
        for f in s.features:
            changes = []
            for u in f.servers:
                key = (f.feature, f.version, u.server)
                old = self.alloc.get(key)
                if old is not None and old != u.allocated:
                    changes.append(f"{u.server} {old}->{u.allocated}")
                self.alloc[key] = u.allocated
            fkey = (f.feature, f.version)
            old_free = self.free.get(fkey)
            if old_free is not None and old_free != f.free_pool:
                changes.append(f"free pool {old_free}->{f.free_pool}")
            self.free[fkey] = f.free_pool
            if changes:
                self.say(
                    f"{f.feature} {f.version} seats moved: {', '.join(changes)} "
                    f"(in use {sum(u.in_use for u in f.servers)} of {f.total})"
                )

    def sessions(self, leases: list[SessionInfo]) -> None:
        for x in leases:
            old = self.where.get(x.lease_id)
            if old is not None and old != x.server:
                self.say(f"client {x.client_id}: lease ...{x.lease_id[-6:]} failed over {old} -> {x.server}")
            self.where[x.lease_id] = x.server
            self.owner[x.lease_id] = x.client_id

    def table(self, s: StatusReply) -> None:
        for f in s.features:
            parts = ", ".join(f"{u.server} {u.in_use}/{u.allocated}" for u in f.servers)
            self.echo(f"           {f.feature} {f.version}: in use/allocated {parts}; free pool {f.free_pool}")


def _poll(
    link: PoolLink,
    narrator: Narrator,
    seconds: float,
    until: Callable[[StatusReply], bool] | None = None,
) -> StatusReply | None:
    deadline = time.monotonic() + seconds
    last = None
    while time.monotonic() < deadline:
        status = link.status()
        if status is not None:
            last = status
            narrator.status(status)
            narrator.sessions(link.sessions()[0])
            if until is not None and until(status):
                return status
        time.sleep(0.2)
    return last


def _wait_applied(link: PoolLink, names: Sequence[str], index: int, timeout: float) -> None:
    """Every server applies the log up to ``index`` (a follower that has not
    yet applied the license would answer a checkout UNKNOWN_FEATURE)."""
    deadline = time.monotonic() + timeout
    for name in names:
        while time.monotonic() < deadline:
            seen = link.status_of(name)
            if seen is not None and seen.applied >= index:
                break
            time.sleep(0.05)


def _queue_story(
    link: PoolLink,
    narrator: Narrator,
    procs: PoolProcesses,
    vendor: Any,
    config: Path,
    apps: list[LicenseClient],
) -> None:
    """One seat of a second feature: an app holds it at one server, another
    app asks with ``queue=True`` at another server and waits, and is granted
    the seat when the first app releases it (docs/licenses.md, "Queued checkouts")."""
    code = sign_license(
        vendor,
        feature="viewer",
        version="1.0",
        count=1,
        expires="2099-12-31",
        serial="DEMO-2",
        majority=True,
        distribution=None,
    )
    reply = link.admin(lambda rid: AddLicenseCode(sender="demo", epoch=0, request_id=rid, code=code))
    if not reply.ok:
        raise click.ClickException(f"adding the second demo license failed: {reply.error}")
    _wait_applied(link, procs.cfg.server_names, reply.index, 5.0)
    narrator.say("issued a second license: 1 seat of viewer 1.0")
    first = LicenseClient.from_config(config, client_id="ws8/viewer", log_level="ERROR")
    apps.append(first)
    held = first.checkout("viewer", version="1.0", timeout=10.0)
    narrator.say(f"client ws8/viewer: granted the only seat at {held.server}")
    other = next(n for n in procs.cfg.server_names if n != held.server)
    second = LicenseClient.from_config(config, client_id="ws9/viewer", prefer=other, log_level="ERROR")
    apps.append(second)
    outcome: list[Any] = []

    def wait_in_queue() -> None:
        try:
            outcome.append(second.checkout("viewer", version="1.0", timeout=30.0, queue=True))
        except LicenseDenied as exc:
            outcome.append(exc)

    waiting = threading.Thread(target=wait_in_queue, daemon=True)
    waiting.start()
    queued = _poll(link, narrator, 10.0, lambda s: any(q.feature == "viewer" for q in s.queue))
    for q in queued.queue if queued is not None else ():
        narrator.say(f"client {q.client_id}: no seat free, waits in the queue (#{q.position}, at {q.server})")
    released_at = time.monotonic()
    held.release()
    narrator.say(f"client ws8/viewer: released its seat at {held.server}")
    waiting.join(30.0)
    got = outcome[0] if outcome else None
    if isinstance(got, Authorization):
        narrator.say(
            f"client ws9/viewer: queued checkout granted at {got.server}, "
            f"{time.monotonic() - released_at:.2f} s after the release"
        )
        got.release()
    else:
        narrator.say(f"client ws9/viewer: queued checkout not granted ({got})")


def run_demo(clients: int = 4, echo: Callable[[str], None] = click.echo) -> int:
    logs.configure(level="ERROR", console=True)
    workdir = Path(tempfile.mkdtemp(prefix="licpool-demo-"))
    procs: PoolProcesses | None = None
    link: PoolLink | None = None
    apps: list[LicenseClient] = []
    ports: list[int] = []
    try:
        config, ports = _write_pool(workdir)
        echo(f"licpool demo: a 3-server pool on 127.0.0.1 ports {', '.join(map(str, ports))} (in {workdir})")
        vendor = load_private_key((workdir / "vendor.key").read_bytes())
        code = sign_license(
            vendor,
            feature="cad",
            version="2.0",
            count=10,
            expires="2099-12-31",
            serial="DEMO-1",
            majority=True,
            distribution=None,
        )
        procs = PoolProcesses(config, quiet=True, output=workdir / "out")
        procs.start_all()
        link = PoolLink(procs.cfg, timeout=1.0)
        narrator = Narrator(echo)
        formed = _poll(
            link, narrator, 30.0, lambda s: s.leader is not None and s.serving and all(x.up for x in s.servers)
        )
        if formed is None or formed.leader is None:
            raise click.ClickException("the demo pool did not elect a leader within 30 s")
        reply = link.admin(lambda rid: AddLicenseCode(sender="demo", epoch=0, request_id=rid, code=code))
        if not reply.ok:
            raise click.ClickException(f"adding the demo license failed: {reply.error}")
        narrator.say("issued a demo license: 10 seats of cad 2.0 (throwaway vendor key), split 4/3/3")
        _poll(link, narrator, 5.0, lambda s: bool(s.features))
        _wait_applied(link, procs.cfg.server_names, reply.index, 5.0)
        leader = formed.leader
        held: list[Authorization] = []
        for i in range(clients):
            client_id = f"ws{i + 1}/cad"
            app = LicenseClient.from_config(
                config, client_id=client_id, prefer=leader if i < 2 else None, log_level="ERROR"
            )
            apps.append(app)
            try:
                auth = app.checkout("cad", version="2.0", timeout=10.0)
            except LicenseDenied as exc:
                narrator.say(f"client {client_id}: denied ({exc.reason.value})")
                continue
            held.append(auth)
            narrator.say(f"client {client_id}: granted at {auth.server} (lease ...{auth.lease_id[-6:]})")
        status = _poll(link, narrator, 3.0, lambda s: sum(u.in_use for f in s.features for u in f.servers) == len(held))
        if status is not None:
            narrator.table(status)

        before_kill = {a.lease_id: a.server for a in held}
        narrator.say(
            f"killing the leader {leader}: SIGKILL to its whole process group (pid group {procs.pgid(leader)})"
        )
        procs.kill(leader)
        others = [n for n in procs.cfg.server_names if n != leader]

        def moved(s: StatusReply) -> bool:
            return s.leader in others and all(a.server != leader for a in held if not a.lost.is_set())

        _poll(link, narrator, 20.0, moved)
        for auth in held:
            state = "LOST" if auth.lost.is_set() else "kept"
            narrator.say(
                f"client view: lease ...{auth.lease_id[-6:]} {state}, now at {auth.server} "
                f"({auth.failovers} fail-over(s), no action by the app)"
            )

        off_live = [a for a in held if before_kill[a.lease_id] != leader and a.server != before_kill[a.lease_id]]
        narrator.say(
            f"leases moved off servers that stayed up: {len(off_live)} "
            "(a leader change is invisible to the clients of live servers)"
        )
        narrator.say(f"restarting {leader}: it rejoins as a follower")
        procs.start(leader)
        _poll(link, narrator, 15.0, lambda s: all(x.up for x in s.servers))
        narrator.say(f"waiting for idle seats to rebalance (rebalance_idle = {REBALANCE_IDLE:g} s)")
        _poll(link, narrator, REBALANCE_IDLE * 3, lambda s: not s.pending and all(x.up for x in s.servers))
        _queue_story(link, narrator, procs, vendor, config, apps)
        final = link.status()
        echo("final status:")
        if final is not None:
            echo(
                f"  leader {final.leader}, epoch {final.epoch}; servers up: "
                f"{', '.join(x.name for x in final.servers if x.up)}"
            )
            narrator.table(final)
        lost = sum(a.lost.is_set() for a in held)
        echo(f"  {len(held) - lost} of {len(held)} client leases kept through the crash")
        echo("for a real pool (docs/deployment.md):")
        echo("  dashboard: licpool web --config pool.toml --bind 127.0.0.1:8080   -> http://127.0.0.1:8080/")
        echo(
            "  metrics:   set metrics_port in each [[server]]                   -> http://<host>:<metrics_port>/metrics"
            " (alert rules: deploy/prometheus/licpool.rules.yml)"
        )
        echo("  usage:     licpool report --config pool.toml --plot usage.png")
        return 0
    finally:
        for app in apps:
            with contextlib.suppress(Exception):
                app.close()
        if link is not None:
            link.close()
        left: list[int] = []
        if procs is not None:
            procs.stop_all(grace=5.0)
            left = procs.wait_gone(5.0)
        busy = [p for p in ports if not port_is_free("127.0.0.1", p)]
        shutil.rmtree(workdir, ignore_errors=True)
        if left or busy:
            echo(f"licpool demo: cleaned up stragglers: processes {left}, ports {busy}")
        else:
            echo("licpool demo: every process stopped, every port free, temp dir removed")


def main() -> None:  # pragma: no cover - ``python -m actors.cli.demo``
    raise SystemExit(run_demo())


if __name__ == "__main__":  # pragma: no cover
    main()
