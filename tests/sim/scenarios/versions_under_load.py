"""Two licensed versions under load (issue 14 item 2): the workload asks for
cad 2.0, which has 3 seats; a second code licenses 2 seats of cad 3.0, which
serve 2.0 requests once the pool has no 2.0 seat.  The leader dies mid-way.
S1 holds per table: never more leases of (cad, 2.0) or (cad, 3.0) than each
one's own licensed total, and every lease fails over under its own version."""

from tests.sim.scenario import Scenario

SCENARIO = Scenario(
    name="versions_under_load",
    description=__doc__ or "",
    servers=3,
    clients=6,
    seats=3,
    duration=85.0,
    workload=True,
    steps=[
        ("at", 0.5, "license", "cad", "3.0", 2, "L2", None),
        ("at", 30.0, "kill", "$leader"),
        ("expect", 45.0, "leader"),
        ("at", 50.0, "restart", "s1"),
        ("at", 50.0, "restart", "s2"),
        ("at", 50.0, "restart", "s3"),
        ("at", 55.0, "quiet"),
        ("expect", 84.0, "leader"),
        ("expect", 84.0, "all_live"),
    ],
)
