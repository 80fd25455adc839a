"""actors/bench/scale.py and actors/bench/scale_app.py: the pure parts of the scale run
(reading the servers' frame counters, the rates, the phase report, the apps'
command loop), and the pure parts of ``actors.bench.pool`` (``run_together``, the
compaction phase's report).  The run itself is ``python -m actors.bench.pool --scale``:
no speed is asserted anywhere."""

from __future__ import annotations

import io
import json
import threading
from pathlib import Path
from typing import Any

import pytest

from actors.bench import scale, scale_app
from actors.bench.scale import Phase, compare, frames_of, heartbeat_rates, report_phase
from actors.shell.metrics import ServerMetrics

TEXT = """\
# HELP licpool_frames_received_total frames
# TYPE licpool_frames_received_total counter
licpool_frames_received_total{message="SessionHeartbeat",pool="p",server="s1"} 120.0
licpool_frames_received_total{message="CheckoutRequest",pool="p",server="s1"} 7.0
# HELP licpool_frame_bytes_received_total bytes
# TYPE licpool_frame_bytes_received_total counter
licpool_frame_bytes_received_total{message="SessionHeartbeat",pool="p",server="s1"} 48000.0
licpool_frame_bytes_received_total{message="CheckoutRequest",pool="p",server="s1"} 900.0
"""


def test_frames_of_reads_one_message_class() -> None:
    assert frames_of(TEXT) == (120.0, 48000.0)
    assert frames_of(TEXT, "CheckoutRequest") == (7.0, 900.0)
    assert frames_of(TEXT, "FailoverUpdate") == (0.0, 0.0)


def test_frames_of_reads_what_a_server_renders() -> None:
    m = ServerMetrics("p", "s1")
    m.frames.labels("p", "s1", "SessionHeartbeat").inc(3)
    m.frame_bytes.labels("p", "s1", "SessionHeartbeat").inc(1500)
    from prometheus_client import generate_latest

    assert frames_of(generate_latest(m.registry).decode()) == (3.0, 1500.0)


def test_heartbeat_rates_per_server() -> None:
    before = {"s1": (100.0, 1000.0), "s2": (0.0, 0.0)}
    after = {"s1": (300.0, 5000.0), "s2": (50.0, 100.0), "s3": (9.0, 9.0)}
    assert heartbeat_rates(before, after, 10.0) == {"s1": (20.0, 400.0), "s2": (5.0, 10.0)}
    assert heartbeat_rates(before, after, 0.0) == {}


def phase(msgs: float, size: float, leases: int) -> Phase:
    names = ("s1", "s2", "s3")
    return Phase(
        seconds=60.0,
        cpu=dict.fromkeys(names, 10.0),
        heartbeats=dict.fromkeys(names, (msgs, size)),
        leases=dict.fromkeys(names, leases),
        sessions=dict.fromkeys(names, 10),
    )


def test_report_phase_compares_the_heartbeats_with_sessions_over_h() -> None:
    lines: list[str] = []
    assert report_phase("p1", phase(20.0, 20_000.0, 100), 0.5, lines.append) == (60.0, 60_000.0)
    text = "\n".join(lines)
    assert "300 leases held by 30 sessions" in text
    assert "60.0 msg/s (sessions x servers held at / h = 30 / 0.5 = 60.0: met within 10%)" in text
    assert "1000 bytes per heartbeat" in text
    lines.clear()
    report_phase("p1", phase(10.0, 20_000.0, 100), 0.5, lines.append)
    assert "NOT met" in "\n".join(lines)


def test_compare_says_messages_follow_sessions_and_whether_bytes_do() -> None:
    lines: list[str] = []
    compare(phase(20.0, 20_000.0, 1000), phase(20.0, 2_000.0, 100), lines.append)
    text = "\n".join(lines)
    assert "60.0 / 60.0 = 1.00" in text and "cost follows sessions: met" in text
    # 900 bytes more per heartbeat for 90 more leases per session: 10 bytes a lease id
    assert "10.0 bytes per lease id held" in text and "NOT met for bytes" in text
    lines.clear()
    # Heartbeats that weigh the same whatever the leases (digests): the bytes follow sessions.
    compare(phase(20.0, 9_000.0, 1000), phase(20.0, 8_980.0, 100), lines.append)
    text = "\n".join(lines)
    assert "bytes per heartbeat 450 / 449 = 1.00" in text and "0.0 bytes per lease id held" in text
    assert "met for bytes" in text and "NOT met for bytes" not in text
    lines.clear()
    compare(phase(40.0, 20_000.0, 1000), phase(20.0, 2_000.0, 100), lines.append)
    assert "= 2.00" in lines[0] and "NOT met" in lines[0]


