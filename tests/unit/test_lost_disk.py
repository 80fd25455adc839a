"""A server rebuilt on an empty disk rejoins as a new incarnation and serves
(docs/deployment.md section 6; docs/leadership.md, "Rejoin after a lost disk").

Three ``ServerNode``s and real ``ClientSessionCore``s on the perfect network
of test_node_smoke, with a fake clock.  s3 restarts once (incarnation 2) and
grants leases in both lives; then its host dies, its disk is gone and it boots
again on an empty one.  It must end up rejoined and serving under an
incarnation above every earlier one, and its new lease ids must not collide
with its earlier lives' (same incarnation, or a counter the registry already
counts dead); the lease that left it when it died is not lost.

``floor``: the shell's incarnation floor (wall-clock seconds at boot), or 0,
as for a wall clock set back below the earlier boots: then the node itself
must move above the pool's record of it.
"""

from __future__ import annotations

import dataclasses

import pytest

from actors.core.leaseid import parse_lease_id
from actors.core.pool import LIVE
from actors.core.session import ClientSessionCore
from actors.core.timing import Timing
from actors.protocol.client import DenyReason
from actors.protocol.pool import DeclareServerDown
from tests.unit.test_leader_change_quiet import SessionNet, started_net

T = Timing()
WALL = 1_780_000_000
"""The fake wall clock's seconds at the rebuilt server's boot."""


def lease_at(net: SessionNet, client_id: str, prefer: str) -> tuple[ClientSessionCore, str]:
    core = net.add_session(client_id, prefer)
    net.carry_session(core.session_id, core.checkout("cad", "2.0", 1, net.now))
    net.run(net.now + 1.0)
    [(lease_id, info)] = core.held(net.now).items()
    assert info.server == prefer, (client_id, info)
    return core, lease_id


def earlier_lives(net: SessionNet) -> tuple[list[str], ClientSessionCore, str]:
    """s3 grants a lease, restarts (disk kept), grants another; returns every id
    s3 granted, and the session holding the last one (at s3)."""
    _, first = lease_at(net, "ws-a", "s3")
    net.kill("s3")
    net.boot("s3")
    net.run(net.now + 3.0)
    node = net.nodes["s3"]
    assert node.raft.incarnation == 2 and node.rejoined(), node.pool.servers["s3"]
    holder, second = lease_at(net, "ws-b", "s3")
    net.run(net.now + 2.0)  # reported and committed
    assert net.nodes["s1"].pool.registry.holder(second) == "s3"
    return [first, second], holder, second


def rebuild_on_empty_disk(net: SessionNet, floor: int) -> None:
    if "s3" in net.nodes:
        net.kill("s3")
    net.durable["s3"] = []
    if floor:
        net.settings["s3"] = dataclasses.replace(net.settings["s3"], incarnation_floor=floor)
    net.boot("s3")


def serving_within(net: SessionNet, seconds: float) -> float:
    """Run until s3 serves; returns when it first did."""
    end = net.now + seconds
    while net.now < end:
        net.run(net.now + 0.5)
        node = net.nodes["s3"]
        if node.rejoined() and node.serve_problem(None, net.now) is None:
            return net.now
    record = net.nodes["s1"].pool.servers["s3"]
    raise AssertionError(f"s3 (incarnation {net.nodes['s3'].raft.incarnation}) does not serve; pool record {record}")


def check_new_life(net: SessionNet, earlier: list[str], moved: ClientSessionCore, moved_id: str) -> None:
    node, leader = net.nodes["s3"], net.nodes["s1"]
    record = leader.pool.servers["s3"]
    assert (record.status, record.incarnation) == (LIVE, node.raft.incarnation)
    old = [parse_lease_id(x) for x in earlier]
    assert node.raft.incarnation > max(x.incarnation for x in old)
    _, fresh = lease_at(net, "ws-new", "s3")
    net.run(net.now + 2.0)
    parts = parse_lease_id(fresh)
    assert parts.incarnation == node.raft.incarnation
    assert parts.counter > max(x.counter for x in old)  # above the registry's watermark of s3
    for reg in (leader.pool.registry, node.pool.registry):
        assert reg.holder(fresh) == "s3" and not reg.is_dead(fresh)
    # The lease that left s3 when it died is held, with its id, elsewhere.
    [(lease_id, info)] = moved.held(net.now).items()
    assert lease_id == moved_id and info.server != "s3"


@pytest.mark.parametrize("floor", [WALL, 0], ids=["wall-clock-floor", "clock-set-back"])
def test_a_server_declared_down_and_rebuilt_on_an_empty_disk_rejoins_and_serves(floor: int) -> None:
    net = started_net()
    earlier, holder, held_id = earlier_lives(net)
    net.kill("s3")  # the host dies
    net.run(net.now + 6.0)
    assert holder.held(net.now)[held_id].server != "s3"  # failed over, lease kept
    net.send("admin", "s1", DeclareServerDown(sender="cli", epoch=0, request_id="down-1", server="s3"))
    net.run(net.now + 1.0)
    rebuild_on_empty_disk(net, floor)
    serving_within(net, T.reclaim_delay + 10.0)
    check_new_life(net, earlier, holder, held_id)


@pytest.mark.parametrize("floor", [WALL, 0], ids=["wall-clock-floor", "clock-set-back"])
def test_a_server_rebuilt_at_once_is_fenced_and_reclaimed_before_it_serves(floor: int) -> None:
    """Not declared down, back before the pool fenced it: a client may still hold
    a lease of its earlier incarnation that its empty table shows free, so it
    serves only after that incarnation was fenced and reclaimed, T(1+rho) on."""
    net = started_net()
    earlier, holder, held_id = earlier_lives(net)
    rebuild_on_empty_disk(net, floor)
    began = net.now
    net.run(net.now + 1.0)
    node = net.nodes["s3"]
    assert node.serve_problem(None, net.now) is DenyReason.NOT_SERVING
    at = serving_within(net, T.reclaim_delay + 15.0)
    assert at >= began + T.reclaim_delay
    assert net.nodes["s1"].pool.servers["s3"].reclaims == 1  # its earlier incarnation's seats were reclaimed
    check_new_life(net, earlier, holder, held_id)


def test_the_leader_does_not_rejoin_a_rebuilt_server_before_its_earlier_life_is_reclaimed() -> None:
    """The rebuilt server's first replies come before it has applied the pool's
    record of itself, so its own ``table_lost`` is still False in them.  The
    leader must judge from ``empty_boot`` and its own record, not rejoin the
    new incarnation at once (which the server then refuses, moving to yet
    another incarnation: status showed it live while it answered NOT_SERVING)."""
    net = started_net()
    earlier_lives(net)
    net.kill("s3")
    net.run(net.now + 6.0)
    net.send("admin", "s1", DeclareServerDown(sender="cli", epoch=0, request_id="down-1", server="s3"))
    net.run(net.now + 1.0)
    rebuild_on_empty_disk(net, WALL)
    leader = net.nodes["s1"]
    seen: list[tuple[str, int]] = []
    end = net.now + T.reclaim_delay + 10.0
    while net.now < end and not net.nodes["s3"].rejoined():
        net.run(net.now + 0.1)
        record = leader.pool.servers["s3"]
        if not seen or seen[-1] != (record.status, record.incarnation):
            seen.append((record.status, record.incarnation))
    assert net.nodes["s3"].rejoined()
    # Its first incarnation rejoined, once, after the earlier one was down: none was refused.
    assert net.nodes["s3"].raft.incarnation == WALL
    assert [x for x in seen if x[1] >= WALL] == [("live", WALL)], seen
