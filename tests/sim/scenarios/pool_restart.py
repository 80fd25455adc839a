"""Every server restarts within the lease time: leases are restored from disk
with a fresh grace period, and no client loses one."""

from tests.sim.scenario import Scenario

SCENARIO = Scenario(
    name="pool_restart",
    description=__doc__ or "",
    servers=3,
    clients=3,
    seats=4,
    duration=70.0,
    steps=[
        ("at", 7.0, "checkout", "c1", "cad", "2.0"),
        ("at", 7.0, "checkout", "c2", "cad", "2.0"),
        ("at", 7.0, "checkout", "c3", "cad", "2.0"),
        ("expect", 10.0, "held", "c1", 1),
        ("at", 12.0, "kill", "s1"),
        ("at", 12.2, "kill", "s2"),
        ("at", 12.4, "kill", "s3"),
        ("at", 20.0, "restart", "s3"),
        ("at", 20.5, "restart", "s1"),
        ("at", 21.0, "restart", "s2"),
        ("expect", 40.0, "held", "c1", 1),
        ("expect", 40.0, "held", "c2", 1),
        ("expect", 40.0, "held", "c3", 1),
        ("expect", 69.0, "lost", "c1", 0),
        ("expect", 69.0, "lost", "c2", 0),
        ("expect", 69.0, "lost", "c3", 0),
        ("expect", 69.0, "all_live"),
    ],
)
