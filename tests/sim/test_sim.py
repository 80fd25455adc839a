"""The CI batch: many seeded fault schedules over 3- and 5-server pools.

``LICPOOL_SIM_SCHEDULES`` (default 300) sets how many seeds run; they are
split into chunks of 20 so progress is visible.  ``LICPOOL_SIM_SHELL_SCHEDULES``
(default: a third of that) more run on the shell model, and
``LICPOOL_SIM_QUEUE_SCHEDULES`` (default 60) with apps that queue 40% of their
checkouts (``queue=True``), plus ten of those on the shell model.  Even seeds run 3 servers, odd
seeds 5.  A failing chunk reports its first violation in full (seed, rule,
pool state, the trace's last lines, and the command that replays it) and
lists the other failing seeds.
"""

from __future__ import annotations

import os

import pytest

from tests.sim.runner import run_seed
from tests.sim.test_regressions import SHELL_KNOWN
from tests.sim.world import RunResult

SCHEDULES = int(os.environ.get("LICPOOL_SIM_SCHEDULES", "300"))
SHELL_SCHEDULES = int(os.environ.get("LICPOOL_SIM_SHELL_SCHEDULES", str(SCHEDULES // 3)))
"""Schedules on the shell model (tests/sim/shell.py), on top of the classic ones: a third as many."""
CHUNK = 20
CHUNKS = [range(start, min(start + CHUNK, SCHEDULES)) for start in range(0, SCHEDULES, CHUNK)]
SHELL_CHUNKS = [range(start, min(start + CHUNK, SHELL_SCHEDULES)) for start in range(0, SHELL_SCHEDULES, CHUNK)]


@pytest.mark.parametrize("seeds", CHUNKS, ids=lambda r: f"seeds{r.start}-{r.stop - 1}")
def test_seeded_schedules(seeds: range) -> None:
    _check([run_seed(seed) for seed in seeds])


@pytest.mark.parametrize("seeds", SHELL_CHUNKS, ids=lambda r: f"shell-seeds{r.start}-{r.stop - 1}")
def test_seeded_schedules_on_the_shell_model(seeds: range) -> None:
    """Seeds that show a known, open core bug run in test_regressions.py (xfail) instead."""
    _check([run_seed(seed, shell=True) for seed in seeds if seed not in SHELL_KNOWN])


QUEUE_SCHEDULES = int(os.environ.get("LICPOOL_SIM_QUEUE_SCHEDULES", "60"))
"""Schedules whose apps queue 40% of their checkouts (``queue=True``): the same
faults, with Q1 (first come, first served) checked on top of every other rule."""
QUEUE_CHUNKS = [range(start, min(start + CHUNK, QUEUE_SCHEDULES)) for start in range(0, QUEUE_SCHEDULES, CHUNK)]


@pytest.mark.parametrize("seeds", QUEUE_CHUNKS, ids=lambda r: f"queue-seeds{r.start}-{r.stop - 1}")
def test_seeded_schedules_with_queued_checkouts(seeds: range) -> None:
    results = [run_seed(seed, queue_rate=0.4) for seed in seeds]
    _check(results)
    assert sum(r.stats.get("Q1 queued grants checked", 0) for r in results) > 0


@pytest.mark.parametrize("seeds", [range(10)], ids=lambda r: f"queue-shell-seeds{r.start}-{r.stop - 1}")
def test_seeded_schedules_with_queued_checkouts_on_the_shell_model(seeds: range) -> None:
    _check([run_seed(seed, queue_rate=0.4, shell=True) for seed in seeds if seed not in SHELL_KNOWN])


def _check(results: list[RunResult]) -> None:
    failures = [r.violation for r in results if r.violation is not None]
    if failures:
        others = ", ".join(f"{v.seed} ({v.rule})" for v in failures[1:])
        pytest.fail(f"{failures[0].report()}\n\nother failing seeds in this chunk: {others or 'none'}", pytrace=False)
