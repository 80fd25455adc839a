"""Running seeds: the per-seed pool shape, one run, and "search until a violation".

``config_for(seed, servers)`` varies the pool shape with the seed (seats,
clients), so a batch covers small and contended pools alike.  A mutant test
injects its mutant with ``monkeypatch`` or with config overrides
(``durable_before_send=False``) and calls ``find_violation``::

    violation = find_violation(range(200), budget=60.0, durable_before_send=False)
    assert violation is not None and violation.rule in {"S1", "S4"}
"""

from __future__ import annotations

import random
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import replace
from typing import Any

from tests.sim.scenario import Scenario
from tests.sim.world import RunResult, SimConfig, Violation, World

__all__ = ["config_for", "run_seed", "find_violation", "run_scenario", "servers_for"]


def servers_for(seed: int) -> int:
    """The batch's pool size for a seed: 3 and 5 servers, alternating."""
    return 3 if seed % 2 == 0 else 5


def config_for(seed: int, servers: int | None = None, **overrides: Any) -> SimConfig:
    shape = random.Random(f"licpool-sim-shape/{seed}")
    seats = shape.choice((2, 3, 4, 4, 6))
    config = SimConfig(
        seed=seed,
        servers=servers if servers is not None else servers_for(seed),
        seats=seats,
        clients=seats + shape.randint(1, 4),
    )
    if overrides.get("shell"):
        # The shell model's pools: half of them have apps holding 8+ leases each
        # (a burst of checkouts held 20-60 s), with a few seats short of all of them.
        big = random.Random(f"licpool-sim-shell-shape/{seed}")
        if big.random() < 0.5:
            apps, hold = big.randint(2, 4), big.randint(8, 10)
            config = replace(
                config,
                big_apps=apps,
                big_hold=hold,
                seats=seats + apps * hold - big.randint(0, 4),
                clients=max(config.clients, apps + 1),
            )
    return replace(config, **overrides)


def run_seed(
    seed: int, servers: int | None = None, echo: bool = False, node_factory: Any = None, **overrides: Any
) -> RunResult:
    """One schedule; never raises for a violation (see ``RunResult.violation``)."""
    world = World(config_for(seed, servers, **overrides), node_factory=node_factory, echo=echo)
    return world.run(raise_on_violation=False)


def find_violation(
    seeds: Iterable[int],
    budget: float | None = None,
    servers: int | None = None,
    rules: set[str] | None = None,
    **overrides: Any,
) -> Violation | None:
    """Run seeds in order until one breaks a rule (in ``rules``, if given) or
    ``budget`` wall-clock seconds have passed."""
    started = time.monotonic()
    for seed in seeds:
        result = run_seed(seed, servers, **overrides)
        if result.violation is not None and (rules is None or result.violation.rule in rules):
            return result.violation
        if budget is not None and time.monotonic() - started > budget:
            return None
    return None


def run_scenario(scenario: Scenario, echo: bool = False, **overrides: Any) -> RunResult:
    """A named scenario: its steps only (no random faults), invariants checked."""
    config = replace(
        SimConfig(
            seed=scenario.seed,
            servers=scenario.servers,
            seats=scenario.seats,
            clients=scenario.clients,
            net=_scenario_net(),
            shell=scenario.shell,
            compact_every=scenario.compact_every,
            local_hop=scenario.local_hop,
            late_direct=scenario.late_direct or (0.0, 0.0, 0.0),  # a random fault: only where a scenario asks
            service_scale=scenario.service_scale,
            checkout_timeout=scenario.checkout_timeout,
            max_seats=scenario.max_seats,
            linger=scenario.linger,
        ),
        **overrides,
    )
    return World(config, scenario=scenario, echo=echo).run(raise_on_violation=False)


def _scenario_net() -> Any:
    from tests.sim.net import NetParams

    return NetParams(drop_rate=0.0, dup_rate=0.0, long_rate=0.0)


def summarize(results: Iterable[RunResult]) -> tuple[Counter[str], list[Violation]]:
    stats: Counter[str] = Counter()
    found = []
    for r in results:
        stats.update(r.stats)
        if r.violation is not None:
            found.append(r.violation)
    return stats, found
