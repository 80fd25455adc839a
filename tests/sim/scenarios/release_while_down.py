"""An app releases its lease while the lease's server is down (issue 11
defect 3).  The release is lost, and the restarted server restores the lease
from its journal with a fresh lease time: unless the session sends the release
again, the pool's only seat stays taken for ``lease_ttl`` and c2 is refused.

c1 (start server s3) takes the only seat at 7 s; s3 is killed at 10 s, c1
releases at 10.2 s, s3 restarts at 11 s; c2 asks at 15 s and must get it."""

from tests.sim.scenario import Scenario

SCENARIO = Scenario(
    name="release_while_down",
    description=__doc__ or "",
    servers=3,
    clients=2,
    seats=1,
    duration=40.0,
    steps=[
        ("at", 7.0, "checkout", "c1", "cad", "2.0"),
        ("expect", 9.5, "held", "c1", 1),
        ("at", 10.0, "kill", "s3"),
        ("at", 10.2, "release", "c1", "cad", "2.0"),
        ("at", 11.0, "restart", "s3"),
        ("expect", 11.5, "held", "c1", 0),
        ("at", 15.0, "checkout", "c2", "cad", "2.0"),
        ("expect", 20.0, "held", "c2", 1),
        ("expect", 39.0, "all_live"),
    ],
)
