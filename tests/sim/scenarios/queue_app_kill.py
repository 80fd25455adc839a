"""The oldest waiter's app dies: its session stops asking, and its server
takes it out of the queue within failure_timeout, so the next free seat goes
to the next waiter (issue 14 item 1)."""

from tests.sim.scenarios.queue_base import queue_scenario

SCENARIO = queue_scenario(
    "queue_app_kill",
    __doc__,
    45.0,
    [
        ("expect", 11.5, "queued", "cad", "2.0", 2),
        ("at", 12.0, "crash_client", "c3"),
        # failure_timeout after its last re-send, plus a commit round.
        ("expect", 16.0, "queued", "cad", "2.0", 1),
        ("at", 18.0, "release", "c1", "cad", "2.0"),  # frees at s3: goes to c5 at s2
        ("expect", 25.0, "queue_order", "c5"),
        ("expect", 44.0, "queued", "cad", "2.0", 0),
        ("expect", 44.0, "lost", "c5", 0),
        ("expect", 44.0, "all_live"),
    ],
)
