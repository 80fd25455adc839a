"""Where seats come from: the borrowing threshold and the claims' source orders.

* ``borrow_threshold_exceeded``: claims 1 and 16, ``in_use / allocated > threshold``.
* ``seats_to_borrow``: enough to bring the borrower back under its threshold, >= 1.
* ``find_sources``: the leader's search, in the order the claims fix:
  - a new request: free pool, down servers, the leader, other live servers
    (claims 5, 19);
  - a fail-over update: the leader, free pool, down servers, then other live
    servers (claims 14, 15, 28, 29).
* ``idle_excess``: what idle rebalancing may take back (claim 32,
  leadership.md M9), never so much that the holder would have to borrow again.

Pure: no clock, no I/O.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from fractions import Fraction

from actors.core.pool import LIVE, PoolState, down_source
from actors.core.table import FeatureKey

__all__ = [
    "REQUEST_ORDER",
    "FAILOVER_ORDER",
    "Source",
    "borrow_threshold_exceeded",
    "seats_to_borrow",
    "seats_to_keep",
    "idle_excess",
    "find_sources",
]

FREE, DOWN_SERVERS, LEADER, LIVE_SERVERS = "free", "down", "leader", "live"
REQUEST_ORDER = (FREE, DOWN_SERVERS, LEADER, LIVE_SERVERS)
"""Claims 5 and 19."""
FAILOVER_ORDER = (LEADER, FREE, DOWN_SERVERS, LIVE_SERVERS)
"""Claims 14, 15, 28 and 29."""


def _exact(threshold: float) -> Fraction:
    # 9 / 0.9 is 10.000000000000002 in floats; thresholds are decimal settings.
    return Fraction(str(threshold))


def borrow_threshold_exceeded(in_use: int, allocated: int, threshold: float) -> bool:
    """Claims 1 and 16: the quotient in-use / allocated is above the threshold.

    A server with no allocation borrows only when a request arrives (claims 3,
    31), which ``seats_to_borrow`` covers through the waiting request.
    """
    return allocated > 0 and Fraction(in_use, allocated) > _exact(threshold)


def seats_to_keep(in_use: int, threshold: float) -> int:
    """The smallest allocation that keeps ``in_use`` at or under the threshold."""
    return math.ceil(Fraction(in_use) / _exact(threshold))


def seats_to_borrow(in_use: int, allocated: int, threshold: float) -> int:
    """Seats to ask for so that in_use / allocated <= threshold again; at least 1.

    ``in_use`` should count requests waiting for a seat, so a server with no
    spare seat asks for one per waiting request.
    """
    return max(1, seats_to_keep(in_use, threshold) - allocated)


def idle_excess(allocated: int, in_use: int, target: int, threshold: float) -> int:
    """Seats idle rebalancing may take: only those above
    max(target, ceil(in_use / threshold) + 1), so it never fights borrowing."""
    return max(0, allocated - max(target, seats_to_keep(in_use, threshold) + 1))


@dataclass(frozen=True)
class Source:
    """One planned take: ``count`` seats from the free pool (``server`` None),
    a down server, the leader or another live server.  Live servers and the
    leader give only by consented transfer (claim 33)."""

    kind: str
    server: str | None
    count: int

    @property
    def needs_consent(self) -> bool:
        return self.kind in (LEADER, LIVE_SERVERS)


def find_sources(
    state: PoolState,
    key: FeatureKey,
    taker: str,
    need: int,
    order: tuple[str, ...],
    leader: str,
    spare_of: Callable[[str], int],
    taken: Mapping[str, int] | None = None,
) -> list[Source]:
    """Plan where ``need`` seats for ``taker`` come from, in ``order``.

    ``spare_of(server)`` is the leader's best knowledge of a live server's unused
    seats (its own exact count for itself, the committed reports for others);
    the giver's consent settles any staleness.  ``taken`` holds seats already
    planned from each source this round (``""`` for the free pool).  Returns fewer seats than
    ``need`` when the pool has no more; an empty list means none anywhere.
    """
    table = state.features.get(key)
    if table is None or need <= 0:
        return []
    plan: list[Source] = []
    left = need

    already = taken or {}

    def take(kind: str, server: str | None, available: int) -> None:
        nonlocal left
        n = min(left, max(0, available - already.get(server or "", 0)))
        if n:
            plan.append(Source(kind, server, n))
            left -= n

    others = [s for s in state.servers if s not in (taker, leader)]
    for kind in order:
        if left == 0:
            break
        if kind == FREE:
            take(FREE, None, table.free)
        elif kind == DOWN_SERVERS:
            for name in others:
                server = state.servers[name]
                if down_source(server, table):
                    take(DOWN_SERVERS, name, table.allocated(name))
        elif kind == LEADER:
            if leader != taker and state.status(leader) == LIVE:
                take(LEADER, leader, min(spare_of(leader), table.allocated(leader)))
        elif kind == LIVE_SERVERS:
            for name in others:
                if state.status(name) == LIVE:
                    take(LIVE_SERVERS, name, min(spare_of(name), table.allocated(name)))
    return plan
