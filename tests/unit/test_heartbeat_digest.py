"""A steady heartbeat carries a digest, not the list (issue 12, "Scale").

A session's ``SessionHeartbeat`` listed every lease id it held at the server,
and the ``HeartbeatAck`` listed them back: about 70 bytes per lease each way.
Now, once a server has renewed a list whole and said so with the list's digest,
the session's next heartbeats to it carry only that digest (and the count) while
the list stays the same, and the ack echoes the digest for "all renewed".  The
server renews on a digest only when it matches its own table (the leases it
holds for that client and session); on any mismatch it renews nothing and asks
for the full list (``resend``).  A server that never echoes a digest (an older
one) keeps getting full lists.

Three ``ServerNode``s and real ``ClientSessionCore``s on the perfect network of
test_node_smoke (``SessionNet``), and sessions driven by hand.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from actors.core import leaseid, shape
from actors.core.effects import ClientRef, Message, Ready
from actors.core.session import ClientSessionCore
from actors.core.timing import Timing
from actors.protocol.client import (
    CheckoutGranted,
    CheckoutRequest,
    FailoverUpdate,
    HeartbeatAck,
    HeldLease,
    SessionHeartbeat,
)
from actors.protocol.pool import AddLicenseCode, ForceReleaseLease
from actors.shell import wire
from tests.factories import license_code
from tests.unit.test_leader_change_quiet import SessionNet

T = Timing()
H = T.heartbeat_interval


class TapNet(SessionNet):
    """``SessionNet`` that keeps every heartbeat a session sends and every ack it gets."""

    def __init__(self) -> None:
        super().__init__()
        self.beats: list[tuple[float, str, SessionHeartbeat]] = []
        self.acks: list[tuple[float, str, HeartbeatAck]] = []

    def carry_session(self, sid: str, ready: Ready) -> None:
        for out in ready.send:
            if isinstance(out.msg, SessionHeartbeat) and isinstance(out.to, str):
                self.beats.append((self.now, out.to, out.msg))
        super().carry_session(sid, ready)

    def carry(self, name: str, ready: Ready) -> None:
        for out in ready.send:
            if isinstance(out.msg, HeartbeatAck) and isinstance(out.to, ClientRef):
                self.acks.append((self.now, out.to.session_id, out.msg))
        super().carry(name, ready)


def tap_net() -> TapNet:
    """A pool led by s1, with a license of 30 seats of cad 2.0 committed."""
    net = TapNet()
    net.run(8.0)
    assert net.leader().name == "s1"
    net.send("admin", "s1", AddLicenseCode(sender="cli", epoch=0, request_id="r1", code=license_code(30)))
    net.run(net.now + 1.0)
    return net


def holding(net: SessionNet, client_id: str, prefer: str, count: int) -> ClientSessionCore:
    """A session of ``client_id`` holding ``count`` leases at ``prefer``."""
    core = net.add_session(client_id, prefer)
    for request_id in range(1, count + 1):
        net.carry_session(core.session_id, core.checkout("cad", "2.0", request_id, net.now))
    net.run(net.now + 1.0)
    held = core.held(net.now)
    assert len(held) == count and {x.server for x in held.values()} == {prefer}, held
    return core


def beats_to(net: TapNet, server: str, since: float) -> list[SessionHeartbeat]:
    return [hb for at, to, hb in net.beats if to == server and at >= since]


def acks_of(net: TapNet, sid: str, since: float) -> list[HeartbeatAck]:
    return [ack for at, to, ack in net.acks if to == sid and at >= since]


def the(ready: Ready, kind: type[Any]) -> Any:
    [msg] = [out.msg for out in ready.send if isinstance(out.msg, kind)]
    return msg


# ---- steady state: a digest each way ---------------------------------------------------------


def test_a_steady_heartbeat_carries_a_digest_and_its_ack_renews_every_lease() -> None:
    net = tap_net()
    start = net.now
    core = holding(net, "ws2", "s2", 5)
    ids = tuple(sorted(core.held(net.now)))
    net.run(net.now + 10 * H)
    beats = beats_to(net, "s2", start)
    assert len(beats) >= 8
    # The first heartbeat after the grants lists the leases; its ack renews them
    # all and says so with their digest.  From then on: the digest alone.
    assert beats[0].lease_ids == ids and beats[0].digest == ""
    first_ack = acks_of(net, core.session_id, start)[0]
    assert first_ack.renewed == ids and first_ack.digest == leaseid.ids_digest(ids)
    for hb in beats[1:]:
        assert (hb.lease_ids, hb.count, hb.digest) == ((), 5, leaseid.ids_digest(ids))
    for ack in acks_of(net, core.session_id, start)[1:]:
        assert (ack.renewed, ack.lost, ack.moved, ack.held, ack.resend) == ((), (), (), (), False)
        assert ack.digest == leaseid.ids_digest(ids)
    # ... and every lease is renewed by them: at the session and at the server.
    for info in core.held(net.now).values():
        assert info.deadline > net.now + T.holder_valid_for(T.lease_ttl) - 2 * H
    table = net.nodes["s2"].member.leases.leases
    assert all(table[lid].expires_at > net.now + T.lease_ttl - 2 * H for lid in ids)


def wire_bytes(msg: Message) -> int:
    """The pickled size of ``msg`` as Thespian's transport sends it (``wire.SERIALIZER``)."""
    return len(wire.SERIALIZER.dumps(("sender", msg)))