class FakeAuth:
    def __init__(self, lost: bool = False) -> None:
        self.lost = threading.Event()
        if lost:
            self.lost.set()


class FakeClient:
    def __init__(self) -> None:
        self.asked: list[str] = []

    def checkout(self, feature: str, timeout: float) -> FakeAuth:
        self.asked.append(feature)
        return FakeAuth()


def test_the_app_command_loop(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    clients = [FakeClient(), FakeClient()]
    held: list[list[Any]] = [[FakeAuth(lost=True)], []]
    monkeypatch.setattr(
        "sys.stdin", io.StringIO("take 3\nlost\ntake x\ntake 1 -2\ntake 1 nan\nbogus\ntake 2 400\nquit\ntake 5\n")
    )
    scale_app._serve(clients, held)
    answers = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert answers == [
        {"held": 7},
        {"lost": 1},
        {"error": "unknown command 'take x'"},
        {"error": "unknown command 'take 1 -2'"},
        {"error": "unknown command 'take 1 nan'"},
        {"error": "unknown command 'bogus'"},
        {"held": 11},
    ]
    assert [len(c.asked) for c in clients] == [5, 5]  # quit stops before the last line


def test_the_pacer_spaces_checkouts_over_all_threads(monkeypatch: pytest.MonkeyPatch) -> None:
    """``take N RATE``: at most RATE checkouts a second from one app, whatever its thread count."""
    clock = [100.0]
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        clock[0] += seconds

    monkeypatch.setattr("actors.bench.scale_app.time.monotonic", lambda: clock[0])
    monkeypatch.setattr("actors.bench.scale_app.time.sleep", sleep)
    pacer = scale_app._Pacer(4.0)
    for _ in range(5):
        pacer.wait()
    assert clock[0] == pytest.approx(101.0)  # the 5th of 4 a second waits until 1 s after the 1st
    assert slept == pytest.approx([0.25, 0.25, 0.25, 0.25])
    unpaced = scale_app._Pacer(0.0)
    unpaced.wait()
    assert len(slept) == 4


def test_run_scale_refuses_uneven_splits() -> None:
    from argparse import Namespace

    from actors.bench.echo import BenchFailed

    for sessions, apps, leases in ((10, 3, 1000), (10, 5, 150)):
        args = Namespace(sessions=sessions, apps=apps, leases=leases, minutes=1.0, minutes_small=None)
        with pytest.raises(BenchFailed, match="multiple"):
            scale.run_scale(args, None, {}, [], print)  # type: ignore[arg-type]


def test_run_together_runs_every_index_and_raises_the_first_failure() -> None:
    from actors.bench.echo import BenchFailed
    from actors.bench.pool import run_together

    seen: list[int] = []
    assert run_together(4, seen.append) >= 0.0
    assert sorted(seen) == [0, 1, 2, 3]

    def fail(i: int) -> None:
        if i == 2:
            raise ValueError("seat 2")

    with pytest.raises(BenchFailed, match="seat 2"):
        run_together(3, fail)


def test_pool_bench_prints_the_compaction_pause_against_its_goal(tmp_path: Path) -> None:
    """(d) of ``actors.bench.pool``: the worse of fork and swap is held against 50 ms, and
    the phase's temporary directory is gone afterwards."""
    from actors.bench.pool import phase_compaction

    lines: list[str] = []
    seen: list[Path] = []

    def pauses(base: Path, sizes: list[int]) -> list[tuple[int, float, int, float, float, float]]:
        seen.append(base)
        return [(sizes[0], 1.1, 22_000_000, 0.007, 0.06, 1.2)]

    figures = phase_compaction(tmp_path, 100_000, lines.append, pauses)
    assert figures["worst"] == 0.06
    assert "worst 60.0 ms (goal <= 50 ms: NOT met)" in lines[0]
    assert not seen[0].exists()

    def quick(base: Path, sizes: list[int]) -> list[tuple[int, float, int, float, float, float]]:
        return [(sizes[0], 1.1, 22_000_000, 0.019, 0.007, 1.2)]

    phase_compaction(tmp_path, 100_000, lines.append, quick)
    assert "worst 19.0 ms (goal <= 50 ms: met)" in lines[1]
