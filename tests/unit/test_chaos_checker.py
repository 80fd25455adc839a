"""The chaos checker (tests/chaos/check.py) on small made-up runs: each rule fires
on the log lines that break it, and stays quiet on the ones that do not."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.chaos.check import Verdict, check_run
from tests.chaos.harness import CHAOS_TIMING, FRESH

T0 = 1_000_000.0
SEATS = 6


class FakeRun:
    """Writes the files a chaos run leaves behind; times are seconds after T0."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.apps: dict[str, list[dict[str, Any]]] = {}
        self.records: list[dict[str, Any]] = [
            {"ts": T0, "event": "servers_started"},
            {"ts": T0 + 1, "event": "faults_begin"},
        ]
        self.status: list[dict[str, Any]] = []
        self.n = 0

    def app(self, app: str, t: float, event: str, inc: int = 1, **fields: Any) -> None:
        self.apps.setdefault(app, []).append({"ts": T0 + t, "event": event, "app": app, "inc": inc, **fields})

    def grant(
        self,
        app: str,
        t: float,
        ttl: float = 10.0,
        inc: int = 1,
        server: str = "s1",
        lease: str | None = None,
        **extra: Any,
    ) -> str:
        self.n += 1
        lease = lease or f"{server}.1.{self.n}.abcdef{self.n}.x"
        self.app(app, t - 0.1, "asked", inc, req=self.n)
        self.app(
            app, t, "granted", inc, req=self.n, lease=lease, server=server, deadline=T0 + t + ttl, latency=0.1, **extra
        )
        return lease

    def fault(self, t: float, until: float, kind: str, target: str, servers: list[str], **extra: Any) -> None:
        self.records.append(
            {
                "ts": T0 + t,
                "event": "fault",
                "kind": kind,
                "target": target,
                "servers": servers,
                "phase": "start",
                **extra,
            }
        )
        self.records.append({"ts": T0 + until, "event": "fault", "kind": kind, "target": target, "phase": "end"})

    def sample(
        self,
        t: float,
        in_use: int,
        allocated: tuple[int, int, int] = (2, 2, 2),
        free: int = 0,
        leader: str | None = "s1",
    ) -> None:
        uses = [min(in_use, a) for a in allocated]
        uses[0] += in_use - sum(uses)
        self.status.append(
            {
                "ts": T0 + t,
                "asked": T0 + t - 0.01,
                "event": "status",
                "ok": True,
                "leader": leader,
                "answered_by": leader,
                "serving": leader is not None,
                "servers": [],
                "features": [
                    {
                        "feature": "cad",
                        "version": "2.0",
                        "total": SEATS,
                        "free_pool": free,
                        "in_flight": 0,
                        "servers": {
                            f"s{i + 1}": {"allocated": a, "in_use": u, "target": 2}
                            for i, (a, u) in enumerate(zip(allocated, uses, strict=True))
                        },
                    }
                ],
            }
        )

    def quiet(self, t: float, held: int, fresh_took: int | None = None) -> None:
        """Faults end at t; the pool shows ``held`` in use from then on; the fresh client fills."""
        for mark, dt in (("faults_end", 0.0), ("quiet", 0.0), ("frozen", 0.5), ("fill_begin", 3.0)):
            self.records.append({"ts": T0 + t + dt, "event": mark})
        for dt in (1.0, 1.5, 2.0, 2.5):
            self.sample(t + dt, held)
        self.app(FRESH, t + 3.5, "start")
        self.app(FRESH, t + 4.0, "filled", count=SEATS - held if fresh_took is None else fresh_took, leases=[])
        self.records.append({"ts": T0 + t + 5, "event": "apps_stopping"})
        self.sample(t + 5.5, 0)

    def check(self) -> Verdict:
        (self.root / "apps").mkdir(parents=True, exist_ok=True)
        meta = {
            "seats": SEATS,
            "settings": {"timing": CHAOS_TIMING},
            "servers": ["s1", "s2", "s3"],
            "client_hosts": ["c1", "c2"],
        }
        (self.root / "meta.json").write_text(json.dumps(meta))
        records = sorted(self.records, key=lambda x: x["ts"])
        (self.root / "faults.jsonl").write_text("".join(json.dumps(x) + "\n" for x in records))
        status = sorted(self.status, key=lambda x: x["ts"])
        (self.root / "monitor.jsonl").write_text("".join(json.dumps(x) + "\n" for x in status))
        for app, lines in self.apps.items():
            text = "".join(json.dumps(x) + "\n" for x in sorted(lines, key=lambda x: (x["inc"], x["ts"])))
            (self.root / "apps" / f"{app}.jsonl").write_text(text)
        return check_run(self.root)