@pytest.mark.parametrize("many", [100, 400])
def test_steady_heartbeat_bytes_do_not_grow_with_the_leases_held(many: int) -> None:
    """The steady heartbeat and its ack weigh the same with 1 lease and with
    ``many`` (the count's few digits aside); the full list grows with every
    lease id, each way."""
    sizes: dict[int, tuple[int, int, int]] = {}
    key = leaseid.derive_lease_key("x" * 40)
    for count in (1, many):
        core = ClientSessionCore("ws9", "ws9/1", ("s1", "s2", "s3"), T, prefer="s1")
        for i in range(count):
            lid = leaseid.make_lease_id(key, server="s1", incarnation=1, counter=i, nonce=bytes(8), client_id="ws9")
            core.checkout("cad", "2.0", i + 1, 0.0)
            core.receive(
                "s1",
                CheckoutGranted(request_id=i + 1, lease_id=lid, server="s1", feature="cad", version="2.0", ttl=30.0),
                0.01,
            )
        full = the(core.tick(H), SessionHeartbeat)
        ack = HeartbeatAck(
            seq=full.seq, server="s1", renewed=full.lease_ids, ttl=30.0, digest=leaseid.ids_digest(full.lease_ids)
        )
        core.receive("s1", ack, H + 0.01)
        steady = the(core.tick(2 * H), SessionHeartbeat)
        assert steady.lease_ids == () and steady.count == count
        steady_ack = HeartbeatAck(seq=steady.seq, server="s1", ttl=30.0, serving=True, digest=steady.digest)
        sizes[count] = (wire_bytes(full) + wire_bytes(ack), wire_bytes(steady), wire_bytes(steady_ack))
    (full_1, hb_1, ack_1), (full_n, hb_n, ack_n) = sizes[1], sizes[many]
    assert hb_n - hb_1 <= 4 and ack_n == ack_1
    assert (full_n - full_1) / (many - 1) > 2 * 56  # a 56-character id each way, as every heartbeat was before


# ---- a digest the server cannot verify -----------------------------------------------------------


def test_a_digest_that_does_not_match_the_table_renews_nothing_and_asks_for_the_list() -> None:
    net = tap_net()
    core = holding(net, "ws2", "s2", 3)
    ids = tuple(sorted(core.held(net.now)))
    node = net.nodes["s2"]
    before = {lid: node.member.leases.leases[lid].expires_at for lid in ids}
    wrong = [
        (3, leaseid.ids_digest(ids[:2])),  # another set
        (2, leaseid.ids_digest(ids)),  # the right digest, the wrong count
        (3, "0" * 32),
    ]
    for seq, (count, digest) in enumerate(wrong, start=10**6):
        hb = SessionHeartbeat(client_id="ws2", session_id=core.session_id, seq=seq, digest=digest, count=count)
        ack = the(node.from_client(ClientRef(core.session_id), hb, net.now + 5.0), HeartbeatAck)
        assert ack.resend and (ack.renewed, ack.lost, ack.moved, ack.held, ack.digest) == ((), (), (), (), "")
        assert not ack.fail_over
    # Another session of the same client, or another client, with the right digest: not theirs.
    for client_id, sid in (("ws2", "ws2/2"), ("ws9", core.session_id)):
        hb = SessionHeartbeat(client_id=client_id, session_id=sid, seq=10**7, digest=leaseid.ids_digest(ids), count=3)
        assert the(node.from_client(ClientRef(sid), hb, net.now + 5.0), HeartbeatAck).resend
    after = {lid: node.member.leases.leases[lid].expires_at for lid in ids}
    assert after == before  # nothing renewed on a digest the server could not verify
    assert {node.member.leases.leases[lid].session_id for lid in ids} == {core.session_id}  # nor rebound


