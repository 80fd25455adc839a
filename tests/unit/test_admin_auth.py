"""Signed admin changes: the HMAC, the timestamp window and the replicated nonces.

The pure checks of ``actors.core.adminauth`` first, then the same rules inside
a three-server pool of ``ServerNode`` s on the perfect network of
test_node_smoke.py: refused at the receiving server and at the leader, a replay
refused by the same server, by another server, by a new leader after the old
one died, and after every server restarted from its journal.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from actors.core import adminauth
from actors.core.adminauth import AdminRefused
from actors.core.effects import Ready
from actors.core.node import NodeSettings
from actors.core.timing import Timing
from actors.protocol import entries
from actors.protocol import pool as pool_msgs
from tests.factories import LEASE_KEY, addon_code, license_code, verify
from tests.unit.test_node_smoke import SERVERS, Net

KEY = adminauth.derive_admin_key("s" * 40, "eng")
OTHER_KEY = adminauth.derive_admin_key("t" * 40, "eng")
WALL0 = 1_900_000_000.0
NONCES = iter(f"{i:032x}" for i in range(1, 10_000))


def signed(msg: Any, key: bytes = KEY, at: float = WALL0) -> Any:
    return adminauth.sign(key, msg, at, next(NONCES))


# ---- the pure rules -----------------------------------------------------------------------


def test_a_signed_change_checks_and_returns_its_auth() -> None:
    msg = signed(pool_msgs.AddLicenseCode(sender="cli", epoch=0, request_id="r1", code="CODE"))
    auth = adminauth.check(KEY, msg, WALL0 + 5)
    assert auth == msg.auth and len(auth.mac) == 64


def test_sender_and_epoch_are_not_signed_so_a_forwarding_server_may_rewrite_them() -> None:
    msg = signed(pool_msgs.ForceReleaseLease(sender="cli", epoch=0, request_id="r1", lease_id="lease"))
    forwarded = dataclasses.replace(msg, sender="s2", epoch=7)
    adminauth.check(KEY, forwarded, WALL0)


@pytest.mark.parametrize(
    ("msg", "reason"),
    [
        (pool_msgs.AddLicenseCode(sender="cli", epoch=0, request_id="r1", code="CODE"), "not signed"),
        (
            signed(pool_msgs.AddLicenseCode(sender="cli", epoch=0, request_id="r1", code="CODE"), key=OTHER_KEY),
            "bad signature",
        ),
        (
            dataclasses.replace(
                signed(pool_msgs.DeclareServerDown(sender="cli", epoch=0, request_id="r1", server="s2")), server="s3"
            ),
            "bad signature",
        ),
        (
            dataclasses.replace(
                signed(pool_msgs.AddLicenseCode(sender="cli", epoch=0, request_id="r1", code="A")), request_id="r2"
            ),
            "bad signature",
        ),
        (
            signed(pool_msgs.AddLicenseCode(sender="cli", epoch=0, request_id="r1", code="CODE"), at=WALL0 - 3600),
            "off this server's clock",
        ),
        (
            signed(pool_msgs.AddLicenseCode(sender="cli", epoch=0, request_id="r1", code="CODE"), at=WALL0 + 3600),
            "off this server's clock",
        ),
        (
            pool_msgs.AddLicenseCode(
                sender="cli",
                epoch=0,
                request_id="r1",
                code="CODE",
                auth=pool_msgs.AdminAuth(timestamp=WALL0, nonce="zz", mac="00"),
            ),
            "malformed signature",
        ),
        # the next two are ill-typed on purpose
        (
            pool_msgs.AddLicenseCode(
                sender="cli",
                epoch=0,
                request_id="r1",
                code="CODE",
                auth=pool_msgs.AdminAuth(timestamp="now", nonce="0" * 32, mac="0" * 64),  # type: ignore[arg-type]
            ),
            "malformed signature",
        ),
        (
            pool_msgs.AddLicenseCode(
                sender="cli",
                epoch=0,
                request_id="r1",
                code=["CODE"],  # type: ignore[arg-type]
                auth=pool_msgs.AdminAuth(timestamp=WALL0, nonce="0" * 32, mac="0" * 64),
            ),
            "malformed admin change",
        ),
    ],
)
def test_bad_changes_are_refused_with_a_one_line_reason(msg: Any, reason: str) -> None:
    with pytest.raises(AdminRefused) as refused:
        adminauth.check(KEY, msg, WALL0)
    assert reason in str(refused.value) and "\n" not in str(refused.value)


def test_a_used_nonce_is_a_replay() -> None:
    msg = signed(pool_msgs.AddAllocations(sender="cli", epoch=0, request_id="r1", addon="ADDON"))
    with pytest.raises(AdminRefused, match="replayed"):
        adminauth.check(KEY, msg, WALL0, {msg.auth.nonce})


def test_the_key_is_bound_to_the_pool_and_apart_from_the_lease_key() -> None:
    assert adminauth.derive_admin_key("s" * 40, "eng") != adminauth.derive_admin_key("s" * 40, "ops")
    assert KEY != LEASE_KEY


def test_applied_nonces_are_forgotten_only_once_outside_every_window() -> None:
    from actors.core.pool import PoolState

    pool = PoolState.new(SERVERS)
    assert pool.apply(entries.AdminNonce(nonce="a" * 32, stamp=WALL0), 1, 1, verify).ok
    assert not pool.apply(entries.AdminNonce(nonce="a" * 32, stamp=WALL0 + 1), 2, 1, verify).ok
    assert pool.apply(entries.AdminNonce(nonce="b" * 32, stamp=WALL0 + adminauth.NONCE_KEEP), 3, 1, verify).ok
    assert "a" * 32 in pool.admin_nonces
    assert pool.apply(entries.AdminNonce(nonce="c" * 32, stamp=WALL0 + adminauth.NONCE_KEEP + 1), 4, 1, verify).ok
    assert "a" * 32 not in pool.admin_nonces
    # By then a replay of "a" is outside the window of a server whose clock read the newest stamp.
    assert adminauth.NONCE_KEEP > 2 * adminauth.WINDOW
    assert PoolState.from_plain(pool.to_plain()).admin_nonces == pool.admin_nonces


# ---- inside a pool ------------------------------------------------------------------------


class SignedNet(Net):
    """Test_node_smoke's network with admin keys bound and a wall clock; records events."""

    def __init__(self) -> None:
        self.events: list[tuple[str, Any]] = []
        super().__init__()
        for name, settings in self.settings.items():
            self.settings[name] = dataclasses.replace(settings, admin_key=KEY, wall=lambda: WALL0 + self.now)
        for name in SERVERS:
            self.kill(name)
            self.durable.pop(name, None)
            self.boot(name)

    def carry(self, name: str, ready: Ready) -> None:
        self.events.extend((name, ev) for ev in ready.events)
        super().carry(name, ready)

    def refusals(self) -> list[tuple[str, dict[str, Any]]]:
        return [(name, dict(ev.fields)) for name, ev in self.events if ev.kind == "admin_refused"]

    def admin(self, to: str, msg: Any) -> pool_msgs.AdminReply:
        before = len(self.replies("admin", pool_msgs.AdminReply))
        self.send("admin", to, msg)
        self.run(self.now + 1.0)
        replies = self.replies("admin", pool_msgs.AdminReply)
        assert len(replies) == before + 1, replies
        reply: pool_msgs.AdminReply = replies[-1]
        return reply


