"""Run a chaos test from the command line and print the checker's verdict.

    sudo python3 -m tests.chaos.run --minutes 10 --seed 1 [--dir DIR] [--keep]

``--minutes`` is the length of the fault phase; set-up, the warm-up and the
quiet phase add about a minute.  Needs root (network namespaces).  Exits 0
when no rule was broken, 1 when one was, 2 when the run itself failed.  The
run's logs stay in ``--dir`` (default: a new directory under /tmp) for
``python3 -m tests.chaos.check DIR``.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from tests.chaos.check import Verdict, check_run
from tests.chaos.harness import ChaosRun, ChaosSettings
from tests.netns import netns_unavailable


def run_chaos(
    directory: Path, settings: ChaosSettings, say: Callable[[str], None] = print
) -> tuple[list[str], Verdict]:
    """One whole run: (what teardown had to kill, the checker's verdict)."""
    run = ChaosRun(directory, settings, say=lambda text: say(f"[{time.strftime('%H:%M:%S')}] {text}"))
    problems: list[str] = []
    try:
        run.setup()
        run.run_faults()
        run.quiet()
        run.stop_apps()
    finally:
        problems = run.close()
    return problems, check_run(directory)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0, help="length of the fault phase")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--dir", type=Path, default=None)
    parser.add_argument("--apps-per-host", type=int, default=4)
    parser.add_argument("--seats", type=int, default=6)
    parser.add_argument("--want", type=int, default=2, help="the most seats one app wants at a time")
    args = parser.parse_args(argv)
    why = netns_unavailable()
    if why is not None:
        print(f"chaos: cannot run: {why}", file=sys.stderr)
        return 2
    directory = args.dir or Path(tempfile.mkdtemp(prefix=f"licpool-chaos-{args.seed}-"))
    settings = ChaosSettings(
        seed=args.seed,
        fault_seconds=60.0 * args.minutes,
        seats=args.seats,
        apps_per_host=args.apps_per_host,
        want=args.want,
    )
    print(f"chaos: seed {args.seed}, {args.minutes:g} min of faults, logs in {directory}")
    began = time.monotonic()
    problems, verdict = run_chaos(directory, settings)
    print(verdict.report())
    print(f"chaos: {time.monotonic() - began:.0f} s in all; logs in {directory}")
    if problems:
        print("chaos: teardown problems: " + "; ".join(problems))
        return 2
    return 0 if verdict.ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
