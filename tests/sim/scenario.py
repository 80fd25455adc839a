"""A small declarative scenario format, run by the simulator and replayable by a
real-Thespian harness.

A scenario is plain data (JSON-able): a pool shape and a list of timed steps.
Times are seconds from the start of the run.

Actions, ``("at", t, action, *args)``:

=====================  ===============================================================
``kill S``             crash server S (unsynced writes are lost)
``restart S``          start S again from its durable image
``stall S d``          S stops processing for d seconds (messages queue), then resumes
``partition A B``      cut both directions between the lists of names A and B
                       (a name in both lists stays on side A)
``oneway A B``         drop every message from A to B, not the way back
``heal``               remove every cut and lossy link
``lossy rate``         background loss on every link
``clock H rate``       host H's clock runs at ``rate`` (within 1 +- rho)
``checkout C F V``     client C asks for a seat of feature F version V
``queue C F V T``      client C asks for a seat, waiting up to T seconds in the queue
``checkout_n C F V N`` client C asks for N seats of F V in one lease (all or none)
``release C F V``      client C releases one lease of F V it holds
``crash_client C``     client C's process dies (no release)
``reconnect C``        client C's app restarts: a new session resumes its leases by id
``license F V N S D``  admin: add a code of N seats, serial S, criteria D (or null)
``addon SER N ASER``   admin: add N seats to the code with serial SER
``criteria F V SPEC``  admin: distribution criteria ``s1:4^s2:3``
``force_release C``    admin: force-release one lease client C holds
``idle_timeout F V S`` admin: the feature's idle_timeout policy, S seconds (issue 14)
``idle C``             client C's app marks its first lease idle (``auth.idle()``)
``server_down S``      admin: assert S is stopped (only while it is)
``quiet``              start of the quiet tail: heal, restart all, end stalls, no loss
``crash_on P``         arm a crash point: ``leader`` (the next new leader dies after
                       persisting its first entry, before sending it), ``commit``
                       (the next new leader dies right after its commit index moves)
                       or ``adopt`` (the next server to adopt a lease dies inside
                       that step: a power cut keeps a random prefix of its bytes)
=====================  ===============================================================

A server name may be ``$leader`` (the current leader), ``$follower`` (the first
up server that is not the leader), ``$down`` (the first server that is down) or
``$holder:C`` (the server of client C's first lease), resolved when the step
runs.  In a list of names, ``$rest`` stands for every server but the leader.

Expectations, ``("expect", t, what, *args)``, checked at time t:
``held C N`` (C holds exactly N leases), ``held_at_least C N``, ``seats C N``
(C's leases hold exactly N seats in all),
``lost C N`` (C has lost N leases so far), ``leader`` (some server leads),
``leader_not S`` (S is not the leader; names resolve at the step's time),
``granted C N`` (C was granted N times so far), ``all_live`` (there is a
leader and its committed table shows every server ``live``: all have rejoined),
``stat_at_most KEY N`` (the checker's figure ``KEY`` is at most N so far, e.g.
``moved_off_live``), ``queue_order "C1,C2,..."`` (those clients' queued
checkouts were all granted, in that order), ``queued F V N`` (the leader's
committed queue of F V holds N waiters).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["Step", "Scenario", "ACTIONS", "EXPECTATIONS", "validate", "load_json", "dump_json"]

Step = tuple[Any, ...]

ACTIONS: dict[str, int] = {
    "kill": 1,
    "restart": 1,
    "stall": 2,
    "partition": 2,
    "oneway": 2,
    "heal": 0,
    "lossy": 1,
    "clock": 2,
    "checkout": 3,
    "queue": 4,
    "checkout_n": 4,
    "release": 3,
    "crash_client": 1,
    "reconnect": 1,
    "license": 5,
    "addon": 3,
    "criteria": 3,
    "force_release": 1,
    "idle_timeout": 3,
    "idle": 1,
    "server_down": 1,
    "quiet": 0,
    "crash_on": 1,
    "wipe": 1,
}
"""Action name -> number of arguments."""

EXPECTATIONS: dict[str, int] = {
    "held": 2,
    "held_at_least": 2,
    "seats": 2,
    "lost": 2,
    "leader": 0,
    "leader_not": 1,
    "granted": 2,
    "all_live": 0,
    "stat_at_most": 2,
    "queue_order": 1,
    "queued": 3,
}


@dataclass
class Scenario:
    name: str
    description: str
    servers: int = 3
    clients: int = 2
    seats: int = 4
    """Seats of the initial license code ``cad 2.0`` (serial ``L1``), added at t=0."""
    duration: float = 60.0
    steps: list[Step] = field(default_factory=list)
    workload: bool = False
    """Also run the random app workload on every client (``criteria under load``)."""
    seed: int = 1
    """Fixes network delays and nonces; the steps themselves are exact."""
    distribution: str | None = None
    """Criteria of the initial code, e.g. ``s1:2^s2:1^s3:1``."""
    shell: bool = False
    """Run on the shell model (tests/sim/shell.py): service time, transport, session actor, LicenseClient."""
    compact_every: int = 150
    """Journal records between compactions (the real NodeStore: 2,000; scaled down so they happen)."""
    local_hop: tuple[float, float] | None = None
    """App <-> session delay on the shell model (a loaded app host); None: the default."""
    late_direct: tuple[float, float, float] | None = None
    """(share, shortest, longest) of the app's direct asks late in transit on the shell model; None: none
    (random schedules draw them, ``ShellParams.late_direct``; a scenario's steps are exact)."""
    service_scale: float = 1.0
    """The shell model's CPU cost of a server step (per message, core, per send) times this: a loaded
    server host (``mass_release``: 5, the 2-core machine at load 11). The fsync is the disk's, unscaled."""
    checkout_timeout: float | None = None
    """``LicenseClient.checkout(timeout=...)`` of scripted checkouts on the shell model."""
    max_seats: int = 1
    """Above 1: the workload's checkouts ask for 1..max_seats seats in one lease (issue 14)."""
    linger: float = 0.0
    """Above 0: the workload's checkouts ask their seats to linger that long after the release (issue 14)."""

    def __post_init__(self) -> None:
        validate(self.steps)


def validate(steps: list[Step]) -> None:
    """Raise ValueError on a malformed step (a typo must not silently pass)."""
    for step in steps:
        if len(step) < 3 or step[0] not in ("at", "expect") or not isinstance(step[1], (int, float)):
            raise ValueError(f"malformed step {step!r}")
        table = ACTIONS if step[0] == "at" else EXPECTATIONS
        if step[2] not in table:
            raise ValueError(f"unknown {step[0]} {step[2]!r} in {step!r}")
        if len(step) - 3 != table[step[2]]:
            raise ValueError(f"{step[2]!r} takes {table[step[2]]} arguments: {step!r}")


def dump_json(scenario: Scenario) -> str:
    return json.dumps(asdict(scenario), indent=1)


def load_json(path: str | Path) -> Scenario:
    data = json.loads(Path(path).read_text())
    data["steps"] = [tuple(s) for s in data.get("steps", [])]
    for key in ("local_hop", "late_direct"):
        if data.get(key) is not None:
            data[key] = tuple(data[key])
    return Scenario(**data)
