"""Real actor systems, a pool of server processes and client apps, for tests.

- ``ActorSystems`` starts multiprocTCPBase systems on 127.0.0.1 with licpool's
  wire hook and checks, at shutdown, that every process of each is gone.
- ``PoolHarness`` runs a pool of ``python -m actors server`` processes with a
  throwaway vendor key, plus a ``PoolLink`` to query it.
- ``ClientApp`` drives ``clientapp.py`` (a LicenseClient in its own process).

The fixtures that hand these to tests are in ``conftest.py``.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from thespian.actors import ActorSystem

from actors.shell import logs, wire
from tests.integration.procs import (
    EXIT_DEADLINE_S,
    LOOPBACK,
    free_port,
    kill_all,
    listen_addresses,
    listening_pids,
    listening_ports,
    processes_with_token,
    read_proc,
    reap,
    session_members,
)


@dataclass
class StartedSystem:
    """An actor system a test started, with the processes that belong to it."""

    asys: Any
    admin_port: int
    admin_pid: int
    logger_pid: int
    logger_port: int
    session: int
    members: set[int] = field(default_factory=set)


class ActorSystems:
    """Starts multiprocTCPBase systems on 127.0.0.1 with licpool's wire hook.

    The /proc helpers ride along as static methods, so that test modules
    (which cannot import this conftest) reach them through the fixture.
    """

    listen_addresses = staticmethod(listen_addresses)
    listening_pids = staticmethod(listening_pids)
    listening_ports = staticmethod(listening_ports)
    session_members = staticmethod(session_members)

    def __init__(self) -> None:
        self.started: list[StartedSystem] = []

    def start(
        self,
        capabilities: dict[str, Any] | None = None,
        log_level: str = "INFO",
        extra_allowed: tuple[tuple[str, str], ...] = (),
        hooked: bool = True,
    ) -> StartedSystem:
        """``hooked=False`` (positive controls only): the admin, logger and actors
        are forked while the transport decodes with plain ``pickle``; this
        process's own transport gets the allowlist back at once."""
        import thespian.system.transport.TCPTransport as tcp

        wire.install(extra_allowed)
        wire.restrict_bind(LOOPBACK)
        port = free_port()
        caps = {"Admin Port": port, **(capabilities or {})}
        wire.require_fork(caps)
        if not hooked:
            tcp.serializer = __import__("pickle")
        try:
            asys = ActorSystem(
                "multiprocTCPBase", caps, logDefs=logs.thespian_log_defs(log_level), transientUnique=True
            )
        finally:
            wire.install()
        try:
            # The logger process is forked from the admin and keeps the
            # admin's listening socket: the admin is the holder whose parent
            # is not a holder, the logger is the other one.
            holders = {pid: read_proc(pid) for pid in listening_pids(port)}
            admins = [pid for pid, info in holders.items() if info and info.ppid not in holders]
            loggers = [pid for pid, info in holders.items() if info and info.ppid in holders]
            assert len(admins) == 1 and len(loggers) == 1, f"expected admin + logger on port {port}: {holders}"
            # Both also hold every listening socket the test process had
            # when it forked the admin (the client endpoint among them).
            logger_ports = listening_ports(loggers[0]) - listening_ports(admins[0])
            assert len(logger_ports) == 1, f"logger {loggers[0]} listens on {logger_ports}"
            started = StartedSystem(asys, port, admins[0], loggers[0], logger_ports.pop(), os.getsid(admins[0]))
        except BaseException:
            asys.shutdown()
            raise
        started.members = session_members(started.session)
        self.started.append(started)
        return started

    def shutdown_all(self) -> list[str]:
        """Shut every system down; describe any process that outlived it."""
        problems: list[str] = []
        for started in reversed(self.started):
            try:
                started.asys.shutdown()
            except Exception as exc:
                problems.append(f"shutdown of system on port {started.admin_port} raised {exc!r}")
            deadline = time.monotonic() + EXIT_DEADLINE_S
            while (left := session_members(started.session)) and time.monotonic() < deadline:
                time.sleep(0.05)
            if left:
                kill_all(left)
                problems.append(f"system on port {started.admin_port} left processes {sorted(left)} (killed)")
            reap(started.session)
        self.started.clear()
        return problems


FAST_TIMING = {
    "heartbeat_interval": 0.1,
    "failure_timeout": 0.4,
    "leader_lease": 0.6,
    "fence_timeout": 0.6,
    "lease_ttl": 8.0,
}
"""Short timings for tests; they pass actors.core.timing.timing_violations."""


