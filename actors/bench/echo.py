"""Raw Thespian echo baseline: ``ActorSystem.ask`` round trips per second.

A trivial :class:`Echo` actor on multiprocTCPBase (127.0.0.1 only) answers
every message with itself. :func:`echo_asks_per_second` measures asks from
the calling process, from one thread or from several at once. Thespian's
``ActorSystem`` object is not thread-safe for asks (all replies arrive at one
endpoint, and an ``ask`` returns whichever arrives), so each thread needs its
own endpoint:

- ``"private"``: ``with asys.private() as ctx`` per thread (Thespian's own
  answer, ``systemBase.external_clone``);
- ``"transient"``: ``ActorSystem(..., transientUnique=True)`` per thread,
  joining the running admin;
- ``"shared"``: every thread asks through the one handle, to show the mix-up.

Run ``python -m actors.bench.echo --help``.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from importlib.metadata import version
from typing import Any, Literal

from thespian.actors import Actor, ActorExitRequest, ActorSystem

from actors.bench.procstat import busy_seconds
from actors.shell import logs, wire
from actors.shell.system import free_port

__all__ = ["BenchFailed", "Echo", "echo_asks_per_second", "machine"]

Mode = Literal["private", "transient", "shared"]
ASK_TIMEOUT_S = 5.0
LOOPBACK = "127.0.0.1"


class Echo(Actor):
    """Sends every message straight back to its sender."""

    def receiveMessage(self, message: Any, sender: Any) -> None:
        if not isinstance(message, ActorExitRequest):
            self.send(sender, message)


class BenchError(RuntimeError):
    """An ask went unanswered or came back with another thread's reply."""


class BenchFailed(RuntimeError):
    """The pool did not do what a phase needs (no leader, a denied checkout, ...).

    Defined here, not in actors/bench/pool.py: ``python -m actors.bench.pool`` runs that file
    as ``__main__``, and a class :mod:`actors.bench.scale` imported from ``actors.bench.pool``
    would be a second class that ``main`` does not catch."""


