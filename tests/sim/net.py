"""The in-memory network: per-message delays, drops, duplicates, partitions.

Every endpoint (server, client session, the admin CLI) has a name.  A message
from ``src`` to ``dst`` is decided when it is sent:

* dropped when the link ``(src, dst)`` is blocked (partitions are sets of
  blocked directed pairs, so one-way partitions are just half of a symmetric
  one), or with the link's loss rate;
* otherwise delivered after an independent random delay (so messages reorder),
  usually ``delay_min..delay_max``, now and then a long one, and sometimes
  twice.

The network decides fates only; the world schedules the deliveries.  Its own
``random.Random`` is seeded from the world's seed.
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from dataclasses import dataclass, field

__all__ = ["NetParams", "Network"]


@dataclass
class NetParams:
    delay_min: float = 0.001
    delay_max: float = 0.020
    long_rate: float = 0.002
    """Chance that a message takes a long delay."""
    long_max: float = 0.5
    drop_rate: float = 0.0
    """Background loss on every link (the quiet tail sets it to 0)."""
    dup_rate: float = 0.0


@dataclass
class Network:
    rng: random.Random
    params: NetParams = field(default_factory=NetParams)
    blocked: set[tuple[str, str]] = field(default_factory=set)
    lossy: dict[tuple[str, str], float] = field(default_factory=dict)
    """Extra loss rate of single links (a flaky NIC)."""
    sent: int = 0
    dropped: int = 0

    # ---- topology ----------------------------------------------------------------

    def block(self, src: str, dst: str) -> None:
        self.blocked.add((src, dst))

    def oneway(self, srcs: Iterable[str], dsts: Iterable[str]) -> None:
        """Block every message from ``srcs`` to ``dsts`` (not the way back)."""
        dsts = list(dsts)
        for a in srcs:
            for b in dsts:
                if a != b:
                    self.blocked.add((a, b))

    def partition(self, side_a: Iterable[str], side_b: Iterable[str]) -> None:
        """Cut both directions between the two sides."""
        side_a, side_b = list(side_a), list(side_b)
        self.oneway(side_a, side_b)
        self.oneway(side_b, side_a)

    def heal(self) -> None:
        self.blocked.clear()
        self.lossy.clear()

    def connected(self, a: str, b: str) -> bool:
        """Both directions open (loss aside)."""
        return (a, b) not in self.blocked and (b, a) not in self.blocked

    def link_loss(self, src: str, dst: str) -> float:
        return max(self.params.drop_rate, self.lossy.get((src, dst), 0.0))

    # ---- fates ---------------------------------------------------------------------

    def fate(self, src: str, dst: str) -> list[float]:
        """The delays of the copies of one message that arrive (empty: lost)."""
        self.sent += 1
        if (src, dst) in self.blocked:
            self.dropped += 1
            return []
        loss = self.link_loss(src, dst)
        if loss and self.rng.random() < loss:
            self.dropped += 1
            return []
        copies = [self._delay()]
        if self.params.dup_rate and self.rng.random() < self.params.dup_rate:
            copies.append(self._delay())
        return copies

    def _delay(self) -> float:
        p = self.params
        if p.long_rate and self.rng.random() < p.long_rate:
            return self.rng.uniform(p.delay_max, p.long_max)
        return self.rng.uniform(p.delay_min, p.delay_max)

    @property
    def max_delay(self) -> float:
        return max(self.params.delay_max, self.params.long_max if self.params.long_rate else 0.0)
