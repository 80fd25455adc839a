"""A restarted app's session numbers its updates above its earlier sessions
(issue 11, defect 2): the shell starts them at the wall clock in ms.

Three ``ServerNode``s and sessions built by the shell's own
``new_session_core`` on a fake clock.  The lease moves from s2 to s3 by a
fail-over of the first session; the app restarts and s3 dies.  The new
session's resume must move the lease with its seat from the fenced s3; a
resume numbered from 1 again is taken for a stale copy of the first
session's update and the lease is never seated.
"""

from __future__ import annotations

import dataclasses

from actors.core.session import ClientSessionCore
from actors.core.timing import Timing
from actors.protocol.admin import ResolveTarget, SessionStart
from actors.protocol.client import CheckoutRequest
from actors.shell.session_actor import new_session_core
from tests.unit.test_leader_change_quiet import SessionNet, started_net
from tests.unit.test_node_smoke import SERVERS

T = Timing()
WALL = 1_780_000_000.0
START = SessionStart(
    pool="pool",
    client_id="ws9",
    session_id="ws9/1",
    servers=tuple(ResolveTarget(name=s, host="127.0.0.1", port=1900 + i) for i, s in enumerate(SERVERS)),
    timing=(T.heartbeat_interval, T.failure_timeout, T.leader_lease, T.fence_timeout, T.lease_ttl, T.clock_drift),
    prefer="s2",
)


def add(net: SessionNet, core: ClientSessionCore) -> ClientSessionCore:
    net.sessions[core.session_id] = core
    return core


def test_the_session_numbers_from_the_wall_clock_in_ms() -> None:
    core = new_session_core(START, WALL)
    ready = core.checkout("cad", "2.0", 1, 0.0, lease_id="L1")
    [request] = [out.msg for out in ready.send]
    assert isinstance(request, CheckoutRequest)
    assert request.client_seq == int(WALL * 1000) + 1


def test_a_restarted_app_resumes_a_lease_its_old_session_moved() -> None:
    net = started_net()
    old = add(net, new_session_core(START, WALL))
    net.carry_session(old.session_id, old.checkout("cad", "2.0", 1, net.now))
    net.run(net.now + 1.0)
    [lease_id] = old.held(net.now)
    assert old.held(net.now)[lease_id].server == "s2"

    net.kill("s2")  # the first session fails the lease over to s3
    net.run(net.now + 15.0)
    assert old.held(net.now)[lease_id].server == "s3", net.events[old.session_id]
    net.boot("s2")
    net.run(net.now + 5.0)

    # The app restarts 25 s after it started; then s3 dies too.
    del net.sessions[old.session_id]
    new = add(net, new_session_core(dataclasses.replace(START, session_id="ws9/2", prefer="s1"), WALL + 25.0))
    net.kill("s3")
    net.carry_session(new.session_id, new.checkout("cad", "2.0", 7, net.now, lease_id=lease_id))
    net.run(net.now + 20.0)
    granted = [ev for _, ev in net.events[new.session_id] if ev.kind == "granted"]
    assert [(ev.get("lease_id"), ev.get("resumed")) for ev in granted] == [(lease_id, True)], net.events[new.session_id]
    assert new.held(net.now)[lease_id].server in ("s1", "s2")
