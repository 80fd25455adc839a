"""Crash points inside a step (issue 11, defect 4): the simulator can kill a
server while a step's records are on their way to disk, and the real store
keeps such a step whole or drops it whole."""

from __future__ import annotations

from typing import Any

import pytest

from tests.sim.mutants import crash_adopting
from tests.sim.runner import run_scenario
from tests.sim.world import World


@pytest.mark.parametrize("seed", range(4))
def test_a_server_killed_inside_the_step_that_adopts_a_lease_recovers(
    seed: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    fired: list[str] = []
    original = World._crash_inside_step

    def spy(self: World, host: Any, ready: Any) -> bool:
        crashed = original(self, host, ready)
        if crashed:
            fired.append(host.name)
        return crashed

    monkeypatch.setattr(World, "_crash_inside_step", spy)
    result = run_scenario(crash_adopting(seed))
    assert len(fired) == 1, "the crash point never fired: no lease moved"
    assert result.violation is None, result.violation.report()
