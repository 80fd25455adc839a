"""Lever 4 of issue 12: an app checks out at its server directly and releases
the lease before its session has adopted it (docs/performance.md, "Lever 4").

The app's ``AdoptGrant`` and its ``ReleaseLease`` are two local messages that
travel apart; on a loaded app host (a hop of 1-300 ms here) the release often
comes first.  c1's first checkout goes through its session and gives the app
its server's address; each later one asks that server itself and is released
0.15 s after it was asked, 16 times.  The session must release a lease it does
not know yet at the server the app names, and must not adopt it when the
adopt comes after (a lease the session renews that its app released is an
orphan: ABANDON; mutant 35).  Then c2 takes all six seats in one lease: none
is left taken."""

from tests.sim.scenario import Scenario

_CYCLES = [
    step
    for t in range(7, 23)
    for step in (("at", float(t), "checkout", "c1", "cad", "2.0"), ("at", t + 0.15, "release", "c1", "cad", "2.0"))
]

SCENARIO = Scenario(
    name="direct_release_race",
    description=__doc__ or "",
    servers=3,
    clients=2,
    seats=6,
    duration=60.0,
    shell=True,
    local_hop=(0.001, 0.3),
    steps=[
        ("at", 5.0, "checkout", "c1", "cad", "2.0"),
        ("expect", 5.9, "held", "c1", 1),
        ("at", 6.0, "release", "c1", "cad", "2.0"),
        *_CYCLES,
        ("expect", 25.0, "held", "c1", 0),
        ("at", 30.0, "checkout_n", "c2", "cad", "2.0", 6),
        ("expect", 36.0, "seats", "c2", 6),
        ("expect", 59.0, "all_live"),
    ],
)
