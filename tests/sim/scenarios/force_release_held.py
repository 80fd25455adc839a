"""A lease force-released while its session heartbeats a digest (issue 12,
"Scale").  c1 holds two leases at its server and has settled into steady
heartbeats: the digest of its two ids, echoed as "all renewed".  The operator
force-releases one of them at 12 s.  The server's table for c1's session no
longer gives that digest: it renews nothing on it and asks for the list
(``resend``), and c1 hears the lease lost at once, keeping the other.  The
revoked lease's seat comes free when it expires at the server, about
T(1+rho) later, and goes to c4, which asks for it until then.  A server that
renewed on the digest without checking its table would have c1 renew both
for ever: five seats held of four once c4 has its (mutant 33, S1)."""

from tests.sim.scenario import Scenario

SCENARIO = Scenario(
    name="force_release_held",
    description=__doc__ or "",
    servers=3,
    clients=4,
    seats=4,
    # c1 and c3 start at s3, c2 at s1, c4 at s2: the first three take their seats without a borrow, on
    # either model (on the shell model c1's second checkout is a direct ask, and with the default split
    # c3's borrow at s3 could be refused while the leader was still moving seats); c4 must borrow.
    distribution="s1:1^s2:0^s3:3",
    duration=70.0,
    steps=[
        ("at", 6.0, "checkout", "c1", "cad", "2.0"),
        ("at", 6.5, "checkout", "c1", "cad", "2.0"),
        ("at", 7.0, "checkout", "c2", "cad", "2.0"),
        ("at", 7.0, "checkout", "c3", "cad", "2.0"),
        ("expect", 11.5, "held", "c1", 2),
        ("at", 12.0, "force_release", "c1"),
        *[("at", t, "checkout", "c4", "cad", "2.0") for t in (20.0, 30.0, 40.0, 45.0, 50.0, 55.0)],
        ("expect", 69.0, "held", "c4", 1),
        ("expect", 69.0, "held", "c1", 1),
        ("expect", 69.0, "lost", "c2", 0),
        ("expect", 69.0, "all_live"),
    ],
)
