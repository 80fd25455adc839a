"""The Raft rules of actors/core/raft.py, one example each, with a fake clock."""

from __future__ import annotations

from typing import TypeVar

from actors.core.effects import Message, Ready
from actors.core.raft import CANDIDATE, FOLLOWER, LEADER, PRE_CANDIDATE, Raft
from actors.core.records import HardRecord
from actors.core.timing import Timing
from actors.protocol import entries as log_entries
from actors.protocol.raft import DistributionCriteriaSync, LogEntry, ServingGrant, SyncReply, VoteReply, VoteRequest

SERVERS = ("s1", "s2", "s3")
T = Timing()
M = TypeVar("M", bound=Message)


def raft(name: str = "s1") -> Raft:
    return Raft(name, SERVERS, T)


def first_sent(ready: Ready, kind: type[M]) -> M:
    """The first message ``ready`` sends, which must be a ``kind``."""
    msg = ready.send[0].msg
    assert isinstance(msg, kind)
    return msg


def elect(node: Raft, now: float = 10.0) -> Ready:
    """Drive ``node`` through pre-vote and vote to leadership."""
    ready = Ready()
    node.election_due = 0.0
    node.tick(now, ready)
    assert node.role == PRE_CANDIDATE
    node.on_vote_reply(VoteReply(sender="s2", epoch=node.term + 1, granted=True, pre_vote=True), now, ready)
    assert node.role == CANDIDATE
    node.on_vote_reply(VoteReply(sender="s2", epoch=node.term, granted=True), now, ready)
    assert node.role == LEADER
    return ready


def test_a_granted_vote_is_persisted_in_the_same_ready_as_its_reply() -> None:
    voter = raft("s2")
    ready = Ready()
    voter.on_vote_request(VoteRequest(sender="s1", epoch=1, last_index=0, last_epoch=0), 100.0, ready)
    assert HardRecord(term=1, voted_for="s1", incarnation=0) in ready.persist
    assert [o.msg for o in ready.send] == [VoteReply(sender="s2", epoch=1, granted=True)]
    # the shell persists before it sends; a second candidate in the same epoch is refused
    again = Ready()
    voter.on_vote_request(VoteRequest(sender="s3", epoch=1, last_index=0, last_epoch=0), 100.0, again)
    assert first_sent(again, VoteReply).granted is False


def test_a_voter_refuses_a_candidate_with_an_older_log() -> None:
    voter = raft("s2")
    voter.log.entries.append(LogEntry(index=1, epoch=1, entry=log_entries.NoOp(leader="s1")))
    voter.term = 1
    ready = Ready()
    voter.on_vote_request(VoteRequest(sender="s3", epoch=2, last_index=0, last_epoch=0), 100.0, ready)
    assert first_sent(ready, VoteReply).granted is False


def test_pre_vote_changes_no_epoch() -> None:
    voter = raft("s2")
    ready = Ready()
    voter.on_vote_request(VoteRequest(sender="s3", epoch=5, last_index=0, last_epoch=0, pre_vote=True), 100.0, ready)
    assert voter.term == 0 and ready.persist == []
    assert ready.send[0].msg == VoteReply(sender="s2", epoch=5, granted=True, pre_vote=True)


def test_a_follower_of_a_live_leader_ignores_votes_and_keeps_its_epoch() -> None:
    voter = raft("s2")
    ready = Ready()
    voter.on_sync(
        DistributionCriteriaSync(sender="s1", epoch=1, prev_index=0, prev_epoch=0, entries=(), commit_index=0, round=1),
        100.0,
        ready,
    )
    ready = Ready()
    voter.on_vote_request(VoteRequest(sender="s3", epoch=7, last_index=5, last_epoch=1), 100.5, ready)
    assert voter.term == 1 and first_sent(ready, VoteReply).granted is False


def test_priority_only_staggers_election_timeouts() -> None:
    assert [raft(n).election_timeout() for n in SERVERS] == [2.0, 2.5, 3.0]


def test_new_leader_waits_out_what_its_voters_did_not_wait_of_the_old_lease() -> None:
    """leadership.md M17: the wait is L(1+rho) - f, the voters having waited f."""
    long_lease = Timing(leader_lease=3.0)
    leader = Raft("s1", SERVERS, long_lease)
    elect(leader, now=10.0)
    assert not leader.leader_active(10.0)
    leader.lease_until, leader.commit_index = 20.0, leader.noop_index
    wait = 3.0 * 1.01 - 2.0
    assert long_lease.new_leader_wait == wait
    assert not leader.leader_active(10.0 + wait - 0.001)
    assert leader.leader_active(10.0 + wait)


