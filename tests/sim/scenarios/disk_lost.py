"""A server's disk is lost (docs/deployment.md section 6, docs/leadership.md
"Rejoin after a lost disk"): s3 restarts once (incarnation 2) holding c1's
leases, dies, and boots again at once on an empty disk, not declared down.
The simulator passes incarnation floor 0, so the rebuilt s3 boots as
incarnation 1, below the pool's record: it must move above it, wait until its
earlier incarnation is fenced and reclaimed, rejoin and serve (c2 is granted
there), and no client loses a lease.  The checker's S1 (no seat in two
places) covers the window where a client still holds a lease of the earlier
incarnation that the empty table does not show."""

from tests.sim.scenario import Scenario

SCENARIO = Scenario(
    name="disk_lost",
    description=__doc__ or "",
    servers=3,
    clients=2,
    seats=4,
    distribution="s1:1^s2:1^s3:2",
    duration=120.0,
    steps=[
        ("at", 6.0, "kill", "s3"),
        ("at", 6.5, "restart", "s3"),
        ("at", 12.0, "checkout", "c1", "cad", "2.0"),
        ("at", 12.5, "checkout", "c1", "cad", "2.0"),
        ("expect", 15.0, "held", "c1", 2),
        ("at", 16.0, "kill", "s3"),
        ("at", 16.0, "wipe", "s3"),
        ("at", 17.0, "restart", "s3"),
        ("expect", 40.0, "held", "c1", 2),
        ("expect", 70.0, "all_live"),
        ("at", 80.0, "checkout", "c2", "cad", "2.0"),
        ("expect", 85.0, "held", "c2", 1),
        ("expect", 119.0, "held", "c1", 2),
        ("expect", 119.0, "lost", "c1", 0),
        ("expect", 119.0, "lost", "c2", 0),
        ("expect", 119.0, "all_live"),
    ],
)
