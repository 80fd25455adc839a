"""Prove the fsyncs through the server shell (issue 5).

SIGKILL keeps the page cache, so a real-process crash cannot show that an
fsync is missing.  Here three real ``LicenseServer`` actor objects (the shell:
``actors/shell/server_actor.py``, ``actors/shell/persistence.py``) run in this process on
``CrashingMemoryStorage``, which loses every unsynced write at a crash.
Thespian is replaced by a small in-memory network and a fake clock: ``send``,
``createActor`` and ``wakeupAfter`` are the only actor calls the shell makes.

For a checkout, a borrow from the free pool, a transfer (a borrow that cuts a
live server's allocation: intent, consent, completion) and a vote, every
server is crashed at every persist point of the operation in turn
(``fail_after(k)`` for k = 0, 1, ... until a run passes the operation without
reaching point k).  The crashed server restarts from what survived, and
nothing that it had confirmed may be missing:

* a ``CheckoutGranted`` it sent: the lease is in its restored lease table;
* a ``VoteReply`` that granted a vote: the restored term is later, or the same
  with the same ``voted_for``; any message of epoch T: restored term >= T;
* a ``TransferConfirm``: the restored consent says the same, or the transfer's
  outcome is committed in what it restored;
* a ``SyncReply`` acknowledging index I (same term): its log reaches I;
  a leader's sync carrying entries up to I (same term): its log reaches I;
* anything at all: its applied index is at least what it was when it sent.

After the pool settles, every lease a client saw granted is held by a server,
and every server's tables add up (allocations + free + in flight = total).
"""

from __future__ import annotations

import heapq
import itertools
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from loguru import logger
from thespian.actors import ActorExitRequest, WakeupMessage

import actors.shell.server_actor as server_module
from actors.core import adminauth
from actors.core.codes import load_private_key, sign_license
from actors.persist import CrashingMemoryStorage, SimulatedCrash
from actors.protocol import admin as admin_msgs
from actors.protocol import client as client_msgs
from actors.protocol import pool as pool_msgs
from actors.protocol import raft as raft_msgs
from actors.shell import peerauth
from actors.shell.config import load_config, write_default_pool
from actors.shell.persistence import NodeStore
from actors.shell.server_actor import LicenseServer

NAMES = ("s1", "s2", "s3")
LATENCY = 0.002
TIMING = {
    "heartbeat_interval": 0.1,
    "failure_timeout": 0.4,
    "leader_lease": 0.6,
    "fence_timeout": 0.6,
    "lease_ttl": 30.0,
}


class FakeTime:
    """Stands in for the ``time`` module inside ``actors.shell.server_actor``."""

    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now

    def time(self) -> float:
        return 1.7e9 + self.now


@dataclass
class Sent:
    at: float
    to: Any
    msg: Any
    applied: int
    """The sender's applied index when it sent (its persist step had returned)."""


class ShellUnderTest(LicenseServer):
    """The real LicenseServer with Thespian's three calls routed to ``Net``."""

    def __init__(self, net: Net, name: str, storage: CrashingMemoryStorage) -> None:
        super().__init__()
        self.net = net
        self.host = name
        self.storage = storage

    @property
    def myAddress(self) -> Any:
        return f"srv:{self.host}"

    def send(self, targetAddr: Any, msg: Any) -> None:
        self.net.post(self, targetAddr, msg)

    def createActor(self, actorClass: Any, *args: Any, **kwargs: Any) -> Any:
        return f"child:{actorClass.__name__}:{self.host}"

    def wakeupAfter(self, timePeriod: timedelta, payload: Any = None) -> None:
        # At least 1 ms: a real clock moves on while a handler runs; a fake one
        # would let a wake-up due "now" spin for ever.
        delay = max(timePeriod.total_seconds(), 0.001)
        self.net.at(self.net.clock.now + delay, ("wake", self.host, self, payload))

    def _open_store(self) -> NodeStore:
        # Small threshold, so that compaction points are among those crashed at.
        return NodeStore.over(self.storage, compact_every_records=25)


