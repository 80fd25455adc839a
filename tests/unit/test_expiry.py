"""License expiry with an injected clock (``NodeSettings.today``).

- ``days_left``: 1 on a code's last valid day (its ``expires`` date), 0 on the
  expiry day (the day after), negative later.
- Each server warns once as the days left reach 30, 7 and 1.
- On the expiry day checkouts get ``EXPIRED`` and a held lease is no longer
  renewed: it ends at its own deadline and its seat comes free.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from actors.core.effects import Ready
from actors.core.expiry import ExpiryWatch, days_left, expired
from actors.protocol import client, pool
from tests.factories import license_code
from tests.unit.test_node_smoke import Net


class Today:
    def __init__(self, day: str) -> None:
        self.day = day

    def __call__(self) -> str:
        return self.day


class RecordingNet(Net):
    """The smoke tests' perfect network, with every node's events kept and one shared injected date."""

    def __init__(self, today: Today) -> None:
        self.events: list[tuple[str, str, dict[str, Any]]] = []
        self.today = today
        super().__init__()
        for name in self.settings:
            self.settings[name] = replace(self.settings[name], today=today)
        for node in self.nodes.values():
            node.settings = replace(node.settings, today=today)

    def carry(self, name: str, ready: Ready) -> None:
        self.events.extend((name, ev.kind, dict(ev.fields)) for ev in ready.events)
        super().carry(name, ready)

    def kinds(self, kind: str) -> list[tuple[str, dict[str, Any]]]:
        return [(n, f) for n, k, f in self.events if k == kind]


def test_days_left_counts_the_last_valid_day_and_zero_on_the_expiry_day() -> None:
    assert days_left("2027-01-31", "2027-01-01") == 31
    assert days_left("2027-01-31", "2027-01-31") == 1
    assert days_left("2027-01-31", "2027-02-01") == 0
    assert days_left("2027-01-31", "2027-02-05") == -4
    assert days_left("", "2027-01-01") is None
    assert not expired("2027-01-31", "2027-01-31")
    assert expired("2027-01-31", "2027-02-01")


def test_the_watch_warns_once_per_step_and_once_for_a_late_start() -> None:
    watch = ExpiryWatch()
    feats = [(("cad", "2.0"), "2027-01-31")]
    said = {}
    day = __import__("datetime").date(2026, 12, 1)
    for _ in range(70):
        for _repeat in range(3):  # many ticks a day: still once
            for w in watch.check(feats, day.isoformat()):
                said[w.threshold] = (day.isoformat(), w.days_left)
        day += __import__("datetime").timedelta(days=1)
    assert said == {30: ("2027-01-02", 30), 7: ("2027-01-25", 7), 1: ("2027-01-31", 1)}
    late = ExpiryWatch()  # a server (re)started 20 days before: one warning now, then 7 and 1
    assert [w.threshold for w in late.check(feats, "2027-01-12")] == [30]
    assert late.check(feats, "2027-01-13") == []
    assert [w.threshold for w in late.check(feats, "2027-01-25")] == [7]


def _pool(today: Today, expires: str) -> RecordingNet:
    net = RecordingNet(today)
    net.run(8.0)
    leader = net.leader()
    net.send(
        "admin",
        leader.name,
        pool.AddLicenseCode(sender="cli", epoch=0, request_id="r1", code=license_code(3, expires=expires, serial="X1")),
    )
    net.run(net.now + 1.0)
    (reply,) = net.replies("admin", pool.AdminReply)
    assert reply.ok, reply
    return net


def test_servers_warn_at_30_7_and_1_day_left_once_each() -> None:
    today = Today("2026-12-01")
    net = _pool(today, "2026-12-31")  # 31 days left: no warning yet
    assert net.kinds("expiry_warning") == []
    for day, left in (("2026-12-02", 30), ("2026-12-03", None), ("2026-12-25", 7), ("2026-12-31", 1)):
        today.day = day
        before = len(net.kinds("expiry_warning"))
        net.run(net.now + 2.0)  # many ticks on the same day
        new = net.kinds("expiry_warning")[before:]
        if left is None:
            assert new == [], day
            continue
        assert sorted(n for n, _ in new) == ["s1", "s2", "s3"], (day, new)  # once per server
        assert {f["days_left"] for _, f in new} == {left}
        assert {(f["feature"], f["expires"]) for _, f in new} == {("cad", "2026-12-31")}


def test_on_the_expiry_day_checkouts_get_expired_and_held_leases_end_at_their_deadline() -> None:
    today = Today("2026-12-31")
    net = _pool(today, "2026-12-31")
    ttl = net.settings["s2"].timing.lease_ttl
    net.send(
        "c1", "s2", client.CheckoutRequest(client_id="c1", session_id="c1", request_id=1, feature="cad", version="2.0")
    )
    net.run(net.now + 0.5)
    (granted,) = net.replies("c1", client.CheckoutGranted)
    lease_id = granted.lease_id
    for seq in range(1, 4):  # still renewed on its last valid day
        net.send("c1", "s2", client.SessionHeartbeat(client_id="c1", session_id="c1", seq=seq, lease_ids=(lease_id,)))
        net.run(net.now + 0.5)
    assert lease_id in net.replies("c1", client.HeartbeatAck)[-1].renewed

    today.day = "2027-01-01"  # the expiry day
    deadline = net.nodes["s2"].member.leases.leases[lease_id].expires_at
    net.send(
        "c2", "s3", client.CheckoutRequest(client_id="c2", session_id="c2", request_id=1, feature="cad", version="2.0")
    )
    net.run(net.now + 0.5)
    (denied,) = net.replies("c2", client.CheckoutDenied)
    assert denied.reason == client.DenyReason.EXPIRED
    for seq in range(4, 8):
        net.send("c1", "s2", client.SessionHeartbeat(client_id="c1", session_id="c1", seq=seq, lease_ids=(lease_id,)))
        net.run(net.now + 0.5)
    ack = net.replies("c1", client.HeartbeatAck)[-1]
    assert lease_id not in ack.renewed and lease_id not in ack.lost and not ack.fail_over
    assert net.nodes["s2"].member.leases.leases[lease_id].expires_at == deadline  # not extended
    net.run(deadline - 0.01)
    assert lease_id in net.nodes["s2"].member.leases.leases
    net.run(deadline + ttl / 10)
    assert lease_id not in net.nodes["s2"].member.leases.leases
    assert ("s2", lease_id) in {(n, f["lease_id"]) for n, f in net.kinds("expiry")}
    assert net.nodes["s2"].member.leases.held(("cad", "2.0")) == 0
