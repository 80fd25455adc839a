"""Where a checkout's time goes inside the servers: cProfile in the running processes.

``python -m actors.bench.profile`` starts a 3-server pool on loopback with
``LICPOOL_PROFILE`` set (``actors.shell.profiling``: every server process
profiles itself with cProfile and dumps its cumulative stats on request),
then, first at a follower and then at the leader, takes a dump of every
server, runs ``--n`` checkouts from ``--concurrency`` apps, takes another
dump and subtracts.  It prints, per server and per checkout, the CPU time in:

- transport: Thespian's loop (select, accept, socket reads and writes, ACKs)
  outside the actor's handler and outside the unpickling;
- unpickle: the allowlisted ``pickle`` loads of every incoming frame;
- core: ``ServerNode.from_client`` / ``receive`` / ``tick``;
- persist: ``NodeStore.write`` or ``append`` + ``sync`` (fsync), and compaction;
- send: ``Actor.send`` called by the handler (pickling, the first write);
- checks: shape check, peer MAC (check and seal), audit lines;
- other handler: the rest of the handler (address book, views, events, ...).

cProfile slows Python code by a factor (C calls such as fsync and socket
I/O much less), so the shares are a guide, not the unprofiled times; the
last line gives the unprofiled checkout rate of the same pool for scale.
It is a benchmark, not a test.
"""

from __future__ import annotations

import argparse
import os
import pstats
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from actors.bench.pool import Pool, _pool, _timing, run_together

__all__ = ["main"]

Key = tuple[str, int, str]


def _dump(directory: Path, names: list[str], timeout: float = 10.0) -> dict[str, dict[Key, tuple[float, float, int]]]:
    for name in names:
        (directory / f"{name}.dump").touch()
    deadline = time.monotonic() + timeout
    while any((directory / f"{n}.dump").exists() for n in names):
        if time.monotonic() > deadline:
            raise RuntimeError("a server did not dump its profile")
        time.sleep(0.02)
    out = {}
    for name in names:
        stats = pstats.Stats(str(directory / f"{name}.prof")).stats  # type: ignore[attr-defined]
        out[name] = {k: (v[2], v[3], v[1]) for k, v in stats.items()}
    return out


def _diff(
    after: dict[Key, tuple[float, float, int]], before: dict[Key, tuple[float, float, int]]
) -> dict[Key, tuple[float, float, int]]:
    out = {}
    for k, (tt, ct, nc) in after.items():
        b = before.get(k, (0.0, 0.0, 0))
        out[k] = (tt - b[0], ct - b[1], nc - b[2])
    return out


def _match(stats: dict[Key, tuple[float, float, int]], path_end: str, names: set[str]) -> float:
    return sum(ct for (f, _, n), (_, ct, _) in stats.items() if f.endswith(path_end) and n in names)


CATEGORIES = (
    "transport",
    "unpickle",
    "core",
    "persist",
    "send",
    "checks",
    "other handler",
    "busy total",
    "select wait",
    "messages handled",
    "fsyncs",
)


def breakdown(stats: dict[Key, tuple[float, float, int]]) -> dict[str, float]:
    wait = sum(tt for (f, _, n), (tt, _, _) in stats.items() if f == "~" and ("poll" in n or "select" in n))
    busy = sum(tt for _, (tt, _, _) in stats.items()) - wait
    handler = max(
        _match(stats, "thespian/actors.py", {"receiveMessage"}),
        _match(stats, "actors/shell/server_actor.py", {"receiveMessage"}),
    )
    unpickle = _match(stats, "actors/shell/wire.py", {"loads"})
    core = _match(stats, "actors/core/node.py", {"from_client", "receive", "tick"})
    persist = _match(stats, "actors/shell/persistence.py", {"write", "append", "sync", "maybe_compact"})
    send = _match(stats, "thespian/actors.py", {"send"})
    checks = (
        _match(stats, "actors/core/shape.py", {"problem"})
        + _match(stats, "actors/shell/peerauth.py", {"genuine", "seal"})
        + _match(stats, "actors/shell/logs.py", {"audit"})
    )
    handled = sum(
        nc for (f, _, n), (_, _, nc) in stats.items() if f.endswith("thespian/actors.py") and n == "receiveMessage"
    )
    fsyncs = sum(nc for (f, _, n), (_, _, nc) in stats.items() if f == "~" and "fsync" in n)
    return {
        "messages handled": handled,
        "fsyncs": fsyncs,
        "transport": busy - handler - unpickle,
        "unpickle": unpickle,
        "core": core,
        "persist": persist,
        "send": send,
        "checks": checks,
        "other handler": handler - core - persist - send - checks,
        "busy total": busy,
        "select wait": wait,
    }


