"""The chaos run's checker: the rules of reliability.md against the logs of a run.

    python3 -m tests.chaos.check RUN_DIR

Reads what tests/chaos/harness.py wrote (apps/*.jsonl, faults.jsonl,
monitor.jsonl, meta.json) and returns a :class:`Verdict`: the violations of
each rule, with the log lines that show them, and the figures.

**What a client holds** (S1's "hold", in the client's own view).  A hold is
keyed by (app, lease id): the incarnations of one app are one client, so a
lease it resumes after a restart is one authorization, not two.  It begins at
the app's ``granted`` line (when the app learns of the seat) and ends at the
first of:

- ``releasing`` (logged before the app calls ``release``: it stops using the
  seat there);
- ``lost`` (the app was told, or its own deadline passed);
- the lease's deadline as last logged by the app (``granted``/``renewed``);
  an app may use a seat only until then;
- the app's death (SIGKILL), in the **usage view** only.  In the **deadline
  view**, which is the one S1 is judged on, a killed app holds each open lease
  until the last deadline it logged: its session stops within 0.25 s of the
  app and releases nothing, so the deadline cannot move much later, and the
  pool must not resell the seat before it (the app's log polls its deadlines
  every 50 ms, so a renewal in the last 50 ms before the kill is not seen).

**Majority up**: at most one server is down at any moment (the schedule never
overlaps faults), except from a whole-pool restart's SIGKILL until the first
status sample after it that shows a serving leader.

Rules:

- **S1**: at every moment, the holds (deadline view) number at most the
  licensed seats.  Also checked: the leader's ``in_use`` never exceeds the
  total, and a resume never yields a different lease id (a second seat).
- **S2**: a ``lost`` of a live app is a violation unless one of these names
  it: ``no-majority`` (inside a whole-pool restart's window), ``client-cut``
  (the app's own host was cut off, until 1 s after its link came back),
  ``report-interval`` (reliability.md's S2 exception: granted less than 2h before
  a fault hit its server, with no other seat free then).
- **S3**: after the faults stop and the apps freeze, the leader's ``in_use``
  equals what the live apps hold within ``lease_ttl + 5`` s of the last fault's
  end, and stays so; the fresh client then takes exactly every free seat;
  after the apps stop, ``in_use`` drains to 0 within ``lease_ttl + 5`` s.
- **Table**: in every status sample, allocations + free pool + in flight =
  total.
"""

from __future__ import annotations

import json
import statistics
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.chaos.harness import FEATURE, FRESH, read_jsonl

__all__ = ["Verdict", "check_run"]

RULES = ("S1", "S2", "S3", "table")
MOVE_SLACK = 2.0
"""A move off server X is explained by a fault of X until this long after it ended."""


@dataclass
class Hold:
    app: str
    inc: int
    lease: str
    server: str
    start: float
    deadline: float
    end: float | None = None
    usage_end: float | None = None
    how: str = ""
    line: dict[str, Any] = field(default_factory=dict)


@dataclass
class Verdict:
    violations: dict[str, list[str]] = field(default_factory=lambda: {r: [] for r in RULES})
    exempt: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    """Worth reading, not a rule: e.g. a resume refused after an app restart."""
    figures: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not any(self.violations.values())

    def report(self) -> str:
        lines = []
        for rule in RULES:
            found = self.violations[rule]
            lines.append(f"{rule}: {'ok' if not found else f'{len(found)} violation(s)'}")
            lines += [f"  - {x}" for x in found[:20]]
            if len(found) > 20:
                lines.append(f"  ... and {len(found) - 20} more")
        if self.exempt:
            lines.append(f"S2 exemptions ({len(self.exempt)}):")
            lines += [f"  - {x}" for x in self.exempt[:20]]
        if self.notes:
            lines.append(f"notes ({len(self.notes)}):")
            lines += [f"  - {x}" for x in self.notes[:20]]
        lines.append("figures:")
        lines += [f"  {k}: {v}" for k, v in self.figures.items()]
        lines.append(f"verdict: {'PASS' if self.ok else 'FAIL'}")
        return "\n".join(lines)


