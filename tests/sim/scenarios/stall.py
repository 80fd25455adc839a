"""A client's server stalls for longer than the failure timeout and then
resumes with stale timers: the client fails over and keeps its lease; the
stalled server must not sell the seat again when it wakes up."""

from tests.sim.scenario import Scenario

SCENARIO = Scenario(
    name="stall",
    description=__doc__ or "",
    servers=3,
    clients=3,
    seats=3,
    duration=60.0,
    steps=[
        ("at", 7.0, "checkout", "c1", "cad", "2.0"),
        ("at", 7.0, "checkout", "c2", "cad", "2.0"),
        ("expect", 10.0, "held", "c1", 1),
        ("at", 12.0, "stall", "$holder:c1", 6.0),
        ("at", 14.0, "checkout", "c3", "cad", "2.0"),
        ("expect", 25.0, "held", "c1", 1),
        ("at", 30.0, "checkout", "c3", "cad", "2.0"),
        ("expect", 59.0, "held", "c1", 1),
        ("expect", 59.0, "lost", "c1", 0),
        ("expect", 59.0, "lost", "c2", 0),
        ("expect", 59.0, "all_live"),
    ],
)
