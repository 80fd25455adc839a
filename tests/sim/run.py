"""Command line: run many seeds, or replay one with its trace.

    python -m tests.sim.run --seeds 10000 [--start 0] [--servers 5] [--jobs 2]
    python -m tests.sim.run --seed 1234 --trace          # replay one seed, print every event
    python -m tests.sim.run --scenario leader_kill --trace
    python -m tests.sim.run --seed 1234 --durable-before-send false   # the mutant
    python -m tests.sim.run --seeds 300 --shell          # the shell model (tests/sim/shell.py)
    python -m tests.sim.run --seeds 300 --queue-rate 0.4 # apps queue 40% of their checkouts

Exit status 1 when any seed broke a rule.  Violations are listed by rule with
their seeds; ``--trace`` prints the whole trace of a single run.
"""

from __future__ import annotations

import argparse
import multiprocessing
import sys
import time
from collections import Counter, defaultdict

from tests.sim.runner import run_scenario, run_seed
from tests.sim.world import RunResult

__all__ = ["main"]


def _one(args: tuple[int, int | None, bool, float, bool, float]) -> RunResult:
    seed, servers, durable, reconnects, shell, queue_rate = args
    return run_seed(
        seed, servers, durable_before_send=durable, reconnect_rate=reconnects, shell=shell, queue_rate=queue_rate
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.sim.run", description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=100, help="how many seeds to run")
    parser.add_argument("--start", type=int, default=0, help="first seed")
    parser.add_argument("--seed", type=int, help="run this one seed")
    parser.add_argument("--servers", type=int, help="pool size (default: 3 or 5 by seed)")
    parser.add_argument("--trace", action="store_true", help="print every event of a single run")
    parser.add_argument("--scenario", help="run a named scenario (tests/sim/scenarios)")
    parser.add_argument("--jobs", type=int, default=1, help="worker processes")
    parser.add_argument("--durable-before-send", default="true", choices=("true", "false"))
    parser.add_argument("--reconnect-rate", type=float, default=0.02, help="app restarts per timer (0: none)")
    parser.add_argument(
        "--queue-rate", type=float, default=0.0, help="share of checkouts that wait in the queue (queue=True)"
    )
    parser.add_argument("--verbose", action="store_true", help="print each violation in full")
    parser.add_argument(
        "--skip-rule",
        action="append",
        default=[],
        choices=("REGISTRY", "ABANDON"),
        help="leave a rule unchecked, to see what a known finding leads to",
    )
    parser.add_argument(
        "--shell",
        action="store_true",
        help="model the Thespian shell (service time, transport, session actor, LicenseClient)",
    )
    opts = parser.parse_args(argv)
    durable = opts.durable_before_send == "true"

    if opts.scenario:
        from tests.sim.scenarios import SCENARIOS

        result = run_scenario(SCENARIOS[opts.scenario], echo=opts.trace, skip_rules=tuple(opts.skip_rule))
        return _report_single(result)
    if opts.seed is not None:
        result = run_seed(
            opts.seed,
            opts.servers,
            echo=opts.trace,
            durable_before_send=durable,
            reconnect_rate=opts.reconnect_rate,
            shell=opts.shell,
            queue_rate=opts.queue_rate,
            skip_rules=tuple(opts.skip_rule),
        )
        return _report_single(result)

    started = time.monotonic()
    work = [
        (s, opts.servers, durable, opts.reconnect_rate, opts.shell, opts.queue_rate)
        for s in range(opts.start, opts.start + opts.seeds)
    ]
    results: list[RunResult] = []
    if opts.jobs > 1:
        with multiprocessing.get_context("fork").Pool(opts.jobs) as pool:
            for i, r in enumerate(pool.imap(_one, work, chunksize=4)):
                results.append(r)
                _progress(i + 1, len(work), r)
    else:
        for i, item in enumerate(work):
            results.append(_one(item))
            _progress(i + 1, len(work), results[-1])
    elapsed = time.monotonic() - started
    stats: Counter[str] = Counter()
    by_rule: dict[str, list[int]] = defaultdict(list)
    for r in results:
        stats.update(r.stats)
        if r.violation is not None:
            by_rule[r.violation.rule].append(r.seed)
            if opts.verbose:
                print(r.violation.report(), "\n")
    events = sum(r.events for r in results)
    print(f"\n{len(results)} seeds, {events} events in {elapsed:.1f}s ({elapsed / max(1, len(results)):.3f}s/seed)")
    for key in sorted(stats):
        print(f"  {key}: {stats[key]}")
    for rule, seeds in sorted(by_rule.items()):
        print(f"VIOLATION {rule}: {len(seeds)} seeds, e.g. {seeds[:20]}")
    return 1 if by_rule else 0


def _progress(done: int, total: int, r: RunResult) -> None:
    if r.violation is not None:
        first = r.violation.detail.splitlines()[0]
        print(f"seed {r.seed}: {r.violation.rule}: {first[:300]}", flush=True)
    elif done % 100 == 0 or done == total:
        print(f"... {done}/{total}", file=sys.stderr, flush=True)


def _report_single(result: RunResult) -> int:
    print(
        f"seed {result.seed}: {result.events} events, {result.sim_time:.1f}s simulated, "
        f"trace {result.trace_hash[:16]}, stats {dict(result.stats)}"
    )
    if result.violation is not None:
        print(result.violation.report())
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
