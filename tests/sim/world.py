"""The simulated world: hosts, clocks, storage, network and the event scheduler.

One ``random.Random(seed)`` drives everything: it seeds one sub-stream each for
the network, the fault schedule, the workload, lease nonces, storage tears and
clocks, so a fault schedule stays the same when a mutant changes the traffic.
Events run in (real time, sequence number) order; every host sees only its
own clock.  The driver follows ``actors.core.effects``: persist, sync, *then*
send (``durable_before_send=False`` is the mutant that sends first and syncs a
few milliseconds later, so a crash can land in between), then schedule the
wake-up.  Invariants are checked after every event (``checks``).

``World(config).run()`` returns a ``RunResult``; a violation raises
``SimFailure`` with the seed, the rule and the last lines of the trace.
"""

from __future__ import annotations

import heapq
import math
import random
import traceback
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from actors.core.effects import ClientRef, Ready
from actors.core.records import LeaseRecord
from actors.core.session import ClientSessionCore
from actors.core.timing import Timing
from actors.persist import CrashingMemoryStorage, PersistError
from tests import factories
from tests.sim import steps as step_runner
from tests.sim.checks import Checker, InvariantViolation
from tests.sim.drivers import AdminDriver, AdminRequest, ClientDriver
from tests.sim.history import History, Topology
from tests.sim.hosts import ADMIN, FEATURE, ClientHost, Clock, ServerHost
from tests.sim.liveness import Bounds
from tests.sim.net import NetParams, Network
from tests.sim.scenario import Scenario, Step
from tests.sim.shell import ShellParams, SimStorage, fresh_rng, late_rng, transmit_bound
from tests.sim.shell_world import ShellWorld
from tests.sim.trace import Trace, short
from tests.sim.workload import App

__all__ = ["SimConfig", "World", "RunResult", "Violation", "SimFailure", "ADMIN", "FEATURE"]


_NEVER_FROM_A_CORRECT_PEER = frozenset({"refused_sync", "refused_snapshot"})
"""Events of a core that refused what a correct leader never sends."""


@dataclass
class SimConfig:
    seed: int = 0
    servers: int = 3
    clients: int = 6
    seats: int = 4
    timing: Timing = field(default_factory=Timing)
    fault_start: float = 8.0
    fault_end: float = 40.0
    quiet_len: float = 55.0
    workload: bool = True
    reconnect_rate: float = 0.02
    queue_rate: float = 0.0
    """Chance that a workload checkout is queued (``queue=True``); 0 keeps every existing schedule as it was."""
    """Chance per app timer, while holding, that the app restarts and resumes by id."""
    faults: bool = True
    durable_before_send: bool = True
    compact_every: int = 150
    max_batch: int = 64
    torn_writes: bool = True
    net: NetParams = field(default_factory=lambda: NetParams(drop_rate=0.005, dup_rate=0.002))
    checks: bool = True
    trace_keep: int = 200
    max_events: int = 3_000_000
    shell: bool = False
    """Model the Thespian shell (tests/sim/shell.py): service time, transport
    drops, stale address books, the session actor and LicenseClient, crashes
    inside a step.  Off: the classic model (instant servers, omniscient apps)."""
    big_apps: int = 0
    """Apps that take ``big_hold`` leases in a row and hold them long (shell model)."""
    big_hold: int = 8
    max_seats: int = 1
    """Above 1: the workload's checkouts ask for 1..max_seats seats in one lease."""
    linger: float = 0.0
    """Above 0: the workload's checkouts ask their seats to linger that long after the release."""
    seq_base: bool = True
    """A restarted app's session numbers its updates from the wall clock (False: the mutant that drops it)."""
    local_hop: tuple[float, float] | None = None
    """App <-> session delay in the shell model (None: ``ShellParams.local_hop``)."""
    late_direct: tuple[float, float, float] | None = None
    """Late direct asks in the shell model (None: ``ShellParams.late_direct``)."""
    service_scale: float = 1.0
    """The shell model's CPU cost of a server step times this (a loaded host; the fsync is unscaled)."""
    checkout_timeout: float | None = None
    """``LicenseClient.checkout(timeout=...)`` in the shell model (None: the app default)."""
    skip_rules: tuple[str, ...] = ()
    """REGISTRY and/or ABANDON left unchecked, to see what a known finding leads to downstream."""

    @property
    def end(self) -> float:
        return self.fault_end + self.quiet_len


