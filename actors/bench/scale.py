"""The scale run of issue 12: ``python -m actors.bench.pool --scale``.

A 3-server pool (default timings) and ``--apps`` app processes
(:mod:`actors.bench.scale_app`), each with ``sessions / apps`` ``LicenseClient``s.
A ``LicenseClient`` starts its own actor system (admin, logger, one
``ClientSession`` actor) wherever it is made, so ``--apps`` only sets how
many Python processes hold them: every session is a real app's session, with
its own processes, address and heartbeats.  Clients prefer the servers in turn,
so each session holds its leases at one server.

Phase 1 holds a tenth of ``--leases`` for ``--minutes-small``; then the same
sessions check out the rest and phase 2 holds all ``--leases`` for
``--minutes``.  (Small first: releasing nine tenths at once from every session
went wrong in a first run, see docs/performance.md.)  For each phase: every
server's CPU % (all processes of its group, from ``/proc/<pid>/stat``), and the
``SessionHeartbeat`` frames and bytes the servers decoded
(``licpool_frames_received_total`` / ``licpool_frame_bytes_received_total``,
counted in the wire's unpickler); at the end of phase 1, the memory (RSS and
PSS) of a server's process group and of one app process with its clients'
actor systems.  Every process it starts is stopped, even on Ctrl-C.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from actors.bench import procstat
from actors.bench.echo import BenchFailed

__all__ = ["App", "add_arguments", "frames_of", "heartbeat_rates", "run_scale"]

HEARTBEAT = "SessionHeartbeat"
EQUAL_WITHIN = 0.10
"""Heartbeat messages/s with a tenth of the leases must be within this of phase 1's (issue 12)."""
ROLES = ("admin", "logger", "ClientSession", "Resolver")
"""A client's actor system, in the order its processes are forked (pid order)."""
APP_MB_TODAY = 100.0
"""Issue 12: an app's actor system is about 4 processes and 100 MB today."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("the scale run (--scale)")
    g.add_argument("--scale", action="store_true", help="run only the scale run (issue 12's 10,000 leases)")
    g.add_argument("--sessions", type=int, default=100, help="client sessions (LicenseClients) (default 100)")
    g.add_argument("--leases", type=int, default=10_000, help="leases held in all (default 10000)")
    g.add_argument("--minutes", type=float, default=10.0, help="how long phase 2 holds them all (default 10)")
    g.add_argument(
        "--minutes-small",
        type=float,
        default=None,
        help="phase 1, a tenth of the leases (default minutes/5, at least 1)",
    )
    g.add_argument("--apps", type=int, default=10, help="app processes the sessions are spread over (default 10)")
    g.add_argument(
        "--take-rate",
        type=float,
        default=100.0,
        help="checkouts a second, over all apps, when the sessions take the other nine tenths of the leases"
        " (default 100; 0: as fast as the clients go, 100 closed loops at once)",
    )


# ---- pure helpers --------------------------------------------------------------------------


def frames_of(text: str, message: str = HEARTBEAT) -> tuple[float, float]:
    """(frames, bytes) of ``message`` in one server's Prometheus text (0 when absent)."""
    from prometheus_client.parser import text_string_to_metric_families

    frames = size = 0.0
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.labels.get("message") != message:
                continue
            if s.name == "licpool_frames_received_total":
                frames += s.value
            elif s.name == "licpool_frame_bytes_received_total":
                size += s.value
    return frames, size


def heartbeat_rates(
    before: dict[str, tuple[float, float]], after: dict[str, tuple[float, float]], seconds: float
) -> dict[str, tuple[float, float]]:
    """Per server: (messages/s, bytes/s) between two readings of ``frames_of``."""
    return {
        name: ((after[name][0] - before[name][0]) / seconds, (after[name][1] - before[name][1]) / seconds)
        for name in after
        if name in before and seconds > 0
    }


