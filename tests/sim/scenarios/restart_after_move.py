"""An app restarts after its lease has moved, and its resume must reach a
server that does not hold the lease (issue 11 defect 2: the session's
fail-over updates are numbered from ``seq_base``, the wall clock at its start,
so a restarted app's numbers rank above its earlier session's; numbered from 1
again, the resume is refused as stale and the lease is lost).

c1 takes a lease at its start server s5 at 7 s; s5 is killed at 10 s and c1
fails over, moving the lease (with its seat) to the leader s1; s1 is killed at
19 s and c1's app restarts at 20 s, resuming by id from a new session, whose
first pick s5 is still down.  Its resume reaches s2, which does not hold the
lease; the leader seats it there (s1 is fenced: the lease moves with its
seat).  c1 must keep its lease throughout."""

from tests.sim.scenario import Scenario

SCENARIO = Scenario(
    name="restart_after_move",
    description=__doc__ or "",
    servers=5,
    clients=2,
    seats=4,
    duration=60.0,
    steps=[
        ("at", 7.0, "checkout", "c1", "cad", "2.0"),
        ("at", 7.0, "checkout", "c2", "cad", "2.0"),
        ("expect", 9.5, "held", "c1", 1),
        ("at", 10.0, "kill", "s1"),
        ("expect", 18.0, "held", "c1", 1),
        ("at", 19.0, "kill", "s2"),
        ("at", 20.0, "reconnect", "c1"),
        ("expect", 35.0, "held", "c1", 1),
        ("expect", 59.0, "lost", "c1", 0),
    ],
)
