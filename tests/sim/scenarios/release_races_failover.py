"""An app releases its lease while its session is failing it over, and the
release reaches the new server a moment before the fail-over seat commits
there (the 10-minute chaos run's "releases no server recorded", issue 11).

c1 (start server s3) takes the pool's only seat at 7 s; s3 is cut off at
10 s, fenced at about 11.6 s, and c1's session fails the lease over to s1,
the leader, at about 12.1 s.  s2 stalls from 11.9 s to 12.9 s, so the
leader's fail-over seat waits for its commit, and c1 releases at 12.5 s: the
release goes to s3 (cut off) and to s1, which does not hold the lease yet.
s1 answers "not released", names s3 as the lease's server, and has the id
killed; then the seat commits and the lease, revoked, arrives at s1.  The
session must send the release to s1 again (the server the lease was moving
to), so the seat is free for c2, who asks at 15 s; a release that goes to s3
alone leaves it taken until the lease expires at s1, at about 43 s (mutant
36).  The cut heals at 20 s."""

from tests.sim.scenario import Scenario

SCENARIO = Scenario(
    name="release_races_failover",
    description=__doc__ or "",
    servers=3,
    clients=2,
    seats=1,
    duration=50.0,
    steps=[
        ("at", 7.0, "checkout", "c1", "cad", "2.0"),
        ("expect", 9.5, "held", "c1", 1),
        ("at", 10.0, "partition", ["s3"], ["s1", "s2", "c1", "c2"]),
        ("at", 11.9, "stall", "s2", 1.0),
        ("at", 12.5, "release", "c1", "cad", "2.0"),
        ("expect", 12.6, "held", "c1", 0),
        ("at", 15.0, "checkout", "c2", "cad", "2.0"),
        ("expect", 17.0, "held", "c2", 1),
        ("at", 20.0, "heal"),
        ("expect", 49.0, "all_live"),
        ("expect", 49.0, "stat_at_most", "releases no server recorded", 0),
    ],
)
