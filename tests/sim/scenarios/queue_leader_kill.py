"""Three checkouts wait in the queue (issue 14 item 1) at two servers; the
leader, which holds no seat, is killed.  The new leader has the same queue
(it is committed state), and as seats free at either server they go to the
waiters in the order they joined, wherever each waits (Q1)."""

from tests.sim.scenarios.queue_base import queue_scenario

SCENARIO = queue_scenario(
    "queue_leader_kill",
    __doc__,
    75.0,
    [
        ("at", 9.6, "queue", "c8", "cad", "2.0", 120.0),  # waits at s3
        ("expect", 11.5, "queued", "cad", "2.0", 3),
        ("at", 12.0, "kill", "$leader"),
        ("expect", 25.0, "leader"),
        ("expect", 25.0, "queued", "cad", "2.0", 3),
        ("at", 30.0, "release", "c4", "cad", "2.0"),  # frees at s2: goes to c3 at s3
        ("expect", 36.0, "queue_order", "c3"),
        ("at", 38.0, "release", "c1", "cad", "2.0"),  # frees at s3: goes to c5 at s2
        ("expect", 44.0, "queue_order", "c3,c5"),
        ("at", 46.0, "release", "c3", "cad", "2.0"),
        ("expect", 52.0, "queue_order", "c3,c5,c8"),
        ("expect", 52.0, "queued", "cad", "2.0", 0),
        ("at", 55.0, "restart", "s1"),
        ("expect", 74.0, "lost", "c3", 0),
        ("expect", 74.0, "lost", "c5", 0),
        ("expect", 74.0, "lost", "c8", 0),
        ("expect", 74.0, "all_live"),
    ],
)
