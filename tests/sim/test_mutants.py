"""Check the checker: every mutant in ``tests/sim/mutants.py`` breaks one guard
of the core, and the simulator must find a violation within its budget.

For each mutant the test also replays the violating seed *without* the mutant
and requires it to pass, so a violation is credited to the mutant only when
the real code survives the same schedule.

The search starts at the seed that last caught each mutant (``Mutant.first``)
and goes on through the rest of its seeds within the budget;
``LICPOOL_MUTANT_SEARCH=1`` searches from seed 0, as when a mutant is new.
"""

from __future__ import annotations

import os
import time
from typing import Any

import pytest

from tests.sim.mutants import MUTANTS, Mutant
from tests.sim.runner import run_scenario, run_seed
from tests.sim.world import RunResult

pytestmark = pytest.mark.mutant
EVENT_BUDGET = 150_000


def _run(mutant: Mutant, seed: int, overrides: dict[str, Any]) -> RunResult:
    if mutant.scenario is not None:
        return run_scenario(mutant.scenario(seed), **overrides)
    return run_seed(seed, mutant.servers, **overrides)


@pytest.mark.timeout(900)
@pytest.mark.parametrize(
    "mutant",
    [
        pytest.param(m, marks=pytest.mark.xfail(strict=True, reason=f"equivalent mutant: {m.equivalent}"))
        if m.equivalent
        else m
        for m in MUTANTS
    ],
    ids=[f"mutant_{m.number:02d}" for m in MUTANTS],
)
def test_mutant_is_caught(mutant: Mutant, monkeypatch: pytest.MonkeyPatch) -> None:
    """An equivalent mutant is marked xfail(strict): if a schedule ever shows
    it, the test fails and the argument in ``Mutant.equivalent`` is wrong."""
    # A healthy run takes 3,000-10,000 events; a mutant that makes the pool
    # spin (a livelock is a finding too) is stopped at a bounded budget.
    overrides: dict[str, Any] = {"max_events": EVENT_BUDGET, **mutant.overrides}
    with monkeypatch.context() as mp:
        overrides.update(mutant.patch(mp))
        started = time.monotonic()
        caught = None
        start = 0 if os.environ.get("LICPOOL_MUTANT_SEARCH") == "1" else mutant.first
        order = [s for s in mutant.seeds if s >= start] + [s for s in mutant.seeds if s < start]
        for seed in order:
            result = _run(mutant, seed, overrides)
            if result.violation is not None:
                caught = result
                break
            if time.monotonic() - started > mutant.budget:
                break
    if caught is not None and caught.violation is not None:
        print(
            f"mutant {mutant.number}: seed {caught.seed} gave {caught.violation.rule} "
            f"after {time.monotonic() - started:.1f}s"
        )
    assert caught is not None and caught.violation is not None, (
        f"mutant {mutant.number} ({mutant.name}) survived {mutant.budget:.0f}s of schedules"
    )
    clean = _run(mutant, caught.seed, {"max_events": EVENT_BUDGET, **mutant.overrides})
    assert clean.violation is None, (
        f"seed {caught.seed} fails without mutant {mutant.number} too:\n{clean.violation.report()}"
    )
