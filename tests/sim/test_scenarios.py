"""The named scenarios (tests/sim/scenarios): each runs its steps on the
simulator with every invariant checked, and survives a JSON round trip so a
real-Thespian harness can replay it."""

from __future__ import annotations

import pytest

from tests.sim.runner import run_scenario
from tests.sim.scenario import Scenario, dump_json, load_json
from tests.sim.scenarios import SCENARIOS

KNOWN: dict[str, str] = {}
"""Scenario name -> why it is expected to fail (a known core bug), until fixed."""


@pytest.mark.parametrize(
    "name",
    [pytest.param(n, marks=pytest.mark.xfail(reason=KNOWN[n], strict=False)) if n in KNOWN else n for n in SCENARIOS],
)
def test_scenario(name: str) -> None:
    result = run_scenario(SCENARIOS[name])
    if result.violation is not None:
        pytest.fail(result.violation.report(), pytrace=False)


@pytest.mark.parametrize("name", [n for n, sc in SCENARIOS.items() if not sc.shell])
def test_scenario_on_the_shell_model(name: str) -> None:
    """The classic scenarios again, with service time, the transport, the
    session actor and LicenseClient (tests/sim/shell.py)."""
    result = run_scenario(SCENARIOS[name], shell=True)
    if result.violation is not None:
        pytest.fail(result.violation.report(), pytrace=False)


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_scenario_round_trips_through_json(name: str, tmp_path: object) -> None:
    from pathlib import Path

    path = Path(str(tmp_path)) / f"{name}.json"
    path.write_text(dump_json(SCENARIOS[name]))
    again = load_json(path)
    assert isinstance(again, Scenario) and again == SCENARIOS[name]
