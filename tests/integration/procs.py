"""Finding and stopping the processes a test started, from /proc.

Thespian's admin detaches (``setsid`` and a second fork, parent pid 1), and
its logger and actors are forked from it, so none of them is a child of the
test process and they all keep the test's command line (no setproctitle).
Two facts identify them reliably: the admin is the process listening on the
admin port, and the logger and actors share the admin's session id
(``multiprocCommon.startAdmin`` calls ``os.setsid``; children don't).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

LOOPBACK = "127.0.0.1"
EXIT_DEADLINE_S = 5.0
"""Seconds a process may take to exit after being asked before a test calls it leaked."""


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


def kill_all(pids: set[int]) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def reap(session: int) -> None:
    """Reap the zombie that each system start leaves in the launching process.

    ``startAdmin`` runs in a child that calls ``setsid`` (so its pid is the
    session id), forks the admin and exits; Thespian has removed that child
    from multiprocessing's bookkeeping (``detach_child``), so nobody waits
    for it.
    """
    with contextlib.suppress(ChildProcessError):
        os.waitpid(session, os.WNOHANG)


def processes_with_token(token: bytes) -> set[int]:
    """Live pids whose command line contains ``token`` (an app and its forks)."""
    return {p.pid for p in all_procs() if token in p.cmdline.split(b"\0")}