@pytest.fixture
def run(tmp_path: Path) -> FakeRun:
    return FakeRun(tmp_path)


def _held_apart(run: FakeRun, count: int, at: float = 2.0) -> list[tuple[str, str]]:
    leases = []
    for i in range(count):
        app = f"c{1 + i % 2}-a{1 + i // 2}"
        leases.append((app, run.grant(app, at + 0.01 * i)))
    return leases


def test_a_calm_run_passes(run: FakeRun) -> None:
    for app, lease in _held_apart(run, SEATS):
        run.app(app, 5.0, "releasing", lease=lease)
    run.quiet(20.0, held=0)
    verdict = run.check()
    assert verdict.ok, verdict.report()
    assert verdict.figures["S1 peak holds, deadline view"] == f"{SEATS} of {SEATS}"


def test_s1_fires_when_seven_leases_are_held_at_once(run: FakeRun) -> None:
    leases = _held_apart(run, SEATS + 1)
    for app, lease in leases:
        run.app(app, 5.0, "releasing", lease=lease)
    run.quiet(20.0, held=0)
    verdict = run.check()
    assert len(verdict.violations["S1"]) == 1 and "7 leases held, 6 seats" in verdict.violations["S1"][0]


def test_s1_counts_a_killed_apps_lease_until_its_last_deadline(run: FakeRun) -> None:
    leases = _held_apart(run, SEATS)
    app, lease = leases[0]
    run.app(app, 3.0, "renewed", lease=lease, server="s1", deadline=T0 + 13.0)
    run.fault(4.0, 5.0, "app_kill", app, [], inc=1)
    late = run.grant("c2-a9", 8.0)  # the 7th lease, before the killed app's deadline (t=13)
    for other, held in [*leases[1:], ("c2-a9", late)]:
        run.app(other, 9.0, "releasing", lease=held)
    run.quiet(30.0, held=0)
    verdict = run.check()
    assert any("7 leases held" in x and "(killed)" in x for x in verdict.violations["S1"]), verdict.report()
    assert verdict.figures["S1 peak holds, usage view"] == f"{SEATS} of {SEATS}"


def test_s1_a_resumed_lease_is_one_authorization(run: FakeRun) -> None:
    leases = _held_apart(run, SEATS)
    app, lease = leases[0]
    run.fault(4.0, 5.0, "app_kill", app, [], inc=1)
    run.app(app, 5.5, "start", inc=2)
    run.grant(app, 6.0, inc=2, lease=lease, resumed=lease)
    run.app(app, 7.0, "releasing", inc=2, lease=lease)
    seventh = run.grant("c2-a9", 8.0)  # the dead incarnation's deadline (t=12) no longer counts
    for other, held in [*leases[1:], ("c2-a9", seventh)]:
        run.app(other, 9.0, "releasing", lease=held)
    run.quiet(30.0, held=0)
    verdict = run.check()
    assert verdict.ok, verdict.report()


def test_s1_a_resume_that_returns_another_lease_is_a_second_seat(run: FakeRun) -> None:
    run.app("c1-a1", 1.0, "start", inc=2)
    other = run.grant("c1-a1", 2.0, inc=2, resumed="s1.1.99.old.x")
    run.app("c1-a1", 3.0, "releasing", inc=2, lease=other)
    run.quiet(20.0, held=0)
    assert any("gave another lease" in x for x in run.check().violations["S1"])


def test_s2_a_loss_with_no_fault_is_a_violation(run: FakeRun) -> None:
    lease = run.grant("c1-a1", 2.0)
    run.app("c1-a1", 4.0, "lost", lease=lease, reason="s1 says lost", server="s1", deadline=T0 + 12)
    run.quiet(20.0, held=0)
    verdict = run.check()
    assert len(verdict.violations["S2"]) == 1 and "s1 says lost" in verdict.violations["S2"][0]


