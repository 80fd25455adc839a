"""The leader proposes each of its own lease changes once per term.

``LeaderDuties.lead`` runs after every step, and each step of a checkout at
the leader has a new change.  A cumulative report (every change not yet
committed, as a follower sends it) put each change into every entry until
the commit, so the entries, and the work of persisting, sending and checking
them, grew with the checkouts in one commit window (docs/performance.md,
"The leader's own reports").  Now each entry holds what the term's log does
not hold yet, and a new term starts cumulative again.
"""

from __future__ import annotations

from actors.core.effects import ClientRef
from actors.protocol.client import CheckoutGranted, CheckoutRequest, ReleaseRequest
from actors.protocol.entries import LeaseReport
from tests.unit.test_node_smoke import Net, started_pool


def _checkout(net: Net, name: str, rid: int) -> None:
    node = net.nodes[name]
    req = CheckoutRequest(client_id=f"c{rid}", session_id=f"sess-{rid}", request_id=rid, feature="cad", version="2.0")
    net.carry(name, node.from_client(ClientRef(f"sess-{rid}"), req, net.now))


def _own_entries(net: Net, name: str, after: int) -> list[LeaseReport]:
    log = net.nodes[name].raft.log
    entries = [log.entry(i).entry for i in range(after + 1, log.last_index + 1)]
    return [e for e in entries if isinstance(e, LeaseReport) and e.server == name]


def test_each_own_change_is_proposed_once_within_a_commit_window() -> None:
    net = started_pool(10)
    leader = net.leader()
    start = leader.raft.log.last_index
    for rid in range(1, 4):  # three checkouts in one instant (the leader holds 4 of the 10 seats)
        _checkout(net, leader.name, rid)
    own = _own_entries(net, leader.name, start)
    assert [len(e.changes) for e in own] == [1, 1, 1]
    assert [c.seq for e in own for c in e.changes] == sorted({c.seq for e in own for c in e.changes})
    net.run(net.now + 2.0)
    # All three are in the pool's registry everywhere once committed.
    for node in net.nodes.values():
        held = {x.lease_id for x in node.pool.registry.leases.values() if x.holder == leader.name}
        assert len(held) == 3, node.name


def test_a_release_makes_one_urgent_entry_not_one_per_later_checkout() -> None:
    net = started_pool(10)
    leader = net.leader()
    _checkout(net, leader.name, 1)
    net.run(net.now + 0.1)
    (grant,) = net.replies("sess-1", CheckoutGranted)
    start = leader.raft.log.last_index
    release = ReleaseRequest(client_id="c1", lease_id=grant.lease_id, request_id=1, session_id="sess-1")
    net.carry(leader.name, leader.from_client(ClientRef("sess-1"), release, net.now))
    for rid in range(2, 5):
        _checkout(net, leader.name, rid)
    kinds = [[c.kind for c in e.changes] for e in _own_entries(net, leader.name, start)]
    assert kinds[0][-1] == "release" and all(k == ["grant"] for k in kinds[1:]), kinds


def test_a_new_term_proposes_the_uncommitted_changes_again() -> None:
    """Entries of an earlier term may be dropped by the next leader: the book,
    and so the first report of a term, starts over."""
    net = started_pool(10)
    leader = net.leader()
    leader.leading.book.report_proposed[leader.name] = 10**6  # as if proposed in this term
    start = leader.raft.log.last_index
    _checkout(net, leader.name, 1)
    assert [e.changes for e in _own_entries(net, leader.name, start)] == [()]  # its lease counter only
    leader.leading.book = type(leader.leading.book)(epoch=leader.raft.term)  # what a new term does
    start = leader.raft.log.last_index
    _checkout(net, leader.name, 2)
    (entry,) = _own_entries(net, leader.name, start)
    assert [c.kind for c in entry.changes] == ["grant", "grant"]