def test_on_resend_the_session_sends_the_full_list_at_once_and_no_digest_for_a_while() -> None:
    core = ClientSessionCore("ws9", "ws9/1", ("s1", "s2", "s3"), T, prefer="s1")
    for i, lid in enumerate(("L1", "L2"), start=1):
        core.checkout("cad", "2.0", i, 0.0)
        core.receive(
            "s1",
            CheckoutGranted(request_id=i, lease_id=lid, server="s1", feature="cad", version="2.0", ttl=30.0),
            0.01,
        )
    full = the(core.tick(H), SessionHeartbeat)
    digest = leaseid.ids_digest(("L1", "L2"))
    core.receive("s1", HeartbeatAck(seq=full.seq, server="s1", renewed=("L1", "L2"), ttl=30.0, digest=digest), H)
    deadline = core.held(H)["L1"].deadline
    steady = the(core.tick(2 * H), SessionHeartbeat)
    assert steady.digest == digest and steady.lease_ids == ()
    again = the(core.receive("s1", HeartbeatAck(seq=steady.seq, server="s1", resend=True), 2 * H), SessionHeartbeat)
    assert again.lease_ids == ("L1", "L2") and again.digest == ""
    assert core.held(2 * H)["L1"].deadline == deadline  # a resend renews nothing
    # Renewed whole again: still full lists for 2f (the same list was refused), then a digest again.
    core.receive("s1", HeartbeatAck(seq=again.seq, server="s1", renewed=("L1", "L2"), ttl=30.0, digest=digest), 2 * H)
    assert core.held(2 * H)["L1"].deadline > deadline
    now, kinds = 2 * H, []
    while now < 2 * H + 2 * T.failure_timeout + 2 * H:
        now += H
        hb = the(core.tick(now), SessionHeartbeat)
        kinds.append("digest" if hb.digest else "full")
        answer = HeartbeatAck(seq=hb.seq, server="s1", ttl=30.0, digest=digest)
        core.receive("s1", answer if hb.digest else dataclasses.replace(answer, renewed=hb.lease_ids), now)
    assert kinds[: int(2 * T.failure_timeout / H) - 1] == ["full"] * (int(2 * T.failure_timeout / H) - 1)
    assert kinds[-1] == "digest"


# ---- what changed is still reported ---------------------------------------------------------------


def test_a_force_released_lease_is_still_reported_lost() -> None:
    net = tap_net()
    core = holding(net, "ws2", "s2", 3)
    net.run(net.now + 4 * H)
    assert beats_to(net, "s2", net.now - H)[-1].digest  # steady: digests
    victim = sorted(core.held(net.now))[1]
    net.send("admin", "s1", ForceReleaseLease(sender="cli", epoch=0, request_id="r9", lease_id=victim))
    since = net.now
    net.run(net.now + 2.0)
    assert victim not in core.held(net.now)
    lost = [ev.fields for at, ev in net.events[core.session_id] if ev.kind == "lost" and at >= since]
    assert [dict(f)["lease_id"] for f in lost] == [victim]
    acks = acks_of(net, core.session_id, since)
    assert any(ack.resend for ack in acks) and any(victim in ack.lost for ack in acks)
    rest = tuple(sorted(core.held(net.now)))
    assert len(rest) == 2
    net.run(net.now + 4 * H)
    assert beats_to(net, "s2", net.now - H)[-1].digest == leaseid.ids_digest(rest)  # steady again, on the rest


