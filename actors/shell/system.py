"""Starting and stopping licpool's Thespian actor systems, and the process facts
around them.

Every licpool process that starts an actor system goes through
:func:`start_system`, which, before the first ``ActorSystem(...)``:

* installs the allowlisted unpickler and binds the configured address
  (``actors.shell.wire``), so the forked admin, logger and actors inherit both;
* tunes Thespian's transport (:func:`tune_transport`): a transmit that gets no
  ACK is dropped after ``transmit_timeout`` instead of Thespian's 5 minutes,
  and the cap of 20 transmits in flight per process is raised.  Measured: with
  the defaults, one SIGSTOPped peer stalled an actor's sends to *every* other
  peer for 4 s (docs/discovery.md);
* for a server (``own_group=True``), keeps the admin in the launcher's process
  group (Thespian calls ``setsid``) and makes the forked processes ignore
  SIGINT, so one ``killpg`` stops a whole server "host" and a terminal's Ctrl-C
  reaches only the launcher, which shuts down cleanly.

Thespian's admin start leaves one zombie in the launching process; it is reaped
here.  :func:`stop_system` shuts a system down and kills whatever of it outlives
a short deadline.
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from loguru import logger

from actors.shell import logs, wire

__all__ = [
    "SERVER_GLOBAL_NAME",
    "StartedSystem",
    "admin_address",
    "free_port",
    "kill_own_family",
    "port_is_free",
    "process_alive",
    "process_start_time",
    "route_ip",
    "start_system",
    "stop_system",
    "tune_transport",
]

SERVER_GLOBAL_NAME = "licpool.LicenseServer"
"""The LicenseServer's ``globalName`` in its own host's actor system."""

MAX_PENDING_TRANSMITS = 200
EXIT_DEADLINE_S = 5.0


def tune_transport(transmit_timeout: float) -> None:
    """Bound every Thespian transmit of this process (and of the processes it
    forks from now on) to ``transmit_timeout`` seconds."""
    import thespian.system.transport as transport
    import thespian.system.transport.asyncTransportBase as async_base

    transport.DEFAULT_MAX_TRANSMIT_PERIOD = timedelta(seconds=transmit_timeout)
    async_base.MAX_PENDING_TRANSMITS = max(async_base.MAX_PENDING_TRANSMITS, MAX_PENDING_TRANSMITS)


def route_ip(host: str, port: int) -> str:
    """The local IPv4 address this host uses to reach ``host:port`` (no packet
    is sent): the address a client's actors advertise to the servers."""
    ip = socket.gethostbyname(host)
    if ip.startswith("127."):
        return "127.0.0.1"
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect((ip, port))
            local: str = s.getsockname()[0]
            return local
        except OSError:
            return "127.0.0.1"


def _ephemeral_range() -> tuple[int, int]:
    """The kernel's range for automatically bound ports (Linux; else its default)."""
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return 32768, 60999


def free_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on, chosen outside the kernel's ephemeral range.

    A port the kernel hands out for ``bind(0)`` is one it may hand out again at
    once: a Thespian system started a moment earlier binds an ephemeral port
    for every actor, and one of them can take the port chosen for the next
    server before that server binds it (seen in CI: a pool's second server
    never started).  Ports outside the range are never handed out on their own.
    """
    low, high = _ephemeral_range()
    spans = [(max(1024, low - 10_000), low), (high + 1, 65_536)]
    span = max(spans, key=lambda s: s[1] - s[0])
    rng = random.SystemRandom()
    for _ in range(200):
        port = rng.randrange(*span) if span[1] - span[0] > 100 else 0
        if port and port_is_free(host, port):
            return port
    with socket.socket() as s:  # no room outside the range: take the kernel's pick
        s.bind((host, 0))
        picked: int = s.getsockname()[1]
        return picked


def port_is_free(host: str, port: int) -> bool:
    """Nothing listens on ``host:port`` (TIME_WAIT leftovers do not count)."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
        return True


def admin_address(ip: str, port: int) -> Any:
    """The ActorAddress of the Thespian admin listening on ``ip:port``."""
    from thespian.actors import ActorAddress
    from thespian.system.transport.IPBase import TCPv4ActorAddress

    return ActorAddress(TCPv4ActorAddress(ip, port, external=True))


