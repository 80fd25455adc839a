"""A chaos client app: one ``LicenseClient`` that asks, holds, releases, and logs it all.

    python3 -m tests.chaos.app --config F --app NAME --inc N --seed S --log PATH
        [--resume L1,L2] [--fill] [--release-on-freeze] [--token T]

Each event is one JSON line in PATH with ``ts`` (wall clock, ``time.time()``:
every network namespace shares the kernel's clock, so the checker can merge
the logs of all apps, the fault log and the monitor's status log):

============  ==============================================================
``start``     the client is up (``pid``, ``client``, ``inc``)
``asked``     a checkout begins (``req``, ``lease`` when resuming)
``granted``   ``req``, ``lease``, ``server``, ``deadline`` (wall clock), ``latency``
``denied``    ``req``, ``reason``, ``detail``, ``latency``
``error``     a checkout raised something else than ``LicenseDenied``
``renewed``   a held lease's deadline moved (``lease``, ``server``, ``deadline``)
``moved``     a held lease's server changed (``lease``, ``from``, ``to``)
``lost``      ``lease``, ``reason``, ``server``, ``deadline`` (the client's own view)
``releasing`` the app gives a lease back (logged *before* the call: from here
              on it no longer uses the seat); ``released`` after the call
``frozen``    SIGUSR1: no more asks or releases (with ``--release-on-freeze``,
              after releasing everything); ``held`` lists the leases kept
``stopped``   SIGTERM: everything released, the client closed
============  ==============================================================

The app wants 1 to ``--want`` (default 2) seats at a time, holds what it got for a random while,
releases it all and asks again.  ``--resume`` first resumes the given lease
ids (an app restarted after a SIGKILL).  ``--fill`` is the checker's fresh
client: it takes seats until the pool says no three times in a row, logs
``filled`` with the count, releases them and exits.

``--token`` only marks the command line, so that a harness can find every
process of this app (Thespian's forks keep the command line).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import sys
import threading
import time
from typing import Any

FEATURE, VERSION = "cad", "2.0"
CHECKOUT_TIMEOUT = 5.0


class EventLog:
    """JSON lines, one write and flush per event, safe across threads."""

    def __init__(self, path: str, base: dict[str, Any]) -> None:
        self._file = open(path, "a", buffering=1, encoding="utf-8")  # noqa: SIM115 - open for the app's life
        self._lock = threading.Lock()
        self._base = base

    def __call__(self, event: str, **fields: Any) -> None:
        line = json.dumps({"ts": time.time(), "event": event, **self._base, **fields})
        with self._lock:
            self._file.write(line + "\n")
            self._file.flush()

    def close(self) -> None:
        with self._lock:
            self._file.close()


def wall(deadline: float) -> float:
    """A monotonic ``deadline`` of this process as wall-clock time."""
    return time.time() + (deadline - time.monotonic()) if deadline else 0.0


class ChaosApp:
    def __init__(
        self, args: argparse.Namespace, stop: threading.Event, frozen: threading.Event, wake: threading.Event
    ) -> None:
        from actors.client import LicenseClient

        self.args = args
        self.rng = random.Random(f"{args.seed}/{args.app}/{args.inc}")
        self.log = EventLog(args.log, {"app": args.app, "inc": args.inc})
        self.stop = stop
        """SIGTERM: release everything and close."""
        self.frozen = frozen
        """SIGUSR1: keep what is held, ask and release nothing more."""
        self.wake = wake
        """Set with ``stop`` or ``frozen``: cuts a pause short."""
        self.held: dict[str, Any] = {}
        self.seen: dict[str, tuple[float, str]] = {}
        """Each held lease's (deadline, server) as last logged."""
        self.lock = threading.Lock()
        self.req = 0
        self.client = LicenseClient.from_config(args.config, client_id=args.app)
        self.log("start", pid=os.getpid(), client=args.app, session=self.client.session_id)
        self.watcher = threading.Thread(target=self._watch, name="chaos-watch", daemon=True)
        self.watcher.start()

    # ---- events from the client ------------------------------------------------------

    def _on_lost(self, auth: Any) -> None:
        with self.lock:
            self.held.pop(auth.lease_id, None)
        self.log("lost", lease=auth.lease_id, reason=auth.lost_reason, server=auth.server, deadline=wall(auth.deadline))

    def _watch(self) -> None:
        """Log every change of a held lease's deadline or server (50 ms polls)."""
        while not self.stop.wait(0.05):
            with self.lock:
                auths = [(a, self.seen.get(a.lease_id)) for a in self.held.values()]
                for lease in set(self.seen) - set(self.held):
                    del self.seen[lease]
            for auth, before in auths:
                deadline, server = auth.deadline, auth.server
                if before is None:
                    continue
                if server != before[1]:
                    self.log("moved", lease=auth.lease_id, **{"from": before[1], "to": server})
                if deadline > before[0] + 1e-6 or server != before[1]:
                    with self.lock:
                        self.seen[auth.lease_id] = (deadline, server)
                    self.log("renewed", lease=auth.lease_id, server=server, deadline=wall(deadline))

    # ---- the app's own doings --------------------------------------------------------

    def checkout(self, lease_id: str | None = None) -> Any | None:
        from actors.client import LicenseDenied

        self.req += 1
        req = self.req
        self.log("asked", req=req, **({"lease": lease_id} if lease_id else {}))
        began = time.monotonic()
        try:
            auth = self.client.checkout(
                FEATURE, VERSION, timeout=CHECKOUT_TIMEOUT, on_lost=self._on_lost, lease_id=lease_id
            )
        except LicenseDenied as exc:
            self.log("denied", req=req, reason=exc.reason.value, detail=exc.detail, latency=time.monotonic() - began)
            return None
        except Exception as exc:  # the harness wants to see every kind of failure
            self.log("error", req=req, error=repr(exc), latency=time.monotonic() - began)
            return None
        with self.lock:
            self.held[auth.lease_id] = auth
            self.seen[auth.lease_id] = (auth.deadline, auth.server)
        self.log(
            "granted",
            req=req,
            lease=auth.lease_id,
            server=auth.server,
            deadline=wall(auth.deadline),
            latency=time.monotonic() - began,
            **({"resumed": lease_id} if lease_id else {}),
        )
        if auth.lost.is_set():  # lost between the grant and its booking above
            self._on_lost(auth)
        return auth

    def release(self, auth: Any) -> None:
        with self.lock:
            if self.held.pop(auth.lease_id, None) is None:
                return  # lost meanwhile: nothing to give back
        self.log("releasing", lease=auth.lease_id, server=auth.server)
        try:
            auth.release()
        except Exception as exc:
            self.log("released", lease=auth.lease_id, error=repr(exc))
        else:
            self.log("released", lease=auth.lease_id)

    def pause(self, low: float, high: float) -> bool:
        """Sleep a random while; True if the app should stop its loop."""
        self.wake.wait(self.rng.uniform(low, high))
        return self.stop.is_set() or self.frozen.is_set()

    def run(self) -> None:
        for lease_id in filter(None, self.args.resume.split(",")):
            self.checkout(lease_id)
        if self.args.fill:
            self.fill()
            return
        while not (self.stop.is_set() or self.frozen.is_set()):
            want = self.rng.randint(1, self.args.want)
            with self.lock:
                have = len(self.held)
            for _ in range(max(0, want - have)):
                if self.stop.is_set() or self.frozen.is_set():
                    break
                self.checkout()
            with self.lock:
                got = bool(self.held)
            if self.pause(2.0, 8.0) if got else self.pause(0.3, 1.5):
                break
            with self.lock:
                auths = list(self.held.values())
            for auth in auths:
                if self.stop.is_set() or self.frozen.is_set():
                    break
                self.release(auth)
            if self.pause(0.2, 2.0):
                break
        if self.frozen.is_set():
            if self.args.release_on_freeze:
                with self.lock:
                    auths = list(self.held.values())
                for auth in auths:
                    self.release(auth)
            with self.lock:
                held = sorted(self.held)
            self.log("frozen", held=held)
            self.stop.wait()

    def fill(self) -> None:
        """Take every free seat: ask until three answers in a row are no."""
        taken, noes = [], 0
        while noes < 3 and not self.stop.is_set():
            auth = self.checkout()
            if auth is None:
                noes += 1
                self.wake.wait(1.0)
            else:
                taken.append(auth)
                noes = 0
        self.log("filled", count=len(taken), leases=[a.lease_id for a in taken])
        for auth in taken:
            self.release(auth)

    def close(self) -> None:
        with self.lock:
            auths = list(self.held.values())
        for auth in auths:
            self.release(auth)
        self.stop.set()
        self.client.close()
        self.log("stopped")
        self.log.close()


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", required=True)
    parser.add_argument("--app", required=True)
    parser.add_argument("--inc", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--log", required=True)
    parser.add_argument("--resume", default="")
    parser.add_argument("--fill", action="store_true")
    parser.add_argument("--release-on-freeze", action="store_true")
    parser.add_argument("--want", type=int, default=2, help="the most seats the app wants at a time")
    parser.add_argument("--token", default="")
    args = parser.parse_args(argv)
    # The handlers come first: a SIGUSR1 while the client starts must not kill the app.
    stop, frozen, wake = threading.Event(), threading.Event(), threading.Event()

    def on_signal(event: threading.Event) -> None:
        event.set()
        wake.set()

    signal.signal(signal.SIGTERM, lambda *_: on_signal(stop))
    signal.signal(signal.SIGUSR1, lambda *_: on_signal(frozen))
    app = ChaosApp(args, stop, frozen, wake)
    try:
        app.run()
        if not args.fill:
            app.stop.wait()
    finally:
        app.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
