"""Queued checkouts (issue 14 item 1; docs/licenses.md, "Queued checkouts").

The pool-level rules, each on the pure core with a fake clock: the queue is
committed state in log order; a seat goes to the oldest waiter wherever it
waits (moved there by the borrow and transfer machinery); a re-registration
at another server keeps the waiter's place; a waiter whose timeout passes or
whose session stops asking leaves the queue; a full queue answers QUEUE_FULL;
a leader change keeps the order.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from actors.core.pool import PoolState
from actors.core.session import ClientSessionCore
from actors.core.timing import Timing
from actors.protocol import client as client_msgs
from actors.protocol import entries, pool
from tests.factories import license_code, verify
from tests.unit.test_node_smoke import Net

pytestmark = pytest.mark.unit

KEY = ("cad", "2.0")


# ---- the replicated state machine ------------------------------------------------------


def _pool() -> PoolState:
    state = PoolState.new(["s1", "s2", "s3"])
    assert state.apply(entries.AddLicense(code=license_code(2)), 1, 1, verify).ok
    return state


def _join(wid: str, server: str) -> entries.QueueJoin:
    return entries.QueueJoin(waiter_id=wid, client_id=wid, feature="cad", version="2.0", server=server, timeout=5.0)


def test_joins_queue_in_log_order_and_a_repeat_moves_the_waiter_but_keeps_its_place() -> None:
    state = _pool()
    for i, (wid, server) in enumerate([("a", "s2"), ("b", "s3"), ("c", "s1")], start=2):
        assert state.apply(_join(wid, server), i, 1, verify).ok
    assert [w.waiter_id for w in state.queue(KEY)] == ["a", "b", "c"]
    assert state.apply(_join("a", "s3"), 5, 1, verify).note == "moved"
    assert [(w.waiter_id, w.server) for w in state.queue(KEY)] == [("a", "s3"), ("b", "s3"), ("c", "s1")]
    assert state.queue(KEY)[0].joined_index == 2


def test_leave_removes_only_a_waiter_still_at_the_asking_server() -> None:
    state = _pool()
    state.apply(_join("a", "s2"), 2, 1, verify)
    state.apply(_join("a", "s3"), 3, 1, verify)  # re-registered at s3
    stale = entries.QueueLeave(waiter_id="a", feature="cad", version="2.0", reason="gone", server="s2")
    assert not state.apply(stale, 4, 1, verify).ok
    assert [w.waiter_id for w in state.queue(KEY)] == ["a"]
    leave = entries.QueueLeave(waiter_id="a", feature="cad", version="2.0", reason="granted", server="s3")
    assert state.apply(leave, 5, 1, verify).ok
    assert state.queues == {}
    assert not state.apply(leave, 6, 1, verify).ok  # not queued: a no-op


def test_a_join_for_a_table_not_in_the_pool_is_a_no_op() -> None:
    state = _pool()
    bad = dataclasses.replace(_join("a", "s2"), version="9.0")
    assert not state.apply(bad, 2, 1, verify).ok
    assert state.queues == {}


def test_the_queue_survives_a_snapshot_and_an_empty_one_leaves_the_snapshot_as_before() -> None:
    state = _pool()
    assert "queues" not in state.to_plain()
    state.apply(_join("a", "s2"), 2, 1, verify)
    state.apply(_join("b", "s3"), 3, 1, verify)
    again = PoolState.from_plain(state.to_plain())
    assert again.queues == state.queues


# ---- servers, on a perfect network --------------------------------------------------------


def _checkout(net: Net, client: str, server: str, *, queue: bool, timeout: float = 60.0, request_id: int = 1) -> None:
    net.send(
        client,
        server,
        client_msgs.CheckoutRequest(
            client_id=client,
            session_id=client,
            request_id=request_id,
            feature="cad",
            version="2.0",
            queue=queue,
            queue_timeout=timeout,
        ),
    )


def _run(net: Net, seconds: float, waiting: dict[str, str], step: float = 0.5) -> None:
    """Run, re-sending each queued checkout every ``step`` as a session does
    (``waiting``: client -> the server it waits at)."""
    end = net.now + seconds
    while net.now < end:
        for client, server in waiting.items():
            if not net.replies(client, client_msgs.CheckoutGranted):
                _checkout(net, client, server, queue=True)
        net.run(min(end, net.now + step))


def _queued_pool(queue_limit: int = 100) -> Net:
    """Two seats, one at s2 and one at s3, both taken (c1 at s2, c2 at s3)."""
    net = Net()
    for name in net.settings:
        net.settings[name] = dataclasses.replace(net.settings[name], queue_limit=queue_limit)
        net.kill(name)
        net.boot(name)
    net.run(8.0)
    leader = net.leader()
    code = license_code(2, distribution="s2:1^s3:1")
    net.send("admin", leader.name, pool.AddLicenseCode(sender="cli", epoch=0, request_id="r1", code=code))
    net.run(net.now + 1.0)
    _checkout(net, "c1", "s2", queue=False)
    _checkout(net, "c2", "s3", queue=False)
    net.run(net.now + 1.0)
    assert net.replies("c1", client_msgs.CheckoutGranted) and net.replies("c2", client_msgs.CheckoutGranted)
    return net


def _order(net: Net, name: str = "s1") -> list[tuple[str, str]]:
    return [(w.waiter_id, w.server) for w in net.nodes[name].pool.queue(KEY)]


def test_queued_checkouts_wait_in_pool_order_and_a_plain_one_is_still_refused() -> None:
    net = _queued_pool()
    _checkout(net, "c3", "s2", queue=True)
    net.run(net.now + 0.3)
    _checkout(net, "c4", "s3", queue=True)
    _run(net, 2.0, {"c3": "s2", "c4": "s3"})
    assert net.replies("c3", client_msgs.CheckoutQueued)[-1].position == 1
    assert net.replies("c4", client_msgs.CheckoutQueued)[-1].position == 2
    for name in net.nodes:  # committed state: every server sees the same order
        assert _order(net, name) == [("c3:1", "s2"), ("c4:1", "s3")], name
    _checkout(net, "c5", "s3", queue=False)
    net.run(net.now + 0.5)
    (denied,) = net.replies("c5", client_msgs.CheckoutDenied)
    assert denied.reason is client_msgs.DenyReason.NO_SEATS


def test_a_seat_freed_at_another_server_goes_to_the_oldest_waiter() -> None:
    net = _queued_pool()
    _checkout(net, "c3", "s2", queue=True)  # the head waits at s2
    net.run(net.now + 0.3)
    _checkout(net, "c4", "s3", queue=True)  # the next at s3, where the seat will free
    _run(net, 2.0, {"c3": "s2", "c4": "s3"})
    (c2,) = net.replies("c2", client_msgs.CheckoutGranted)
    net.send("c2", "s3", client_msgs.ReleaseRequest(client_id="c2", lease_id=c2.lease_id, request_id=9))
    _run(net, 4.0, {"c3": "s2", "c4": "s3"})
    (granted,) = net.replies("c3", client_msgs.CheckoutGranted)
    assert granted.server == "s2"  # the seat moved from s3 to s2 for it
    assert not net.replies("c4", client_msgs.CheckoutGranted)
    assert _order(net) == [("c4:1", "s3")]
    # The next seat, freed at s2, goes to c4 at s3.
    (c1,) = net.replies("c1", client_msgs.CheckoutGranted)
    net.send("c1", "s2", client_msgs.ReleaseRequest(client_id="c1", lease_id=c1.lease_id, request_id=9))
    _run(net, 4.0, {"c4": "s3"})
    (granted,) = net.replies("c4", client_msgs.CheckoutGranted)
    assert granted.server == "s3"
    assert _order(net) == []


def test_a_waiter_that_re_registers_at_another_server_keeps_its_place() -> None:
    net = _queued_pool()
    _checkout(net, "c3", "s2", queue=True)
    net.run(net.now + 0.3)
    _checkout(net, "c4", "s3", queue=True)
    _run(net, 2.0, {"c3": "s2", "c4": "s3"})
    _run(net, 1.0, {"c3": "s3", "c4": "s3"})  # c3's session moved to s3 (s2 went silent for it)
    assert _order(net) == [("c3:1", "s3"), ("c4:1", "s3")]
    _run(net, 3.0, {"c3": "s3", "c4": "s3"})  # s2 forgets it without a leave: it is c3's at s3 now
    assert _order(net) == [("c3:1", "s3"), ("c4:1", "s3")]


def test_a_full_queue_answers_queue_full() -> None:
    net = _queued_pool(queue_limit=1)
    _checkout(net, "c3", "s2", queue=True)
    _run(net, 2.0, {"c3": "s2"})
    _checkout(net, "c4", "s3", queue=True)
    _run(net, 2.0, {"c3": "s2"})
    (denied,) = net.replies("c4", client_msgs.CheckoutDenied)
    assert denied.reason is client_msgs.DenyReason.QUEUE_FULL
    assert _order(net) == [("c3:1", "s2")]


def test_a_waiter_past_its_timeout_is_answered_queue_timeout_and_leaves() -> None:
    net = _queued_pool()
    _checkout(net, "c3", "s2", queue=True, timeout=1.5)
    net.run(net.now + 0.5)
    assert _order(net) == [("c3:1", "s2")]
    net.run(net.now + 2.0)
    (denied,) = net.replies("c3", client_msgs.CheckoutDenied)
    assert denied.reason is client_msgs.DenyReason.QUEUE_TIMEOUT
    assert _order(net) == []


def test_a_waiter_whose_session_stops_asking_leaves_within_failure_timeout() -> None:
    net = _queued_pool()
    _checkout(net, "c3", "s2", queue=True)
    _checkout(net, "c4", "s3", queue=True)
    _run(net, 2.0, {"c3": "s2", "c4": "s3"})
    assert len(_order(net)) == 2
    f = Timing().failure_timeout
    _run(net, f + 0.5, {"c4": "s3"})  # c3's app died: its session no longer re-sends
    assert _order(net) == [("c4:1", "s3")]
    assert not net.replies("c3", client_msgs.CheckoutDenied)


def test_the_queue_keeps_its_order_across_a_leader_kill() -> None:
    net = _queued_pool()
    _checkout(net, "c3", "s2", queue=True)
    net.run(net.now + 0.3)
    _checkout(net, "c4", "s3", queue=True)
    _run(net, 2.0, {"c3": "s2", "c4": "s3"})
    assert net.leader().name == "s1"
    net.kill("s1")
    _run(net, 10.0, {"c3": "s2", "c4": "s3"})
    assert net.leader().name != "s1"
    assert _order(net, "s2") == [("c3:1", "s2"), ("c4:1", "s3")]
    (c2,) = net.replies("c2", client_msgs.CheckoutGranted)
    net.send("c2", "s3", client_msgs.ReleaseRequest(client_id="c2", lease_id=c2.lease_id, request_id=9))
    _run(net, 5.0, {"c3": "s2", "c4": "s3"})
    assert net.replies("c3", client_msgs.CheckoutGranted)
    assert not net.replies("c4", client_msgs.CheckoutGranted)


# ---- the client session ---------------------------------------------------------------------


def _sent(ready: Any, kind: type) -> list[tuple[str, Any]]:
    return [(out.to, out.msg) for out in ready.send if isinstance(out.msg, kind)]


def test_a_session_sends_queue_and_the_time_left() -> None:
    core = ClientSessionCore("c1", "sess", ("s1", "s2", "s3"), Timing(), prefer="s1")
    ready = core.checkout("cad", "2.0", 7, 100.0, queue=True, timeout=30.0)
    ((to, msg),) = _sent(ready, client_msgs.CheckoutRequest)
    assert to == "s1" and msg.queue and msg.queue_timeout == 30.0
    with pytest.raises(ValueError, match="timeout"):
        core.checkout("cad", "2.0", 8, 100.0, queue=True, timeout=0)


def test_a_queued_session_re_sends_to_its_server_and_moves_on_only_after_f_of_silence() -> None:
    t = Timing()
    core = ClientSessionCore("c1", "sess", ("s1", "s2", "s3"), t, prefer="s1")
    core.checkout("cad", "2.0", 7, 0.0, queue=True, timeout=60.0)
    queued = client_msgs.CheckoutQueued(request_id=7, server="s1", position=3)
    events = core.receive("s1", queued, 0.1).events
    assert [e.kind for e in events] == ["queued"] and events[0].get("position") == 3
    ((to, msg),) = _sent(core.tick(t.client_retry + 0.01), client_msgs.CheckoutRequest)
    assert to == "s1" and msg.request_id == 7  # still waiting there: asked again at the same server
    # s1 says nothing more: once f has passed since it last answered, the next server gets the same request.
    now = t.client_retry + 0.01
    moved: list[tuple[str, Any]] = []
    while not moved:
        now += t.client_retry
        moved = [(s, m) for s, m in _sent(core.tick(now), client_msgs.CheckoutRequest) if s != "s1"]
    assert now - 0.1 >= t.failure_timeout
    ((to, msg),) = moved
    assert to == "s2" and msg.request_id == 7 and msg.queue


def test_a_queued_session_gives_up_at_its_deadline_with_queue_timeout() -> None:
    core = ClientSessionCore("c1", "sess", ("s1",), Timing(), prefer="s1")
    core.checkout("cad", "2.0", 7, 0.0, queue=True, timeout=5.0)
    core.receive("s1", client_msgs.CheckoutQueued(request_id=7, server="s1", position=1), 0.1)
    ready = core.tick(5.0)
    (denied,) = [e for e in ready.events if e.kind == "denied"]
    assert denied.get("reason") == "QUEUE_TIMEOUT"
    assert core.outstanding() == ()
    # A grant that comes after all is given back at once: no seat stays taken.
    late = client_msgs.CheckoutGranted(request_id=7, lease_id="L", server="s1", feature="cad", version="2.0", ttl=30)
    assert _sent(core.receive("s1", late, 5.5), client_msgs.ReleaseRequest)


def test_a_queued_grant_is_timed_from_the_send_its_server_last_answered() -> None:
    t = Timing()
    core = ClientSessionCore("c1", "sess", ("s1",), t, prefer="s1")
    first = _sent(core.checkout("cad", "2.0", 7, 0.0, queue=True, timeout=600.0), client_msgs.CheckoutRequest)
    core.receive(
        "s1", client_msgs.CheckoutQueued(request_id=7, server="s1", queue_timeout=first[0][1].queue_timeout), 0.1
    )
    now, latest = 0.0, first[0][1]
    while now < 100.0:  # waits far longer than a lease
        now += t.client_retry
        sent = _sent(core.tick(now), client_msgs.CheckoutRequest)
        if sent:
            latest = sent[0][1]
            answer = client_msgs.CheckoutQueued(request_id=7, server="s1", queue_timeout=latest.queue_timeout)
            core.receive("s1", answer, now + 0.05)
    granted = client_msgs.CheckoutGranted(
        request_id=7, lease_id="L", server="s1", feature="cad", version="2.0", ttl=t.lease_ttl
    )
    core.receive("s1", granted, now + 0.2)
    held = core.held(now + 0.2)
    assert "L" in held  # not lost at once, as a deadline from the first send (long past) would have it
    sent_at = 600.0 - latest.queue_timeout
    assert held["L"].deadline == pytest.approx(sent_at + t.holder_valid_for(t.lease_ttl))


def test_queue_limit_is_a_pool_key_and_leaves_older_settings_hashes_alone(tmp_path: Any) -> None:
    from pathlib import Path

    from actors.shell.config import ConfigError, load_config
    from tests.unit.test_config import pool_text, write

    base = load_config(write(Path(tmp_path), pool_text()))
    assert base.queue_limit == 100
    same = load_config(write(Path(tmp_path), pool_text("queue_limit = 100"), "same.toml"))
    assert same.settings_hash() == base.settings_hash()
    small = load_config(write(Path(tmp_path), pool_text("queue_limit = 3"), "small.toml"))
    assert small.queue_limit == 3 and small.settings_hash() != base.settings_hash()
    for bad in ("0", "2.5", "true", '"ten"'):
        with pytest.raises(ConfigError, match=r"\[pool\] queue_limit.*integer >= 1"):
            load_config(write(Path(tmp_path), pool_text(f"queue_limit = {bad}"), f"bad{len(bad)}.toml"))


def test_status_and_sessions_show_each_waiter_with_its_age() -> None:
    from actors.cli.pool import _queued_line
    from actors.shell.views import queue_infos

    net = _queued_pool()
    _checkout(net, "c3", "s2", queue=True)
    net.run(net.now + 0.3)
    _checkout(net, "c4", "s3", queue=True)
    _run(net, 3.0, {"c3": "s2", "c4": "s3"})
    infos = queue_infos(net.nodes["s3"], net.now)
    assert [(q.position, q.client_id, q.server) for q in infos] == [(1, "c3", "s2"), (2, "c4", "s3")]
    assert 2.0 < infos[0].age < 3.5 and infos[1].age < infos[0].age
    assert queue_infos(net.nodes["s3"], net.now, "other") == ()
    line = _queued_line(infos[0])
    assert line.startswith("queued: cad 2.0 #1  c3") and "at s2" in line and "waiting" in line


def test_queue_entries_survive_the_log_codec() -> None:
    from actors.protocol import codec

    leave = entries.QueueLeave(waiter_id="a", feature="cad", version="2.0", reason="timeout", server="s2")
    for entry in (_join("a", "s2"), leave):
        assert codec.from_plain(codec.to_plain(entry)) == entry


def test_a_seat_that_frees_is_kept_for_the_queue_not_given_to_a_newcomer() -> None:
    net = _queued_pool()
    _checkout(net, "c3", "s2", queue=True)
    _run(net, 2.0, {"c3": "s2"})
    (c2,) = net.replies("c2", client_msgs.CheckoutGranted)
    net.send("c2", "s3", client_msgs.ReleaseRequest(client_id="c2", lease_id=c2.lease_id, request_id=9))
    net.run(net.now + 0.003)  # the release is in; the leader has not moved the seat to c3's server yet
    _checkout(net, "c9", "s3", queue=False)  # s3 has the spare seat now, but c3 came first
    _run(net, 4.0, {"c3": "s2"})
    (denied,) = net.replies("c9", client_msgs.CheckoutDenied)
    assert denied.reason is client_msgs.DenyReason.NO_SEATS and "queued" in denied.detail
    (granted,) = net.replies("c3", client_msgs.CheckoutGranted)
    assert granted.server == "s2"


def test_a_waiter_whose_server_is_lost_and_never_re_registers_leaves_the_queue() -> None:
    net = _queued_pool()
    _checkout(net, "c3", "s3", queue=True)
    net.run(net.now + 0.3)
    _checkout(net, "c4", "s2", queue=True)
    _run(net, 2.0, {"c3": "s3", "c4": "s2"})
    assert _order(net) == [("c3:1", "s3"), ("c4:1", "s2")]
    net.kill("s3")  # c3's app dies with it: nobody re-registers c3
    _run(net, 20.0, {"c4": "s2"})
    assert _order(net) == [("c4:1", "s2")]
