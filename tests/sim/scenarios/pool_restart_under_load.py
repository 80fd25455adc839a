"""Every server is killed while six apps hold eight leases each, and the pool
restarts (one server five seconds after the others, so it catches up by
snapshot).  On the shell model: the kills may land inside a step, sessions
fail over in a storm while addresses are stale, servers queue, compact and
install snapshots.  No app may lose a lease (S2: a whole-pool restart is one
fault), none may hold more than the pool has (S1), and each server's table
must hold what the committed registry places there (REGISTRY)."""

from tests.sim.scenario import Scenario, Step

_CLIENTS = [f"c{i}" for i in range(1, 7)]

_steps: list[Step] = []
for i, c in enumerate(_CLIENTS):
    for k in range(8):
        _steps.append(("at", round(10.0 + 0.3 * i + 0.1 * k, 3), "checkout", c, "cad", "2.0"))
    _steps.append(("expect", 19.0, "held", c, 8))
_steps += [
    ("at", 25.0, "kill", "s1"),
    ("at", 25.01, "kill", "s2"),
    ("at", 25.02, "kill", "s3"),
    ("at", 29.0, "restart", "s3"),
    ("at", 29.4, "restart", "s1"),
    ("at", 34.0, "restart", "s2"),
]
for c in _CLIENTS:
    _steps += [("expect", 70.0, "held", c, 8), ("expect", 94.0, "held", c, 8), ("expect", 94.0, "lost", c, 0)]
_steps.append(("expect", 94.0, "all_live"))

SCENARIO = Scenario(
    name="pool_restart_under_load",
    description=__doc__ or "",
    servers=3,
    clients=6,
    seats=50,
    duration=95.0,
    shell=True,
    compact_every=60,
    steps=_steps,
)