@dataclass
class Violation:
    seed: int
    rule: str
    detail: str
    time: float
    trace: str

    shell: bool = False

    def report(self) -> str:
        flag = " --shell" if self.shell else ""
        return (
            f"seed {self.seed}: {self.rule} at t={self.time:.6f}: {self.detail}\n"
            f"replay: python -m tests.sim.run --seed {self.seed}{flag} --trace\n"
            f"--- last trace lines ---\n{self.trace}"
        )


class SimFailure(AssertionError):
    def __init__(self, violation: Violation) -> None:
        super().__init__(violation.report())
        self.violation = violation


@dataclass
class RunResult:
    seed: int
    events: int
    sim_time: float
    trace_hash: str
    stats: Counter[str]
    violation: Violation | None = None


class World(ShellWorld, ClientDriver, AdminDriver):
    def __init__(
        self,
        config: SimConfig,
        scenario: Scenario | None = None,
        node_factory: Any = None,
        echo: bool = False,
        session_factory: Callable[..., Any] = ClientSessionCore,
    ) -> None:
        if node_factory is None:
            from actors.core.node import ServerNode

            node_factory = ServerNode
        self.config, self.scenario, self.node_factory = config, scenario, node_factory
        self.session_factory = session_factory
        self.timing = config.timing
        master = random.Random(config.seed)
        sub = {
            name: random.Random(master.getrandbits(64))
            for name in ("net", "faults", "apps", "nonce", "disk", "clock", "admin", "sync")
        }
        self.rng = sub
        self.crash_armed: dict[str, int] = {}
        """Armed scenario crash points -> the highest epoch when armed."""
        self.won_commit: dict[str, tuple[int, int]] = {}
        """server -> (epoch, commit index) when it last won an election."""
        self.dead_ids: dict[str, tuple[str, float, int | None]] = {}
        """Lease id -> (server, time, change number) of its durable release: never to be granted again.
        The change number is the release's in that server's lease reports (``release_unknowable``)."""
        # A copy: the quiet tail and the loss steps change the parameters, and a
        # config (a mutant's overrides) is shared by every seed of a search.
        self.net = Network(sub["net"], replace(config.net))
        self.base_loss = config.net.drop_rate
        self.trace = Trace(config.trace_keep, echo)
        self.queue: list[tuple[float, int, str, tuple[Any, ...]]] = []
        self.seq = 0
        self.now = 0.0
        self.events = 0
        self.quiet_at: float | None = None
        self.queue_grants: list[tuple[float, str]] = []
        """(time, client) of every grant of a queued checkout, for ``queue_order``."""
        self.forced: set[str] = set()
        self.idled: set[str] = set()
        """Leases a scenario's app marked idle (``idle C``): an idle_timeout may reclaim them."""
        names = tuple(f"s{i + 1}" for i in range(config.servers))
        self.history = History(names)
        self.bounds = Bounds(self.timing, config.servers, self.net.max_delay)
        rho = self.timing.clock_drift
        clock_rng = sub["clock"]

        def clock() -> Clock:
            return Clock(clock_rng.uniform(0, 1000), clock_rng.uniform(1 - rho, 1 + rho))

        self.shell: ShellParams | None = None
        self.shell_rng = fresh_rng(config.seed)
        storage_class = CrashingMemoryStorage
        if config.shell:
            self.shell = ShellParams()
            if config.local_hop is not None:
                self.shell.local_hop = config.local_hop
            if config.late_direct is not None:
                self.shell.late_direct = config.late_direct
            if config.service_scale != 1.0:
                self.shell.scale_cpu(config.service_scale)
            if self.shell_rng.random() < self.shell.slow_disk_rate:
                self.shell.fsync = self.shell.slow_fsync
            self.bound = transmit_bound(self.timing.failure_timeout)
            self.app_bound = self.timing.app_transmit
            self.late_rng = late_rng(config.seed)
            storage_class = SimStorage
        self.servers: dict[str, ServerHost] = {
            n: ServerHost(
                n,
                clock(),
                storage_class(
                    sub["disk"].getrandbits(64), torn_writes=config.torn_writes, zero_fill=config.torn_writes
                ),
                config.compact_every,
            )
            for n in names
        }
        self.clients: dict[str, ClientHost] = {}
        self.apps: dict[str, App] = {}
        self.owner: dict[str, str] = {ADMIN: ADMIN}
        """session id -> endpoint name."""
        n_clients = scenario.clients if scenario else config.clients
        for i in range(n_clients):
            name = f"c{i + 1}"
            core = session_factory(name, f"{name}/1", names, self.timing)
            self.clients[name] = ClientHost(name, f"{name}/1", clock(), core)
            self.owner[f"{name}/1"] = name
            app_rng = random.Random(sub["apps"].getrandbits(64))
            timeout = max(10.0, self.bounds.l1_bound + 2.0)
            self.apps[name] = App(
                app_rng,
                [FEATURE],
                max_hold=1 + (i % 3 == 2),
                timeout=timeout,
                start_at=app_rng.uniform(1.0, 6.0),
                reconnect_rate=config.reconnect_rate,
                queue_rate=config.queue_rate,
                max_seats=config.max_seats,
                linger=config.linger,
                enabled=config.workload if scenario is None else scenario.workload,
            )
            if self.shell is not None:
                app = self.apps[name]
                if i < config.big_apps:
                    # Apps holding 8+ leases: a burst of checkouts, held long.
                    app.max_hold, app.hold, app.burst = config.big_hold, (20.0, 60.0), (0.02, 0.3)
                # The app waits in LicenseClient.checkout, which gives up by itself.
                app.timeout = math.inf
                self._new_session(self.clients[name], config.checkout_timeout or timeout)
        self.admin_pending: dict[str, AdminRequest] = {}
        self.admin_no = 0
        self.checker = Checker(self) if config.checks else None
        self.end = scenario.duration if scenario else config.end
        self._touched_clients: set[str] = set()

    # ---- scheduling ------------------------------------------------------------------

    def push(self, at: float, kind: str, *payload: Any) -> None:
        self.seq += 1
        heapq.heappush(self.queue, (at, self.seq, kind, payload))

    def log(self, node: str, text: str) -> None:
        self.trace.add(self.now, node, text)

    def topology_changed(self) -> None:
        self.history.snapshot(
            Topology(
                self.now,
                frozenset(self.net.blocked),
                frozenset(n for n, h in self.servers.items() if not h.up),
                frozenset(n for n, h in self.servers.items() if h.stalled),
                self.net.params.drop_rate,
                frozenset(k for k, v in self.net.lossy.items() if v >= 0.1),
            )
        )

    # ---- running ----------------------------------------------------------------------

    def setup(self) -> None:
        for host in self.servers.values():
            self.push(self.rng["clock"].uniform(0.0, 0.05), "boot", host.name)
        seats, dist = (self.scenario.seats, self.scenario.distribution) if self.scenario else (self.config.seats, None)
        self.push(0.1, "step", ("at", 0.1, "license", FEATURE[0], FEATURE[1], seats, "L1", dist))
        steps: list[Step] = []
        if self.scenario is not None:
            steps = list(self.scenario.steps)
        elif self.config.faults:
            from tests.sim.faults import generate

            steps = generate(self)
        else:
            steps = [("at", self.config.fault_end, "quiet")]
        for step in steps:
            self.push(float(step[1]), "step", step)
        for name, client in self.clients.items():
            self._schedule_app(name)
            client.wake_gen += 1
            self.push(self.rng["clock"].uniform(0.2, 1.0), "wake", name, client.wake_gen)
            if client.actor is not None:
                client.actor.start()
        self.push(self.end, "end")
        self.topology_changed()

    def run(self, raise_on_violation: bool = True) -> RunResult:
        self.setup()
        violation = None
        try:
            while self.queue:
                at, _, kind, payload = heapq.heappop(self.queue)
                self.now = at
                if kind == "end":
                    break
                getattr(self, f"_on_{kind}")(*payload)
                self.events += 1
                if self.checker is not None:
                    if self._touched_clients:
                        self.checker.clients_changed(self._touched_clients)
                        self._touched_clients = set()
                    self.checker.after_event()
                if self.events > self.config.max_events:
                    raise InvariantViolation("BUDGET", f"more than {self.config.max_events} events")
            if self.checker is not None:
                self.checker.finish()
        except InvariantViolation as err:
            violation = Violation(
                self.config.seed,
                err.rule,
                f"{err.detail}\n{self.describe()}",
                self.now,
                self.trace.last(),
                self.config.shell,
            )
        except Exception as err:  # a core raised: that is a finding too
            tb = "".join(traceback.format_exception(err)[-6:])
            violation = Violation(
                self.config.seed,
                "CRASH",
                f"{type(err).__name__}: {err}\n{tb}",
                self.now,
                self.trace.last(),
                self.config.shell,
            )
        stats = self.checker.stats if self.checker else Counter()
        result = RunResult(self.config.seed, self.events, self.now, self.trace.digest, stats, violation)
        if violation is not None and raise_on_violation:
            raise SimFailure(violation)
        return result

    # ---- servers ------------------------------------------------------------------------

    def settings(self, name: str) -> Any:
        from actors.core.node_settings import NodeSettings

        nonce_rng = self.rng["nonce"]
        return NodeSettings(
            name=name,
            servers=tuple(self.servers),
            timing=self.timing,
            verify=factories.verify,
            lease_key=factories.LEASE_KEY,
            nonce=lambda: nonce_rng.randbytes(8),
            today=lambda: "2030-01-01",
            compact_every=self.config.compact_every,
            max_batch=self.config.max_batch,
        )

    def _on_boot(self, name: str) -> None:
        if self.shell is not None:
            self.shell_boot(name)
            return
        host = self.servers[name]
        if host.up:
            return
        store = host.open_store()
        try:
            durable = store.load()
        except PersistError as err:
            raise InvariantViolation("CRASH", f"{name} cannot load its store: {err}") from err
        node, ready = self.node_factory.boot(self.settings(name), durable, host.clock.local(self.now))
        host.node, host.up_since, host.down_since = node, self.now, None
        self.topology_changed()
        records, snapshot = (len(durable[1]), durable[0] is not None) if durable else (0, False)
        self.log(name, f"BOOT gen={host.gen} records={records} snapshot={snapshot}")
        if self.checker is not None:
            self.checker.server_restarted(host)
        self.server_out(host, ready)

    def server_input(self, host: ServerHost, src: str, msg: Any, session: str) -> None:
        now = host.clock.local(self.now)
        if src in self.servers:
            ready = host.node.receive(src, msg, now)
        else:
            ready = host.node.from_client(ClientRef(session), msg, now)
        self.server_out(host, ready)

    def server_out(self, host: ServerHost, ready: Ready) -> None:
        for ev in ready.events:
            self.log(host.name, f"* {ev.kind} {short(dict(ev.fields))}")
            if ev.kind in _NEVER_FROM_A_CORRECT_PEER:
                # The core refuses these safely (a forged peer message), but the
                # simulator has no forger: here one is a bug of a correct pool.
                raise InvariantViolation("S4", f"{host.name}: {ev.kind} {dict(ev.fields)}")
        store = host.store
        assert store is not None
        if self._crash_inside_step(host, ready):
            return
        store.append(ready.persist)
        for ev in ready.events:
            if ev.kind == "leader":
                self.won_commit[host.name] = (host.node.epoch, host.node.raft.commit_index)
        if self.checker is not None:
            self.checker.granted_by(host, ready.events)
            self.checker.expired_by(host, ready.events)
        if self.config.durable_before_send:
            if ready.persist:
                store.sync()
            if self._crash_now(host, ready, before_send=True):
                return
            # A release the server has made durable kills its lease id for ever (S3).
            self.record_releases(host, ready.events)
            self.send_all(host.name, ready)
        else:
            self.send_all(host.name, ready)
            if ready.persist:
                self.push(self.now + self.rng["sync"].uniform(0.0005, 0.03), "sync", host.name, host.gen)
        store.maybe_compact(host.node.snapshot)
        self.schedule_wake(host, ready.wake_at)
        if self.checker is not None:
            self.checker.server_changed(host)
        self._crash_now(host, ready, before_send=False)

    def _crash_now(self, host: ServerHost, ready: Ready, before_send: bool) -> bool:
        """Scenario crash points (``crash_on``): ``leader`` kills the next new
        leader after it persisted its first entry, before it sent anything;
        ``commit`` kills the next new leader right after its commit index first
        moves (its messages of that step are out)."""
        armed = self.crash_armed
        if not armed or host.node is None:
            return False
        node = host.node
        fire = None
        if before_send and "leader" in armed and any(ev.kind == "leader" for ev in ready.events):
            fire = "leader"
        elif not before_send and "commit" in armed and node.role == "leader" and node.epoch > armed["commit"]:
            epoch, commit = self.won_commit.get(host.name, (-1, 0))
            if epoch == node.epoch and node.raft.commit_index > commit:
                fire = "commit"
        if fire is None:
            return False
        del armed[fire]
        self.log(host.name, f"CRASH at its first {fire}")
        host.crash(self.now)
        self.history.open("down", {host.name}, self.now)
        self.topology_changed()
        return True

    def _crash_inside_step(self, host: ServerHost, ready: Ready) -> bool:
        """Scenario crash point ``adopt``: the next server to adopt a lease that
        moved to it dies inside that step.  The step's records reach the page
        cache, then a power cut keeps a random prefix of their bytes (torn
        writes): a store that wrote the records one by one could be left with
        the commit record and without the adopt after it."""
        if "adopt" not in self.crash_armed or not any(
            isinstance(x, LeaseRecord) and x.op[0] == "adopt" for x in ready.persist
        ):
            return False
        del self.crash_armed["adopt"]
        assert host.store is not None
        host.store.append(ready.persist)
        self.log(host.name, "CRASH inside a step that adopts a lease")
        host.crash(self.now)
        self.history.open("down", {host.name}, self.now)
        self.topology_changed()
        return True

    def _on_sync(self, name: str, gen: int) -> None:
        host = self.servers[name]
        if host.gen == gen and host.store is not None:
            host.store.sync()

    def send_all(self, src: str, ready: Ready) -> None:
        if self.shell is not None:
            self.shell_send(src, ready)
            return
        for out in ready.send:
            dst = out.to if isinstance(out.to, str) else self.owner.get(out.to.session_id)
            if dst is None:
                self.log(src, f"-> unknown {out.to} {short(out.msg)}")
                continue
            # Client endpoints are sessions: a restarted app's new session never
            # sees its old session's mail, and servers see who really sent.
            session = (
                out.to.session_id
                if isinstance(out.to, ClientRef)
                else (self.clients[src].session_id if src in self.clients else src)
            )
            delays = self.net.fate(src, dst)
            if not delays:
                self.log(src, f"-> {dst} DROPPED {type(out.msg).__name__}")
            for delay in delays:
                self.push(self.now + delay, "deliver", src, dst, out.msg, session)

    def schedule_wake(self, host: ServerHost | ClientHost, wake_local: float | None, force: bool = False) -> None:
        if wake_local is None:
            return
        real = max(host.clock.real(wake_local) + 1e-9, self.now)
        if not force and host.wake_real is not None and self.now <= host.wake_real <= real:
            return  # an earlier wake-up is already due; it will ask again
        host.wake_gen += 1
        host.wake_real = real
        self.push(real, "wake", host.name, host.wake_gen)

    def _on_wake(self, name: str, gen: int) -> None:
        if name in self.servers:
            host = self.servers[name]
            if gen != host.wake_gen or not host.up:
                return
            host.wake_real = None
            if self.shell is not None:
                self.shell_server_wake(host)
            elif not host.stalled:
                self.server_out(host, host.node.tick(host.clock.local(self.now)))
        else:
            client = self.clients[name]
            if gen != client.wake_gen or not client.alive:
                return
            client.wake_real = None
            if self.shell is not None:
                self.shell_client_wake(client)
                return
            self.client_out(client, client.core.tick(client.clock.local(self.now)))

    def _on_resume(self, name: str, gen: int) -> None:
        host = self.servers[name]
        if host.gen != gen or not host.stalled:
            return
        host.stalled_until = None
        self.history.close("stall", self.now, name)
        self.topology_changed()
        if self.shell is not None:
            self.log(name, f"RESUME inbox={len(host.inbox)}")
            self.shell_resume(host)
            return
        self.log(name, f"RESUME backlog={len(host.backlog)}")
        backlog, host.backlog = host.backlog, []
        for src, msg, session in backlog:
            if host.up:
                self.server_input(host, src, msg, session)
        if host.up:
            host.wake_real = None
            self.server_out(host, host.node.tick(host.clock.local(self.now)))

    # ---- delivery -------------------------------------------------------------------------

    def _on_deliver(self, src: str, dst: str, msg: Any, session: str) -> None:
        if dst in self.servers:
            host = self.servers[dst]
            if not host.up:
                return
            if host.stalled:
                host.backlog.append((src, msg, session))
                return
            self.log(dst, f"<- {src} {short(msg)}")
            self.server_input(host, src, msg, session)
        elif dst == ADMIN:
            self.log(dst, f"<- {src} {short(msg)}")
            rid = getattr(msg, "request_id", None)
            # Only success ends a request: errors ("no leader yet; retry") are retried until it gives up.
            if rid in self.admin_pending and getattr(msg, "ok", False):
                self.admin_finished(rid)
        else:
            client = self.clients[dst]
            if not client.alive or session != client.session_id:
                return
            self.log(dst, f"<- {src} {short(msg)}")
            self.client_out(client, client.core.receive(src, msg, client.clock.local(self.now)))

    # ---- steps ----------------------------------------------------------------------------------

    def _on_step(self, step: Step) -> None:
        step_runner.run_step(self, step)

    def leader(self) -> str | None:
        best: tuple[int, str] | None = None
        for name, host in self.servers.items():
            if host.up and host.node.role == "leader" and (best is None or host.node.epoch > best[0]):
                best = (host.node.epoch, name)
        return best[1] if best else None