def process_start_time(pid: int) -> int:
    """Field 22 of /proc/<pid>/stat (0 if the process is gone): with the pid it
    names one process, even after pid reuse."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0
    return int(stat[stat.rindex(")") + 2 :].split()[19])


def process_alive(pid: int, start_time: int) -> bool:
    if pid <= 0:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    fields = stat[stat.rindex(")") + 2 :].split()
    if fields[0] in ("Z", "X"):
        return False
    return start_time == 0 or int(fields[19]) == start_time


def _children() -> set[int]:
    found: set[int] = set()
    for task in Path("/proc/self/task").iterdir():
        with contextlib.suppress(OSError):
            found.update(int(x) for x in (task / "children").read_text().split())
    return found


def live_members(field: str, ids: set[int]) -> set[int]:
    """Live (not zombie) pids whose process ``group`` or ``session`` is in ``ids``."""
    index = {"group": 2, "session": 3}[field]
    members: set[int] = set()
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            stat = Path(f"/proc/{name}/stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        if fields[0] not in ("Z", "X") and int(fields[index]) in ids:
            members.add(int(name))
    return members


def _session_members(session: int) -> set[int]:
    return live_members("session", {session})


@contextlib.contextmanager
def _forked_processes_stay(own_group: bool) -> Iterator[None]:
    """While Thespian forks its admin: keep it in our group, ignoring SIGINT."""
    if not own_group:
        yield
        return
    real_setsid = os.setsid
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    os.setsid = lambda: os.getpid()  # type: ignore[assignment,misc,unused-ignore]
    try:
        yield
    finally:
        os.setsid = real_setsid
        signal.signal(signal.SIGINT, previous)


@dataclass
class StartedSystem:
    """An actor system this process started."""

    asys: Any
    ip: str
    port: int
    helper: int
    """Pid of Thespian's short-lived start helper; with ``own_group=False`` it is
    also the session id of every process of the system."""
    own_group: bool


def start_system(
    ip: str,
    port: int,
    *,
    transmit_timeout: float,
    own_group: bool,
    log_level: str = "INFO",
    capabilities: dict[str, Any] | None = None,
) -> StartedSystem:
    """Start a multiprocTCPBase system whose admin listens on ``ip:port``."""
    from thespian.actors import ActorSystem

    wire.install()
    wire.restrict_bind(ip)
    tune_transport(transmit_timeout)
    caps = {"Admin Port": port, **(capabilities or {})}
    wire.require_fork(caps)
    before = _children()
    with _forked_processes_stay(own_group):
        asys = ActorSystem("multiprocTCPBase", caps, logDefs=logs.thespian_log_defs(log_level), transientUnique=True)
    helpers = sorted(_children() - before)
    deadline = time.monotonic() + 1.0
    for pid in helpers:
        while time.monotonic() < deadline:
            try:
                done, _ = os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                break
            if done:
                break
            time.sleep(0.005)
    return StartedSystem(asys, ip, port, helpers[0] if helpers else 0, own_group)


def stop_system(started: StartedSystem) -> list[int]:
    """Shut the system down; kill what outlives the deadline.  Returns the pids
    that had to be killed."""
    try:
        started.asys.shutdown()
    except Exception as exc:  # a dead admin: fall through to the kill
        logger.warning("actor system shutdown on port {} failed: {}", started.port, exc)
    if started.own_group:
        me = os.getpid()
        mine = Path(f"/proc/{me}/cmdline").read_bytes()

        def members() -> set[int]:
            found = set()
            for pid in _group_members(os.getpgrp()) - {me}:
                with contextlib.suppress(OSError):
                    if Path(f"/proc/{pid}/cmdline").read_bytes() == mine:
                        found.add(pid)
            return found
    else:
        if not started.helper:
            return []

        def members() -> set[int]:
            return _session_members(started.helper)

    deadline = time.monotonic() + EXIT_DEADLINE_S
    while (left := members()) and time.monotonic() < deadline:
        time.sleep(0.05)
    for pid in left:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    return sorted(left)


def _group_members(pgid: int) -> set[int]:
    """Live (not zombie) processes of process group ``pgid``."""
    return live_members("group", {pgid})


def kill_own_family() -> None:
    """SIGKILL every process of this process group that runs this program (the
    launcher's forks share its command line: Thespian sets no process titles),
    then this process: what a server or client session does when the process
    it serves has died."""
    me = os.getpid()
    mine = Path(f"/proc/{me}/cmdline").read_bytes()
    group = os.getpgrp()
    for pid in _group_members(group) - {me}:
        with contextlib.suppress(OSError):
            if Path(f"/proc/{pid}/cmdline").read_bytes() == mine:
                os.kill(pid, signal.SIGKILL)
    os.kill(me, signal.SIGKILL)
