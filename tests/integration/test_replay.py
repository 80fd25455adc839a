"""Named simulator scenarios replayed through real actors.

Each scenario (tests/sim/scenarios) goes through its plain-data form
(``dump_json`` then ``load_json``), runs on the simulator, and then runs on a
real pool of server processes on loopback, with each client an app process
(tests/integration/clientapp.py).  Both must reach the outcome the scenario
asserts: every ``expect`` step holds, and no client view ever holds more seats
than the license has (S1).

**Time is scaled by SCALE = 0.2**, and so are the timings: the simulator
runs the defaults (h 0.5, f 2, L = F 3, T 30), the real pool runs h 0.1,
f 0.4, L = F 0.6, T 6 and a step at scenario time t runs at 0.2·t after the
pool has formed and the scenario's license is committed.  Every rule of the
core scales with its timings, so the compressed run is the same schedule.
What does not scale is the real cost of an action (starting a server or an
app process takes about a second): a step runs at its time or, if the step
before it is still running, as soon as that one is done, and the lateness
is printed.  rebalance_idle is not scaled (60 s: no rebalancing happens).

Actions carried out: ``kill`` (SIGKILL of the server's process group),
``restart`` (of a server that is down), ``stall S d`` (SIGSTOP of the group,
SIGCONT d later), ``checkout``/``release`` through the client's app,
``reconnect`` (SIGKILL the app, start a new one with the same client id that
resumes every lease it held by id).  Expectations: ``held``,
``held_at_least``, ``lost``, ``granted``, ``leader``, ``leader_not``,
``all_live``, checked against the apps' and the servers' real state.  Any
other action fails the test: nothing is skipped silently.
"""

from __future__ import annotations

import signal
import time
from pathlib import Path
from typing import Any

import pytest

from tests.sim.runner import run_scenario
from tests.sim.scenario import Scenario, Step, dump_json, load_json
from tests.sim.scenarios import SCENARIOS

SCALE = 0.2
SCALED_TIMING = {
    "heartbeat_interval": 0.5 * SCALE,
    "failure_timeout": 2.0 * SCALE,
    "leader_lease": 3.0 * SCALE,
    "fence_timeout": 3.0 * SCALE,
    "lease_ttl": 30.0 * SCALE,
}
REPLAYED = ("leader_kill", "client_server_kill", "reconnect", "stall")
CHECKOUT_TIMEOUT = 2.0


class Client:
    """One scenario client: its current app process and what it got so far."""

    def __init__(self, name: str, start_app: Any) -> None:
        self.name = name
        self.start_app = start_app
        self.app = start_app(name)
        self.grants = 0
        self.lost_before = 0
        """Leases lost by earlier app processes of this client."""

    def state(self) -> tuple[float, list[dict[str, Any]]]:
        doc = self.app.call("state")
        return doc["now"], doc["auths"]

    def held(self) -> list[dict[str, Any]]:
        now, auths = self.state()
        return [x for x in auths if not x["lost"] and not x["released"] and x["deadline"] > now]

    def lost(self) -> int:
        return self.lost_before + sum(bool(x["lost"]) for x in self.state()[1])


