"""Fixtures for tests that start real Thespian actor systems on 127.0.0.1.

Thespian's admin detaches (``setsid`` and a second fork, parent pid 1), and
its logger and actors are forked from it, so none of them is a child of the
test process and they all keep the test's command line (no setproctitle).
Two facts identify them reliably: the admin is the process listening on the
admin port, and the logger and actors share the admin's session id
(``multiprocCommon.startAdmin`` calls ``os.setsid``; children don't).

- :func:`actor_systems` starts systems and, at teardown, shuts each down and
  fails the test if any process of its session outlives a short deadline
  (after killing it).
- :func:`no_leftover_processes` (autouse) also fails a test that leaves any
  new forked copy of the test process behind, whatever started it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from thespian.actors import ActorSystem

from actors import logs, wire

LOOPBACK = "127.0.0.1"
EXIT_DEADLINE_S = 5.0


# --- /proc helpers -----------------------------------------------------------


@dataclass(frozen=True)
class ProcInfo:
    """One live process, as read from /proc."""

    pid: int
    ppid: int
    session: int
    state: str
    cmdline: bytes


def read_proc(pid: int) -> ProcInfo | None:
    """The process ``pid``, or None if it is gone or a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    # comm (field 2) may contain spaces and parentheses: split after the last ')'.
    fields = stat[stat.rindex(")") + 2 :].split()
    state, ppid, session = fields[0], int(fields[1]), int(fields[3])
    if state in ("Z", "X"):
        return None
    return ProcInfo(pid, ppid, session, state, cmdline)


def all_procs() -> list[ProcInfo]:
    procs = (read_proc(int(name)) for name in os.listdir("/proc") if name.isdigit())
    return [p for p in procs if p is not None]


def _listen_table() -> list[tuple[str, int, str]]:
    """(hex local address, port, socket inode) of every listening TCP socket."""
    rows: list[tuple[str, int, str]] = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except FileNotFoundError:
            continue
        for line in lines:
            cols = line.split()
            hex_ip, hex_port = cols[1].rsplit(":", 1)
            if cols[3] == "0A":
                rows.append((hex_ip, int(hex_port, 16), cols[9]))
    return rows


def _socket_inodes(pid: int) -> set[str]:
    inodes: set[str] = set()
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except (FileNotFoundError, PermissionError):
        return inodes
    for fd in fds:
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[len("socket:[") : -1])
    return inodes


def listening_ports(pid: int) -> set[int]:
    """The TCP ports on which process ``pid`` holds a listening socket."""
    inodes = _socket_inodes(pid)
    return {port for _, port, inode in _listen_table() if inode in inodes}


def listening_pids(port: int) -> set[int]:
    """Pids holding a TCP socket that listens on ``port`` (any address)."""
    inodes = {inode for _, p, inode in _listen_table() if p == port}
    return {int(name) for name in os.listdir("/proc") if name.isdigit() and _socket_inodes(int(name)) & inodes}


def listen_addresses(port: int) -> set[str]:
    """The local IPv4 addresses that listen on ``port``, dotted."""
    return {
        socket.inet_ntoa(int(hex_ip, 16).to_bytes(4, "little"))
        for hex_ip, p, _ in _listen_table()
        if p == port and len(hex_ip) == 8
    }


def session_members(session: int) -> set[int]:
    return {p.pid for p in all_procs() if p.session == session}


def wait_until(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll ``predicate`` until it is true; fail with ``what`` after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.02)


def free_port() -> int:
    """A loopback port outside the ephemeral range (``actors.shell.system.free_port``)."""
    from actors.shell.system import free_port as pick

    return pick(LOOPBACK)


def _kill(pids: set[int]) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def _reap(session: int) -> None:
    """Reap the zombie that each system start leaves in the launching process.

    ``startAdmin`` runs in a child that calls ``setsid`` (so its pid is the
    session id), forks the admin and exits; Thespian has removed that child
    from multiprocessing's bookkeeping (``detach_child``), so nobody waits
    for it.
    """
    with contextlib.suppress(ChildProcessError):
        os.waitpid(session, os.WNOHANG)


# --- fixtures ----------------------------------------------------------------


@pytest.fixture(autouse=True)
def no_leftover_processes() -> Iterator[None]:
    """Fail a test that leaves a new forked copy of the test process running."""
    me = os.getpid()
    my_cmdline = Path(f"/proc/{me}/cmdline").read_bytes()

    def forked_copies() -> set[int]:
        return {p.pid for p in all_procs() if p.cmdline == my_cmdline and p.pid != me}

    before = forked_copies()
    yield
    deadline = time.monotonic() + EXIT_DEADLINE_S
    while (left := forked_copies() - before) and time.monotonic() < deadline:
        time.sleep(0.05)
    if left:
        _kill(left)
        pytest.fail(f"processes left behind (killed now): {sorted(left)}")