def test_a_lease_handed_over_elsewhere_is_still_reported_moved_and_followed() -> None:
    """Seed 52's pattern: a later fail-over update of this client hands a lease
    that is settled at s2 over to s3.  s2's table no longer matches the digest:
    the session hears ``moved`` from the full list and follows the lease."""
    net = tap_net()
    core = holding(net, "ws2", "s2", 2)
    net.run(net.now + 4 * H)
    victim, kept = sorted(core.held(net.now))
    update = FailoverUpdate(
        client_id="ws2",
        session_id=core.session_id,
        seq=10**6,
        leases=(HeldLease(lease_id=victim, feature="cad", version="2.0"),),
    )
    net.send(core.session_id, "s3", update)
    since = net.now
    net.run(net.now + 3.0)
    assert victim not in net.nodes["s2"].member.leases.leases
    acks = acks_of(net, core.session_id, since)
    assert any(ack.resend for ack in acks)
    assert any(ack.moved == ((victim, "s3"),) for ack in acks)
    held = core.held(net.now)
    assert held[victim].server == "s3" and held[kept].server == "s2"
    assert "lost" not in net.kinds(core.session_id)


def test_a_digest_never_rebinds_a_lease_resumed_by_a_newer_session() -> None:
    """The seq rule (seed 2663) still holds: after a restarted app's new session
    resumed a lease, the old session's digest no longer matches (the lease is
    the new session's), so nothing is renewed or rebound for the old one."""
    net = tap_net()
    old = holding(net, "ws2", "s2", 2)
    net.run(net.now + 4 * H)
    [hb] = beats_to(net, "s2", net.now - H)[-1:]
    assert hb.digest
    lease_id = sorted(old.held(net.now))[0]
    node = net.nodes["s2"]
    resume = CheckoutRequest(
        client_id="ws2",
        session_id="ws2/2",
        request_id=1,
        feature="cad",
        version="2.0",
        lease_id=lease_id,
        client_seq=10**6,
    )
    assert the(node.from_client(ClientRef("ws2/2"), resume, net.now), CheckoutGranted).resumed
    late = SessionHeartbeat(client_id="ws2", session_id=old.session_id, seq=hb.seq + 1, digest=hb.digest, count=2)
    ack = the(node.from_client(ClientRef(old.session_id), late, net.now), HeartbeatAck)
    assert ack.resend and ack.renewed == () and ack.digest == ""
    assert node.member.leases.leases[lease_id].session_id == "ws2/2"


def test_between_leaders_a_digest_is_held_not_renewed_and_a_fenced_server_sends_the_session_away() -> None:
    net = tap_net()
    core = holding(net, "ws2", "s2", 2)
    net.run(net.now + 4 * H)
    ids = tuple(sorted(core.held(net.now)))
    digest = leaseid.ids_digest(ids)
    node = net.nodes["s2"]
    net.kill("s1")
    net.kill("s3")
    net.run(net.now + T.fence_timeout * 1.1)  # s2's serving lease has run out: no majority
    before = {lid: node.member.leases.leases[lid].expires_at for lid in ids}
    hb = SessionHeartbeat(client_id="ws2", session_id=core.session_id, seq=10**6, digest=digest, count=2)
    ack = the(node.from_client(ClientRef(core.session_id), hb, net.now), HeartbeatAck)
    assert (ack.held, ack.renewed, ack.digest, ack.fail_over, ack.resend) == (ids, (), "", False, False)
    assert {lid: node.member.leases.leases[lid].expires_at for lid in ids} == before
    node.raft.incarnation += 1  # as if restarted and not yet rejoined: NOT_SERVING
    ack = the(node.from_client(ClientRef(core.session_id), hb, net.now), HeartbeatAck)
    assert ack.fail_over and ack.renewed == () and ack.digest == ""


def test_a_session_stays_on_a_held_answer_to_its_digest_and_fails_over_on_not_serving() -> None:
    core = ClientSessionCore("ws9", "ws9/1", ("s1", "s2", "s3"), T, prefer="s1")
    core.checkout("cad", "2.0", 1, 0.0)
    core.receive(
        "s1", CheckoutGranted(request_id=1, lease_id="L1", server="s1", feature="cad", version="2.0", ttl=30.0), 0.01
    )
    full = the(core.tick(H), SessionHeartbeat)
    digest = leaseid.ids_digest(("L1",))
    core.receive("s1", HeartbeatAck(seq=full.seq, server="s1", renewed=("L1",), ttl=30.0, digest=digest), H)
    steady = the(core.tick(2 * H), SessionHeartbeat)
    ready = core.receive("s1", HeartbeatAck(seq=steady.seq, server="s1", held=("L1",), ttl=30.0), 2 * H)
    assert not ready.send and not ready.events  # held: stays, nothing sent
    steady = the(core.tick(3 * H), SessionHeartbeat)
    assert steady.digest == digest  # the list is the same: still a digest
    ready = core.receive("s1", HeartbeatAck(seq=steady.seq, server="s1", fail_over=True, ttl=30.0), 3 * H)
    [update] = [out.msg for out in ready.send if isinstance(out.msg, FailoverUpdate)]
    assert [x.lease_id for x in update.leases] == ["L1"]


