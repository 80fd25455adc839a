"""A grant reaches the session after the app's checkout timed out, but before
the session heard the app's ``AbandonCheckout`` (LicenseClient's ask-timeout
race; the app's host is loaded, so a hop between app and session takes
0.2 s).  The app gave up, so it must end with no seat held (ABANDON); its
next checkout must not make it two.

c1 is cut off from every server while its checkout goes out and is retried;
the cut heals just before the retry at 9.2 s, so the grant arrives at about
9.23 s; the app's ask (timeout 2.3 s) gave up at 9.3 s and its abandon
reaches the session at 9.5 s."""

from tests.sim.scenario import Scenario

SCENARIO = Scenario(
    name="abandon_race",
    description=__doc__ or "",
    servers=3,
    clients=2,
    seats=2,
    duration=40.0,
    shell=True,
    local_hop=(0.2, 0.2),
    checkout_timeout=2.3,
    steps=[
        ("at", 6.0, "partition", ["c1"], ["s1", "s2", "s3"]),
        ("at", 7.0, "checkout", "c1", "cad", "2.0"),
        ("at", 9.1, "heal"),
        ("expect", 12.0, "held", "c1", 0),
        ("at", 13.0, "checkout", "c1", "cad", "2.0"),
        ("expect", 20.0, "held", "c1", 1),
        ("at", 21.0, "checkout", "c2", "cad", "2.0"),
        ("expect", 30.0, "held", "c2", 1),
        ("expect", 39.0, "held", "c1", 1),
        ("expect", 39.0, "all_live"),
    ],
)
