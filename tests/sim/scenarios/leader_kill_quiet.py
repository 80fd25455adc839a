"""The leader dies while clients hold leases at every server.  Only the dead
leader's leases may move: the clients of the two live followers keep their
leases where they are through the leader change, with no fail-over, although
for a few seconds no server holds a serving lease (docs/leadership.md, M14).
The dead leader's client fails over and keeps its lease (S2).  The checker's
figure ``moved_off_live`` (leases moved off a server that stayed up and
untouched by any fault) must stay 0."""

from tests.sim.scenario import Scenario

# Start servers by client id (session.start_server): c2 -> s1 (the first
# leader), c4, c5, c6 -> s2, c1, c3 -> s3.
CLIENTS = ("c1", "c2", "c3", "c4", "c5", "c6")

SCENARIO = Scenario(
    name="leader_kill_quiet",
    description=__doc__ or "",
    servers=3,
    clients=len(CLIENTS),
    seats=8,
    duration=80.0,
    steps=[
        *(("at", 7.0, "checkout", c, "cad", "2.0") for c in CLIENTS),
        *(("expect", 10.0, "held", c, 1) for c in CLIENTS),
        ("expect", 10.0, "leader_not", "s2"),
        ("expect", 10.0, "leader_not", "s3"),
        ("at", 12.0, "kill", "$leader"),
        ("expect", 25.0, "leader"),
        *(("expect", 45.0, "held", c, 1) for c in CLIENTS),
        ("expect", 45.0, "stat_at_most", "moved_off_live", 0),
        ("at", 50.0, "restart", "$down"),
        *(("expect", 79.0, "held", c, 1) for c in CLIENTS),
        *(("expect", 79.0, "lost", c, 0) for c in CLIENTS),
        ("expect", 79.0, "stat_at_most", "moved_off_live", 0),
        ("expect", 79.0, "all_live"),
    ],
)
