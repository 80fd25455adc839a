"""When a leader compacts its in-memory log (``ServerNode._log_compaction_due``).

A follower whose next entry was compacted away is sent the whole table
(``InstallSnapshot``: every lease) instead of the entries it lacks.  With
thousands of leases that is megabytes for every process on its way, so a
leader compacts only once every peer it hears from has matched the applied
index, and past four times ``compact_every`` entries anyway (a follower that
never catches up gets the snapshot, as before).
"""

from __future__ import annotations

import dataclasses

import pytest

from tests.unit.test_node_smoke import started_pool

pytestmark = pytest.mark.unit


def test_the_leader_keeps_its_log_while_a_live_follower_lags_and_compacts_past_the_cap() -> None:
    net = started_pool()
    leader = net.leader()
    kept = len(leader.raft.log.entries)
    assert kept >= 3
    leader.settings = dataclasses.replace(leader.settings, compact_every=kept - 1)
    now = net.now
    peers = leader.raft.peers
    for peer in peers.values():
        peer.match_index, peer.last_heard = leader.applied, now
    assert leader._log_compaction_due(now), "every follower has matched: compact"
    lagging = next(iter(peers.values()))
    lagging.match_index = leader.applied - 1
    assert not leader._log_compaction_due(now), "a live follower still needs an entry"
    lagging.last_heard = now - leader.raft.timing.failure_timeout - 0.01
    assert leader._log_compaction_due(now), "a follower not heard for failure_timeout does not hold it back"
    lagging.last_heard = now
    leader.settings = dataclasses.replace(leader.settings, compact_every=(kept - 1) // 4)
    assert leader._log_compaction_due(now), "past four times compact_every: compact anyway"
    leader.settings = dataclasses.replace(leader.settings, compact_every=kept)
    assert not leader._log_compaction_due(now), "not more than compact_every entries: nothing to do"


def test_a_follower_compacts_at_its_applied_index() -> None:
    net = started_pool()
    follower = next(n for n in net.nodes.values() if not n.raft.is_leader)
    kept = len(follower.raft.log.entries)
    follower.settings = dataclasses.replace(follower.settings, compact_every=kept - 1)
    assert follower._log_compaction_due(net.now)
