"""The scale run's mass release (docs/performance.md, "The mass release"):
20 apps hold 100 leases each on a 3-server pool whose host is loaded (every
server step costs five times the shell model's figures: the 2-core machine
at load 11), then each app gives 90 back at once, one release every 4 ms
(a loop of ``auth.release()``, each an ask to its session), and keeps 10.

1,800 releases reach the servers in 0.4 s, more than they handle in the
transport's bound.  Before the fix the sessions re-sent every late release
every ``2h``, sent it to a second server after ``f``, that server forwarded
each of its releases to the leader again with every new one, and the leader's
own heartbeats drowned: no leader for 25 s, and every kept lease was lost at
its deadline (S2).  Now each session keeps at most ``RELEASE_WINDOW``
releases unanswered per server and sends no copies to a server that answers:
the kept leases stay, no message waits past the bound, and no lease moves."""

from tests.sim.scenario import Scenario, Step

_APPS, _LEASES, _KEEP = 20, 100, 10
_CLIENTS = [f"c{i}" for i in range(1, _APPS + 1)]
_RELEASE_AT, _END = 50.0, 120.0

_steps: list[Step] = []
for i, c in enumerate(_CLIENTS):
    for k in range(_LEASES):
        _steps.append(("at", round(5.0 + 0.3 * k + 0.01 * i, 4), "checkout", c, "cad", "2.0"))
    _steps.append(("expect", _RELEASE_AT - 1, "held", c, _LEASES))
for i, c in enumerate(_CLIENTS):
    for k in range(_LEASES - _KEEP):
        _steps.append(("at", round(_RELEASE_AT + 0.004 * k + 0.0003 * i, 5), "release", c, "cad", "2.0"))
for c in _CLIENTS:
    _steps += [("expect", _END - 1, "held", c, _KEEP), ("expect", _END - 1, "lost", c, 0)]
_steps += [
    ("expect", _END - 1, "stat_at_most", "shell: transmits timed out", 0),
    ("expect", _END - 1, "stat_at_most", "moves", 0),
    ("expect", _END - 1, "all_live"),
]

SCENARIO = Scenario(
    name="mass_release",
    description=__doc__ or "",
    servers=3,
    clients=_APPS,
    seats=3000,
    duration=_END,
    shell=True,
    service_scale=5.0,
    steps=_steps,
)
