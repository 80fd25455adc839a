"""The oldest waiter's app dies: its session stops asking, and its server
takes it out of the queue within failure_timeout, so the next free seat goes
to the next waiter (issue 14 item 1)."""

from tests.sim.scenario import Scenario

SCENARIO = Scenario(
    name="queue_app_kill",
    description=__doc__ or "",
    servers=3,
    clients=8,
    seats=2,
    distribution="s2:1^s3:1",
    duration=45.0,
    steps=[
        ("at", 7.0, "checkout", "c1", "cad", "2.0"),  # c1 starts at s3
        ("at", 7.0, "checkout", "c4", "cad", "2.0"),  # c4 starts at s2
        ("expect", 8.5, "held", "c1", 1),
        ("expect", 8.5, "held", "c4", 1),
        ("at", 9.0, "queue", "c3", "cad", "2.0", 120.0),  # waits at s3
        ("at", 9.3, "queue", "c5", "cad", "2.0", 120.0),  # waits at s2
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
