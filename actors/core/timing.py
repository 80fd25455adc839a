"""The pool's timing settings and the inequalities between them.

This module owns the one place where the timing rules of leadership.md M13
live.  ``docs/leadership.md`` derives each inequality; the config loader refuses
any setting that breaks one, naming the rule.  Pure: no clock, no I/O.

Notation used below and in the docs: h = heartbeat_interval, f = failure_timeout,
L = leader_lease, F = fence_timeout, T = lease_ttl, rho = clock_drift.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

__all__ = [
    "Timing",
    "Inequality",
    "INEQUALITIES",
    "timing_violations",
    "failover_seat_bound",
    "MAX_SERVERS",
]

MAX_SERVERS = 11
"""The largest pool the timing bounds are derived for (operations.md)."""


@dataclass(frozen=True)
class Timing:
    """The shared timing settings, in seconds (``[pool]`` table of pool.toml)."""

    heartbeat_interval: float = 0.5
    """h: how often servers and client sessions send heartbeats."""
    failure_timeout: float = 2.0
    """f: silence after which a peer or a server is suspected."""
    leader_lease: float = 1.9
    """L: how long a majority's acknowledgement keeps a leader acting.  The
    default keeps L(1+rho) <= f, so a new leader acts as soon as it wins
    (leadership.md M17)."""
    fence_timeout: float = 3.0
    """F: the longest serving lease the leader grants."""
    lease_ttl: float = 30.0
    """T: a client lease's life from the send of its last acknowledged renewal."""
    clock_drift: float = 0.01
    """rho: the largest clock-rate error between any two hosts."""

    def holder_valid_for(self, duration: float) -> float:
        """How long a lease of ``duration`` stays valid for its holder (from its send)."""
        return duration * (1.0 - self.clock_drift)

    def grantor_valid_for(self, duration: float) -> float:
        """How long a grantor must treat a lease of ``duration`` as valid (from receipt)."""
        return duration * (1.0 + self.clock_drift)

    @property
    def reclaim_delay(self) -> float:
        """T(1+rho): the wait between Fence(S) and proposing Reclaim(S)."""
        return self.grantor_valid_for(self.lease_ttl)

    @property
    def new_leader_wait(self) -> float:
        """max(0, L(1+rho) - f): how long a new leader waits after it won before
        it acts (leadership.md M17).  Every lease round of an earlier leader was
        acknowledged by one of its voters, which then waited f on its own clock
        before it voted; the wait makes up the rest of L(1+rho).  Zero when
        f >= L(1+rho)."""
        return max(0.0, self.grantor_valid_for(self.leader_lease) - self.failure_timeout)

    @property
    def app_transmit(self) -> float:
        """T: how long an app process's own transmits (its asks of its session,
        its direct asks of a server) may wait for their ACK.  A direct ask can
        thus reach its server up to T after it was sent, long after the app fell
        back to its session; so a server remembers the request of each grant
        for T (``ClientSide`` recent grants), and a late direct ask never takes
        a second seat.  A message older than T is worthless to the app anyway:
        a lease it could bring would have lapsed."""
        return self.lease_ttl

    @property
    def client_retry(self) -> float:
        """How long a client waits for one server before trying the next: 2h."""
        return 2.0 * self.heartbeat_interval


def failover_seat_bound(t: Timing, servers: int = MAX_SERVERS) -> float:
    """Worst time from a client's last acknowledged renewal until a fail-over
    update of a reported lease is seated, across one leader change.

    Terms, in order (docs/leadership.md derives each one):
      f                    the client notices its server is silent;
      m * 2h               it tries up to m = (n-1)//2 more dead servers;
      f + n*h/2            followers time out the dead leader (with priority stagger);
      max(0, L(1+rho)-f)   the new leader waits out the rest of the old
                           leader's lease (leadership.md M17);
      F(1+rho)             the holder's serving lease certainly expires;
      f                    the new leader suspects the silent holder;
      4h                   proposal, commit and reply round trips.
    """
    h, f = t.heartbeat_interval, t.failure_timeout
    dead_minority = (servers - 1) // 2
    return (
        f
        + dead_minority * t.client_retry
        + f
        + servers * h / 2.0
        + t.new_leader_wait
        + t.grantor_valid_for(t.fence_timeout)
        + f
        + 4.0 * h
    )


@dataclass(frozen=True)
class Inequality:
    """One timing rule: ``holds(t)`` must be true for a usable configuration."""

    key: str
    """The setting a violation is reported against."""
    rule: str
    """The rule in the docs' notation."""
    why: str
    """What breaks if it does not hold."""
    holds: Callable[[Timing], bool]


INEQUALITIES: tuple[Inequality, ...] = (
    Inequality(
        "heartbeat_interval",
        "h > 0",
        "heartbeats drive every timer",
        lambda t: t.heartbeat_interval > 0,
    ),
    Inequality(
        "clock_drift",
        "0 <= rho <= 0.1",
        "lease bounds assume clocks that run within 10% of each other",
        lambda t: 0.0 <= t.clock_drift <= 0.1,
    ),
    Inequality(
        "failure_timeout",
        "f >= 3h",
        "two lost heartbeats in a row must not make a healthy peer suspect",
        lambda t: t.failure_timeout >= 3 * t.heartbeat_interval,
    ),
    Inequality(
        "leader_lease",
        "L(1-rho) >= 3h",
        "the leader lease must survive two lost heartbeat rounds",
        lambda t: t.holder_valid_for(t.leader_lease) >= 3 * t.heartbeat_interval,
    ),
    Inequality(
        "fence_timeout",
        "F(1-rho) >= 3h",
        "a serving lease must survive two lost heartbeat rounds",
        lambda t: t.holder_valid_for(t.fence_timeout) >= 3 * t.heartbeat_interval,
    ),
    Inequality(
        "lease_ttl",
        "T(1-rho) >= failover_seat_bound (3f + 10h + 5.5h + max(0, L(1+rho) - f) + F(1+rho) + 4h for 11 servers)",
        "a fail-over update behind a dead holder must be seated before the client's deadline, "
        "even across one leader change (S2)",
        lambda t: t.holder_valid_for(t.lease_ttl) >= failover_seat_bound(t),
    ),
)


def timing_violations(t: Timing) -> list[tuple[str, str]]:
    """Every broken rule as ``(setting, reason)``; empty when ``t`` is usable."""
    broken = []
    for rule in INEQUALITIES:
        try:
            ok = rule.holds(t)
        except (ArithmeticError, TypeError):
            ok = False
        if not ok:
            broken.append((rule.key, f"must satisfy {rule.rule}: {rule.why}"))
    return broken