class OlderShell(ShellUnderTest):
    """A server of a release before sealed peer envelopes: it never says it reads
    them, and one that reached it would fail its MAC check there (its MAC is
    over the plain body, and the body is ``None``), so it is dropped here."""

    def __init__(self, net: Net, name: str, storage: CrashingMemoryStorage) -> None:
        super().__init__(net, name, storage)
        self.sealing = False
        self.sealed_dropped = 0

    def receiveMsg_PeerEnvelope(self, env: admin_msgs.PeerEnvelope, sender: Any) -> None:
        if env.sealed:
            self.sealed_dropped += 1
            return
        super().receiveMsg_PeerEnvelope(env, sender)


@dataclass
class Net:
    config: Path
    clock: FakeTime
    rng: random.Random
    servers: dict[str, ShellUnderTest | None] = field(default_factory=dict)
    storages: dict[str, CrashingMemoryStorage] = field(default_factory=dict)
    queue: list[tuple[float, int, tuple[Any, ...]]] = field(default_factory=list)
    seq: Iterator[int] = field(default_factory=itertools.count)
    sent: dict[str, list[Sent]] = field(default_factory=dict)
    """Everything each server's current process sent (cleared at its restart)."""
    inbox: dict[str, list[Any]] = field(default_factory=dict)
    """client address -> messages it received."""
    crashes: list[tuple[str, float]] = field(default_factory=list)
    kills: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    older: frozenset[str] = frozenset()
    """Servers that run as a release before sealed peer envelopes (``OlderShell``)."""

    def at(self, when: float, event: tuple[Any, ...]) -> None:
        heapq.heappush(self.queue, (when, next(self.seq), event))

    def post(self, shell: ShellUnderTest, to: Any, msg: Any) -> None:
        if self.servers.get(shell.host) is not shell:
            return  # a dead process sends nothing
        if to == shell.myAddress:  # to itself (the group commit's flush): not a send anyone sees
            self.at(self.clock.now + LATENCY, ("msg", to, msg, shell.myAddress))
            return
        applied = shell.node.applied if shell.node is not None else -1
        self.sent.setdefault(shell.host, []).append(Sent(self.clock.now, to, msg, applied))
        if isinstance(to, str) and to.startswith("child:LeaderRole:") and isinstance(msg, admin_msgs.FanOut):
            for item in msg.sends:
                self.at(self.clock.now + LATENCY, ("msg", item.address, item.message, shell.myAddress))
            return
        if isinstance(to, str) and to.startswith("child:"):
            return  # the Resolver and LeaderRole's exit: nothing to model
        self.at(self.clock.now + LATENCY, ("msg", to, msg, shell.myAddress))

    def client_send(self, client: str, server: str, msg: Any) -> None:
        self.at(self.clock.now + LATENCY, ("msg", f"srv:{server}", msg, client))

    # ---- processes --------------------------------------------------------------------

    def boot(self, name: str) -> None:
        shell = (OlderShell if name in self.older else ShellUnderTest)(self, name, self.storages[name])
        self.servers[name] = shell
        self.sent[name] = []
        self._deliver(
            shell, admin_msgs.StartServer(config_path=str(self.config), name=name, launcher_pid=0), "launcher"
        )
        if self.servers.get(name) is not shell:
            return
        for peer in NAMES:
            if peer != name:
                self._deliver(
                    shell, admin_msgs.PeerResolved(name=peer, address=f"srv:{peer}"), f"child:Resolver:{name}"
                )

    def crashed(self, name: str) -> None:
        self.servers[name] = None
        self.crashes.append((name, self.clock.now))
        self.at(self.clock.now + 0.3, ("boot", name))

    def kill(self, name: str) -> None:
        """A process crash outside any persist point (page cache lost too)."""
        self.storages[name].crash()
        self.kills.append(name)
        self.crashed(name)

    def _deliver(self, shell: ShellUnderTest, msg: Any, sender: Any) -> None:
        try:
            shell.receiveMessage(msg, sender)
        except SimulatedCrash:
            self.crashed(shell.host)

    # ---- running ----------------------------------------------------------------------

    def run_until(self, until: float) -> None:
        while self.queue and self.queue[0][0] <= until:
            when, _, event = heapq.heappop(self.queue)
            self.clock.now = max(self.clock.now, when)
            self.step(event)
        self.clock.now = max(self.clock.now, until)

    def step(self, event: tuple[Any, ...]) -> None:
        kind = event[0]
        if kind == "boot":
            name = event[1]
            before = self.sent.get(name, [])
            self.boot(name)
            shell = self.servers[name]
            if shell is not None and shell.node is not None:
                self.problems += confirmed_but_lost(name, shell, before)
            return
        if kind == "wake":
            _, name, shell, payload = event
            assert isinstance(shell, ShellUnderTest)  # the process that asked for the wake-up
            if self.servers.get(name) is shell:
                self._deliver(shell, WakeupMessage(timedelta(0), payload), shell.myAddress)
            return
        _, to, msg, sender = event
        if isinstance(to, str) and to.startswith("srv:"):
            shell = self.servers.get(to[4:])
            if shell is not None and not isinstance(msg, ActorExitRequest):
                self._deliver(shell, msg, sender)
        elif isinstance(to, str):
            self.inbox.setdefault(to, []).append(msg)

    # ---- views -------------------------------------------------------------------------

    def live(self) -> list[ShellUnderTest]:
        return [s for s in self.servers.values() if s is not None and s.node is not None]

    def leader(self) -> str | None:
        leaders = [s.host for s in self.live() if s.node is not None and s.node.raft.is_leader]
        return leaders[0] if len(leaders) == 1 else None

    def granted(self, client: str) -> list[client_msgs.CheckoutGranted]:
        return [m for m in self.inbox.get(client, []) if isinstance(m, client_msgs.CheckoutGranted)]


