"""A snapshot install reconciles the lease table both ways (issue 11, defect 1).

A server that catches up by ``InstallSnapshot`` skips the entries folded into
the snapshot, and with them their lease-level effects.  Before the fix the
install only dropped leases that had moved away; a lease moved *to* the
server stayed out of its table, although the committed registry placed it
there: every later handover from that server completed with ``given=0``, the
client lost the lease, and the server's allocation counted a seat its in-use
count did not.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from actors.core.effects import Ready
from actors.core.pool import PoolState
from actors.protocol import client as client_msgs
from actors.protocol import entries as log_entries
from actors.protocol import raft
from tests.factories import verify
from tests.unit.test_node_smoke import Net, started_pool


class LinkNet(Net):
    """``Net`` with one-way links that can be cut."""

    cut: set[tuple[str, str]]

    def carry(self, name: str, ready: Ready) -> None:
        cut: set[tuple[str, str]] = getattr(self, "cut", set())
        ready.send = [out for out in ready.send if (name, out.to) not in cut]
        super().carry(name, ready)


def pool_with_small_compactions() -> LinkNet:
    net = started_pool(6)  # 2 / 2 / 2, leader s1
    net.__class__ = LinkNet
    assert isinstance(net, LinkNet)
    net.cut = set()
    for node in net.nodes.values():
        node.settings = dataclasses.replace(node.settings, compact_every=2)
    return net


def test_a_lease_handed_over_to_a_lagging_server_is_in_its_table_after_the_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    net = pool_with_small_compactions()
    assert net.leader().name == "s1"
    net.send(
        "c1",
        "s3",
        client_msgs.CheckoutRequest(client_id="c1", session_id="c1", request_id=1, feature="cad", version="2.0"),
    )
    net.run(net.now + 2.0)  # granted at s3 and reported
    (grant,) = net.replies("c1", client_msgs.CheckoutGranted)
    lease = grant.lease_id

    # s2 stops hearing the leader; c1 fails over to it while it still serves.
    net.cut = {("s1", "s2")}
    net.send(
        "c1",
        "s2",
        client_msgs.FailoverUpdate(
            client_id="c1",
            session_id="c1",
            seq=1,
            leases=(client_msgs.HeldLease(lease_id=lease, feature="cad", version="2.0"),),
        ),
    )
    net.run(net.now + 4.0)
    leader, s2 = net.nodes["s1"], net.nodes["s2"]
    assert leader.pool.registry.holder(lease) == "s2"  # the handover from s3 completed
    assert lease not in net.nodes["s3"].member.leases.leases
    assert leader.raft.log.snap_index > s2.applied  # compacted past what s2 has: it needs a snapshot
    assert lease not in s2.member.leases.leases

    installs: list[Any] = []
    original = s2.receive

    def watch(sender: str, msg: Any, now: float) -> Ready:
        if isinstance(msg, raft.InstallSnapshot):
            installs.append(msg)
        return original(sender, msg, now)

    monkeypatch.setattr(s2, "receive", watch)
    net.cut = set()
    net.run(net.now + 3.0)
    assert installs, "s2 caught up without a snapshot: the test no longer covers the install"
    assert s2.pool.registry.holder(lease) == "s2"
    held = s2.member.leases.leases.get(lease)
    assert held is not None, "the registry places the lease at s2, but its table lacks it"
    assert held.client_id == "c1" and held.expires_at > net.now
    # The fail-over c1 asked s2 for is answered: seated.
    assert any(lease in reply.seated for reply in net.replies("c1", client_msgs.FailoverReply))
    # s2's seats add up: its allocation covers what it holds.
    table = s2.pool.feature("cad", "2.0")
    assert table is not None and s2.member.leases.in_use(("cad", "2.0")) <= table.allocated("s2")


def test_an_install_drops_a_lease_that_moved_away_and_revokes_a_force_released_one() -> None:
    net = pool_with_small_compactions()
    for client in ("a", "b"):
        net.send(
            client,
            "s2",
            client_msgs.CheckoutRequest(
                client_id=client, session_id=client, request_id=1, feature="cad", version="2.0"
            ),
        )
    net.run(net.now + 2.0)  # granted at s2 and reported
    kept, moved = (net.replies(client, client_msgs.CheckoutGranted)[0].lease_id for client in ("a", "b"))
    leader, follower = net.leader(), net.nodes["s2"]
    pool = PoolState.from_plain(leader.pool.to_plain())
    index = leader.applied
    fence = log_entries.Fence(
        server="s2", incarnation=pool.servers["s2"].incarnation
    )  # a lease moves off a fenced server only
    for entry in (
        fence,
        log_entries.FailoverSeat(
            lease_id=moved, client_id="b", feature="cad", version="2.0", to_server="s3", client_seq=1, source="s2"
        ),
        log_entries.ForceRelease(lease_id=kept),
    ):
        index += 1
        assert pool.apply(entry, index, leader.raft.term, verify).ok, entry
    snapshot = raft.InstallSnapshot(
        sender=leader.name,
        epoch=leader.raft.term,
        last_index=index,
        last_epoch=leader.raft.term,
        state=pool.to_plain(),
        round=leader.raft.round,
    )
    follower.receive(leader.name, snapshot, net.now)
    table = follower.member.leases
    assert set(table.leases) == {kept}
    assert table.leases[kept].revoked
