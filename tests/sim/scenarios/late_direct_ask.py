"""An app's direct ask reaches its server after the app fell back to its
session, and after the seat that fall-back got was given back
(docs/performance.md, "Late direct asks").

The app process's own transmits may wait up to T (``Timing.app_transmit``):
on a starved app host a direct ask can be seconds late.  c1's first checkout
goes through its session and gives the app its server's address; at 7 s it
asks that server itself, and the ask is 3 s late in transit.  The app gives
the direct ask up after ``client_retry`` (1 s) and asks through its session,
which asks that server first and gets the seat; the app gives it back at
9 s.  At 10 s the direct ask arrives.  It must take no seat (mutant 38): one
taken then would be held by nobody until T, and c2, which asks for all three
seats at 12 s, would be refused."""

from tests.sim.scenario import Scenario

SCENARIO = Scenario(
    name="late_direct_ask",
    description=__doc__ or "",
    servers=3,
    clients=2,
    seats=3,
    duration=30.0,
    shell=True,
    late_direct=(1.0, 3.0, 3.0),
    steps=[
        ("at", 5.0, "checkout", "c1", "cad", "2.0"),
        ("expect", 5.9, "held", "c1", 1),
        ("at", 6.0, "release", "c1", "cad", "2.0"),
        ("at", 7.0, "checkout", "c1", "cad", "2.0"),
        ("expect", 8.8, "held", "c1", 1),
        ("at", 9.0, "release", "c1", "cad", "2.0"),
        ("expect", 11.0, "held", "c1", 0),
        ("at", 12.0, "checkout_n", "c2", "cad", "2.0", 3),
        ("expect", 16.0, "seats", "c2", 3),
        ("expect", 29.0, "all_live"),
    ],
)
