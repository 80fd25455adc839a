"""What the queue scenarios share (issue 14 item 1): a pool of three with two
seats, one at s2 and one at s3, both taken by c1 (at s3) and c4 (at s2), then
c3 queued at s3 and c5 at s2; each scenario goes on from there."""

from __future__ import annotations

from typing import Any

from tests.sim.scenario import Scenario

OPENING: list[tuple[Any, ...]] = [
    ("at", 7.0, "checkout", "c1", "cad", "2.0"),  # c1 starts at s3
    ("at", 7.0, "checkout", "c4", "cad", "2.0"),  # c4 starts at s2
    ("expect", 8.5, "held", "c1", 1),
    ("expect", 8.5, "held", "c4", 1),
    ("at", 9.0, "queue", "c3", "cad", "2.0", 120.0),  # waits at s3
    ("at", 9.3, "queue", "c5", "cad", "2.0", 120.0),  # waits at s2
]


def queue_scenario(name: str, doc: str | None, duration: float, steps: list[tuple[Any, ...]]) -> Scenario:
    """The shared pool and ``OPENING``, then ``steps``."""
    return Scenario(
        name=name,
        description=doc or "",
        servers=3,
        clients=8,
        seats=2,
        distribution="s2:1^s3:1",
        duration=duration,
        steps=[*OPENING, *steps],
    )
