"""One app process of the scale run (``python -m actors.bench.pool --scale``): several
``LicenseClient``s in one Python process, each holding its share of the leases.

``python -m actors.bench.scale_app CONFIG APP CLIENTS LEASES SERVERS...`` starts
``CLIENTS`` clients (say which processes they are: the first line), client ``i`` of app ``APP`` prefers
``SERVERS[(APP * CLIENTS + i) % len(SERVERS)]``, checks ``LEASES`` seats out
with each (one thread per client), and prints::

    {"started": true, "pid": ..., "sessions": [<session id of each client's actor system>]}
    {"ready": true, "held": N}

Then it reads commands, one a line, and answers each with one JSON line:
``take N [RATE]`` (N more leases per client; at most RATE checkouts a second
from this app over all its clients, if given and not 0), ``lost`` (how many leases
were lost), ``quit`` (close every client: release, stop its actor system, exit).
End of input (the benchmark died) is ``quit``; SIGTERM closes the clients too.  Any failure prints
``{"error": "..."}`` and exits 1 after closing what it started.
"""

from __future__ import annotations

import json
import math
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

__all__ = ["main"]


def _each(clients: list[Any], work: Callable[[int], None]) -> None:
    """Run ``work(i)`` for every client at once; raise the first failure."""
    errors: list[BaseException] = []

    def run(i: int) -> None:
        try:
            work(i)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,), daemon=True) for i in range(len(clients))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]


def _say(**fields: Any) -> None:
    print(json.dumps(fields), flush=True)


class _Pacer:
    """At most ``rate`` calls of ``wait`` return per second, over all threads (0: no limit)."""

    def __init__(self, rate: float) -> None:
        self.gap = 1.0 / rate if rate > 0 else 0.0
        self.next = time.monotonic()
        self.lock = threading.Lock()

    def wait(self) -> None:
        if not self.gap:
            return
        with self.lock:
            at = max(self.next, time.monotonic())
            self.next = at + self.gap
        delay = at - time.monotonic()
        if delay > 0:
            time.sleep(delay)


def _take(clients: list[Any], held: list[list[Any]], n: int, rate: float = 0.0) -> None:
    """``n`` more seats with each client, all clients at once, at most ``rate`` a second in all."""
    pacer = _Pacer(rate)

    def take(i: int) -> None:
        for _ in range(n):
            pacer.wait()
            held[i].append(clients[i].checkout("cad:2.0", timeout=60.0))

    _each(clients, take)


def _rate(words: list[str]) -> float | None:
    """The optional RATE of a ``take`` (0 when absent); None if it is not a number >= 0."""
    if not words:
        return 0.0
    try:
        rate = float(words[0])
    except ValueError:
        return None
    return rate if math.isfinite(rate) and rate >= 0 else None


def _serve(clients: list[Any], held: list[list[Any]]) -> None:
    for line in sys.stdin:
        words = line.split()
        if not words or words[0] == "quit":
            return
        rate = _rate(words[2:])
        if words[0] == "take" and len(words) in (2, 3) and words[1].isdigit() and rate is not None:
            _take(clients, held, int(words[1]), rate)
            _say(held=sum(len(h) for h in held))
        elif words[0] == "lost":
            _say(lost=sum(1 for h in held for a in h if a.lost.is_set()))
        else:
            _say(error=f"unknown command {line.strip()!r}")


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) < 5:
        print(__doc__, file=sys.stderr)
        return 2
    config, app, n_clients, n_leases, servers = args[0], int(args[1]), int(args[2]), int(args[3]), args[4:]

    from actors.client import LicenseClient
    from actors.shell import logs

    def stop(signum: int, frame: Any) -> None:
        raise SystemExit(1)  # through the finally below: every client closed

    signal.signal(signal.SIGTERM, stop)

    logs.configure(level="ERROR", console=True)
    clients: list[Any] = []
    try:
        for i in range(n_clients):
            prefer = servers[(app * n_clients + i) % len(servers)]
            clients.append(
                LicenseClient.from_config(config, client_id=f"scale-{app}-{i}", prefer=prefer, log_level="ERROR")
            )
        sessions = [c._started.helper for c in clients if c._started is not None]
        _say(started=True, pid=os.getpid(), sessions=sessions)
        held: list[list[Any]] = [[] for _ in clients]

        _take(clients, held, n_leases)
        _say(ready=True, held=sum(len(h) for h in held))
        _serve(clients, held)
        return 0
    except Exception as exc:
        _say(error=repr(exc))
        return 1
    finally:
        for c in clients:
            try:
                c.close()
            except Exception as exc:
                print(f"closing {c.client_id}: {exc!r}", file=sys.stderr)


if __name__ == "__main__":
    raise SystemExit(main())