def mib(kib: float) -> str:
    return f"{kib / 1024:.0f} MiB"


# ---- the app processes ---------------------------------------------------------------------


@dataclass
class App:
    """One ``actors.bench.scale_app`` process and the sessions of its clients' actor systems."""

    index: int
    proc: subprocess.Popen[str]
    sessions: list[int] = field(default_factory=list)
    lines: list[dict[str, Any]] = field(default_factory=list)
    cond: threading.Condition = field(default_factory=threading.Condition)

    def read(self) -> None:
        stdout: IO[str] | None = self.proc.stdout
        assert stdout is not None
        for line in stdout:
            try:
                msg = json.loads(line)
            except ValueError:
                continue
            with self.cond:
                if msg.get("started"):
                    self.sessions = list(msg["sessions"])
                self.lines.append(msg)
                self.cond.notify_all()
        with self.cond:
            self.lines.append({"error": f"app {self.index} exited ({self.proc.poll()})"})
            self.cond.notify_all()

    def next(self, key: str, timeout: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                for i, msg in enumerate(self.lines):
                    if key in msg or "error" in msg:
                        del self.lines[: i + 1]
                        if "error" in msg:
                            raise BenchFailed(f"app {self.index}: {msg['error']}")
                        return msg
                left = deadline - time.monotonic()
                if left <= 0:
                    raise BenchFailed(f"app {self.index}: no {key!r} within {timeout:.0f} s")
                self.cond.wait(left)

    def send(self, line: str) -> None:
        with contextlib.suppress(OSError, ValueError):
            assert self.proc.stdin is not None
            self.proc.stdin.write(line + "\n")
            self.proc.stdin.flush()

    def groups(self) -> tuple[list[int], list[int]]:
        """(process groups, sessions) of every process of this app."""
        return [self.proc.pid], [self.proc.pid, *self.sessions]


def start_apps(config: Path, servers: Sequence[str], sessions: int, leases: int, apps: int) -> list[App]:
    per_app, started = sessions // apps, []
    for index in range(apps):
        cmd = [
            sys.executable,
            "-m",
            "actors.bench.scale_app",
            str(config),
            str(index),
            str(per_app),
            str(leases // sessions),
            *servers,
        ]
        proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, start_new_session=True)
        app = App(index, proc)
        threading.Thread(target=app.read, daemon=True).start()
        started.append(app)
    return started


def stop_apps(apps: list[App], problems: list[str]) -> None:
    """``quit`` every app, wait, then SIGKILL whatever of theirs is still alive."""
    for app in apps:
        app.send("quit")
        with contextlib.suppress(OSError):
            assert app.proc.stdin is not None
            app.proc.stdin.close()
    for grace, sig in ((30.0, signal.SIGTERM), (30.0, None)):
        deadline = time.monotonic() + grace
        for app in apps:
            with contextlib.suppress(subprocess.TimeoutExpired):
                app.proc.wait(max(0.1, deadline - time.monotonic()))
        for app in apps:
            if sig is not None and app.proc.poll() is None:
                app.proc.send_signal(sig)  # the app closes its clients on SIGTERM too
    from actors.shell.system import live_members

    groups = {g for app in apps for g in app.groups()[0]}
    sessions = {s for app in apps for s in app.groups()[1]}
    for _ in range(50):
        left = live_members("group", groups) | live_members("session", sessions)
        if not left:
            return
        time.sleep(0.1)
    problems.append(f"app processes killed at the end: {sorted(left)}")
    for pid in left:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    for app in apps:
        with contextlib.suppress(subprocess.TimeoutExpired):
            app.proc.wait(5)


# ---- measuring -----------------------------------------------------------------------------


def server_procs(pool: Any, name: str, procs: dict[int, procstat.ProcStat]) -> dict[int, procstat.ProcStat]:
    return {p.pid: p for p in procstat.select(procs, groups=[pool.procs.pgid(name)])}


def read_frames(pool: Any) -> dict[str, tuple[float, float]]:
    from actors.protocol.admin import MetricsQuery, MetricsReply

    found = {}
    for name in pool.cfg.server_names:
        reply = pool.link.ask(name, MetricsQuery(), 10.0)
        if not isinstance(reply, MetricsReply):
            raise BenchFailed(f"{name} did not answer a MetricsQuery")
        found[name] = frames_of(reply.text)
    return found


@dataclass
class Phase:
    seconds: float
    cpu: dict[str, float]
    heartbeats: dict[str, tuple[float, float]]
    leases: dict[str, int]
    sessions: dict[str, int]
    apps_cpu: float = 0.0
    """CPU % (of one core) of every app process and its clients' actor systems."""


def apps_procs(apps: Sequence[App], procs: dict[int, procstat.ProcStat]) -> dict[int, procstat.ProcStat]:
    groups = [g for app in apps for g in app.groups()[0]]
    sessions = [s for app in apps for s in app.groups()[1]]
    return {p.pid: p for p in procstat.select(procs, groups=groups, sessions=sessions)}


def hold(pool: Any, seconds: float, out: Callable[[str], None], apps: Sequence[App] = ()) -> Phase:
    names = list(pool.cfg.server_names)
    frames0, procs0, t0 = read_frames(pool), procstat.scan(), time.monotonic()
    step = max(10.0, seconds / 10)
    while (left := t0 + seconds - time.monotonic()) > 0:
        time.sleep(min(step, left))
        if left > step:
            out(f"    ... {time.monotonic() - t0:.0f} s, load average {os.getloadavg()[0]:.2f}")
    procs1, t1 = procstat.scan(), time.monotonic()
    frames1 = read_frames(pool)
    elapsed = t1 - t0
    cpu = {
        n: procstat.cpu_percent(server_procs(pool, n, procs0), server_procs(pool, n, procs1), elapsed) for n in names
    }
    leases, sessions = held_at(pool)
    apps_cpu = procstat.cpu_percent(apps_procs(apps, procs0), apps_procs(apps, procs1), elapsed)
    return Phase(elapsed, cpu, heartbeat_rates(frames0, frames1, elapsed), leases, sessions, apps_cpu)


def held_at(pool: Any) -> tuple[dict[str, int], dict[str, int]]:
    """Per server: the leases held there and the sessions holding them (its metrics)."""
    from actors.protocol.admin import MetricsQuery, MetricsReply

    leases, sessions = {}, {}
    for n in pool.cfg.server_names:
        reply = pool.link.ask(n, MetricsQuery(), 10.0)
        if isinstance(reply, MetricsReply):
            leases[n], sessions[n] = _gauges(reply.text)
    return leases, sessions


def _gauges(text: str) -> tuple[int, int]:
    from prometheus_client.parser import text_string_to_metric_families

    leases = sessions = 0
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == "licpool_leases_held":
                leases = int(s.value)
            elif s.name == "licpool_sessions":
                sessions = int(s.value)
    return leases, sessions


@dataclass
class Memory:
    """RSS and PSS (KiB) of a set of processes."""

    count: int
    rss: int
    pss: int

    def __str__(self) -> str:
        return f"{self.count} processes, RSS {mib(self.rss)}, PSS {mib(self.pss)}"


def memory(procs: list[procstat.ProcStat]) -> Memory:
    return Memory(
        len(procs),
        sum(p.rss_pages for p in procs) * procstat.PAGE // 1024,
        sum(procstat.pss_kib(p.pid) for p in procs),
    )


def report_memory(pool: Any, app: App, clients: int, out: Callable[[str], None]) -> None:
    procs = procstat.scan()
    for n in pool.cfg.server_names:
        group = procstat.select(procs, groups=[pool.procs.pgid(n)])
        out(f"  memory of server {n} (its process group): {memory(group)}")
    groups, sessions = app.groups()
    whole = memory(procstat.select(procs, groups=groups, sessions=sessions))
    python = memory([procs[app.proc.pid]] if app.proc.pid in procs else [])
    out(f"  memory of app process {app.index} with its {clients} clients' actor systems: {whole}")
    out(f"    the app's own Python process (threads, {clients} proxies and listeners): {python}")
    if app.sessions:
        one = sorted(procstat.select(procs, sessions=[app.sessions[0]]), key=lambda p: p.pid)
        m = memory(one)
        names = ROLES if len(one) == len(ROLES) else ("?",) * len(one)
        each = ", ".join(
            f"{role} RSS {mib(p.rss_pages * procstat.PAGE // 1024)} PSS {mib(procstat.pss_kib(p.pid))}"
            for role, p in zip(names, one, strict=True)
        )
        out(f"    one client's actor system: {m}: {each}")
        per = whole.pss / max(1, clients)
        out(
            f"    per session (the app process's PSS / {clients}): {mib(per)}; issue 12's 'today': about 4 processes "
            f"and {APP_MB_TODAY:g} MB per app; one app with one client here: {m.count + 1} processes, "
            f"RSS {mib(m.rss + python.rss)} (PSS {mib(m.pss + python.pss // max(1, clients))})"
        )


def report_phase(label: str, phase: Phase, h: float, out: Callable[[str], None]) -> tuple[float, float]:
    total_msgs = sum(m for m, _ in phase.heartbeats.values())
    total_bytes = sum(b for _, b in phase.heartbeats.values())
    leases, sessions = sum(phase.leases.values()), sum(phase.sessions.values())
    expected = sessions / h
    out(f"  {label}: {leases} leases held by {sessions} sessions at the servers, held {phase.seconds:.0f} s")
    for n in phase.cpu:
        msgs, size = phase.heartbeats.get(n, (0.0, 0.0))
        out(
            f"    {n}: CPU {phase.cpu[n]:5.1f} % of one core; {phase.leases.get(n, 0)} leases, "
            f"{phase.sessions.get(n, 0)} sessions; heartbeats {msgs:6.1f} msg/s, {size / 1024:7.1f} KiB/s"
        )
    per_hb = total_bytes / total_msgs if total_msgs else 0.0
    met = "met" if expected and abs(total_msgs - expected) <= EQUAL_WITHIN * expected else "NOT met"
    out(
        f"    all servers: heartbeats {total_msgs:.1f} msg/s (sessions x servers held at / h = {sessions} / {h:g} "
        f"= {expected:.1f}: {met} within {EQUAL_WITHIN:.0%}), {total_bytes / 1024:.1f} KiB/s, "
        f"{per_hb:.0f} bytes per heartbeat; CPU of the 3 servers {sum(phase.cpu.values()):.1f} % in all"
    )
    out(f"    CPU of the apps (every app process and its clients' actor systems): {phase.apps_cpu:.1f} % of one core")
    return total_msgs, total_bytes


def compare(big: Phase, small: Phase, out: Callable[[str], None]) -> None:
    m1, b1 = (sum(x[i] for x in big.heartbeats.values()) for i in (0, 1))
    m2, b2 = (sum(x[i] for x in small.heartbeats.values()) for i in (0, 1))
    l1, l2 = sum(big.leases.values()), sum(small.leases.values())
    c1, c2 = sum(big.cpu.values()), sum(small.cpu.values())
    ratio = m1 / m2 if m2 else float("inf")
    met = "met" if abs(ratio - 1) <= EQUAL_WITHIN else "NOT met"
    out(
        f"  heartbeat messages/s with {l1} leases / with {l2}: {m1:.1f} / {m2:.1f} = {ratio:.2f} "
        f"(goal: equal within {EQUAL_WITHIN:.0%}, cost follows sessions: {met})"
    )
    if m1 and m2 and l1 != l2:
        per_lease = (b1 / m1 - b2 / m2) / ((l1 - l2) / max(1, sum(big.sessions.values())))
        per_hb = (b1 / m1) / (b2 / m2) if b2 else float("inf")
        bytes_met = "met" if abs(per_hb - 1) <= EQUAL_WITHIN else "NOT met"
        out(
            f"  heartbeat bytes/s: {b1 / 1024:.1f} / {b2 / 1024:.1f} KiB/s = {b1 / b2 if b2 else 0:.2f} x; bytes per "
            f"heartbeat {b1 / m1:.0f} / {b2 / m2:.0f} = {per_hb:.2f}, {per_lease:.1f} bytes per lease id held "
            f"(goal 'follow sessions, not leases', bytes per heartbeat equal within {EQUAL_WITHIN:.0%}: "
            f"{bytes_met} for bytes; messages: {met})"
        )
    out(f"  servers' CPU in all, {l1} leases / {l2}: {c1:.1f} % / {c2:.1f} % (issue 12 sets no number; reported)")


def lost_so_far(apps: Sequence[App], out: Callable[[str], None]) -> None:
    lost = 0
    for app in apps:
        app.send("lost")
        lost += int(app.next("lost", 60.0)["lost"])
    out(f"    leases the apps were told they lost (or whose deadline passed) so far: {lost}")


def run_scale(
    args: argparse.Namespace,
    workdir: Path,
    timing: dict[str, float],
    problems: list[str],
    out: Callable[[str], None],
) -> None:
    from actors.bench.pool import _pool

    if args.sessions % args.apps or args.leases % (10 * args.sessions):
        raise BenchFailed("--sessions must be a multiple of --apps and --leases of 10 x --sessions")
    small_leases = args.leases // 10
    clients = args.sessions // args.apps
    small_minutes = args.minutes_small if args.minutes_small is not None else max(1.0, args.minutes / 5)
    out(
        f"(s) scale: {args.leases} leases held by {args.sessions} sessions ({args.apps} app processes x {clients} "
        f"LicenseClients, each client its own actor system) over 3 servers, {args.minutes:g} min; before it, "
        f"the same sessions hold {args.leases // 10} leases for {small_minutes:g} min"
    )
    with _pool(workdir, "scale", timing, problems) as pool:
        pool.formed()
        pool.add_license(args.leases + args.leases // 2)
        apps: list[App] = []
        try:
            t0 = time.monotonic()
            apps = start_apps(pool.cfg.path, list(pool.cfg.server_names), args.sessions, small_leases, args.apps)
            wait = 120.0 + args.leases / 10
            for app in apps:
                app.next("started", wait)
            for app in apps:
                app.next("ready", wait)
            h = pool.cfg.timing.heartbeat_interval
            out(f"  {small_leases} leases checked out in {time.monotonic() - t0:.0f} s (not a measured figure)")
            time.sleep(2 * h)
            small = hold(pool, small_minutes * 60, out, apps)
            report_phase(f"phase 1, {small_leases} leases", small, h, out)
            lost_so_far(apps, out)
            t0 = time.monotonic()
            rate = max(args.take_rate, 0.0)
            for app in apps:
                app.send(f"take {(args.leases - small_leases) // args.sessions} {rate / len(apps):g}")
            for app in apps:
                app.next("held", wait)
            paced = f"at most {rate:g} a second" if rate else "as fast as the clients go"
            out(
                f"  {args.leases - small_leases} more checked out in {time.monotonic() - t0:.0f} s, {paced}"
                " (not measured)"
            )
            time.sleep(2 * h)
            big = hold(pool, args.minutes * 60, out, apps)
            report_phase(f"phase 2, {args.leases} leases", big, h, out)
            lost_so_far(apps, out)
            report_memory(pool, apps[0], clients, out)
            compare(big, small, out)
        finally:
            stop_apps(apps, problems)