class PoolHarness:
    """A pool of ``python -m actors server`` processes, each in its own process
    group, with a throwaway vendor key, plus a ``PoolLink`` to query it.

    Teardown stops every server (SIGTERM, then SIGKILL of its group), closes
    every client and link, and fails the test if any process of the pool is
    still alive after the deadline."""

    def __init__(
        self,
        root: Path,
        servers: int,
        timing: dict[str, float],
        rebalance_idle: float,
        addresses: list[tuple[str, int]] | None = None,
        wrap: Callable[[str], list[str]] | None = None,
    ) -> None:
        """``addresses``: each server's (host, port), default free loopback ports;
        ``wrap(name)``: a command prefix for server ``name`` (``ip netns exec NS``)."""
        from actors.core.codes import load_private_key
        from actors.shell.config import write_default_pool

        self.root = root
        config = write_default_pool(root)
        addresses = addresses or [(LOOPBACK, free_port()) for _ in range(servers)]
        lines = []
        for line in config.read_text().splitlines():
            key = line.split("=")[0].strip()
            if key in timing:
                line = f"{key} = {timing[key]}"
            elif key == "rebalance_idle":
                line = f"rebalance_idle = {rebalance_idle}"
            lines.append(line)
        text = "\n".join(lines).split("[[server]]")[0]
        for index, (host, port) in enumerate(addresses, start=1):
            text += f'[[server]]\nname = "s{index}"\nhost = "{host}"\nport = {port}\n\n'
        config.write_text(text)
        self.config = config
        self.names = tuple(f"s{i}" for i in range(1, servers + 1))
        self.vendor = load_private_key((root / "vendor.key").read_bytes())
        self.procs = _pool_processes(config, root / "out", wrap)
        self.clients: list[Any] = []
        self._link: Any = None
        self._serials = 0

    @property
    def cfg(self) -> Any:
        return self.procs.cfg

    @property
    def link(self) -> Any:
        from actors.shell.remote import PoolLink

        if self._link is None:
            self._link = PoolLink(self.cfg, timeout=1.0)
        return self._link

    def start(self, *names: str) -> None:
        for name in names or self.names:
            self.procs.start(name)

    def license(self, count: int = 10, feature: str = "cad", version: str = "2.0", **kw: Any) -> str:
        from actors.core.codes import sign_license

        self._serials += 1
        kw.setdefault("serial", f"T{self._serials}")
        kw.setdefault("majority", True)
        return sign_license(
            self.vendor,
            feature=feature,
            version=version,
            count=count,
            expires="2099-12-31",
            distribution=kw.pop("distribution", None),
            **kw,
        )

    def addon(self, of_serial: str, count: int, serial: str) -> str:
        from actors.core.codes import sign_addon

        return sign_addon(self.vendor, of_serial=of_serial, count=count, serial=serial)

    def status(self, name: str | None = None) -> Any:
        return self.link.status() if name is None else self.link.status_of(name)

    def wait_status(self, predicate: Callable[[Any], bool], timeout: float, what: str, name: str | None = None) -> Any:
        """Poll the pool's status until ``predicate`` holds; return that status."""
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            last = self.status(name)
            if last is not None and predicate(last):
                return last
            time.sleep(0.05)
        pytest.fail(f"timed out after {timeout} s waiting for {what}; last status: {last}\n{self.diagnosis()}")

    def diagnosis(self) -> str:
        """Each server process: running or its exit code, and its launcher output's tail."""
        lines = []
        for name, proc in self.procs.procs.items():
            state = "running" if proc.poll() is None else f"exited {proc.returncode}"
            out = self.root / "out" / f"{name}.out"
            tail = out.read_text(errors="replace").splitlines()[-5:] if out.exists() else []
            lines.append(f"{name}: {state}" + "".join(f"\n    {line}" for line in tail))
        return "\n".join(lines)

    def wait_formed(self, timeout: float = 20.0, up: tuple[str, ...] | None = None) -> Any:
        expect = set(up or self.names)

        def formed(s: Any) -> bool:
            ups = {x.name for x in s.servers if x.up and x.status == "live"}
            return s.leader is not None and s.answered_by == s.leader and s.serving and expect <= ups

        return self.wait_status(formed, timeout, f"an acting leader and servers {sorted(expect)} up")

    def admin(self, make: Callable[[str], Any], via: str | None = None) -> Any:
        import uuid

        if via is None:
            return self.link.admin(make)
        return self.link.ask(via, self.link.sign(make(uuid.uuid4().hex)), 5.0)

    def add_license(self, code: str, via: str | None = None) -> Any:
        from actors.protocol import pool as pool_msgs

        reply = self.admin(lambda rid: pool_msgs.AddLicenseCode(sender="test", epoch=0, request_id=rid, code=code), via)
        assert reply is not None and reply.ok, reply
        self.wait_applied(reply.index)
        return reply

    def wait_applied(self, index: int, timeout: float = 5.0) -> None:
        """Wait until every running server has applied the log up to ``index``."""
        for name, proc in self.procs.procs.items():
            if proc.poll() is None:
                self.wait_status(lambda s: s.applied >= index, timeout, f"{name} to apply index {index}", name=name)

    def client(self, client_id: str, prefer: str | None = None) -> Any:
        from actors.client import LicenseClient

        c = LicenseClient.from_config(self.config, client_id=client_id, prefer=prefer)
        self.clients.append(c)
        return c

    def leader(self) -> str:
        s = self.wait_formed()
        return str(s.leader)

    def close(self) -> list[str]:
        problems: list[str] = []
        for c in self.clients:
            try:
                c.close()
            except Exception as exc:
                problems.append(f"client close raised {exc!r}")
        if self._link is not None:
            self._link.close()
        self.procs.stop_all(grace=5.0)
        left = self.procs.wait_gone(EXIT_DEADLINE_S)
        if left:
            problems.append(f"pool processes left behind (killed now): {left}")
        return problems