def confirmed_but_lost(name: str, shell: ShellUnderTest, sent: list[Sent]) -> list[str]:
    """What the previous process of ``name`` sent that its restored state forgot."""
    node = shell.node
    assert node is not None
    raft, leases, pool = node.raft, node.member.leases.leases, node.pool
    lost: list[str] = []
    for out in sent:
        msg = peerauth.opened(out.msg) if isinstance(out.msg, admin_msgs.PeerEnvelope) else out.msg
        what = f"{name} sent {type(msg).__name__} at {out.at:.3f}"
        if out.applied > node.applied:
            lost.append(f"{what} with applied {out.applied}, restored applied {node.applied}")
        epoch = getattr(msg, "epoch", None)
        pre_vote = getattr(msg, "pre_vote", False)  # asks about term + 1 without adopting it
        if isinstance(epoch, int) and epoch > raft.term and not pre_vote:
            lost.append(f"{what} in epoch {epoch}, restored term {raft.term}")
        if isinstance(msg, raft_msgs.VoteReply) and msg.granted and not msg.pre_vote and raft.term == msg.epoch:
            if raft.voted_for != out.to.split(":")[-1] and raft.voted_for is not None:
                lost.append(f"{what}: vote for {out.to}, restored voted_for {raft.voted_for}")
            if raft.voted_for is None:
                lost.append(f"{what}: vote for {out.to} forgotten")
        if isinstance(msg, client_msgs.CheckoutGranted):
            holder = pool.registry.holder(msg.lease_id)
            if msg.lease_id not in leases and holder in (None, name) and not pool.registry.is_dead(msg.lease_id):
                lost.append(f"{what}: lease {msg.lease_id} not restored")
        consent = node.member.consents.get(getattr(msg, "transfer_id", ""))
        if isinstance(msg, pool_msgs.TransferConfirm) and msg.transfer_id in pool.transfers and consent != msg.given:
            lost.append(f"{what}: consent {msg.given} to {msg.transfer_id}, restored {consent}")
        same_term = getattr(msg, "epoch", None) == raft.term
        if isinstance(msg, raft_msgs.SyncReply) and msg.success and same_term and raft.log.last_index < msg.match_index:
            lost.append(f"{what}: acknowledged index {msg.match_index}, restored log ends at {raft.log.last_index}")
        if (
            isinstance(msg, raft_msgs.DistributionCriteriaSync)
            and msg.entries
            and same_term
            and raft.log.last_index < msg.entries[-1].index
        ):
            lost.append(
                f"{what}: synced entries to {msg.entries[-1].index}, restored log ends at {raft.log.last_index}"
            )
    return lost


# ---- the pool and the operations -------------------------------------------------------------