def _short(line: dict[str, Any]) -> str:
    return json.dumps({k: (round(v, 3) if isinstance(v, float) else v) for k, v in line.items()})


def _lid(lease: str) -> str:
    """A lease id short enough to read and long enough to tell apart: server.epoch.n.nonce[:6]."""
    parts = lease.split(".")
    return ".".join([*parts[:3], parts[3][:6]]) if len(parts) > 3 else lease


def _pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 3)


class _Run:
    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self.meta = json.loads((directory / "meta.json").read_text())
        self.seats: int = self.meta["seats"]
        self.timing = self.meta["settings"]["timing"]
        self.servers: list[str] = self.meta["servers"]
        self.client_hosts: list[str] = self.meta["client_hosts"]
        self.records = read_jsonl(directory / "faults.jsonl")
        self.status = [x for x in read_jsonl(directory / "monitor.jsonl") if x.get("event") == "status"]
        self.apps = {p.stem: read_jsonl(p) for p in sorted((directory / "apps").glob("*.jsonl"))}
        self.t0 = self.records[0]["ts"] if self.records else 0.0
        self.end = max([x["ts"] for x in self.records] + [0.0])
        self.windows = self._fault_windows()
        self.no_majority = self._no_majority()
        self.kills = {
            (x["target"], x["inc"]): x["ts"]
            for x in self.records
            if x["event"] == "fault" and x.get("kind") == "app_kill" and x["phase"] == "start"
        }

    def at(self, ts: float) -> str:
        return f"t+{ts - self.t0:.2f}s"

    def mark(self, name: str) -> float | None:
        return next((x["ts"] for x in self.records if x["event"] == name), None)

    def _fault_windows(self) -> list[dict[str, Any]]:
        windows, open_ = [], None
        for x in self.records:
            if x["event"] != "fault":
                continue
            if x["phase"] == "start":
                open_ = {**x, "start": x["ts"], "end": None}
                windows.append(open_)
            elif open_ is not None:
                open_["end"] = x["ts"]
                open_ = None
        for w in windows:
            if w["end"] is None:
                w["end"] = self.end
            w["until"] = w["end"]
        return windows

    def formed_after(self, ts: float, unlike: str | None = None) -> float | None:
        for s in self.status:
            if s["ts"] > ts and s.get("ok") and s["leader"] and s["serving"] and s["leader"] != unlike:
                return float(s["ts"])
        return None

    def _no_majority(self) -> list[tuple[float, float]]:
        found = []
        for w in self.windows:
            if w["kind"] == "pool_restart":
                formed = self.formed_after(w["end"])
                w["until"] = formed if formed is not None else self.end
                found.append((w["start"], w["until"]))
        return found

    def majority_up(self, ts: float) -> bool:
        return not any(a <= ts <= b for a, b in self.no_majority)

    def server_fault(self, server: str, ts: float, slack: float = 0.0) -> dict[str, Any] | None:
        for w in self.windows:
            if server in w.get("servers", ()) and w["start"] <= ts <= w["until"] + slack:
                return w
        return None

    def host_cut(self, host: str, ts: float, slack: float) -> dict[str, Any] | None:
        for w in self.windows:
            if w["kind"] == "link_cut" and w["target"] == host and w["start"] <= ts <= w["end"] + slack:
                return w
        return None

    # ---- holds -----------------------------------------------------------------------

    def holds(self) -> list[Hold]:
        found: list[Hold] = []
        for app, lines in self.apps.items():
            open_: dict[str, Hold] = {}
            inc = -1

            def close_all(ts: float | None, why: str, open_: dict[str, Hold] = open_) -> None:
                for h in open_.values():
                    h.end = h.deadline
                    h.usage_end = min(h.deadline, ts) if ts is not None else h.deadline
                    h.how = why
                open_.clear()

            for x in lines:
                if x["inc"] != inc:
                    close_all(self.kills.get((app, inc)), "killed" if (app, inc) in self.kills else "log ended")
                    inc = x["inc"]
                ev, lease = x["event"], str(x.get("lease", ""))
                if ev == "granted":
                    h = Hold(app, inc, lease, x["server"], x["ts"], x["deadline"], line=x)
                    open_[lease] = h
                    found.append(h)
                elif ev == "renewed" and lease in open_:
                    open_[lease].deadline = max(open_[lease].deadline, x["deadline"])
                    open_[lease].server = x["server"]
                elif ev in ("releasing", "lost") and lease in open_:
                    h = open_.pop(lease)
                    if ev == "lost":
                        h.deadline = max(h.deadline, x.get("deadline") or 0.0)
                    h.end = h.usage_end = min(x["ts"], h.deadline)
                    h.how = ev
            close_all(self.kills.get((app, inc)), "killed" if (app, inc) in self.kills else "log ended")
        # A lease resumed by a later incarnation of the app is the same authorization:
        # the dead incarnation's hold ends where the new one takes it over.
        for h in found:
            if h.line.get("resumed") == h.lease:
                for old in found:
                    if old.app == h.app and old.lease == h.lease and old.inc < h.inc:
                        old.end = min(old.end or h.start, h.start)
                        old.usage_end = min(old.usage_end or h.start, h.start)
                        old.how += f", resumed by #{h.inc}"
        return found


