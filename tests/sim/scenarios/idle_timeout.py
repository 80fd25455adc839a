"""Issue 14's idle timeout: the pool gets an idle_timeout of 4 s for cad 2.0
(a signed admin change, committed); c1 marks its lease idle, c2 keeps using
its own.  The leader dies meanwhile: the policy survives in the log, c1's
session keeps telling whichever server holds its lease that it is idle, and
that server reclaims it (c1's lease is lost with reason IDLE, the one loss S2
allows here) while c2's busy lease is renewed throughout.  c1's seat is free
again: its next checkout is granted."""

from tests.sim.scenario import Scenario

SCENARIO = Scenario(
    name="idle_timeout",
    description=__doc__ or "",
    servers=3,
    clients=2,
    seats=6,
    duration=70.0,
    steps=[
        ("at", 4.0, "idle_timeout", "cad", "2.0", 4.0),
        ("at", 7.0, "checkout", "c1", "cad", "2.0"),
        ("at", 7.0, "checkout", "c2", "cad", "2.0"),
        ("expect", 10.0, "held", "c1", 1),
        ("expect", 10.0, "held", "c2", 1),
        ("at", 11.0, "idle", "c1"),
        ("at", 12.0, "kill", "$leader"),
        ("expect", 40.0, "lost", "c1", 1),
        ("expect", 40.0, "held", "c1", 0),
        ("expect", 40.0, "held", "c2", 1),
        ("at", 41.0, "restart", "$down"),
        ("at", 45.0, "checkout", "c1", "cad", "2.0"),
        ("expect", 69.0, "held", "c1", 1),
        ("expect", 69.0, "held", "c2", 1),
        ("expect", 69.0, "lost", "c2", 0),
        ("expect", 69.0, "all_live"),
    ],
)