@pytest.fixture(scope="session", autouse=True)
def _thespian_env(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Keep Thespian's internal log out of /tmp/thespian.log."""
    os.environ.setdefault("THESPLOG_FILE", str(tmp_path_factory.mktemp("thesplog") / "thespian.log"))


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
            asys = ActorSystem("multiprocTCPBase", caps, logDefs=logs.thespian_log_defs(log_level),
                               transientUnique=True)
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
                _kill(left)
                problems.append(f"system on port {started.admin_port} left processes {sorted(left)} (killed)")
            _reap(started.session)
        self.started.clear()
        return problems


@pytest.fixture(name="wait_until")
def wait_until_fixture() -> Callable[[Callable[[], bool], float, str], None]:
    """``wait_until(predicate, timeout_s, what)``: a bounded poll that fails with ``what``."""
    return wait_until


@pytest.fixture
def actor_systems() -> Iterator[ActorSystems]:
    """Start systems with ``actor_systems.start()``; all are shut down and checked."""
    systems = ActorSystems()
    try:
        yield systems
    finally:
        problems = systems.shutdown_all()
    if problems:
        pytest.fail("; ".join(problems))


# --- a licpool pool of server processes (tests/integration/test_pool_*.py) ----

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

    def __init__(self, root: Path, servers: int, timing: dict[str, float], rebalance_idle: float,
                 addresses: list[tuple[str, int]] | None = None,
                 wrap: Callable[[str], list[str]] | None = None) -> None:
        """``addresses``: each server's (host, port), default free loopback ports;
        ``wrap(name)``: a command prefix for server ``name`` (``ip netns exec NS``)."""
        from actors.config import write_default_pool
        from actors.core.codes import load_private_key

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
        return sign_license(self.vendor, feature=feature, version=version, count=count, expires="2099-12-31",
                            distribution=kw.pop("distribution", None), **kw)

    def addon(self, of_serial: str, count: int, serial: str) -> str:
        from actors.core.codes import sign_addon

        return sign_addon(self.vendor, of_serial=of_serial, count=count, serial=serial)

    def status(self, name: str | None = None) -> Any:
        return self.link.status() if name is None else self.link.status_of(name)

    def wait_status(self, predicate: Callable[[Any], bool], timeout: float, what: str,
                    name: str | None = None) -> Any:
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
        from actors.protocol import pool as p

        reply = self.admin(lambda rid: p.AddLicenseCode("test", 0, rid, code), via)
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


@pytest.fixture
def licpool_pool(tmp_path: Path) -> Iterator[Callable[..., PoolHarness]]:
    """``licpool_pool(servers=3)`` starts a pool with FAST_TIMING; all of it is
    stopped and checked for leftovers at teardown."""
    import thespian.system.transport as transport
    import thespian.system.transport.asyncTransportBase as async_base

    # Clients and links tune this process's transport (actors.shell.system); keep
    # that from leaking into the other integration tests of the session.
    saved = (transport.DEFAULT_MAX_TRANSMIT_PERIOD, async_base.MAX_PENDING_TRANSMITS)
    made: list[PoolHarness] = []

    def make(servers: int = 3, start: bool = True, timing: dict[str, float] | None = None,
             rebalance_idle: float = 60.0, **placement: Any) -> PoolHarness:
        harness = PoolHarness(tmp_path / f"pool{len(made)}", servers, {**FAST_TIMING, **(timing or {})},
                              rebalance_idle, **placement)
        made.append(harness)
        if start:
            harness.start()
        return harness

    try:
        yield make
    finally:
        problems = [x for h in made for x in h.close()]
        transport.DEFAULT_MAX_TRANSMIT_PERIOD, async_base.MAX_PENDING_TRANSMITS = saved
    if problems:
        pytest.fail("; ".join(problems))


# --- client apps in their own processes (tests/integration/clientapp.py) ---------

CLIENT_APP = Path(__file__).resolve().parent / "clientapp.py"


def processes_with_token(token: bytes) -> set[int]:
    """Live pids whose command line contains ``token`` (an app and its forks)."""
    return {p.pid for p in all_procs() if token in p.cmdline.split(b"\0")}


class ClientApp:
    """One ``clientapp.py`` process: a LicenseClient driven over stdin/stdout.

    ``prefix`` runs it elsewhere (``["ip", "netns", "exec", NS]``).  Every
    process of the app (it, and the forks of its actor system, which keep its
    command line) carries a unique token, so teardown finds them all."""

    def __init__(self, config: Path, client_id: str, prefer: str | None, out: Path,
                 prefix: tuple[str, ...] = ()) -> None:
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
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err, env=env, start_new_session=True)
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

    def checkout(self, feature: str = "cad", version: str = "2.0", timeout: float = 5.0,
                 lease_id: str | None = None) -> dict[str, Any]:
        return self.call("checkout", timeout + 10.0, feature=feature, version=version, timeout=timeout,
                         lease_id=lease_id)

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
            _kill(left)
            problems.append(f"client app {self.client_id} left processes {sorted(left)} (killed)")
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        return problems


@pytest.fixture
def client_apps(tmp_path: Path) -> Iterator[Callable[..., ClientApp]]:
    """``client_apps(config, client_id, prefer=None, prefix=())`` starts a client
    app process; every one is closed and checked for leftovers at teardown."""
    started: list[ClientApp] = []

    def make(config: Path, client_id: str, prefer: str | None = None, prefix: tuple[str, ...] = ()) -> ClientApp:
        app = ClientApp(config, client_id, prefer, tmp_path / "apps" / f"{client_id}-{len(started)}.err", prefix)
        started.append(app)
        return app.wait_ready()

    try:
        yield make
    finally:
        problems = [x for app in reversed(started) for x in app.close()]
    if problems:
        pytest.fail("; ".join(problems))
