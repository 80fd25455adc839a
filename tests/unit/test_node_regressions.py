"""ServerNode bugs found by the 10,000-schedule simulator run, pinned as
single-node unit tests with a fake clock (the seeds stay in
tests/sim/test_regressions.py; these name the exact rule)."""

from __future__ import annotations

from actors.core.node import ServerNode
from actors.core.pool import PoolState
from actors.protocol import entries, pool
from actors.protocol import raft as raft_msgs
from tests.factories import verify
from tests.unit.test_node_smoke import started_pool


def _release_report(server: str, seq: int) -> entries.LeaseReport:
    change = entries.LeaseChange(
        seq=seq, kind="release", lease_id=f"{server}.1.1", client_id="c1", feature="cad", version="2.0"
    )
    return entries.LeaseReport(server=server, changes=(change,), watermark=0, generation=0)


def _reply(leader: ServerNode, follower: str, incarnation: int, report: entries.LeaseReport) -> raft_msgs.SyncReply:
    raft = leader.raft
    return raft_msgs.SyncReply(
        sender=follower,
        epoch=raft.term,
        success=True,
        match_index=raft.log.last_index,
        round=raft.round,
        echo_grant=0,
        renewal=0,
        incarnation=incarnation,
        settings_hash="",
        report=report,
    )


def test_a_report_from_a_restarted_server_waits_for_its_rejoin_and_is_proposed_after_it() -> None:
    """Seeds 4712 and 6246: the leader booked a report as proposed, then dropped
    it because the sender's new incarnation had not rejoined yet; the booked
    sequence number blocked the report for ever, and its release leaked a seat."""
    net = started_pool(6)
    leader = net.leader()
    follower = next(n for n in net.nodes if n != leader.name)
    known = leader.pool.servers[follower].incarnation
    report = _release_report(follower, seq=99)

    early = leader.receive(follower, _reply(leader, follower, known + 1, report), net.now)
    assert leader.leading.book.report_proposed.get(follower, 0) < 99
    assert not any(isinstance(x.entry, entries.LeaseReport) for x in leader.raft.log.entries[-1:]), early

    leader.receive(follower, _reply(leader, follower, known, report), net.now)
    assert leader.leading.book.report_proposed[follower] == 99
    assert leader.raft.log.entries[-1].entry == report


def test_a_giver_that_learns_its_transfer_from_a_snapshot_consents_at_once() -> None:
    """Seed 4971: a snapshot install skips the TransferIntent entry, so the giver
    never decided its consent; the leader stopped renewing it and fenced it."""
    net = started_pool(6)  # 2 / 2 / 2, nothing in use
    leader = net.leader()
    giver = next(n for n in net.nodes if n != leader.name)
    node = net.nodes[giver]
    shadow = PoolState.from_plain(leader.pool.to_plain())
    intent = entries.TransferIntent(
        transfer_id="9.1", feature="cad", version="2.0", giver=giver, taker=leader.name, count=1
    )
    assert shadow.apply(intent, leader.applied + 1, leader.raft.term, verify).ok
    snapshot = raft_msgs.InstallSnapshot(
        sender=leader.name,
        epoch=leader.raft.term,
        last_index=leader.applied + 1,
        last_epoch=leader.raft.term,
        state=shadow.to_plain(),
        round=leader.raft.round,
    )

    ready = node.receive(leader.name, snapshot, net.now)
    confirms = [out.msg for out in ready.send if isinstance(out.msg, pool.TransferConfirm)]
    assert [(m.transfer_id, m.given) for m in confirms] == [("9.1", 1)]
    assert node.member.consents == {"9.1": 1}
    # Asked again (the confirm was lost): the same, persisted answer.
    again = node.receive(
        leader.name,
        pool.TransferRequest(
            sender=leader.name, epoch=leader.raft.term, transfer_id="9.1", feature="cad", version="2.0", count=1
        ),
        net.now,
    )
    assert [(o.msg.transfer_id, o.msg.given) for o in again.send if isinstance(o.msg, pool.TransferConfirm)] == [
        ("9.1", 1)
    ]


def test_a_transfer_request_decides_a_consent_missed_before_a_restart() -> None:
    """The same gap after a restart that replayed the install but not a consent:
    the next TransferRequest decides it."""
    net = started_pool(6)
    leader = net.leader()
    giver = next(n for n in net.nodes if n != leader.name)
    node = net.nodes[giver]
    intent = entries.TransferIntent(
        transfer_id="9.2", feature="cad", version="2.0", giver=giver, taker=leader.name, count=1
    )
    assert node.member.pool.apply(intent, node.applied + 1, leader.raft.term, verify).ok
    assert "9.2" not in node.member.consents
    ready = node.receive(
        leader.name,
        pool.TransferRequest(
            sender=leader.name, epoch=leader.raft.term, transfer_id="9.2", feature="cad", version="2.0", count=1
        ),
        net.now,
    )
    assert [(o.msg.transfer_id, o.msg.given) for o in ready.send if isinstance(o.msg, pool.TransferConfirm)] == [
        ("9.2", 1)
    ]