def _sweep(holds: list[Hold], end_of: Any) -> tuple[int, list[tuple[float, list[Hold]]]]:
    """The most holds at once (one per (app, lease), intervals merged), and each moment above none."""
    merged: dict[tuple[str, str], list[tuple[float, float, Hold]]] = {}
    for h in holds:
        end = end_of(h)
        if end is None or end <= h.start:
            continue
        merged.setdefault((h.app, h.lease), []).append((h.start, end, h))
    events: list[tuple[float, int, tuple[str, str], Hold]] = []
    for key, spans in merged.items():
        spans.sort(key=lambda s: s[0])
        cur_start, cur_end, cur_hold = spans[0]
        for start, end, hold in spans[1:]:
            if start <= cur_end:
                cur_end = max(cur_end, end)
            else:
                events += [(cur_start, 1, key, cur_hold), (cur_end, 0, key, cur_hold)]
                cur_start, cur_end, cur_hold = start, end, hold
        events += [(cur_start, 1, key, cur_hold), (cur_end, 0, key, cur_hold)]
    events.sort(key=lambda e: (e[0], e[1]))
    held: dict[tuple[str, str], Hold] = {}
    peak, over = 0, []
    for ts, kind, key, hold in events:
        if kind == 0:
            held.pop(key, None)
            continue
        held[key] = hold
        peak = max(peak, len(held))
        over.append((ts, list(held.values())))
    return peak, over


def check_run(directory: Path) -> Verdict:
    run = _Run(Path(directory))
    v = Verdict()
    holds = run.holds()
    _check_s1(run, holds, v)
    _check_s2(run, holds, v)
    _check_s3(run, holds, v)
    _check_table(run, v)
    _figures(run, holds, v)
    return v


def _check_s1(run: _Run, holds: list[Hold], v: Verdict) -> None:
    """S1: never more leases held than seats."""
    fig = v.figures
    peak, moments = _sweep(holds, lambda x: x.end)
    fig["S1 peak holds, deadline view"] = f"{peak} of {run.seats}"
    fig["S1 peak holds, usage view"] = f"{_sweep(holds, lambda x: x.usage_end)[0]} of {run.seats}"
    for ts, held in moments:
        if len(held) > run.seats:
            v.violations["S1"].append(
                f"{run.at(ts)}: {len(held)} leases held, {run.seats} seats: "
                + "; ".join(
                    f"{x.app}#{x.inc} {_lid(x.lease)} from {run.at(x.start)} at {x.server} until "
                    f"{run.at(x.end or 0)} ({x.how})"
                    for x in sorted(held, key=lambda y: y.start)
                )
            )
    for s in run.status:
        for f in s.get("features", ()) if s.get("ok") else ():
            in_use = sum(u["in_use"] for u in f["servers"].values())
            if in_use > f["total"]:
                v.violations["S1"].append(f"{run.at(s['ts'])}: the leader's in_use {in_use} > total {f['total']}")
    for app, lines in run.apps.items():
        for x in lines:
            if x["event"] == "granted" and x.get("resumed") and x["resumed"] != x["lease"]:
                v.violations["S1"].append(f"{app}: resuming {x['resumed']} gave another lease: {_short(x)}")


