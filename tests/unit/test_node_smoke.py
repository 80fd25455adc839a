"""End-to-end checks of ServerNode on a tiny perfect network (no faults).

The seeded fault simulator in tests/sim is where safety is proven; these tests
pin the happy paths of the node API with a fake clock: election, rejoin,
admin changes, checkout, borrow, fail-over, restart from the journal.
"""

from __future__ import annotations

import heapq
from typing import Any

from actors.core.effects import ClientRef, Ready
from actors.core.node import NodeSettings, ServerNode
from actors.core.raft import LEADER
from actors.core.timing import Timing
from actors.protocol import client as client_msgs
from actors.protocol import pool
from tests.factories import LEASE_KEY, addon_code, license_code, verify

SERVERS = ("s1", "s2", "s3")
DELAY = 0.002


class Net:
    """Delivers every message after DELAY; wakes nodes at their wake_at."""

    def __init__(self, servers: tuple[str, ...] = SERVERS) -> None:
        self.now = 0.0
        self.queue: list[tuple[float, int, str, Any]] = []
        # Plain iterators, not itertools.count: the fuzz tests deepcopy a Net, and
        # copying an itertools object is deprecated (gone in Python 3.14).
        self.seq = iter(range(1 << 62))
        self.nodes: dict[str, ServerNode] = {}
        self.durable: dict[str, list[Any]] = {}
        self.inbox: dict[str, list[Any]] = {}
        self.down: set[str] = set()
        nonces = iter(range(1 << 62))
        self.settings = {
            name: NodeSettings(
                name,
                servers,
                Timing(),
                verify,
                LEASE_KEY,
                nonce=lambda: next(nonces).to_bytes(8, "big"),
                today=lambda: "2026-11-28",
            )
            for name in servers
        }
        for name in servers:
            self.boot(name)

    def boot(self, name: str) -> None:
        records = self.durable.get(name)
        node, ready = ServerNode.boot(self.settings[name], (None, list(records)) if records else None, self.now)
        self.nodes[name] = node
        self.down.discard(name)
        self.carry(name, ready)

    def kill(self, name: str) -> None:
        self.down.add(name)
        del self.nodes[name]

    def carry(self, name: str, ready: Ready) -> None:
        self.durable.setdefault(name, []).extend(ready.persist)
        for out in ready.send:
            dest = out.to.session_id if isinstance(out.to, ClientRef) else out.to
            heapq.heappush(self.queue, (self.now + DELAY, next(self.seq), dest, (name, out.msg)))
        if ready.wake_at is not None:
            heapq.heappush(self.queue, (max(ready.wake_at, self.now), next(self.seq), name, ("tick", None)))

    def send(self, client: str, server: str, msg: Any) -> None:
        heapq.heappush(self.queue, (self.now + DELAY, next(self.seq), server, (client, msg)))

    def run(self, until: float) -> None:
        while self.queue and self.queue[0][0] <= until:
            at, _, dest, (sender, msg) = heapq.heappop(self.queue)
            self.now = max(self.now, at)
            node = self.nodes.get(dest)
            if dest in self.down:
                continue
            if node is None:
                self.inbox.setdefault(dest, []).append(msg)
            elif sender == "tick":
                self.carry(dest, node.tick(self.now))
            elif sender in self.nodes or sender in self.down:
                self.carry(dest, node.receive(sender, msg, self.now))
            else:
                self.carry(dest, node.from_client(ClientRef(sender), msg, self.now))
        self.now = until

    def leader(self) -> ServerNode:
        leaders = [n for n in self.nodes.values() if n.raft.role == LEADER]
        assert len(leaders) == 1, [n.name for n in leaders]
        return leaders[0]

    def replies(self, client: str, kind: type) -> list[Any]:
        return [m for m in self.inbox.get(client, []) if isinstance(m, kind)]


def started_pool(count: int = 10) -> Net:
    net = Net()
    net.run(8.0)
    leader = net.leader()
    net.send(
        "admin", leader.name, pool.AddLicenseCode(sender="cli", epoch=0, request_id="r1", code=license_code(count))
    )
    net.run(net.now + 1.0)
    return net


def test_a_leader_is_elected_and_every_server_rejoins() -> None:
    net = Net()
    net.run(8.0)
    leader = net.leader()
    assert leader.name == "s1"  # priority staggers the timeouts
    for node in net.nodes.values():
        assert node.rejoined(), node.name