def formed() -> SignedNet:
    net = SignedNet()
    net.run(8.0)
    net.leader()
    return net


def _follower(net: Net) -> str:
    return next(n for n in SERVERS if n != net.leader().name)


def _features(net: Net) -> set[int]:
    return {len(node.pool.features) for node in net.nodes.values()}


def test_settings_without_a_key_are_only_for_tests() -> None:
    settings = NodeSettings("s1", SERVERS, Timing(), verify, LEASE_KEY, nonce=lambda: b"\0" * 8, today=lambda: "x")
    assert settings.admin_key is None  # the shell always binds one: see test_views_bind_the_admin_key


def test_views_bind_the_admin_key(tmp_path: Any) -> None:
    from actors.shell.config import load_config, write_default_pool
    from actors.shell.views import node_settings

    cfg = load_config(write_default_pool(tmp_path))
    settings = node_settings(cfg, cfg.server_names[0])
    assert settings.admin_key == adminauth.derive_admin_key(cfg.admin_secret(), cfg.name)
    assert settings.wall is not None


def test_unsigned_and_wrongly_signed_changes_are_refused_at_the_receiving_server() -> None:
    net = formed()
    follower = _follower(net)
    for msg, reason in [
        (pool_msgs.AddLicenseCode(sender="cli", epoch=0, request_id="r1", code=license_code(10)), "not signed"),
        (
            signed(
                pool_msgs.AddLicenseCode(sender="cli", epoch=0, request_id="r2", code=license_code(10)),
                key=OTHER_KEY,
                at=WALL0 + net.now,
            ),
            "bad signature",
        ),
    ]:
        reply = net.admin(follower, msg)
        assert not reply.ok and reason in reply.error
        assert net.refusals()[-1] == (
            follower,
            {
                "hop": "received",
                "message": "AddLicenseCode",
                "request_id": msg.request_id,
                "via": "cli",
                "reason": reply.error,
            },
        )
    assert all(name == follower for name, _ in net.refusals()), "the leader never saw them"
    assert _features(net) == {0}