@pytest.fixture(scope="module")
def pool_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Any]:
    root = tmp_path_factory.mktemp("shellpool")
    config = write_default_pool(root)
    lines = []
    for line in config.read_text().splitlines():
        key = line.split("=")[0].strip()
        lines.append(f"{key} = {TIMING[key]}" if key in TIMING else line)
    text = "\n".join(lines).split("[[server]]")[0]
    for index, name in enumerate(NAMES, start=1):
        text += f'[[server]]\nname = "{name}"\nhost = "127.0.0.1"\nport = {47100 + index}\n\n'
    config.write_text(text)
    return config, load_private_key((root / "vendor.key").read_bytes())


@pytest.fixture(autouse=True)
def fake_time(monkeypatch: pytest.MonkeyPatch) -> FakeTime:
    clock = FakeTime()
    monkeypatch.setattr(server_module, "time", clock)
    monkeypatch.setenv("LICPOOL_FANOUT", "1")
    return clock


def formed_pool(
    config: Path, key: Any, clock: FakeTime, seed: int, count: int, older: frozenset[str] = frozenset()
) -> Net:
    """Three servers, a leader, and ``count`` seats of cad 2.0, all durable."""
    net = Net(config, clock, random.Random(seed), older=older)
    for name in NAMES:
        net.storages[name] = CrashingMemoryStorage(seed * 7 + len(net.storages), torn_writes=True, zero_fill=True)
        net.boot(name)
    net.run_until(clock.now + 3.0)
    leader = net.leader()
    assert leader is not None, "no leader after 3 s"
    code = sign_license(
        key, feature="cad", version="2.0", count=count, expires="2099-12-31", serial="S1", majority=True
    )
    cfg = load_config(config)
    admin_key = adminauth.derive_admin_key(cfg.admin_secret(), cfg.name)
    signed = adminauth.sign(
        admin_key, pool_msgs.AddLicenseCode(sender="test", epoch=0, request_id="r1", code=code), time.time(), "0" * 32
    )
    net.client_send("cli:admin", leader, signed)
    net.run_until(clock.now + 2.0)
    replies = [m for m in net.inbox.get("cli:admin", []) if isinstance(m, pool_msgs.AdminReply)]
    assert replies and replies[-1].ok, replies
    return net


class Client:
    def __init__(self, net: Net, name: str) -> None:
        self.net = net
        self.address = f"cli:{name}"
        self.name = name
        self.ids = itertools.count(1)

    def checkout(self, server: str) -> None:
        self.net.client_send(
            self.address,
            server,
            client_msgs.CheckoutRequest(
                client_id=self.name, session_id=self.name, request_id=next(self.ids), feature="cad", version="2.0"
            ),
        )

    def heartbeat(self, server: str, seq: int) -> None:
        held = tuple(g.lease_id for g in self.net.granted(self.address))
        self.net.client_send(
            self.address,
            server,
            client_msgs.SessionHeartbeat(client_id=self.name, session_id=self.name, seq=seq, lease_ids=held),
        )


def _table_problems(net: Net) -> list[str]:
    problems = []
    for shell in net.live():
        node = shell.node
        assert node is not None
        for t in node.pool.features.values():
            if sum(t.alloc.values()) + t.free + t.in_flight != t.total:
                problems.append(
                    f"{shell.host}: {t.feature} alloc {dict(t.alloc)} + free {t.free} + in flight "
                    f"{t.in_flight} != {t.total}"
                )
    return problems


def settle_and_check(net: Net, clients: list[Client], seconds: float = 4.0) -> None:
    end = net.clock.now + seconds
    seq = 1
    while net.clock.now < end:
        net.run_until(net.clock.now + 0.5)
        seq += 1
        for client in clients:
            for g in net.granted(client.address):
                client.heartbeat(g.server, seq)
    assert not net.problems, net.problems
    assert all(net.servers[n] is not None for n in NAMES)
    held = {lid for s in net.live() if s.node is not None for lid in s.node.member.leases.leases}
    for client in clients:
        for g in net.granted(client.address):
            assert g.lease_id in held, f"granted {g.lease_id} at {g.server} is held by no server after the crash"
    assert not _table_problems(net), _table_problems(net)
    totals = [t.total for s in net.live() if s.node is not None for t in s.node.pool.features.values()]
    assert len(held) <= min(totals)