def test_with_the_default_timings_a_new_leader_acts_once_a_majority_acknowledged_it() -> None:
    assert T.leader_lease * (1 + T.clock_drift) <= T.failure_timeout
    assert T.new_leader_wait == 0.0
    leader = raft()
    elect(leader, now=10.0)
    assert not leader.leader_active(10.0)  # no lease yet: nobody acknowledged a round
    leader.on_sync_reply(
        SyncReply(sender="s2", epoch=leader.term, success=True, match_index=1, round=leader.round), 10.01, Ready()
    )
    assert leader.leader_active(10.01)


def test_a_new_leader_acts_only_once_its_noop_committed() -> None:
    """M17: before that, its applied state may lack entries an earlier leader
    appended that will commit (simulator seed 43: an old Fence of a server
    committed after the new leader had renewed that server)."""
    leader = raft()
    elect(leader, now=10.0)
    ready = Ready()
    leader.on_sync_reply(
        SyncReply(sender="s2", epoch=leader.term, success=False, match_index=0, round=leader.round), 10.01, ready
    )
    assert leader.lease_until > 10.01 and leader.commit_index < leader.noop_index
    assert not leader.leader_active(10.01)
    leader.on_sync_reply(
        SyncReply(sender="s2", epoch=leader.term, success=True, match_index=1, round=leader.round), 10.02, ready
    )
    assert leader.leader_active(10.02)


def _ask(voter: Raft, now: float, epoch: int = 1, pre_vote: bool = False) -> bool:
    """Ask ``voter`` for its vote for s3, whose log is as up to date as the voter's."""
    ready = Ready()
    last_index, last_epoch = voter.log.last_index, voter.log.last_epoch
    voter.on_vote_request(
        VoteRequest(sender="s3", epoch=epoch, last_index=last_index, last_epoch=last_epoch, pre_vote=pre_vote),
        now,
        ready,
    )
    return first_sent(ready, VoteReply).granted


def _sync(follower: Raft, now: float, epoch: int = 1) -> None:
    follower.on_sync(
        DistributionCriteriaSync(
            sender="s1", epoch=epoch, prev_index=0, prev_epoch=0, entries=(), commit_index=0, round=1
        ),
        now,
        Ready(),
    )


def test_no_vote_within_f_of_the_last_acknowledged_round_even_without_a_leader() -> None:
    """M17: stickiness alone forgets the leader when the term moves on; the
    acknowledgement time does not."""
    voter = raft("s2")
    _sync(voter, 100.0)
    voter.leader = None  # as after a step to a higher term whose vote it refused
    assert not _ask(voter, 101.0, epoch=2, pre_vote=True)
    assert not _ask(voter, 101.9, epoch=2)
    assert _ask(voter, 102.0, epoch=2, pre_vote=True)
    assert _ask(voter, 102.0, epoch=2)


def test_a_deposed_leader_votes_only_f_after_its_last_round() -> None:
    leader = raft()
    elect(leader, now=10.0)
    last_round = 10.0
    leader.on_sync_reply(
        SyncReply(sender="s2", epoch=leader.term + 1, success=False, match_index=0, round=0), 10.2, Ready()
    )
    assert leader.role == FOLLOWER and leader.lease_until == float("-inf")
    assert not _ask(leader, 11.0, epoch=leader.term)
    assert _ask(leader, last_round + T.failure_timeout, epoch=leader.term)


def test_a_server_stands_only_f_after_its_last_acknowledged_round() -> None:
    node = raft("s2")
    node.acked_at, node.election_due = 50.0, 10.0
    ready = Ready()
    node.tick(51.0, ready)
    assert node.role == FOLLOWER and ready.wake_at == 50.0 + T.failure_timeout
    node.tick(52.0, ready)
    assert node.role == PRE_CANDIDATE


def test_figure_8_only_own_epoch_entries_commit_by_counting() -> None:
    leader = raft()
    leader.log.entries.append(LogEntry(index=1, epoch=1, entry=log_entries.NoOp(leader="s3")))  # from an older epoch
    leader.term = 1
    elect(leader, now=10.0)  # epoch 2; appends its NoOp at index 2
    assert leader.log.last_index == 2
    leader.peers["s2"].match_index = 1
    assert not leader._advance_commit()  # index 1 is replicated on a majority but is epoch 1
    leader.peers["s2"].match_index = 2
    assert leader._advance_commit() and leader.commit_index == 2


def test_leader_lease_runs_from_the_send_of_the_acknowledged_round() -> None:
    leader = raft()
    ready = elect(leader, now=10.0)
    sent_round = leader.round
    reply = SyncReply(sender="s2", epoch=leader.term, success=True, match_index=leader.log.last_index, round=sent_round)
    leader.on_sync_reply(reply, 10.4, ready)
    assert leader.lease_until == 10.0 + T.leader_lease * (1 - T.clock_drift)


def test_check_quorum_steps_down_when_the_lease_lapses() -> None:
    leader = raft()
    elect(leader, now=10.0)
    ready = Ready()
    leader.lease_until = 14.0
    leader.tick(14.0, ready)
    assert leader.role == FOLLOWER


