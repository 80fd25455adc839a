"""Every app asks for one to three seats in one lease while the leader dies,
a follower is cut off and both come back: seats are borrowed for the
shortfall, multi-seat leases fail over whole, and S1 counts seats (not
leases) all along; after the quiet point every checkout that fits is
granted (L1, counting seats)."""

from tests.sim.scenario import Scenario

SCENARIO = Scenario(
    name="multi_seat_under_load",
    description=__doc__ or "",
    servers=3,
    clients=6,
    seats=8,
    duration=90.0,
    workload=True,
    max_seats=3,
    steps=[
        ("at", 18.0, "kill", "$leader"),
        ("expect", 30.0, "leader"),
        ("at", 32.0, "restart", "$down"),
        ("at", 36.0, "partition", ["$follower"], ["$rest"]),
        ("at", 44.0, "heal"),
        ("at", 48.0, "quiet"),
        ("expect", 89.0, "leader"),
        ("expect", 89.0, "all_live"),
    ],
)
