"""Multi-seat leases (issue 14): c1 and c2 take three seats each in one lease,
which needs a borrow (each server starts with two); c3's two-seat checkout
finds one seat short everywhere and is refused whole (never a partial hold).
c1's server dies: its three-seat lease fails over with all its seats or not at
all.  Once c1 releases, c3's two seats are granted.  S1 counts seats."""

from tests.sim.scenario import Scenario

SCENARIO = Scenario(
    name="multi_seat",
    description=__doc__ or "",
    servers=3,
    clients=3,
    seats=7,
    duration=95.0,
    steps=[
        ("at", 7.0, "checkout_n", "c1", "cad", "2.0", 3),
        ("at", 7.5, "checkout_n", "c2", "cad", "2.0", 3),
        ("expect", 14.0, "seats", "c1", 3),
        ("expect", 14.0, "seats", "c2", 3),
        ("at", 15.0, "checkout_n", "c3", "cad", "2.0", 2),
        ("expect", 40.0, "seats", "c3", 0),
        ("at", 41.0, "kill", "$holder:c1"),
        ("expect", 70.0, "seats", "c1", 3),
        ("expect", 70.0, "held", "c1", 1),
        ("expect", 70.0, "seats", "c2", 3),
        ("at", 71.0, "restart", "$down"),
        ("at", 72.0, "release", "c1", "cad", "2.0"),
        ("at", 76.0, "checkout_n", "c3", "cad", "2.0", 2),
        ("expect", 94.0, "seats", "c3", 2),
        ("expect", 94.0, "lost", "c1", 0),
        ("expect", 94.0, "lost", "c2", 0),
        ("expect", 94.0, "all_live"),
    ],
)
