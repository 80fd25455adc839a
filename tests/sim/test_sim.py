"""The CI batch: many seeded fault schedules over 3- and 5-server pools.

``LICPOOL_SIM_SCHEDULES`` (default 300) sets how many seeds run; they are
split into chunks of 20 so progress is visible.  Even seeds run 3 servers, odd
seeds 5.  A failing chunk reports its first violation in full (seed, rule,
pool state, the trace's last lines, and the command that replays it) and
lists the other failing seeds.
"""

from __future__ import annotations

import os

import pytest

from tests.sim.runner import run_seed

SCHEDULES = int(os.environ.get("LICPOOL_SIM_SCHEDULES", "300"))
CHUNK = 20
CHUNKS = [range(start, min(start + CHUNK, SCHEDULES)) for start in range(0, SCHEDULES, CHUNK)]


@pytest.mark.parametrize("seeds", CHUNKS, ids=lambda r: f"seeds{r.start}-{r.stop - 1}")
def test_seeded_schedules(seeds: range) -> None:
    failures = [r.violation for r in (run_seed(seed) for seed in seeds) if r.violation is not None]
    if failures:
        others = ", ".join(f"{v.seed} ({v.rule})" for v in failures[1:])
        pytest.fail(f"{failures[0].report()}\n\nother failing seeds in this chunk: {others or 'none'}",
                    pytrace=False)
