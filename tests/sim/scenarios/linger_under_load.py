"""Every app asks for one or two seats whose lease lingers 3 s after its
release, and comes back within 0.2-4 s, so many checkouts take back their own
lingering seats (a new id, no new seat) while others wait for them; the
leader dies, a lingering server restarts and a follower is cut off.  S1 and
L1 count lingering seats as in use, and S3 holds: a released id never comes
back, though its seats may."""

from tests.sim.scenario import Scenario

SCENARIO = Scenario(
    name="linger_under_load",
    description=__doc__ or "",
    servers=3,
    clients=6,
    seats=6,
    duration=90.0,
    workload=True,
    max_seats=2,
    linger=3.0,
    steps=[
        ("at", 16.0, "kill", "$leader"),
        ("expect", 28.0, "leader"),
        ("at", 30.0, "restart", "$down"),
        ("at", 34.0, "partition", ["$follower"], ["$rest"]),
        ("at", 42.0, "heal"),
        ("at", 48.0, "quiet"),
        ("expect", 89.0, "leader"),
        ("expect", 89.0, "all_live"),
    ],
)