def test_the_leader_checks_again_what_a_server_forwards() -> None:
    """A forged forward (a peer message straight to the leader) is refused at the leader."""
    net = formed()
    leader, follower = net.leader().name, _follower(net)
    for i, msg in enumerate(
        [
            pool_msgs.AddLicenseCode(sender=follower, epoch=1, request_id="f1", code=license_code(10)),
            signed(
                pool_msgs.AddLicenseCode(sender=follower, epoch=1, request_id="f2", code=license_code(10)),
                key=OTHER_KEY,
                at=WALL0 + net.now,
            ),
        ]
    ):
        net.queue.append((net.now, -1 - i, leader, (follower, msg)))
        net.queue.sort()
        net.run(net.now + 1.0)
        name, fields = net.refusals()[-1]
        assert name == leader and fields["hop"] == "leader" and fields["via"] == follower
    assert _features(net) == {0}


def test_a_signed_change_applies_once_and_every_replay_is_refused() -> None:
    net = formed()
    leader, follower = net.leader().name, _follower(net)
    change = signed(
        pool_msgs.AddLicenseCode(sender="cli", epoch=0, request_id="r1", code=license_code(10)), at=WALL0 + net.now
    )
    assert net.admin(follower, change).ok
    for node in net.nodes.values():
        assert change.auth.nonce in node.pool.admin_nonces
    for to in (follower, leader, next(n for n in SERVERS if n not in (leader, follower))):
        reply = net.admin(to, change)
        assert not reply.ok and "replayed" in reply.error, (to, reply)
    # A replay of a change that is a no-op anyway (same serial) is still refused as a replay.
    assert net.refusals()[-1][1]["reason"].startswith("admin change refused: replayed")


def test_a_replay_is_refused_by_a_new_leader_and_after_a_restart() -> None:
    net = formed()
    old = net.leader().name
    base = signed(
        pool_msgs.AddLicenseCode(sender="cli", epoch=0, request_id="r1", code=license_code(10)), at=WALL0 + net.now
    )
    assert net.admin(old, base).ok
    release = signed(
        pool_msgs.AddAllocations(sender="cli", epoch=0, request_id="r2", addon=addon_code(count=5)), at=WALL0 + net.now
    )
    assert net.admin(old, release).ok
    net.kill(old)
    net.run(net.now + 10.0)
    new = net.leader().name
    assert new != old
    reply = net.admin(new, release)
    assert not reply.ok and "replayed" in reply.error
    for name in list(net.nodes):
        net.kill(name)
    for name in SERVERS:
        net.boot(name)
    net.run(net.now + 10.0)
    net.leader()
    for to in SERVERS:
        reply = net.admin(to, release)
        assert not reply.ok and "replayed" in reply.error, (to, reply)
    for node in net.nodes.values():
        table = node.pool.feature("cad", "2.0")
        assert table is not None and table.total == 15


def test_an_old_change_is_refused_by_its_timestamp_once_its_nonce_is_forgotten() -> None:
    net = formed()
    leader = net.leader().name
    old = signed(
        pool_msgs.AddLicenseCode(sender="cli", epoch=0, request_id="r1", code=license_code(10)), at=WALL0 + net.now
    )
    assert net.admin(leader, old).ok
    net.run(net.now + adminauth.NONCE_KEEP + 5)
    newer = signed(
        pool_msgs.AddAllocations(sender="cli", epoch=0, request_id="r2", addon=addon_code(count=5)), at=WALL0 + net.now
    )
    assert net.admin(leader, newer).ok
    assert old.auth.nonce not in net.nodes[leader].pool.admin_nonces
    reply = net.admin(leader, old)
    assert not reply.ok and "off this server's clock" in reply.error
