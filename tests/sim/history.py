"""What the world looked like over time: fault intervals and the topology.

The liveness rules (S2, S3, L1) only apply where the design promises them, so
their checkers ask questions about the past:

* which faults were active during a window, and when a server was cut off;
* whether a client had a two-way path to a *healthy majority* (servers that
  are up, not stalled, pairwise connected both ways) all along a window.

The world records a ``Fault`` interval for every fault it applies and a
topology snapshot at every change; both only grow.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field

__all__ = ["Fault", "Topology", "History"]


@dataclass
class Fault:
    kind: str
    """``down``, ``stall``, ``cut``, ``lossy``, ``server_down``, ``pool_restart``."""
    subjects: frozenset[str]
    """The names it touches (servers and clients)."""
    start: float
    end: float = math.inf
    """``inf`` while it lasts."""

    def overlaps(self, a: float, b: float) -> bool:
        return self.start <= b and self.end >= a


@dataclass(frozen=True)
class Topology:
    since: float
    blocked: frozenset[tuple[str, str]]
    down: frozenset[str]
    stalled: frozenset[str]
    loss: float
    lossy_links: frozenset[tuple[str, str]] = frozenset()


@dataclass
class History:
    servers: tuple[str, ...]
    faults: list[Fault] = field(default_factory=list)
    topology: list[Topology] = field(default_factory=list)
    _healthy_cache: dict[tuple[int, str], bool] = field(default_factory=dict)

    @property
    def majority(self) -> int:
        return len(self.servers) // 2 + 1

    # ---- recording --------------------------------------------------------------

    def open(self, kind: str, subjects: frozenset[str] | set[str], start: float, end: float = math.inf) -> Fault:
        fault = Fault(kind, frozenset(subjects), start, end)
        self.faults.append(fault)
        return fault

    def close(self, kind: str, now: float, subject: str | None = None) -> None:
        for fault in self.faults:
            if fault.kind == kind and fault.end == math.inf and (subject is None or subject in fault.subjects):
                fault.end = now

    def snapshot(self, topo: Topology) -> None:
        if self.topology and self.topology[-1].since == topo.since:
            self.topology[-1] = topo
            self._healthy_cache = {k: v for k, v in self._healthy_cache.items() if k[0] != len(self.topology) - 1}
        else:
            self.topology.append(topo)

    # ---- questions -------------------------------------------------------------------

    def active(self, a: float, b: float, kinds: tuple[str, ...] | None = None) -> list[Fault]:
        """Faults that were on at some moment of [a, b]."""
        return [f for f in self.faults if f.overlaps(a, b) and (kinds is None or f.kind in kinds)]

    def quiet_since(self, now: float) -> float:
        """When the last fault ended (``inf`` if one is still on)."""
        ends = [f.end for f in self.faults]
        return max(ends, default=0.0)

    def cut_off(self, server: str, a: float, b: float) -> list[float]:
        """Start times (within [a, b]) of faults that touched ``server``."""
        return [f.start for f in self.faults if server in f.subjects and a <= f.start <= b]

    def had_majority_path(
        self, client: str, a: float, b: float, excused: list[tuple[float, float]] | None = None
    ) -> bool:
        """True when, at every moment of [a, b], ``client`` could reach every
        member of some healthy majority both ways (loss below 10%).  Moments
        inside an ``excused`` interval (a whole-pool restart, which S2 covers)
        count as reachable."""
        for i, topo in enumerate(self.topology):
            end = self.topology[i + 1].since if i + 1 < len(self.topology) else math.inf
            if end < a or topo.since > b:
                continue
            if excused and any(s <= max(topo.since, a) and min(end, b) <= e for s, e in excused):
                continue
            key = (i, client)
            if key not in self._healthy_cache:
                self._healthy_cache[key] = self._majority_reachable(topo, client)
            if not self._healthy_cache[key]:
                return False
        return True

    def _majority_reachable(self, topo: Topology, client: str) -> bool:
        if topo.loss >= 0.1:
            return False
        healthy = [s for s in self.servers if s not in topo.down and s not in topo.stalled]

        def both(x: str, y: str) -> bool:
            return (
                (x, y) not in topo.blocked
                and (y, x) not in topo.blocked
                and (x, y) not in topo.lossy_links
                and (y, x) not in topo.lossy_links
            )

        reachable = [s for s in healthy if both(client, s)]
        for size in range(len(reachable), self.majority - 1, -1):
            for group in itertools.combinations(reachable, size):
                if all(both(x, y) for x, y in itertools.combinations(group, 2)):
                    return True
        return False
