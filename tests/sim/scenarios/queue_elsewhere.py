"""Seats free at another server than the oldest waiter's: the leader moves
each to the head waiter's server by the borrow and transfer machinery, so the
waiters are granted in the order they joined (issue 14 item 1, Q1); a queued
checkout past its timeout is answered QUEUE_TIMEOUT and leaves the queue."""

from tests.sim.scenarios.queue_base import queue_scenario

SCENARIO = queue_scenario(
    "queue_elsewhere",
    __doc__,
    45.0,
    [
        ("at", 9.6, "queue", "c2", "cad", "2.0", 5.0),  # waits at s1, which has no seat, and gives up
        ("expect", 11.5, "queued", "cad", "2.0", 3),
        ("expect", 17.0, "queued", "cad", "2.0", 2),
        ("at", 18.0, "release", "c4", "cad", "2.0"),  # frees at s2: moved to c3 at s3
        ("expect", 24.0, "queue_order", "c3"),
        ("at", 26.0, "release", "c1", "cad", "2.0"),  # frees at s3: moved to c5 at s2
        ("expect", 32.0, "queue_order", "c3,c5"),
        ("expect", 44.0, "queued", "cad", "2.0", 0),
        ("expect", 44.0, "lost", "c3", 0),
        ("expect", 44.0, "lost", "c5", 0),
        ("expect", 44.0, "lost", "c2", 0),
        ("expect", 44.0, "all_live"),
    ],
)
