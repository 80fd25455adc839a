"""A release made at the server a lease is moving away from (mutant 32).

c1 (start server s3) holds a lease at s3.  At 10 s s3 is cut off from the
pool, and its answers to c1 are lost (c1's messages still reach it): c1's
session hears nothing and at about 12.04 s fails the lease over to s1, the
leader, which seats it at once (s3 was fenced at 11.6 s).  Just before that
seat is known, c1 releases: the release reaches s3 only (c1's messages to
s1 and s2 are lost from 12.043 s), and s3, which has not heard of the move,
releases the lease.  Its report reaches the pool when the cut heals at 15 s,
long after the fail-over seat at s1 committed.  c1's old session can reach
no server from then on, s3 dies at 16.5 s (its memory of the release with
it), and at 17 s c1's app restarts and resumes its leases by id from a
stale file: at s1, since s3 is down.  The release must have killed the lease
where it went; ignored, the lease is still at s1, held by nobody, and the
released id comes back (S3; the 10,000-seed run found this once, seed 8752).

The checker exempts a resume of a released id while the release is
"unknowable" (made at a server cut off or down since, before it reported
it); once that server's report of the release has committed, the pool knows,
and the exemption ends (``Driver.release_unknowable``).  The steps are timed
for seed 1 (the fail-over at 12.04 s); other seeds move it, and the mutant is
caught at seeds 1, 3, 5, 7, 8 and 10 of 1-10.
"""

from tests.sim.scenario import Scenario

SCENARIO = Scenario(
    name="release_at_old_holder",
    description=__doc__ or "",
    servers=3,
    clients=2,
    seats=3,
    duration=40.0,
    steps=[
        ("at", 7.0, "checkout", "c1", "cad", "2.0"),
        ("expect", 9.5, "held", "c1", 1),
        ("at", 10.0, "partition", ["s3"], ["s1", "s2"]),
        ("at", 10.0, "oneway", ["s3"], ["c1"]),
        ("at", 12.043, "oneway", ["c1"], ["s1", "s2"]),
        ("at", 12.044, "release", "c1", "cad", "2.0"),
        ("at", 15.0, "heal"),
        ("at", 15.0, "oneway", ["c1"], ["s1", "s2", "s3"]),
        ("at", 16.5, "kill", "s3"),
        ("at", 17.0, "heal"),
        ("at", 17.0, "reconnect", "c1"),
        ("at", 25.0, "restart", "s3"),
        ("expect", 39.0, "all_live"),
    ],
)