# ---- compatibility ---------------------------------------------------------------------------------


def test_an_older_server_that_never_echoes_a_digest_keeps_getting_full_lists() -> None:
    core = ClientSessionCore("ws9", "ws9/1", ("s1", "s2", "s3"), T, prefer="s1")
    core.checkout("cad", "2.0", 1, 0.0)
    core.receive(
        "s1", CheckoutGranted(request_id=1, lease_id="L1", server="s1", feature="cad", version="2.0", ttl=30.0), 0.01
    )
    now = 0.0
    for _ in range(20):
        now += H
        hb = the(core.tick(now), SessionHeartbeat)
        assert hb.lease_ids == ("L1",) and hb.digest == ""
        core.receive("s1", HeartbeatAck(seq=hb.seq, server="s1", renewed=hb.lease_ids, ttl=30.0), now)
    assert core.held(now)["L1"].deadline > now + 29.0


def test_a_server_that_answers_a_digest_as_an_older_one_gets_the_full_list_at_once() -> None:
    """A server that took digests, then restarted as an older version: its ack
    to a digest heartbeat names no lease.  The session sends the full list at
    once, and full lists from then on (until a digest is echoed again)."""
    core = ClientSessionCore("ws9", "ws9/1", ("s1", "s2", "s3"), T, prefer="s1")
    core.checkout("cad", "2.0", 1, 0.0)
    core.receive(
        "s1", CheckoutGranted(request_id=1, lease_id="L1", server="s1", feature="cad", version="2.0", ttl=30.0), 0.01
    )
    full = the(core.tick(H), SessionHeartbeat)
    digest = leaseid.ids_digest(("L1",))
    core.receive("s1", HeartbeatAck(seq=full.seq, server="s1", renewed=("L1",), ttl=30.0, digest=digest), H)
    deadline = core.held(H)["L1"].deadline
    steady = the(core.tick(2 * H), SessionHeartbeat)
    assert steady.digest == digest
    ready = core.receive("s1", HeartbeatAck(seq=steady.seq, server="s1", ttl=30.0), 2 * H)
    again = the(ready, SessionHeartbeat)
    assert again.lease_ids == ("L1",) and again.digest == ""
    assert core.held(2 * H)["L1"].deadline == deadline
    core.receive("s1", HeartbeatAck(seq=again.seq, server="s1", renewed=("L1",), ttl=30.0), 2 * H)
    assert the(core.tick(3 * H), SessionHeartbeat).lease_ids == ("L1",)


def test_an_older_session_full_list_is_answered_with_the_list() -> None:
    """A session older than digests sends full lists and reads ``renewed``:
    the ack still lists every renewed lease (and adds the digest it ignores).
    A heartbeat pickled without the new fields decodes, is well formed, and is
    a full list."""
    net = tap_net()
    core = holding(net, "ws2", "s2", 2)
    ids = tuple(sorted(core.held(net.now)))
    old = SessionHeartbeat.__new__(SessionHeartbeat)
    for name, value in (("client_id", "ws2"), ("session_id", core.session_id), ("seq", 10**6), ("lease_ids", ids)):
        object.__setattr__(old, name, value)
    old.__dict__.update(idle=())
    for name in ("digest", "count"):
        assert name not in old.__dict__
    assert shape.problem(old) is None
    assert (old.digest, old.count) == ("", 0)
    ack = the(net.nodes["s2"].from_client(ClientRef(core.session_id), old, net.now), HeartbeatAck)
    assert ack.renewed == ids and ack.digest == leaseid.ids_digest(ids) and not ack.resend


def test_the_fail_back_probe_stays_an_empty_heartbeat() -> None:
    core = ClientSessionCore("ws9", "ws9/1", ("s1", "s2", "s3"), T, prefer="s1")
    core.current = "s2"
    ready = core.tick(0.0)
    ready = core.tick(core.home_probe_every + 0.01)
    probe = the(ready, SessionHeartbeat)
    assert ready.send[0].to == "s1"
    assert (probe.lease_ids, probe.digest, probe.count) == ((), "", 0)