Operation = Callable[[Net, list[Client]], None]


def op_checkout(net: Net, clients: list[Client]) -> None:
    """One checkout served from the server's own seats (the local fast path)."""
    clients[0].checkout("s2")


def op_borrow(net: Net, clients: list[Client]) -> None:
    """s2 runs out of its seats and borrows from the free pool through the leader."""
    for _ in range(4):
        clients[0].checkout("s2")


def op_transfer(net: Net, clients: list[Client]) -> None:
    """s2 borrows with the free pool empty: a cut of a live server (intent, consent, completion)."""
    for _ in range(6):
        clients[0].checkout("s2")


def op_vote(net: Net, clients: list[Client]) -> None:
    """The leader dies (outside a persist point); the others hold an election."""
    leader = net.leader()
    assert leader is not None
    net.kill(leader)


def op_batch(net: Net, clients: list[Client]) -> None:
    """Three checkouts reach s2 at once: one group commit (three grants, one fsync)."""
    for client in clients:
        client.checkout("s2")


OPERATIONS: dict[str, tuple[Operation, int, float]] = {
    # name: (operation, seats licensed, seconds it may take)
    "checkout": (op_checkout, 9, 1.0),
    "batch": (op_batch, 9, 1.0),
    "borrow": (op_borrow, 12, 2.0),
    "transfer": (op_transfer, 6, 3.0),
    "vote": (op_vote, 9, 3.0),
}


def _run(
    pool_files: tuple[Path, Any], clock: FakeTime, op: str, crash: tuple[str, int] | None, seed: int
) -> tuple[Net, bool]:
    """Run ``op`` with ``crash`` = (server, k): crash it at its k-th persist point
    of the operation.  Returns the net and whether the crash happened."""
    operation, seats, seconds = OPERATIONS[op]
    net = formed_pool(*pool_files, clock, seed, seats)
    clients = [Client(net, "c1")] + ([Client(net, "c2"), Client(net, "c3")] if op == "batch" else [])
    if op in ("borrow", "transfer"):
        # One lease at each server first, so that every server has leases in use.
        for name in NAMES:
            Client(net, f"warm-{name}").checkout(name)
        net.run_until(clock.now + 0.5)
    if crash is not None:
        net.storages[crash[0]].fail_after(crash[1])
    before = {n: s.crashes for n, s in net.storages.items()}
    operation(net, clients)
    net.run_until(clock.now + seconds)
    # Injected crashes only: a kill by the operation is not one of the persist points.
    crashed = crash is not None and net.storages[crash[0]].crashes - before[crash[0]] > net.kills.count(crash[0])
    for storage in net.storages.values():
        storage.fail_after(None)
    warm = [Client(net, f"warm-{n}") for n in NAMES] if op in ("borrow", "transfer") else []
    settle_and_check(net, clients + warm)
    return net, crashed


@pytest.fixture(autouse=True)
def quiet() -> Iterator[None]:
    logger.disable("actors")
    yield
    logger.enable("actors")


#: What each operation must send at least once when nothing crashes, so that
#: the crash runs really cover it.
EXERCISES: dict[str, type] = {
    "checkout": client_msgs.CheckoutGranted,
    "batch": client_msgs.CheckoutGranted,
    "borrow": pool_msgs.BorrowRequest,
    "transfer": pool_msgs.TransferConfirm,
    "vote": raft_msgs.VoteReply,
}


@pytest.mark.parametrize("op", sorted(OPERATIONS))
def test_each_operation_does_what_it_says_without_a_crash(
    pool_files: tuple[Path, Any], fake_time: FakeTime, op: str
) -> None:
    net, _ = _run(pool_files, fake_time, op, None, seed=1)
    bodies = [
        peerauth.opened(x.msg) if isinstance(x.msg, admin_msgs.PeerEnvelope) else x.msg
        for v in net.sent.values()
        for x in v
    ]
    assert any(isinstance(m, EXERCISES[op]) for m in bodies), f"{op} never sent a {EXERCISES[op].__name__}"
    if op == "vote":
        assert any(isinstance(m, raft_msgs.VoteReply) and m.granted and not m.pre_vote for m in bodies)