def _check_s2(run: _Run, holds: list[Hold], v: Verdict) -> None:
    """S2: no lease lost, unless a fault explains it (exempt)."""
    fig = v.figures
    h = run.timing["heartbeat_interval"]
    grants = {(x.app, x.lease): x for x in holds}
    lost = [(app, x) for app, lines in run.apps.items() for x in lines if x["event"] == "lost"]
    fig["leases lost"] = len(lost)
    for app, x in lost:
        ts, host = x["ts"], app.split("-")[0]
        why = None
        if not run.majority_up(ts):
            why = "no-majority (whole-pool restart, before a serving leader was back)"
        elif (w := run.host_cut(host, ts, 1.0)) is not None:
            why = f"client-cut (host {host} cut at {run.at(w['start'])})"
        else:
            g = grants.get((app, x["lease"]))
            if g is not None:
                for w in run.windows:
                    if g.line["server"] in w.get("servers", ()) and w["start"] - 2 * h < g.start <= w["start"]:
                        busy = sum(1 for y in holds if y.start <= w["start"] < (y.end or 0))
                        if busy >= run.seats:
                            why = (
                                f"report-interval (granted {w['start'] - g.start:.2f} s before {w['kind']} of "
                                f"{g.line['server']}, all {run.seats} seats held)"
                            )
        text = f"{run.at(ts)} {app}#{x['inc']} lost {_lid(x['lease'])} at {x.get('server')}: {x.get('reason')}"
        g = grants.get((app, x["lease"]))
        if g is not None:
            text += f" (granted {run.at(g.start)} at {g.line['server']})"
        active = [w for w in run.windows if w["start"] <= ts <= w["end"] + 3.0]
        text += "; faults around: " + (
            ", ".join(f"{w['kind']} {w['target']} {run.at(w['start'])}-{run.at(w['end'])}" for w in active) or "none"
        )
        if why:
            v.exempt.append(f"{text} -> exempt: {why}")
        else:
            v.violations["S2"].append(text + f" | {_short(x)}")


def _check_s3(run: _Run, holds: list[Hold], v: Verdict) -> None:
    """S3: after the faults, in_use matches what the live apps hold, and drains when they stop."""
    fig = v.figures
    ttl = run.timing["lease_ttl"]
    faults_end = run.mark("faults_end")
    frozen_at = run.mark("frozen")
    fill_begin = run.mark("fill_begin")
    stopped = run.mark("apps_stopping")
    if faults_end is None or frozen_at is None or fill_begin is None:
        v.violations["S3"].append("the run did not reach its quiet phase")
    else:
        last_apps = {}
        for app, lines in run.apps.items():
            if app != FRESH and lines:
                last_apps[app] = lines[-1]["inc"]

        def live_held(ts: float) -> int:
            return sum(
                1
                for x in holds
                if x.app in last_apps
                and x.inc == last_apps[x.app]
                and x.start <= ts
                and (x.usage_end is None or x.usage_end > ts)
            )

        samples = [s for s in run.status if frozen_at <= s["ts"] <= fill_begin and s.get("ok")]
        match_at = None
        mismatched_after = []
        for s in samples:
            f = next((f for f in s["features"] if f["feature"] == FEATURE), None)
            in_use = sum(u["in_use"] for u in f["servers"].values()) if f else -1
            app_held = live_held(s["asked"])
            if in_use == app_held and match_at is None:
                match_at = s["ts"]
            elif in_use != app_held and match_at is not None:
                mismatched_after.append(f"{run.at(s['ts'])}: in_use {in_use}, apps hold {app_held}")
        bound = ttl + 5.0
        if match_at is None:
            last = samples[-1] if samples else None
            v.violations["S3"].append(
                f"in_use never matched what the live apps hold after the faults (last sample: "
                f"{_short({k: last[k] for k in ('ts', 'leader', 'features')}) if last else 'none'}; "
                f"apps hold {live_held(fill_begin)})"
            )
        else:
            took = match_at - faults_end
            fig["S3 in_use matched the apps after"] = f"{took:.2f} s (bound {bound:.0f} s)"
            if took > bound:
                v.violations["S3"].append(f"in_use matched the apps only {took:.2f} s after the faults ended")
        v.violations["S3"] += [f"in_use drifted after matching: {x}" for x in mismatched_after]
        fresh = run.apps.get(FRESH, [])
        filled = next((x for x in fresh if x["event"] == "filled"), None)
        expect = run.seats - live_held(fill_begin)
        if filled is None:
            v.violations["S3"].append("the fresh client never finished filling the pool")
        else:
            fig["fresh client took"] = f"{filled['count']} of {expect} free seats"
            if filled["count"] != expect:
                noes = [_short(x) for x in fresh if x["event"] == "denied"]
                v.violations["S3"].append(
                    f"the fresh client took {filled['count']} seats, {expect} were free; its denials: {noes}"
                )
        if stopped is not None:
            drained = next(
                (
                    s["ts"]
                    for s in run.status
                    if s["ts"] > stopped
                    and s.get("ok")
                    and all(sum(u["in_use"] for u in f["servers"].values()) == 0 for f in s["features"])
                ),
                None,
            )
            if drained is None or drained - stopped > bound:
                v.violations["S3"].append(f"in_use did not drain to 0 within {bound:.0f} s of the apps stopping")
            else:
                fig["in_use drained after the apps stopped"] = f"{drained - stopped:.2f} s"


