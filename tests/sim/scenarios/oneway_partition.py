"""A client's server can still hear but no longer speak (a one-way cut): it is
fenced, the client fails over, and the lease moves with its seat."""

from tests.sim.scenario import Scenario

SCENARIO = Scenario(
    name="oneway_partition",
    description=__doc__ or "",
    servers=3,
    clients=2,
    seats=4,
    duration=75.0,
    steps=[
        ("at", 7.0, "checkout", "c1", "cad", "2.0"),
        ("at", 7.0, "checkout", "c2", "cad", "2.0"),
        ("expect", 10.0, "held", "c1", 1),
        ("at", 12.0, "oneway", ["$holder:c1"], ["s1", "s2", "s3", "c1", "c2"]),
        ("expect", 30.0, "held", "c1", 1),
        ("at", 40.0, "heal"),
        ("expect", 50.0, "held", "c1", 1),
        ("at", 50.0, "quiet"),
        ("expect", 74.0, "held", "c1", 1),
        ("expect", 74.0, "lost", "c1", 0),
        ("expect", 74.0, "lost", "c2", 0),
        ("expect", 74.0, "all_live"),
    ],
)