def _top(stats: dict[Key, tuple[float, float, int]], count: int, done: int) -> list[str]:
    rows = sorted(stats.items(), key=lambda kv: -kv[1][0])[:count]
    return [
        f"    {tt / done * 1000:7.3f} ms own, {ct / done * 1000:7.3f} ms cum, {nc / done:6.2f} calls  "
        f"{f.split('site-packages/')[-1]}:{line} {n}"
        for (f, line, n), (tt, ct, nc) in rows
    ]


def _phase(
    pool: Pool,
    directory: Path,
    server: str,
    n: int,
    concurrency: int,
    tag: str,
    top: int = 0,
    out: Callable[[str], None] = print,
) -> tuple[dict[str, dict[str, float]], float]:
    names = list(pool.cfg.server_names)
    clients = [pool.client(f"prof-{tag}-{i}", server) for i in range(concurrency)]
    for c in clients:
        c.checkout("cad:2.0", timeout=10.0).release()
    held: list[Any] = []
    per = n // concurrency
    before = _dump(directory, names)

    def run(i: int) -> None:
        for _ in range(per):
            held.append(clients[i].checkout("cad:2.0", timeout=10.0))

    elapsed = run_together(concurrency, run)
    after = _dump(directory, names)  # (the dump request waits for a housekeeping pass: <= h)
    for a in held:
        a.release()
    done = per * concurrency
    if top:
        diff = _diff(after[server], before[server])
        out(f"  the {top} costliest functions at {server} (own time per checkout, profiled):")
        for line in _top(diff, top, done):
            out(line)
        handlers = sorted(
            ((n, nc / done) for (_, _, n), (_, _, nc) in diff.items() if n.startswith("receiveMsg_") and nc),
            key=lambda x: -x[1],
        )
        out("  messages handled at it per checkout, by kind: " + ", ".join(f"{n[11:]} {k:.2f}" for n, k in handlers))
    counts = ("messages handled", "fsyncs")
    return {
        name: {
            k: v / done * (1 if k in counts else 1000) for k, v in breakdown(_diff(after[name], before[name])).items()
        }
        for name in names
    }, done / elapsed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m actors.bench.profile", description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=200, help="checkouts per phase (default 200)")
    parser.add_argument("--concurrency", type=int, default=1, help="apps at once (default 1)")
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument(
        "--clock",
        choices=["wall", "cpu"],
        default="wall",
        help="cProfile's timer in the servers (default wall: fsync waits count)",
    )
    parser.add_argument("--top", type=int, default=0, help="also list the asked server's N costliest functions")
    args = parser.parse_args(argv)

    from actors.shell import logs, profiling

    logs.configure(level="ERROR", console=True)
    workdir = Path(args.workdir or tempfile.gettempdir()).absolute()
    profdir = Path(tempfile.mkdtemp(prefix="licpool-profile-", dir=workdir))
    os.environ[profiling.ENV] = str(profdir)
    os.environ[profiling.CLOCK_ENV] = args.clock
    problems: list[str] = []
    out: Callable[[str], None] = lambda line: print(line, flush=True)  # noqa: E731
    out(
        f"cProfile in every server process; {args.n} checkouts, {args.concurrency} app(s); ms of server CPU "
        f"per checkout ({args.clock} clock, profiled); load average {os.getloadavg()[0]:.2f}"
    )
    try:
        with _pool(workdir, "profile", _timing("default"), problems) as pool:
            leader = pool.formed().leader
            follower = next(x for x in pool.cfg.server_names if x != leader)
            pool.add_license(3000)
            for role, server in (("follower", follower), ("leader", leader)):
                per_server, rate = _phase(pool, profdir, server, args.n, args.concurrency, role, args.top, out)
                names = list(per_server)
                out(f"\ncheckouts at the {role} {server} ({rate:.0f}/s profiled)")
                out(
                    "| ms per checkout | "
                    + " | ".join(
                        f"{n}{' (asked)' if n == server else ''}{' (leader)' if n == leader else ''}" for n in names
                    )
                    + " |"
                )
                out("|---|" + "---:|" * len(names))
                for cat in CATEGORIES:
                    out(f"| {cat} | " + " | ".join(f"{per_server[n][cat]:.3f}" for n in names) + " |")
    finally:
        del os.environ[profiling.ENV], os.environ[profiling.CLOCK_ENV]
        shutil.rmtree(profdir, ignore_errors=True)
    if problems:
        out("cleanup: " + "; ".join(problems))
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
