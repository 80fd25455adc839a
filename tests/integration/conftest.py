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
    with socket.socket() as s:
        s.bind((LOOPBACK, 0))
        port: int = s.getsockname()[1]
        return port


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
    ) -> StartedSystem:
        wire.install(extra_allowed)
        wire.restrict_bind(LOOPBACK)
        port = free_port()
        caps = {"Admin Port": port, **(capabilities or {})}
        wire.require_fork(caps)
        asys = ActorSystem("multiprocTCPBase", caps, logDefs=logs.thespian_log_defs(log_level), transientUnique=True)
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
