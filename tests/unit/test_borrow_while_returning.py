"""The leader answers "exhausted" only when no seat is on its way back
(seed 3526 of the 10,000-schedule run, after the mass-release change moved
its timing).

A borrow that finds no seat anywhere is answered "exhausted as of the
leader's last index": the asker refuses once it has applied that index.  But
a seat released at the leader and not yet committed (M2 counts it in use
until then) comes free *at the leader*, not at the asker, so applying the
index gives the asker nothing and it refused NO_SEATS while the leader's
seat stood free for half a second (an L1 violation).  Now the leader answers
"none yet" (``exhausted=False``) while a seat of the table is returning
(released here, or a release or expiry in a report past the commit index),
and the asker asks again in 2h.
"""

from __future__ import annotations

from actors.core.effects import ClientRef
from actors.protocol import client
from actors.protocol.pool import BorrowReply, BorrowRequest
from tests.unit.test_node_smoke import Net, started_pool


def _request(term: int, request_no: int = 1, asker: str = "s2") -> BorrowRequest:
    return BorrowRequest(
        sender=asker, epoch=term, feature="cad", version="2.0", count=1, in_use=1, allocated=1, request_no=request_no
    )


def _borrow_reply(net: Net, leader_name: str, asker: str) -> BorrowReply:
    leader = net.nodes[leader_name]
    ready = leader.receive(asker, _request(leader.raft.term, asker=asker), net.now)
    (reply,) = [out.msg for out in ready.send if isinstance(out.msg, BorrowReply)]
    return reply


def _fill(net: Net) -> None:
    """Every seat of the 3-seat pool taken, one at each server."""
    for i, server in enumerate(net.nodes):
        req = client.CheckoutRequest(
            client_id=f"c{i}", session_id=f"sess-c{i}", request_id=1, feature="cad", version="2.0"
        )
        net.send(f"c{i}", server, req)
    net.run(net.now + 3.0)


def test_no_seat_anywhere_and_none_returning_is_exhausted() -> None:
    net = started_pool(3)
    leader = net.leader().name
    _fill(net)
    assert _borrow_reply(net, leader, next(s for s in net.nodes if s != leader)).exhausted


def test_a_seat_released_at_the_leader_and_not_committed_is_none_yet() -> None:
    net = started_pool(3)
    leader = net.leader().name
    _fill(net)
    i = list(net.nodes).index(leader)
    (grant,) = net.replies(f"c{i}", client.CheckoutGranted)
    node = net.nodes[leader]
    node.from_client(
        ClientRef(f"c{i}"),
        client.ReleaseRequest(client_id=f"c{i}", lease_id=grant.lease_id, request_id=2, session_id=f"sess-c{i}"),
        net.now,
    )
    asker = next(s for s in net.nodes if s != leader)
    assert not _borrow_reply(net, leader, asker).exhausted  # the seat is on its way back: ask again
    net.run(net.now + 2.0)  # the release commits: the leader's seat is free, and asked again it moves it
    ready = net.nodes[leader].receive(asker, _request(net.nodes[leader].raft.term, request_no=2), net.now)
    assert [e.get("server") for e in ready.events if e.kind == "borrow"] == [asker]
    assert not [out for out in ready.send if isinstance(out.msg, BorrowReply)]