def test_serving_grant_stays_inside_the_leader_lease_and_is_timed_from_the_holders_send() -> None:
    leader = raft()
    elect(leader, now=0.0)
    leader.active_after = 0.0
    leader.lease_until = 5.0
    assert leader.serving_duration(4.0) == 1.0 / (1 + T.clock_drift)
    assert leader.serving_duration(0.0) == T.fence_timeout
    follower = raft("s2")
    ready = Ready()
    follower.on_sync(
        DistributionCriteriaSync(sender="s1", epoch=1, prev_index=0, prev_epoch=0, entries=(), commit_index=0, round=1),
        100.0,
        ready,
    )
    request = first_sent(ready, SyncReply).renewal
    follower.on_sync(
        DistributionCriteriaSync(
            sender="s1",
            epoch=1,
            prev_index=0,
            prev_epoch=0,
            entries=(),
            commit_index=0,
            round=2,
            serving=ServingGrant(grant_id=7, request=request, duration=3.0),
        ),
        100.3,
        Ready(),
    )
    assert follower.serving_until == 100.0 + 3.0 * (1 - T.clock_drift)


def test_serving_renewal_needs_the_echo_of_a_recent_grant() -> None:
    leader = raft()
    elect(leader, now=0.0)
    leader.active_after, leader.lease_until, leader.commit_index = 0.0, 100.0, leader.noop_index
    peer = leader.peers["s2"]
    leader.on_sync_reply(
        SyncReply(sender="s2", epoch=leader.term, success=True, match_index=0, round=1, echo_grant=0, renewal=1),
        1.0,
        Ready(),
    )
    first = leader.sync_for("s2", peer, 1.0)
    assert isinstance(first, DistributionCriteriaSync) and first.serving is not None
    # a heartbeat that does not echo this leader's grant renews nothing
    leader.on_sync_reply(
        SyncReply(sender="s2", epoch=leader.term, success=True, match_index=0, round=2, echo_grant=0, renewal=2),
        1.5,
        Ready(),
    )
    assert peer.renewal is None
    leader.on_sync_reply(
        SyncReply(
            sender="s2",
            epoch=leader.term,
            success=True,
            match_index=0,
            round=3,
            echo_grant=first.serving.grant_id,
            renewal=3,
        ),
        2.0,
        Ready(),
    )
    assert peer.renewal == 3
    second = leader.sync_for("s2", peer, 2.0)
    assert isinstance(second, DistributionCriteriaSync) and second.serving is not None and peer.renewal is None
    # the first grant's echo, once older than fence_timeout, no longer renews:
    # the leader's syncs are not reaching the holder (a one-way link)
    late = 1.0 + T.fence_timeout + 0.1
    stale = SyncReply(
        sender="s2",
        epoch=leader.term,
        success=True,
        match_index=0,
        round=4,
        echo_grant=first.serving.grant_id,
        renewal=4,
    )
    leader.on_sync_reply(stale, late, Ready())
    assert peer.renewal is None


def _commit_last(leader: Raft, now: float, ready: Ready) -> None:
    leader.on_sync_reply(
        SyncReply(sender="s2", epoch=leader.term, success=True, match_index=leader.log.last_index, round=leader.round),
        now,
        ready,
    )
    assert leader.commit_index == leader.log.last_index


def test_the_commit_of_a_borrow_is_told_at_once_and_of_a_grant_report_at_the_next_round() -> None:
    """A borrower holds its checkout until the ``Grant`` is committed *and* it
    learns so: ``tell_commit`` sends every follower the new commit index at
    once (a sync that renews nothing), not up to h later with the next round.
    A report of grants alone changes no other server's seats: no extra sync."""
    leader = raft()
    elect(leader, now=10.0)
    _commit_last(leader, 10.01, Ready())  # the NoOp: itself awaited, told once
    leader.tell_commit(10.01, Ready())
    report = log_entries.LeaseReport(
        server="s1", changes=(log_entries.LeaseChange(seq=1, kind="grant", lease_id="x", client_id="c"),)
    )
    leader.append([report], Ready())
    _commit_last(leader, 10.02, Ready())
    quiet = Ready()
    leader.tell_commit(10.02, quiet)
    assert quiet.send == []
    leader.append([log_entries.Grant(feature="cad", version="2.0", server="s3", count=1)], Ready())
    leader.broadcast(10.03, Ready())
    told = Ready()
    leader.tell_commit(10.03, told)
    assert told.send == []  # not committed yet: nothing to tell
    round_before = leader.round
    _commit_last(leader, 10.04, Ready())
    leader.tell_commit(10.04, told)
    assert sorted(str(out.to) for out in told.send) == ["s2", "s3"]
    for out in told.send:
        assert isinstance(out.msg, DistributionCriteriaSync)
        assert out.msg.commit_index == leader.log.last_index and out.msg.serving is None
    assert leader.round == round_before  # no new lease round
    again = Ready()
    leader.tell_commit(10.05, again)
    assert again.send == []  # told once
