"""The 2-minute chaos run (tests/chaos/harness.py), checked by tests/chaos/check.py.

Three servers and two client hosts, each in its own network namespace; eight
apps want up to 16 seats of 6; 90 s of seeded faults (every kind at least
once), then the quiet phase: about two minutes in all.  On a failure the
run's logs are copied to ``/tmp/licpool-chaos-<seed>-<pid>`` and the message
says so (``python3 -m tests.chaos.check DIR`` reads them again).  Needs root and ``ip netns`` (skipped elsewhere,
with the reason).  ``LICPOOL_CHAOS_SEED`` picks the seed (default 1).

Teardown stops every process, deletes every namespace, and fails the test if
anything had to be killed or could not be deleted.  The 10-minute run is
``python3 -m tests.chaos.run --minutes 10 --seed 1`` (docs/reliability.md).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.chaos.check import check_run
from tests.chaos.harness import ChaosRun, ChaosSettings
from tests.netns import netns_unavailable

pytestmark = pytest.mark.chaos

SEED = int(os.environ.get("LICPOOL_CHAOS_SEED", "1"))


@pytest.fixture
def chaos_run(tmp_path: Path) -> Iterator[ChaosRun]:
    why = netns_unavailable()
    if why is not None:
        pytest.skip(why)
    run = ChaosRun(tmp_path / "chaos", ChaosSettings(seed=SEED, fault_seconds=90.0), say=print)
    problems: list[str] = []
    try:
        try:
            run.setup()
        except subprocess.CalledProcessError as exc:
            if not run.network.created:
                pytest.skip(f"cannot create a network namespace here: {exc.stderr.strip()}")
            raise
        yield run
    finally:
        problems = run.close()
    if problems:
        pytest.fail("; ".join(problems))


@pytest.mark.timeout(600)
def test_two_minutes_of_chaos_break_no_rule(chaos_run: ChaosRun) -> None:
    chaos_run.run_faults()
    chaos_run.quiet()
    chaos_run.stop_apps()
    chaos_run.close()  # the checker reads meta.json, written here; the fixture's close is then a no-op
    verdict = check_run(chaos_run.dir)
    print(f"\nchaos seed {SEED}, logs in {chaos_run.dir}\n{verdict.report()}")
    if not verdict.ok:
        kept = Path(f"/tmp/licpool-chaos-{SEED}-{os.getpid()}")
        shutil.copytree(chaos_run.dir, kept, dirs_exist_ok=True)
        pytest.fail(f"seed {SEED} (logs kept in {kept}):\n{verdict.report()}")