def machine() -> dict[str, str]:
    """What the figures were measured on."""
    model = "unknown"
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            model = next(line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return {
        "cpu": model,
        "nproc": str(len(os.sched_getaffinity(0))),
        "python": platform.python_version(),
        "thespian": version("thespian"),
        "kernel": platform.release(),
        "loadavg_1min": f"{os.getloadavg()[0]:.2f}",
    }


@contextmanager
def _echo_system(admin_port: int | None, allowlist: bool) -> Iterator[tuple[Any, Any, int]]:
    if allowlist:
        wire.install()
    wire.restrict_bind(LOOPBACK)
    port = admin_port or free_port(LOOPBACK)
    asys = ActorSystem(
        "multiprocTCPBase",
        {"Admin Port": port},
        logDefs=logs.thespian_log_defs("WARNING"),
        transientUnique=True,
    )
    try:
        yield asys, asys.createActor(Echo), port
    finally:
        asys.shutdown()


def _ask_loop(
    ask: Callable[[Any, Any, float], Any], echo: Any, count: int, tag: str, latencies: list[float] | None = None
) -> int:
    """Ask ``count`` times; return how many replies were someone else's."""
    wrong = 0
    for i in range(count):
        payload = (tag, i)
        t0 = time.perf_counter()
        reply = ask(echo, payload, ASK_TIMEOUT_S)
        if latencies is not None:
            latencies.append(time.perf_counter() - t0)
        if reply is None:
            raise BenchError(f"no reply to {payload} within {ASK_TIMEOUT_S} s")
        if reply != payload:
            wrong += 1
    return wrong


def _thread_endpoint(mode: Mode, asys: Any, port: int) -> Any:
    if mode == "private":
        return asys.private()
    if mode == "transient":

        @contextmanager
        def joined() -> Iterator[Any]:
            # Never shutdown() this handle: that stops the shared system.
            # Thespian has no detach, so close its transport instead.
            handle = ActorSystem("multiprocTCPBase", {"Admin Port": port}, transientUnique=True)
            try:
                yield handle
            finally:
                handle._systemBase.transport.close()

        return joined()

    @contextmanager
    def shared() -> Iterator[Any]:
        yield asys

    return shared()


def echo_asks_per_second(
    n: int = 2000,
    concurrency: int = 1,
    *,
    mode: Mode = "private",
    allowlist: bool = False,
    admin_port: int | None = None,
    warmup: int = 100,
    latencies: list[float] | None = None,
    cpu: list[float] | None = None,
) -> float:
    """Round trips per second for ``n`` asks, spread over ``concurrency`` threads.

    Starts and shuts down its own system. ``allowlist`` installs
    :mod:`actors.shell.wire` first (irreversible for this process). With
    ``concurrency > 1`` and ``mode="shared"`` replies go to the wrong thread;
    that raises :class:`BenchError`.  ``latencies``, if given, receives each
    ask's round trip in seconds; ``cpu``, the machine's busy CPU seconds
    (every process, all cores: :func:`actors.bench.procstat.busy_seconds`)
    during the timed asks.
    """
    with _echo_system(admin_port, allowlist) as (asys, echo, port):
        _ask_loop(asys.ask, echo, warmup, "warmup")
        if concurrency == 1:
            start, busy = time.perf_counter(), busy_seconds()
            _ask_loop(asys.ask, echo, n, "main", latencies)
            rate = n / (time.perf_counter() - start)
            if cpu is not None:
                cpu.append(busy_seconds() - busy)
            return rate

        per_thread = n // concurrency
        barrier = threading.Barrier(concurrency + 1)
        wrong: list[int] = []
        errors: list[BaseException] = []

        def worker(index: int) -> None:
            try:
                with _thread_endpoint(mode, asys, port) as endpoint:
                    _ask_loop(endpoint.ask, echo, 10, f"warm{index}")
                    barrier.wait()
                    wrong.append(_ask_loop(endpoint.ask, echo, per_thread, f"t{index}", latencies))
            except BaseException as exc:
                errors.append(exc)
                barrier.abort()

        threads = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(concurrency)]
        for thread in threads:
            thread.start()
        with suppress(threading.BrokenBarrierError):
            barrier.wait()
        start, busy = time.perf_counter(), busy_seconds()
        for thread in threads:
            thread.join()
        elapsed = time.perf_counter() - start
        if cpu is not None:
            cpu.append(busy_seconds() - busy)
        if errors:
            raise BenchError(f"{len(errors)} thread(s) failed: {errors[0]!r}") from errors[0]
        if sum(wrong):
            raise BenchError(f"{sum(wrong)} of {per_thread * concurrency} replies went to the wrong thread ({mode})")
        return per_thread * concurrency / elapsed


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000, help="asks per run (default 2000)")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1], help="thread counts to run")
    parser.add_argument("--mode", choices=["private", "transient", "shared"], default="private")
    parser.add_argument("--runs", type=int, default=3, help="runs per thread count; the median is printed")
    parser.add_argument("--allowlist", action="store_true", help="decode through actors.shell.wire")
    args = parser.parse_args(argv)

    info = machine()
    print(" ".join(f"{key}={value!r}" for key, value in info.items()))
    print(f"multiprocTCPBase on {LOOPBACK}, n={args.n}, mode={args.mode}, allowlist={args.allowlist}")
    for concurrency in args.concurrency:
        rates = []
        for _ in range(args.runs):
            try:
                rates.append(echo_asks_per_second(args.n, concurrency, mode=args.mode, allowlist=args.allowlist))
            except BenchError as exc:
                print(f"concurrency={concurrency}: {exc}")
                break
        if rates:
            shown = ", ".join(f"{rate:,.0f}" for rate in rates)
            print(f"concurrency={concurrency}: median {statistics.median(rates):,.0f} asks/s  (runs: {shown})")


if __name__ == "__main__":
    main()
