"""An app restarts while it holds two leases and resumes both by id from a new
session: it keeps them, takes no second seat, and its new session's
heartbeats renew them (S3's reconnect rule, and S2)."""

from tests.sim.scenario import Scenario

SCENARIO = Scenario(
    name="reconnect",
    description=__doc__ or "",
    servers=3,
    clients=2,
    seats=3,
    duration=50.0,
    steps=[
        ("at", 7.0, "checkout", "c1", "cad", "2.0"),
        ("at", 7.5, "checkout", "c1", "cad", "2.0"),
        ("at", 7.0, "checkout", "c2", "cad", "2.0"),
        ("expect", 10.0, "held", "c1", 2),
        ("at", 12.0, "reconnect", "c1"),
        ("expect", 14.0, "held", "c1", 2),
        ("expect", 20.0, "held", "c1", 2),
        ("at", 22.0, "checkout", "c2", "cad", "2.0"),
        ("expect", 45.0, "held", "c1", 2),
        ("expect", 49.0, "lost", "c1", 0),
        ("expect", 49.0, "granted", "c1", 4),
        ("expect", 49.0, "all_live"),
    ],
)
