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

from collections.abc import Callable
from typing import TYPE_CHECKING

from tests.sim.scenario import Step, validate

if TYPE_CHECKING:
    from tests.sim.world import World

__all__ = ["generate", "INTENSITY"]

INTENSITY = {"calm": 14.0, "normal": 6.0, "storm": 2.5}
"""Mean seconds between faults."""

_KINDS = (
    ("kill", 16),
    ("stall", 10),
    ("partition", 10),
    ("oneway", 8),
    ("link", 10),
    ("lossy", 5),
    ("clock", 5),
    ("addon", 3),
    ("license", 2),
    ("criteria", 5),
    ("force_release", 3),
    ("server_down", 2),
    ("crash_client", 6),
    ("pool_restart", 1),
)


def generate(w: World) -> list[Step]:
    draw = _Draw(w)
    rng, cfg, gap = draw.rng, w.config, draw.gap
    # The shell model restarts the whole pool more often: that is where a loaded pool lost leases (issue 11).
    weights = [k for k, n in _KINDS for _ in range(n + (4 if cfg.shell and k == "pool_restart" else 0))]
    t = cfg.fault_start + rng.expovariate(1.0 / gap)
    w.log(
        "faults",
        f"intensity {draw.intensity} (mean gap {gap}s), {len(draw.servers)} servers, {len(draw.clients)} clients",
    )
    while t < cfg.fault_end:
        kind = rng.choice(weights)
        down = [s for s, u in draw.down_until.items() if u > t]
        _FAULTS[kind](draw, t, down)
        t += rng.expovariate(1.0 / gap)
    draw.steps.append(("at", cfg.fault_end, "quiet"))
    draw.steps.sort(key=lambda s: s[1])
    validate(draw.steps)
    return draw.steps


class _Draw:
    """One seed's schedule while it is drawn: a method per fault kind, each
    drawing from the one rng in the order the schedule depends on."""

    def __init__(self, w: World) -> None:
        self.w = w
        self.rng = w.rng["faults"]
        self.cfg = w.config
        self.servers = sorted(w.servers, key=lambda s: int(s[1:]))
        self.clients = sorted(w.clients, key=lambda c: int(c[1:]))
        self.minority = (len(self.servers) - 1) // 2
        self.intensity = self.rng.choice(("calm", "normal", "normal", "storm"))
        self.gap = INTENSITY[self.intensity]
        self.steps: list[Step] = []
        self.down_until: dict[str, float] = {}
        self.crashed: list[str] = []
        self.serial = 0

    def at(self, time: float, *what: object) -> None:
        self.steps.append(("at", round(min(time, self.cfg.fault_end), 6), *what))

    def kill(self, t: float, down: list[str]) -> None:
        rng = self.rng
        target = rng.choice(["$leader", *self.servers])
        if len(down) >= self.minority and rng.random() < 0.85:
            return
        back = t + rng.choice((rng.uniform(0.5, 6.0), rng.uniform(5.0, 20.0), rng.uniform(30.0, 45.0)))
        if target != "$leader":
            self.down_until[target] = back
        self.at(t, "kill", target)
        if target == "$leader":
            # Restart whoever is down by then: the leader's name is known only at run time.
            for s in self.servers:
                self.at(back, "restart", s)
        else:
            self.at(back, "restart", target)

    def pool_restart(self, t: float, down: list[str]) -> None:
        back = t + self.rng.uniform(1.0, 20.0)
        for s in self.servers:
            self.at(t, "kill", s)
            self.at(back + self.rng.uniform(0.0, 2.0), "restart", s)
            self.down_until[s] = back + 2.0

    def stall(self, t: float, down: list[str]) -> None:
        self.at(t, "stall", self.rng.choice(["$leader", *self.servers]), round(self.rng.uniform(0.3, 8.0), 3))

    def partition(self, t: float, down: list[str], kind: str = "partition") -> None:
        rng = self.rng
        side = rng.sample(self.servers, rng.randint(1, max(1, self.minority)))
        side += [c for c in self.clients if rng.random() < 0.3]
        rest = [n for n in self.servers + self.clients if n not in side]
        if kind == "oneway" and rng.random() < 0.5:
            side, rest = rest, side
        self.at(t, kind, side, rest)
        self.at(t + rng.uniform(1.0, 25.0), "heal")

    def oneway(self, t: float, down: list[str]) -> None:
        self.partition(t, down, "oneway")

    def link(self, t: float, down: list[str]) -> None:
        rng = self.rng
        a = rng.choice(self.servers + self.clients)
        b = rng.choice([s for s in self.servers if s != a])
        self.at(t, rng.choice(("partition", "oneway")), [a], [b])
        self.at(t + rng.uniform(1.0, 20.0), "heal")

    def lossy(self, t: float, down: list[str]) -> None:
        self.at(t, "lossy", round(self.rng.uniform(0.05, 0.3), 3))
        self.at(t + self.rng.uniform(1.0, 10.0), "lossy", self.w.base_loss)

    def clock(self, t: float, down: list[str]) -> None:
        rho = self.w.timing.clock_drift
        self.at(t, "clock", self.rng.choice(self.servers + self.clients), round(self.rng.uniform(1 - rho, 1 + rho), 6))

    def addon(self, t: float, down: list[str]) -> None:
        self.serial += 1
        self.at(t, "addon", "L1", self.rng.randint(1, 3), f"A{self.serial}")

    def license(self, t: float, down: list[str]) -> None:
        self.serial += 1
        self.at(t, "license", "cad", "2.0", self.rng.randint(1, 3), f"L{self.serial + 1}", None)

    def criteria(self, t: float, down: list[str]) -> None:
        self.at(t, "criteria", "cad", "2.0", _criteria(self.rng, self.servers, self.cfg.seats))

    def force_release(self, t: float, down: list[str]) -> None:
        self.at(t, "force_release", self.rng.choice(self.clients))

    def server_down(self, t: float, down: list[str]) -> None:
        if down:
            self.at(t + 0.5, "server_down", self.rng.choice(down))

    def crash_client(self, t: float, down: list[str]) -> None:
        if len(self.crashed) < len(self.clients) // 3 and t < self.cfg.fault_end * 0.7:
            victim = self.rng.choice([c for c in self.clients if c not in self.crashed])
            self.crashed.append(victim)
            self.at(t, "crash_client", victim)


_FAULTS: dict[str, Callable[[_Draw, float, list[str]], None]] = {
    "kill": _Draw.kill,
    "pool_restart": _Draw.pool_restart,
    "stall": _Draw.stall,
    "partition": _Draw.partition,
    "oneway": _Draw.oneway,
    "link": _Draw.link,
    "lossy": _Draw.lossy,
    "clock": _Draw.clock,
    "addon": _Draw.addon,
    "license": _Draw.license,
    "criteria": _Draw.criteria,
    "force_release": _Draw.force_release,
    "server_down": _Draw.server_down,
    "crash_client": _Draw.crash_client,
}
"""How each kind of ``_KINDS`` is drawn."""


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