def _check_table(run: _Run, v: Verdict) -> None:
    """Every status sample's table adds up: allocated + free + in flight == total."""
    fig = v.figures
    checked = 0
    for s in run.status:
        for f in s.get("features", ()) if s.get("ok") else ():
            checked += 1
            allocated = sum(u["allocated"] for u in f["servers"].values())
            if allocated + f["free_pool"] + f["in_flight"] != f["total"]:
                v.violations["table"].append(
                    f"{run.at(s['ts'])} (by {s['answered_by']}): allocated {allocated} + free {f['free_pool']} + "
                    f"in flight {f['in_flight']} != total {f['total']}"
                )
    fig["status samples checked"] = checked


def _figures(run: _Run, holds: list[Hold], v: Verdict) -> None:
    fig = v.figures
    fig["faults injected"] = ", ".join(f"{w['kind']} {w['target']}" for w in run.windows)
    _checkout_figures(run, v)
    # fail-over: the leases at a faulted server, until each shows at another one
    moves = [(app, x) for app, lines in run.apps.items() for x in lines if x["event"] == "moved"]
    _failover_figures(run, holds, moves, v)
    unexplained = _unexplained_moves(run, moves)
    _server_side(run, holds, v)
    fig["lease moves"] = len(moves)
    fig["moves off a server that was up and connected"] = len(unexplained)
    if unexplained:
        fig["  those moves"] = unexplained[:12]