class Replay:
    def __init__(self, scenario: Scenario, pool: Any, start_app: Any) -> None:
        self.scenario = scenario
        self.pool = pool
        self.start_app = start_app
        self.clients: dict[str, Client] = {}
        self.stopped: set[str] = set()
        self.log: list[str] = []

    def client(self, name: str) -> Client:
        if name not in self.clients:
            self.clients[name] = Client(name, self.start_app)
        return self.clients[name]

    def running(self, name: str) -> bool:
        proc = self.pool.procs.procs.get(name)
        return proc is not None and proc.poll() is None

    def resolve(self, name: Any) -> Any:
        if isinstance(name, list):
            return [self.resolve(x) for x in name]
        if not isinstance(name, str) or not name.startswith("$"):
            return name
        if name == "$leader":
            status = self.pool.status()
            found = status.leader if status is not None else None
        elif name == "$follower":
            status = self.pool.status()
            leader = status.leader if status is not None else None
            found = next((n for n in self.pool.names if n != leader and self.running(n)), None)
        elif name.startswith("$holder:"):
            held = self.client(name.split(":", 1)[1]).held()
            found = held[0]["server"] if held else None
        else:
            raise ValueError(f"unknown name {name}")
        if found is None:
            pytest.fail(f"{name} did not resolve at this step: the real run diverged from the scenario")
        return found

    # ---- actions ---------------------------------------------------------------------

    def do(self, what: str, args: list[Any], at: float) -> None:
        if what == "kill":
            if self.running(args[0]):
                self.pool.procs.kill(args[0])
        elif what == "restart":
            if not self.running(args[0]):
                self.pool.start(args[0])
        elif what == "stall":
            name, duration = args
            if self.running(name) and name not in self.stopped:
                self.pool.procs.signal(name, signal.SIGSTOP)
                self.stopped.add(name)
                self.pending.append((at + duration * SCALE, ("resume", name)))
        elif what == "checkout":
            client = self.client(args[0])
            reply = client.app.checkout(args[1], args[2], timeout=CHECKOUT_TIMEOUT)
            if reply["ok"]:
                client.grants += 1
            self.log.append(f"    {args[0]} checkout: {reply}")
        elif what == "release":
            client = self.client(args[0])
            mine = sorted(x["lease_id"] for x in client.held())
            if mine:
                client.app.call("release", lease_id=mine[0])
        elif what == "reconnect":
            self.reconnect(self.client(args[0]))
        else:
            pytest.fail(f"the replay does not support action {what!r}: choose scenarios whose actions it carries out")

    def resume(self, name: str) -> None:
        self.pool.procs.signal(name, signal.SIGCONT)
        self.stopped.discard(name)

    def reconnect(self, client: Client) -> None:
        """The app dies (no release) and a new one resumes its leases by id."""
        held = client.held()
        client.lost_before += sum(x["lost"] for x in client.state()[1])
        client.app.crash()
        client.app = self.start_app(client.name)
        for auth in held:
            reply = client.app.checkout("cad", "2.0", timeout=CHECKOUT_TIMEOUT, lease_id=auth["lease_id"])
            self.log.append(f"    {client.name} resume {auth['lease_id'][:12]}...: {reply}")
            if reply["ok"]:
                client.grants += 1
                assert reply["lease_id"] == auth["lease_id"], "a resume must give back the same lease"

    # ---- expectations ----------------------------------------------------------------

    def expect(self, what: str, args: list[Any], step: Step) -> None:
        detail = ""
        if what in ("held", "held_at_least"):
            n = len(self.client(args[0]).held())
            ok, detail = (n == args[1]) if what == "held" else (n >= args[1]), f"{args[0]} holds {n}"
        elif what == "lost":
            n = self.client(args[0]).lost()
            ok, detail = n == args[1], f"{args[0]} lost {n}"
        elif what == "granted":
            n = self.client(args[0]).grants
            ok, detail = n == args[1], f"{args[0]} was granted {n} times"
        elif what == "leader":
            status = self.pool.status()
            ok, detail = status is not None and status.leader is not None, f"status {status}"
        elif what == "leader_not":
            status = self.pool.status()
            ok, detail = status is not None and status.leader != args[0], f"{args[0]} leads"
        elif what == "all_live":
            status = self.pool.status()
            shown = {s.name: s.status for s in status.servers} if status is not None else {}
            ok = status is not None and status.leader == status.answered_by and set(shown.values()) == {"live"}
            detail = f"leader {status.leader if status else None} shows {shown}"
        else:
            pytest.fail(f"the replay does not support expectation {what!r}")
        held = sum(len(c.held()) for c in self.clients.values())
        assert held <= self.scenario.seats, f"S1: clients hold {held} of {self.scenario.seats} seats at {step!r}"
        assert ok, f"{step!r} failed in the real run: {detail}"

    # ---- the run ---------------------------------------------------------------------

    def run(self) -> None:
        self.pending: list[tuple[float, tuple[Any, ...]]] = [(step[1] * SCALE, step) for step in self.scenario.steps]
        # Start every app the steps name before the clock starts: an app start
        # takes about a second, a real cost with no simulated counterpart.
        names = {f"c{i}" for i in range(1, self.scenario.clients + 1)}
        for step in self.scenario.steps:
            for arg in step[3:]:
                if isinstance(arg, str) and (arg in names or arg.startswith("$holder:")):
                    self.client(arg.removeprefix("$holder:"))
        t0 = time.monotonic()
        while self.pending:
            self.pending.sort(key=lambda x: x[0])
            at, step = self.pending.pop(0)
            wait = t0 + at - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            late = time.monotonic() - (t0 + at)
            if step[0] == "resume":
                self.resume(step[1])
                self.log.append(f"{at:6.2f}s (+{late:.2f}) SIGCONT {step[1]}")
                continue
            args = [self.resolve(a) for a in step[3:]]
            self.log.append(f"{at:6.2f}s (+{late:.2f}) {step[0]} {step[2]} {args}")
            if step[0] == "expect":
                self.expect(step[2], args, step)
            else:
                self.do(step[2], args, at)

    def close(self) -> None:
        for name in list(self.stopped):
            self.resume(name)


@pytest.mark.parametrize("name", REPLAYED)
def test_scenario_replayed_through_real_actors(name: str, tmp_path: Path, licpool_pool: Any, client_apps: Any) -> None:
    path = tmp_path / f"{name}.json"
    path.write_text(dump_json(SCENARIOS[name]))
    scenario = load_json(path)

    simulated = run_scenario(scenario)
    assert simulated.violation is None, simulated.violation.report()

    pool = licpool_pool(servers=scenario.servers, timing=SCALED_TIMING)
    pool.wait_formed()
    pool.add_license(pool.license(scenario.seats, serial="L1", distribution=scenario.distribution))
    replay = Replay(scenario, pool, lambda client_id: client_apps(pool.config, client_id))
    try:
        replay.run()
    finally:
        replay.close()
        print(f"\nreplay of {name} (scale {SCALE}; +lateness of each step):\n" + "\n".join(replay.log))
