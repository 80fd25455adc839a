"""CPU time and memory of groups of processes, read from ``/proc`` (Linux).

A Thespian system is several processes whose admin is detached (parent pid 1),
so a "process tree" here is every process of one process group or session:
the launcher's group for a server (``PoolProcesses.pgid``), the app's session
plus each of its actor systems' sessions for an app.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

__all__ = ["ProcStat", "busy_seconds", "cpu_percent", "cpu_seconds", "parse_stat", "pss_kib", "scan", "select"]

TICKS = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


@dataclass(frozen=True)
class ProcStat:
    """The fields of one ``/proc/<pid>/stat`` line this benchmark uses."""

    pid: int
    ppid: int
    pgrp: int
    session: int
    ticks: int
    """utime + stime, in clock ticks."""
    rss_pages: int


def parse_stat(text: str) -> ProcStat:
    """One ``/proc/<pid>/stat`` line; the command name may hold spaces and parentheses."""
    head, sep, rest = text.rpartition(")")
    if not sep or "(" not in head or len(rest.split()) < 22:
        raise ValueError(f"not a /proc/<pid>/stat line: {text[:60]!r}")
    pid = int(head.split("(", 1)[0])
    f = rest.split()
    # rest starts at field 3 (state): field n is f[n - 3].
    return ProcStat(
        pid=pid,
        ppid=int(f[1]),
        pgrp=int(f[2]),
        session=int(f[3]),
        ticks=int(f[11]) + int(f[12]),
        rss_pages=int(f[21]),
    )


def scan(proc: Path = Path("/proc")) -> dict[int, ProcStat]:
    """Every process now (those that vanish while being read are skipped)."""
    found = {}
    for entry in proc.iterdir():
        if entry.name.isdigit():
            try:
                found[int(entry.name)] = parse_stat((entry / "stat").read_text())
            except (OSError, ValueError):
                continue
    return found


def select(procs: dict[int, ProcStat], groups: Iterable[int] = (), sessions: Iterable[int] = ()) -> list[ProcStat]:
    """The processes whose process group is in ``groups`` or session in ``sessions``."""
    g, s = set(groups), set(sessions)
    return [p for p in procs.values() if p.pgrp in g or p.session in s]


def cpu_seconds(before: dict[int, ProcStat], after: dict[int, ProcStat]) -> float:
    """CPU time the processes of ``after`` used between the two scans, in seconds.
    A process absent from ``before`` (started in between) counts from 0."""
    return sum(p.ticks - (before[p.pid].ticks if p.pid in before else 0) for p in after.values()) / TICKS


def cpu_percent(before: dict[int, ProcStat], after: dict[int, ProcStat], seconds: float) -> float:
    """``cpu_seconds`` over ``seconds`` of wall time, in % of one core."""
    return 100.0 * cpu_seconds(before, after) / seconds if seconds > 0 else 0.0


def pss_kib(pid: int, read: Callable[[Path], str] = Path.read_text) -> int:
    """Proportional set size (shared pages split among their sharers), or 0 if unreadable."""
    try:
        text = read(Path(f"/proc/{pid}/smaps_rollup"))
    except OSError:
        return 0
    for line in text.splitlines():
        if line.startswith("Pss:"):
            return int(line.split()[1])
    return 0


def busy_seconds(read: Callable[[Path], str] = Path.read_text) -> float:
    """CPU time all cores together spent busy since boot, in seconds: the
    ``cpu`` line of ``/proc/stat`` without idle and iowait (guest time is in
    user time already)."""
    for line in read(Path("/proc/stat")).splitlines():
        if line.startswith("cpu "):
            user, nice, system, _idle, _iowait, irq, softirq, steal = (int(x) for x in line.split()[1:9])
            return (user + nice + system + irq + softirq + steal) / TICKS
    raise ValueError("/proc/stat has no cpu line")
