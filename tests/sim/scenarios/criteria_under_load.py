"""The distribution criteria change twice while every client checks seats in
and out: cuts wait for seats to come free, the table stays sound, and after the
quiet point every checkout that can be granted is (L1)."""

from tests.sim.scenario import Scenario

SCENARIO = Scenario(
    name="criteria_under_load",
    description=__doc__ or "",
    servers=3,
    clients=6,
    seats=4,
    duration=85.0,
    workload=True,
    steps=[
        ("at", 15.0, "criteria", "cad", "2.0", "s1:4"),
        ("at", 28.0, "criteria", "cad", "2.0", "s2:2^s3:2"),
        ("at", 35.0, "addon", "L1", 2, "A1"),
        ("expect", 40.0, "leader"),
        ("at", 42.0, "criteria", "cad", "2.0", "s1:2^s2:2^s3:2"),
        ("at", 45.0, "quiet"),
        ("expect", 84.0, "leader"),
        ("expect", 84.0, "all_live"),
    ],
)