def _checkout_figures(run: _Run, v: Verdict) -> None:
    """Availability and latency of the apps' checkouts, and their resumes."""
    fig = v.figures
    begin, end = run.mark("faults_begin"), run.mark("faults_end")
    asked: dict[tuple[str, int, int], dict[str, Any]] = {}
    outcomes = []
    for app, lines in run.apps.items():
        if app == FRESH:
            continue
        for x in lines:
            key = (app, x["inc"], x.get("req", -1))
            if x["event"] == "asked":
                asked[key] = x
            elif x["event"] in ("granted", "denied", "error") and key in asked:
                outcomes.append((asked[key], x))
    in_phase = [(a, o) for a, o in outcomes if begin is not None and end is not None and begin <= a["ts"] <= end]
    up = [(a, o) for a, o in in_phase if run.majority_up(a["ts"]) and "lease" not in a]
    served = [o for _, o in up if o["event"] == "granted" or o.get("reason") == "NO_SEATS"]
    fig["checkouts during the faults, majority up"] = len(up)
    if up:
        fig["availability (granted or NO_SEATS) while a majority is up"] = f"{100 * len(served) / len(up):.2f} %"
    reasons: dict[str, int] = {}
    for _, o in up:
        key = o["event"] if o["event"] != "denied" else o["reason"]
        reasons[key] = reasons.get(key, 0) + 1
    fig["outcomes while a majority is up"] = reasons
    lat = [o["latency"] for _, o in up if o["event"] == "granted"]
    fig["checkout latency p50/p99 (granted, majority up)"] = f"{_pct(lat, 0.5)} s / {_pct(lat, 0.99)} s"
    calm = [
        o["latency"]
        for a, o in outcomes
        if o["event"] == "granted" and "lease" not in a and begin is not None and a["ts"] < begin
    ]
    fig["checkout latency p50/p99 before any fault"] = f"{_pct(calm, 0.5)} s / {_pct(calm, 0.99)} s"
    resumes = [(a, o) for a, o in outcomes if "lease" in a]
    fig["resumes after an app kill (granted/asked)"] = (
        f"{sum(1 for _, o in resumes if o['event'] == 'granted')}/{len(resumes)}"
    )
    for a, o in resumes:
        if o["event"] != "granted":
            v.notes.append(f"resume of {_lid(a['lease'])} by {a['app']}#{a['inc']} refused: {_short(o)}")


def _failover_figures(run: _Run, holds: list[Hold], moves: list[tuple[str, dict[str, Any]]], v: Verdict) -> None:
    """How long leases, leaders and a whole pool took to come back after each kind of fault."""
    fig = v.figures
    per_kind: dict[str, list[float]] = {}
    for w in run.windows:
        if not w.get("servers") or w["kind"] == "pool_restart":
            continue
        at_server = [
            y
            for y in holds
            if y.server and y.start <= w["start"] < (y.usage_end or 0) and y.line["server"] in w["servers"]
        ]
        for y in at_server:
            first = next(
                (
                    m["ts"]
                    for app, m in moves
                    if app == y.app
                    and m["lease"] == y.lease
                    and m["from"] in w["servers"]
                    and w["start"] <= m["ts"] <= w["end"] + 15.0
                ),
                None,
            )
            if first is not None:
                per_kind.setdefault(w["kind"], []).append(first - w["start"])
    fig["lease fail-over after a fault of its server (count, p50, max)"] = {
        k: (len(x), round(statistics.median(x), 2), round(max(x), 2)) for k, x in per_kind.items()
    }
    leader_changes = []
    for w in run.windows:
        if w["kind"] == "leader_kill":
            formed = run.formed_after(w["start"], unlike=w["target"])
            if formed is not None:
                leader_changes.append(round(formed - w["start"], 2))
    fig["leader kill -> another serving leader seen (s, 0.5 s polls)"] = leader_changes
    restarts = [round(b - a, 2) for a, b in run.no_majority]
    fig["whole-pool restart -> serving leader seen (s)"] = restarts


def _unexplained_moves(run: _Run, moves: list[tuple[str, dict[str, Any]]]) -> list[str]:
    """The lease moves off a server that was up and connected to the app's host."""
    unexplained = []
    for app, m in moves:
        host = app.split("-")[0]
        if run.server_fault(m["from"], m["ts"], MOVE_SLACK) is None and run.host_cut(host, m["ts"], MOVE_SLACK) is None:
            near = [w for w in run.windows if w["start"] - 1 <= m["ts"] <= w["end"] + 10.0]
            unexplained.append(
                f"{run.at(m['ts'])} {app} {_lid(m['lease'])} {m['from']}->{m['to']} during "
                + (", ".join(f"{w['kind']} {w['target']} (leader {w.get('leader')})" for w in near) or "no fault")
            )
    return unexplained


