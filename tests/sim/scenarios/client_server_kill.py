"""The server holding a client's two leases dies for longer than the lease
time: the client sends one fail-over update for both, and keeps both."""

from tests.sim.scenario import Scenario

SCENARIO = Scenario(
    name="client_server_kill",
    description=__doc__ or "",
    servers=3,
    clients=2,
    seats=4,
    duration=80.0,
    steps=[
        ("at", 7.0, "checkout", "c1", "cad", "2.0"),
        ("at", 7.5, "checkout", "c1", "cad", "2.0"),
        ("at", 7.0, "checkout", "c2", "cad", "2.0"),
        ("expect", 10.0, "held", "c1", 2),
        ("at", 12.0, "kill", "$holder:c1"),
        ("expect", 30.0, "held", "c1", 2),
        ("expect", 50.0, "held", "c1", 2),
        ("at", 55.0, "restart", "s1"),
        ("at", 55.0, "restart", "s2"),
        ("at", 55.0, "restart", "s3"),
        ("at", 60.0, "release", "c1", "cad", "2.0"),
        ("expect", 79.0, "held", "c1", 1),
        ("expect", 79.0, "lost", "c1", 0),
        ("expect", 79.0, "lost", "c2", 0),
        ("expect", 79.0, "all_live"),
    ],
)
