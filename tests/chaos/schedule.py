"""The seeded fault schedule of a chaos run (pure: no clock, no I/O).

A schedule is a list of :class:`Fault`, one at a time: each starts ``at``
seconds into the fault phase and lasts ``hold`` seconds (until the restart,
the SIGCONT or the link coming back up); the next one starts a gap after
that.  The first six faults are the six kinds in a seeded order, so even a
short run injects every kind; later ones are drawn at random.

=================  ============================================================
``server_kill``    SIGKILL of one server's process group, restart after ``hold``
``leader_kill``    SIGKILL of the leader's process group (named when it runs)
``pool_restart``   SIGKILL of every server, all restarted after ``hold``
``link_cut``       ``ip link set eth0 down`` in one host (a server, or now and
                   then a client host), up again after ``hold``
``stall``          SIGSTOP of one server's process group, SIGCONT after ``hold``
``app_kill``       SIGKILL of one client app, restarted after ``hold`` (it
                   resumes the leases it held)
=================  ============================================================
"""

from __future__ import annotations

import random
from dataclasses import dataclass

__all__ = ["KINDS", "Fault", "make_schedule"]

KINDS = ("server_kill", "leader_kill", "pool_restart", "link_cut", "stall", "app_kill")


@dataclass(frozen=True)
class Fault:
    at: float
    """Seconds into the fault phase."""
    kind: str
    target: str
    """A server, a host, an app, ``leader`` (resolved when it runs) or ``pool``."""
    hold: float
    """Seconds until the restart, the SIGCONT or the link back up."""


def make_schedule(
    seed: int,
    seconds: float,
    servers: tuple[str, ...],
    client_hosts: tuple[str, ...],
    apps: tuple[str, ...],
    gap: tuple[float, float] = (5.0, 10.0),
) -> list[Fault]:
    """Faults that all end within ``seconds``."""
    rng = random.Random(seed)
    first = list(KINDS)
    rng.shuffle(first)
    faults: list[Fault] = []
    at = rng.uniform(*gap) / 2
    while True:
        kind = first.pop(0) if first else rng.choice(KINDS)
        if kind == "server_kill":
            fault = Fault(at, kind, rng.choice(servers), rng.uniform(1.0, 4.0))
        elif kind == "leader_kill":
            fault = Fault(at, kind, "leader", rng.uniform(1.0, 4.0))
        elif kind == "pool_restart":
            fault = Fault(at, kind, "pool", rng.uniform(0.5, 2.0))
        elif kind == "link_cut":
            host = rng.choice(client_hosts) if rng.random() < 0.2 else rng.choice(servers)
            fault = Fault(at, kind, host, rng.uniform(2.0, 6.0))
        elif kind == "stall":
            fault = Fault(at, kind, rng.choice(servers), rng.uniform(1.0, 5.0))
        else:
            fault = Fault(at, kind, rng.choice(apps), rng.uniform(0.5, 3.0))
        if fault.at + fault.hold > seconds:
            return faults
        faults.append(fault)
        at = fault.at + fault.hold + rng.uniform(*gap)