def _server_side(run: _Run, holds: list[Hold], v: Verdict) -> None:
    """Figures from the servers' audit logs and the status samples: seats the pool
    counted that no app knew of (abandoned or duplicate checkouts, dead apps)."""
    from datetime import datetime

    fig = v.figures
    seen = {h.lease for h in holds}
    audit: dict[str, dict[str, float]] = {}
    owners: dict[str, tuple[str, str]] = {}
    for path in sorted((run.dir / "pool" / "data").glob("*/audit.jsonl")):
        for x in read_jsonl(path):
            if x.get("event") in ("grant", "release", "expiry") and x.get("lease_id"):
                ts = datetime.fromisoformat(x["time"]).timestamp()
                if x["event"] == "grant" and x.get("resumed"):
                    continue
                audit.setdefault(x["lease_id"], {}).setdefault(x["event"], ts)
                if x["event"] == "grant":
                    owners[x["lease_id"]] = (str(x.get("client_id")), str(x.get("node")))
    granted = {k: e for k, e in audit.items() if "grant" in e}
    unseen = {k: e for k, e in granted.items() if k not in seen}
    released = [e["release"] - e["grant"] for e in unseen.values() if "release" in e]
    expired = [k for k, e in unseen.items() if "release" not in e and "expiry" in e]
    fig["server grants (audit) / seen by an app"] = f"{len(granted)} / {len(granted) - len(unseen)}"
    fig["grants no app saw: released by their session / expired / neither"] = (
        f"{len(released)} (p50 {_pct(released, 0.5)} s after the grant) / {len(expired)} / "
        f"{len(unseen) - len(released) - len(expired)}"
    )
    # Releases the pool never recorded: the seat stays taken until the lease expires.
    released_by_app = {
        (x["lease"], x["ts"], x.get("server", ""))
        for lines in run.apps.values()
        for x in lines
        if x["event"] == "releasing"
    }
    unheard = [(lease, ts) for lease, ts, _ in released_by_app if "release" not in audit.get(lease, {"release": 0.0})]
    why: dict[str, int] = {}
    for lease, ts, server in released_by_app:
        if "release" not in audit.get(lease, {"release": 0.0}):
            w = run.server_fault(server, ts, 1.0)
            key = w["kind"] if w else "its server had no fault"
            why[key] = why.get(key, 0) + 1
    idle = [audit[lease]["expiry"] - ts for lease, ts in unheard if "expiry" in audit.get(lease, {})]
    fig["releases no server recorded (the seat waited for expiry) / all releases"] = (
        f"{len(unheard)} / {len(released_by_app)}, seats idle {sum(idle):.0f} seat-s in all "
        f"(p50 {_pct(idle, 0.5)} s each); sent during: {why}"
    )
    for lease, ts in sorted(unheard, key=lambda x: x[1])[:5]:
        v.notes.append(
            f"release of {_lid(lease)} at {run.at(ts)} reached no server; "
            + (
                f"it expired at {run.at(audit[lease]['expiry'])}"
                if "expiry" in audit.get(lease, {})
                else "no expiry recorded either"
            )
        )
    for lease in expired:
        client, node = owners[lease]
        g, gone = unseen[lease]["grant"], unseen[lease]["expiry"]
        near = [o for o in run.apps.get(client, []) if o["event"] in ("denied", "error") and g - 6 <= o["ts"] <= g + 1]
        v.notes.append(
            f"{node} granted {_lid(lease)} to {client} at {run.at(g)}; no app saw it; it held its seat "
            f"until it expired at {run.at(gone)}; {client}'s answers then: "
            + (", ".join(f"{o.get('reason', o['event'])} at {run.at(o['ts'])}" for o in near) or "none")
        )
    begin, end = run.mark("faults_begin"), run.mark("faults_end")
    extra = []
    for s in run.status:
        if not s.get("ok") or begin is None or end is None or not begin <= s["ts"] <= end:
            continue
        f = next((f for f in s["features"] if f["feature"] == FEATURE), None)
        if f is None:
            continue
        in_use = sum(u["in_use"] for u in f["servers"].values())
        held = sum(1 for h in holds if h.start <= s["asked"] < (h.usage_end or 0))
        extra.append(in_use - held)
    if extra:
        fig["leader's in_use minus what live apps hold, during the faults (p50, max)"] = (
            statistics.median(extra),
            max(extra),
        )


def main(argv: list[str]) -> int:
    verdict = check_run(Path(argv[0]))
    print(verdict.report())
    return 0 if verdict.ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
