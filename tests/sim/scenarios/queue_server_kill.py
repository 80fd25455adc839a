"""The server where the oldest waiter waits is killed: its session
re-registers the same request at the next server and keeps its place, so the
next seat, freed at a third server, is moved to it there, not given to the
younger waiter at the server where it freed (issue 14 item 1, Q1)."""

from tests.sim.scenarios.queue_base import queue_scenario

SCENARIO = queue_scenario(
    "queue_server_kill",
    __doc__,
    80.0,
    [
        ("expect", 11.5, "queued", "cad", "2.0", 2),
        ("at", 12.0, "kill", "s3"),  # c3's server (and c1's lease: it fails over)
        ("expect", 30.0, "queued", "cad", "2.0", 2),
        ("expect", 30.0, "held", "c1", 1),
        ("at", 35.0, "release", "c4", "cad", "2.0"),  # frees at s2: goes to c3, re-registered elsewhere
        ("expect", 42.0, "queue_order", "c3"),
        ("at", 44.0, "release", "c1", "cad", "2.0"),
        ("expect", 52.0, "queue_order", "c3,c5"),
        ("at", 55.0, "restart", "s3"),
        ("expect", 79.0, "queued", "cad", "2.0", 0),
        ("expect", 79.0, "lost", "c3", 0),
        ("expect", 79.0, "lost", "c5", 0),
        ("expect", 79.0, "all_live"),
    ],
)
