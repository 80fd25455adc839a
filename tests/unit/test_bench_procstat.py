"""actors/bench/procstat.py: /proc parsing and the CPU arithmetic of the scale run."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from actors.bench.procstat import TICKS, ProcStat, cpu_percent, parse_stat, pss_kib, scan, select

LINE = (
    "4242 (python3 (x) y) S 1 4200 4100 0 -1 4194560 2500 0 0 0 "
    "150 50 0 0 20 0 3 0 12345 123456789 6000 18446744073709551615"
)


def test_parse_stat_reads_the_fields_after_a_command_name_with_spaces() -> None:
    p = parse_stat(LINE)
    assert p == ProcStat(pid=4242, ppid=1, pgrp=4200, session=4100, ticks=200, rss_pages=6000)


def test_parse_stat_refuses_a_line_that_is_not_one() -> None:
    with pytest.raises(ValueError, match="not a /proc"):
        parse_stat("garbage")


def test_scan_finds_this_process_with_its_group_and_session() -> None:
    me = scan()[os.getpid()]
    assert (me.ppid, me.pgrp, me.session) == (os.getppid(), os.getpgrp(), os.getsid(0))
    assert me.rss_pages > 0


def test_select_by_group_or_session() -> None:
    procs = {
        1: ProcStat(1, 0, 10, 100, 0, 1),
        2: ProcStat(2, 1, 20, 100, 0, 1),
        3: ProcStat(3, 1, 30, 300, 0, 1),
    }
    assert [p.pid for p in select(procs, groups=[10])] == [1]
    assert sorted(p.pid for p in select(procs, sessions=[100])) == [1, 2]
    assert sorted(p.pid for p in select(procs, groups=[30], sessions=[100])) == [1, 2, 3]


def test_cpu_percent_counts_the_delta_and_new_processes_from_zero() -> None:
    before = {1: ProcStat(1, 0, 1, 1, 100, 1)}
    after = {1: ProcStat(1, 0, 1, 1, 100 + TICKS, 1), 2: ProcStat(2, 1, 1, 1, TICKS, 1)}
    assert cpu_percent(before, after, 4.0) == pytest.approx(50.0)
    assert cpu_percent(before, after, 0.0) == 0.0


def test_pss_of_this_process_and_of_an_unreadable_one() -> None:
    assert pss_kib(os.getpid()) > 0

    def missing(path: Path) -> str:
        raise FileNotFoundError(path)

    assert pss_kib(1, read=missing) == 0
    assert pss_kib(1, read=lambda _: "Rss: 10 kB\nPss:  7 kB\n") == 7