@pytest.mark.parametrize("op", sorted(OPERATIONS))
def test_crash_at_every_persist_point_loses_nothing_confirmed(
    pool_files: tuple[Path, Any], fake_time: FakeTime, op: str
) -> None:
    """Every server, every persist point of the operation: crash, restart, check."""
    points = {}
    for index, name in enumerate(NAMES):
        k = 0
        while True:
            _, crashed = _run(pool_files, fake_time, op, (name, k), seed=1000 * index + k)
            if not crashed:
                break
            k += 1
            assert k < 500, "the operation never stops persisting"
        points[name] = k
    print(f"\n{op}: crashed at every persist point, per server {points}")
    assert sum(points.values()) > 0


def test_the_check_catches_a_shell_that_sends_before_its_fsync(
    pool_files: tuple[Path, Any], fake_time: FakeTime, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Mutant: ``NodeStore`` appends but never fsyncs.  The same crash runs must fail."""

    def no_sync(self: NodeStore) -> None:
        pass

    monkeypatch.setattr(NodeStore, "sync", no_sync)
    caught = []
    for k in range(12):
        try:
            _run(pool_files, fake_time, "checkout", ("s2", k), seed=k)
        except AssertionError as exc:
            caught.append(str(exc).splitlines()[0])
    assert caught, "a shell without fsync went unnoticed"
    print(f"\nthe mutant was caught in {len(caught)} of 12 runs, e.g. {caught[0][:160]}")


def test_a_burst_of_checkouts_is_one_group_commit(pool_files: tuple[Path, Any], fake_time: FakeTime) -> None:
    """Three checkouts handled back to back at s2: their records are appended as
    each is handled, one fsync follows the last, and only then do the three
    grants leave, together."""
    net = formed_pool(*pool_files, fake_time, 5, 9)
    clients = [Client(net, f"c{i}") for i in range(1, 4)]
    storage = net.storages["s2"]
    log: list[tuple[float, str]] = []
    storage.set_hook(lambda call: log.append((net.clock.now, call.op)))
    start = net.clock.now
    op_batch(net, clients)
    net.run_until(start + 3 * LATENCY)
    storage.set_hook(None)
    grants = [x for x in net.sent["s2"] if isinstance(x.msg, client_msgs.CheckoutGranted) and x.at > start]
    assert len(grants) == 3, grants
    arrived = start + LATENCY
    appends = [at for at, op in log if op == "append" and at == arrived]
    syncs = [at for at, op in log if op == "sync" and arrived <= at]
    assert len(appends) >= 3, log  # each checkout's grant record, as it was handled
    assert len(syncs) == 1, log  # one fsync for the three
    assert all(g.at >= syncs[0] for g in grants)
    assert len({g.at for g in grants}) == 1


def test_the_check_catches_a_group_commit_that_sends_before_its_fsync(
    pool_files: tuple[Path, Any], fake_time: FakeTime, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Mutant: the burst's flush sends its messages first and fsyncs after.
    Crashing s2 at each persist point of the batch must catch it."""

    def send_then_sync(self: LicenseServer) -> None:
        outbox, self.outbox = self.outbox, []
        for to, msg in outbox:
            self.send(to, msg)
        if self.unsynced and self.store is not None:
            self.store.sync()
        self.unsynced, self.held_events, self.batched = False, [], 0

    monkeypatch.setattr(LicenseServer, "_flush", send_then_sync)
    caught = []
    # A torn crash may still make an interrupted fsync durable: several seeds per point.
    for k in range(8):
        for seed in range(4):
            try:
                _run(pool_files, fake_time, "batch", ("s2", k), seed=100 * k + seed)
            except AssertionError as exc:
                caught.append(str(exc).splitlines()[0])
    assert caught, "a group commit that sends before its fsync went unnoticed"
    print(f"\nthe mutant was caught in {len(caught)} of 32 runs, e.g. {caught[0][:160]}")


def _peer_envelopes(net: Net) -> list[tuple[str, str, admin_msgs.PeerEnvelope]]:
    """(from, to, envelope) of every peer envelope sent, through the LeaderRole or not."""
    out = []
    for name, sent in net.sent.items():
        for x in sent:
            pairs = (
                [(i.address, i.message) for i in x.msg.sends]
                if isinstance(x.msg, admin_msgs.FanOut)
                else [(x.to, x.msg)]
            )
            out += [(name, str(to)[4:], m) for to, m in pairs if isinstance(m, admin_msgs.PeerEnvelope)]
    return out


def test_servers_seal_peer_messages_for_each_other_but_not_for_an_older_server(
    pool_files: tuple[Path, Any], fake_time: FakeTime
) -> None:
    """A rolling upgrade: s3 still runs a release before sealed envelopes.  s1 and
    s2 send each other sealed envelopes (after the first plain ones that tell them
    the other reads them), and s3 only plain ones, so the pool works as before:
    a leader, a license, and checkouts at every server, one of them the older."""
    net = formed_pool(*pool_files, fake_time, 7, 9, older=frozenset({"s3"}))
    for i, name in enumerate(NAMES):
        Client(net, f"c{i}").checkout(name)
    net.run_until(fake_time.now + 1.0)
    for i, name in enumerate(NAMES):
        assert [g.server for g in net.granted(f"cli:c{i}")] == [name]
    envelopes = _peer_envelopes(net)
    sealed = {(a, b) for a, b, env in envelopes if env.sealed}
    assert ("s1", "s2") in sealed and ("s2", "s1") in sealed, sealed
    assert not any(b == "s3" for _, b in sealed), sealed
    older = net.servers["s3"]
    assert isinstance(older, OlderShell) and older.sealed_dropped == 0
    assert all(not env.sealed_ok for a, _, env in envelopes if a == "s3")
    # What a sealed envelope carries is the message itself, and only a genuine one opens.
    env = next(env for _, _, env in envelopes if env.sealed)
    assert env.body is None and peerauth.opened(env) is not None


def test_a_slow_step_is_counted_and_logged_with_its_message(
    pool_files: tuple[Path, Any], fake_time: FakeTime, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every received message's step is timed (``licpool_step_seconds``), and one
    longer than failure_timeout / 4 is a warning naming the message, the peer
    message's class too (the 30-session run's 17 s step was found this way)."""
    net = formed_pool(*pool_files, fake_time, 3, 9)
    shell = net.servers["s2"]
    assert shell is not None and shell.metrics is not None
    before = shell.metrics.step.labels(*shell.metrics.base)._sum.get()
    ticks = iter([100.0, 101.5])  # the step: 1.5 s, more than failure_timeout (0.4 s) / 4
    monkeypatch.setattr(server_module, "_perf_counter", lambda: next(ticks, 101.5))
    lines: list[str] = []
    logger.enable("actors")
    sink = logger.add(lines.append, level="WARNING", format="{message}")
    try:
        leader = net.leader()
        assert leader is not None and leader != "s2"
        sync = next(x.msg for x in reversed(net.sent[leader]) if isinstance(x.msg, admin_msgs.FanOut)).sends[0].message
        shell.receiveMessage(sync, f"srv:{leader}")
    finally:
        logger.remove(sink)
        logger.disable("actors")
    assert shell.metrics.step.labels(*shell.metrics.base)._sum.get() - before >= 1.5
    slow = [x for x in lines if "one step took 1.50 s" in x]
    assert slow and "PeerEnvelope (" in slow[0], lines


def test_a_sealed_envelope_with_a_wrong_mac_is_dropped_unread(
    pool_files: tuple[Path, Any], fake_time: FakeTime, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A sealed body is unpickled only once its MAC is right: a forged one is
    refused and named "sealed message", never opened to name its class."""
    import dataclasses

    net = formed_pool(*pool_files, fake_time, 5, 9)
    forged = next(env for _, _, env in _peer_envelopes(net) if env.sealed)
    forged = dataclasses.replace(forged, mac="0" * 64)
    opened: list[Any] = []
    monkeypatch.setattr(peerauth, "opened", lambda env: opened.append(env))
    shell = net.servers["s2"]
    assert shell is not None
    lines: list[str] = []
    logger.enable("actors")
    sink = logger.add(lines.append, level="WARNING", format="{message}")
    try:
        shell.receiveMessage(forged, "srv:elsewhere")
    finally:
        logger.remove(sink)
        logger.disable("actors")
    assert not opened
    assert any("dropped a sealed message claiming to be from" in x for x in lines), lines