def test_admin_change_through_a_follower_is_applied_pool_wide() -> None:
    net = Net()
    net.run(8.0)
    net.send("admin", "s3", pool.AddLicenseCode(sender="cli", epoch=0, request_id="r1", code=license_code(10)))
    net.run(9.0)
    (reply,) = net.replies("admin", pool.AdminReply)
    assert reply.ok, reply
    for node in net.nodes.values():
        table = node.pool.feature("cad", "2.0")
        assert table is not None and table.alloc == {"s1": 4, "s2": 3, "s3": 3}
    net.send("admin", "s2", pool.AddAllocations(sender="cli", epoch=0, request_id="r2", addon=addon_code(count=5)))
    net.send("admin", "s2", pool.AddLicenseCode(sender="cli", epoch=0, request_id="r3", code=license_code(10)))
    net.run(10.0)
    replies = {r.request_id: r for r in net.replies("admin", pool.AdminReply)}
    assert replies["r2"].ok and replies["r3"].already_present


def test_checkout_borrow_and_release() -> None:
    net = started_pool(6)  # 2 / 2 / 2
    for i in range(4):
        net.send(
            f"c{i}",
            "s2",
            client_msgs.CheckoutRequest(
                client_id=f"c{i}", session_id=f"c{i}", request_id=1, feature="cad", version="2.0"
            ),
        )
        net.run(net.now + 0.5)
    granted = [m for i in range(4) for m in net.replies(f"c{i}", client_msgs.CheckoutGranted)]
    assert len(granted) == 4, net.inbox
    table = net.nodes["s2"].pool.feature("cad", "2.0")
    assert table is not None and table.allocated("s2") >= 4
    net.send("c0", "s2", client_msgs.ReleaseRequest(client_id="c0", lease_id=granted[0].lease_id, request_id=2))
    net.run(net.now + 2.0)
    assert net.replies("c0", client_msgs.ReleaseAck)[0].released


def test_failover_moves_lease_with_its_seat_from_a_dead_server() -> None:
    net = started_pool(3)  # 1 / 1 / 1
    net.send(
        "c1",
        "s3",
        client_msgs.CheckoutRequest(client_id="c1", session_id="c1", request_id=1, feature="cad", version="2.0"),
    )
    net.run(net.now + 2.0)  # granted and reported
    (grant,) = net.replies("c1", client_msgs.CheckoutGranted)
    net.kill("s3")
    net.run(net.now + 2.0)
    upd = client_msgs.FailoverUpdate(
        client_id="c1",
        session_id="c1",
        seq=1,
        leases=(client_msgs.HeldLease(lease_id=grant.lease_id, feature="cad", version="2.0"),),
    )
    net.send("c1", "s2", upd)
    net.run(net.now + 12.0)  # fence after the serving lease expires, then the move
    seated = [r for r in net.replies("c1", client_msgs.FailoverReply) if grant.lease_id in r.seated]
    assert seated, net.inbox["c1"]
    assert net.nodes["s1"].pool.registry.holder(grant.lease_id) == "s2"


def test_restart_from_the_journal_keeps_confirmed_leases() -> None:
    net = started_pool(6)
    net.send(
        "c1",
        "s2",
        client_msgs.CheckoutRequest(client_id="c1", session_id="c1", request_id=1, feature="cad", version="2.0"),
    )
    net.run(net.now + 0.2)
    (grant,) = net.replies("c1", client_msgs.CheckoutGranted)
    net.kill("s2")
    net.run(net.now + 0.5)
    net.boot("s2")
    net.run(net.now + 8.0)
    node = net.nodes["s2"]
    assert grant.lease_id in node.member.leases.leases
    assert node.rejoined()


def test_a_restarted_server_votes_only_f_after_its_boot() -> None:
    """leadership.md M17: it may have acknowledged the old leader's last lease
    round just before it went down, and that time is not persisted."""
    from actors.protocol.raft import VoteReply, VoteRequest

    net = Net()
    net.run(8.0)
    voter = next(n for n in net.nodes.values() if n.raft.role != LEADER)
    net.kill(voter.name)
    net.boot(voter.name)
    booted, node = net.now, net.nodes[voter.name]
    log = node.raft.log
    ask = VoteRequest(sender="s9", epoch=node.raft.term + 1, last_index=log.last_index, last_epoch=log.last_epoch)
    for now, granted in ((booted + 1.99, False), (booted + 2.0, True)):
        ready = node.receive("s9", ask, now)
        assert next(o.msg for o in ready.send if isinstance(o.msg, VoteReply)).granted is granted, now
