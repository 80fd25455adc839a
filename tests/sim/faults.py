"""The seeded fault schedule: a list of scenario steps drawn from one rng.

Each seed picks an intensity (calm, normal, storm: the mean gap between
faults) and then draws faults until ``fault_end``, where the quiet tail starts:

* server crashes with a restart after 0.5 s .. 45 s (longer than the lease
  time now and then, so fences and reclaims happen), rarely a whole-pool
  restart; mostly at most a minority down at once;
* stalls of 0.3 s .. 8 s (the server resumes with stale timers);
* partitions: a minority of servers (with some clients) against the rest,
  symmetric or one-way; single server-server and client-server links, one-way
  or both; each healed after a while;
* lossy periods, clock-rate changes within rho;
* admin changes sent to any server: add-ons, a second code, criteria
  changes, force-releases, and ``server down`` for a server that is down;
* client crashes (at most a third of the clients, early enough for S3).

The schedule depends only on the seed, the pool shape and the timing, never on
what the servers do, so a mutant run sees the same faults.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tests.sim.scenario import Step, validate

if TYPE_CHECKING:
    from tests.sim.world import World

__all__ = ["generate", "INTENSITY"]

INTENSITY = {"calm": 14.0, "normal": 6.0, "storm": 2.5}
"""Mean seconds between faults."""

_KINDS = (
    ("kill", 16), ("stall", 10), ("partition", 10), ("oneway", 8), ("link", 10), ("lossy", 5),
    ("clock", 5), ("addon", 3), ("license", 2), ("criteria", 5), ("force_release", 3),
    ("server_down", 2), ("crash_client", 6), ("pool_restart", 1),
)


def generate(w: World) -> list[Step]:
    rng = w.rng["faults"]
    cfg = w.config
    servers = sorted(w.servers, key=lambda s: int(s[1:]))
    clients = sorted(w.clients, key=lambda c: int(c[1:]))
    minority = (len(servers) - 1) // 2
    intensity = rng.choice(("calm", "normal", "normal", "storm"))
    gap = INTENSITY[intensity]
    steps: list[Step] = []
    down_until: dict[str, float] = {}
    crashed: list[str] = []
    serial = 0
    seats = cfg.seats
    # The shell model restarts the whole pool more often: that is where a loaded pool lost leases (issue 11).
    weights = [k for k, n in _KINDS for _ in range(n + (4 if cfg.shell and k == "pool_restart" else 0))]
    t = cfg.fault_start + rng.expovariate(1.0 / gap)
    w.log("faults", f"intensity {intensity} (mean gap {gap}s), {len(servers)} servers, {len(clients)} clients")

    def at(time: float, *what: object) -> None:
        steps.append(("at", round(min(time, cfg.fault_end), 6), *what))

    while t < cfg.fault_end:
        kind = rng.choice(weights)
        down = [s for s, u in down_until.items() if u > t]
        if kind == "kill":
            target = rng.choice(["$leader", *servers])
            if len(down) >= minority and rng.random() < 0.85:
                t += rng.expovariate(1.0 / gap)
                continue
            back = t + rng.choice((rng.uniform(0.5, 6.0), rng.uniform(5.0, 20.0), rng.uniform(30.0, 45.0)))
            if target != "$leader":
                down_until[target] = back
            at(t, "kill", target)
            if target == "$leader":
                # Restart whoever is down by then: the leader's name is known only at run time.
                for s in servers:
                    at(back, "restart", s)
            else:
                at(back, "restart", target)
        elif kind == "pool_restart":
            back = t + rng.uniform(1.0, 20.0)
            for s in servers:
                at(t, "kill", s)
                at(back + rng.uniform(0.0, 2.0), "restart", s)
                down_until[s] = back + 2.0
        elif kind == "stall":
            at(t, "stall", rng.choice(["$leader", *servers]), round(rng.uniform(0.3, 8.0), 3))
        elif kind in ("partition", "oneway"):
            side = rng.sample(servers, rng.randint(1, max(1, minority)))
            side += [c for c in clients if rng.random() < 0.3]
            rest = [n for n in servers + clients if n not in side]
            if kind == "oneway" and rng.random() < 0.5:
                side, rest = rest, side
            at(t, kind, side, rest)
            at(t + rng.uniform(1.0, 25.0), "heal")
        elif kind == "link":
            a = rng.choice(servers + clients)
            b = rng.choice([s for s in servers if s != a])
            at(t, rng.choice(("partition", "oneway")), [a], [b])
            at(t + rng.uniform(1.0, 20.0), "heal")
        elif kind == "lossy":
            at(t, "lossy", round(rng.uniform(0.05, 0.3), 3))
            at(t + rng.uniform(1.0, 10.0), "lossy", w.base_loss)
        elif kind == "clock":
            rho = w.timing.clock_drift
            at(t, "clock", rng.choice(servers + clients), round(rng.uniform(1 - rho, 1 + rho), 6))
        elif kind == "addon":
            serial += 1
            n = rng.randint(1, 3)
            seats += n
            at(t, "addon", "L1", n, f"A{serial}")
        elif kind == "license":
            serial += 1
            n = rng.randint(1, 3)
            seats += n
            at(t, "license", "cad", "2.0", n, f"L{serial + 1}", None)
        elif kind == "criteria":
            at(t, "criteria", "cad", "2.0", _criteria(rng, servers, cfg.seats))
        elif kind == "force_release":
            at(t, "force_release", rng.choice(clients))
        elif kind == "server_down" and down:
            at(t + 0.5, "server_down", rng.choice(down))
        elif kind == "crash_client" and len(crashed) < len(clients) // 3 and t < cfg.fault_end * 0.7:
            victim = rng.choice([c for c in clients if c not in crashed])
            crashed.append(victim)
            at(t, "crash_client", victim)
        t += rng.expovariate(1.0 / gap)
    steps.append(("at", cfg.fault_end, "quiet"))
    steps.sort(key=lambda s: s[1])
    validate(steps)
    return steps


def _criteria(rng: object, servers: list[str], total: int) -> str:
    import random

    assert isinstance(rng, random.Random)
    left = total
    parts = []
    for s in servers:
        n = rng.randint(0, left)
        left -= n
        if n:
            parts.append(f"{s}:{n}")
    return "^".join(parts) or f"{servers[0]}:{total}"