def test_s2_exempts_a_loss_without_a_majority_or_behind_a_cut_client_host(run: FakeRun) -> None:
    first, second = run.grant("c1-a1", 2.0), run.grant("c2-a1", 2.0)
    run.fault(5.0, 6.0, "pool_restart", "pool", ["s1", "s2", "s3"])
    run.sample(7.0, 0, leader=None)
    run.sample(9.0, 0)  # a serving leader again: the majority is back from here on
    run.app("c1-a1", 8.0, "lost", lease=first, reason="deadline", server="s1", deadline=T0 + 8)
    run.fault(12.0, 15.0, "link_cut", "c2", [])
    run.app("c2-a1", 14.0, "lost", lease=second, reason="deadline", server="s1", deadline=T0 + 14)
    run.quiet(30.0, held=0)
    verdict = run.check()
    assert verdict.ok, verdict.report()
    assert [x.split("exempt: ")[1].split(" ")[0] for x in verdict.exempt] == ["no-majority", "client-cut"]


def test_s2_a_loss_after_the_pool_is_back_is_a_violation(run: FakeRun) -> None:
    lease = run.grant("c1-a1", 2.0)
    run.fault(5.0, 6.0, "pool_restart", "pool", ["s1", "s2", "s3"])
    run.sample(9.0, 0)
    run.app("c1-a1", 11.0, "lost", lease=lease, reason="s2 says lost", server="s2", deadline=T0 + 20)
    run.quiet(30.0, held=0)
    assert len(run.check().violations["S2"]) == 1


def test_s2_report_interval_exception_needs_a_full_pool(run: FakeRun) -> None:
    leases = _held_apart(run, SEATS - 1)
    fresh = run.grant("c2-a9", 5.0, server="s2")
    run.fault(5.2, 8.0, "server_kill", "s2", ["s2"])  # 0.2 s after the grant: within 2h = 0.4 s
    run.app("c2-a9", 9.0, "lost", lease=fresh, reason="s3 says lost", server="s3", deadline=T0 + 15)
    for app, lease in leases:
        run.app(app, 10.0, "releasing", lease=lease)
    run.quiet(30.0, held=0)
    verdict = run.check()
    assert verdict.ok, verdict.report()
    assert "report-interval" in verdict.exempt[0]


def test_s3_in_use_that_never_matches_the_apps_is_a_violation(run: FakeRun) -> None:
    lease = run.grant("c1-a1", 2.0)
    run.app("c1-a1", 3.0, "releasing", lease=lease)
    run.quiet(20.0, held=1)  # the pool still counts the released seat
    verdict = run.check()
    assert any("never matched" in x for x in verdict.violations["S3"]), verdict.report()


def test_s3_a_fresh_client_must_get_every_free_seat(run: FakeRun) -> None:
    run.quiet(20.0, held=0, fresh_took=SEATS - 1)
    verdict = run.check()
    assert any("took 5 seats, 6 were free" in x for x in verdict.violations["S3"]), verdict.report()


def test_the_table_invariant_is_checked_on_every_sample(run: FakeRun) -> None:
    run.sample(3.0, 0, allocated=(2, 2, 1), free=0)
    run.quiet(20.0, held=0)
    assert len(run.check().violations["table"]) == 1


def test_s2_report_interval_exception_does_not_cover_a_pool_with_a_free_seat(run: FakeRun) -> None:
    leases = _held_apart(run, SEATS - 3)
    fresh = run.grant("c2-a9", 5.0, server="s2")
    run.fault(5.2, 8.0, "server_kill", "s2", ["s2"])
    run.app("c2-a9", 9.0, "lost", lease=fresh, reason="s3 says lost", server="s3", deadline=T0 + 15)
    for app, lease in leases:
        run.app(app, 10.0, "releasing", lease=lease)
    run.quiet(30.0, held=0)
    verdict = run.check()
    assert len(verdict.violations["S2"]) == 1 and not verdict.exempt, verdict.report()
