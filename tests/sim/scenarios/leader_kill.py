"""The leader dies with leases out; a new leader takes over the table, and the
clients whose leases it held fail over and keep them (S2)."""

from tests.sim.scenario import Scenario

SCENARIO = Scenario(
    name="leader_kill",
    description=__doc__ or "",
    servers=3,
    clients=3,
    seats=4,
    duration=75.0,
    steps=[
        ("at", 7.0, "checkout", "c1", "cad", "2.0"),
        ("at", 7.0, "checkout", "c2", "cad", "2.0"),
        ("at", 7.0, "checkout", "c3", "cad", "2.0"),
        ("expect", 10.0, "held", "c1", 1),
        ("expect", 10.0, "held", "c2", 1),
        ("expect", 10.0, "held", "c3", 1),
        ("at", 12.0, "kill", "$leader"),
        ("expect", 25.0, "leader"),
        ("expect", 45.0, "held", "c1", 1),
        ("expect", 45.0, "held", "c2", 1),
        ("expect", 45.0, "held", "c3", 1),
        ("at", 50.0, "restart", "s1"),
        ("at", 50.0, "restart", "s2"),
        ("at", 50.0, "restart", "s3"),
        ("expect", 74.0, "held", "c1", 1),
        ("expect", 74.0, "lost", "c1", 0),
        ("expect", 74.0, "lost", "c2", 0),
        ("expect", 74.0, "lost", "c3", 0),
        ("expect", 74.0, "all_live"),
    ],
)