def _pool_processes(config: Path, output: Path, wrap: Callable[[str], list[str]] | None) -> Any:
    """``PoolProcesses`` whose server commands start with ``wrap(name)``."""
    from actors.shell.launcher import PoolProcesses

    class Wrapped(PoolProcesses):
        def command(self, name: str) -> list[str]:
            return [*(wrap(name) if wrap is not None else []), *super().command(name)]

    return Wrapped(config, quiet=True, output=output)


CLIENT_APP = Path(__file__).resolve().parent / "clientapp.py"


class ClientApp:
    """One ``clientapp.py`` process: a LicenseClient driven over stdin/stdout.

    ``prefix`` runs it elsewhere (``["ip", "netns", "exec", NS]``).  Every
    process of the app (it, and the forks of its actor system, which keep its
    command line) carries a unique token, so teardown finds them all."""

    def __init__(
        self, config: Path, client_id: str, prefer: str | None, out: Path, prefix: tuple[str, ...] = ()
    ) -> None:
        import subprocess
        import sys
        import uuid

        self.client_id = client_id
        self.token = f"licpool-test-app-{uuid.uuid4().hex}"
        root = str(Path(__file__).resolve().parents[2])
        env = {**os.environ, "PYTHONPATH": root}
        out.parent.mkdir(parents=True, exist_ok=True)
        with open(out, "ab") as err:
            self.proc = subprocess.Popen(
                [*prefix, sys.executable, str(CLIENT_APP), str(config), client_id, prefer or "-", self.token],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=err,
                env=env,
                start_new_session=True,
            )
        self.out = out
        self._buffer = b""

    def wait_ready(self, timeout: float = 30.0) -> ClientApp:
        ready = self._read(timeout)
        if not ready.get("ready"):
            raise RuntimeError(f"client app {self.client_id} did not start: {ready}")
        return self

    def _read(self, timeout: float) -> dict[str, Any]:
        import json
        import select

        assert self.proc.stdout is not None
        deadline = time.monotonic() + timeout
        while b"\n" not in self._buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"client app {self.client_id} gave no answer within {timeout} s (see {self.out})")
            ready, _, _ = select.select([self.proc.stdout], [], [], remaining)
            if ready:
                chunk = os.read(self.proc.stdout.fileno(), 65536)
                if not chunk:
                    raise RuntimeError(f"client app {self.client_id} exited (see {self.out})")
                self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\n", 1)
        doc: dict[str, Any] = json.loads(line)
        return doc

    def call(self, op: str, wait: float = 30.0, **args: Any) -> dict[str, Any]:
        import json

        assert self.proc.stdin is not None
        self.proc.stdin.write((json.dumps({"op": op, **args}) + "\n").encode())
        self.proc.stdin.flush()
        return self._read(wait)

    def checkout(
        self, feature: str = "cad", version: str = "2.0", timeout: float = 5.0, lease_id: str | None = None
    ) -> dict[str, Any]:
        return self.call(
            "checkout", timeout + 10.0, feature=feature, version=version, timeout=timeout, lease_id=lease_id
        )

    def state(self) -> list[dict[str, Any]]:
        auths: list[dict[str, Any]] = self.call("state")["auths"]
        return auths

    def crash(self) -> None:
        """SIGKILL the app (no release): its session stops its own actor system."""
        with contextlib.suppress(ProcessLookupError):
            self.proc.kill()
        self.proc.wait(5)

    def close(self) -> list[str]:
        """Quit cleanly if it still runs; kill whatever of it is left; report that."""
        import subprocess

        problems: list[str] = []
        if self.proc.poll() is None:
            try:
                assert self.proc.stdin is not None
                self.proc.stdin.write(b'{"op": "quit"}\n')
                self.proc.stdin.close()
                self.proc.wait(15)
            except (OSError, subprocess.TimeoutExpired) as exc:
                problems.append(f"client app {self.client_id} did not quit: {exc!r}")
                with contextlib.suppress(ProcessLookupError):
                    self.proc.kill()
                self.proc.wait(5)
        token = self.token.encode()
        deadline = time.monotonic() + EXIT_DEADLINE_S
        while (left := processes_with_token(token)) and time.monotonic() < deadline:
            time.sleep(0.05)
        if left:
            kill_all(left)
            problems.append(f"client app {self.client_id} left processes {sorted(left)} (killed)")
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        return problems
