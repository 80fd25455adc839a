"""Seat counts come only from vendor-signed codes and add-ons (security.md).

A code whose count was edited, a sync entry carrying such a code, a snapshot
sent by a "leader" with an inflated total, and a tampered snapshot on a
server's own disk are all refused; the state that was there stays.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from actors.core.codes import CodeError
from actors.core.pool import PoolState
from actors.core.records import InstallRecord
from actors.protocol import entries, raft
from actors.protocol import pool as pool_msgs
from tests.factories import addon_code, license_code, verify
from tests.unit.test_admin_auth import KEY, WALL0, SignedNet, formed, signed
from tests.unit.test_node_smoke import SERVERS


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def inflated(code: str, count: int) -> str:
    """The same code with its count edited and the vendor's signature kept."""
    prefix, payload, signature = code.split(".")
    fields = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    fields["count"] = count
    return f"{prefix}.{_b64(json.dumps(fields, sort_keys=True, separators=(',', ':')).encode())}.{signature}"


def test_an_edited_count_does_not_verify() -> None:
    # Control: re-encoding with the signed count gives back a valid code.
    assert verify(inflated(license_code(10), 10)).count == 10
    assert verify(inflated(addon_code(count=5), 5)).count == 5
    with pytest.raises(CodeError, match="signature does not verify"):
        verify(inflated(license_code(10), 1000))
    with pytest.raises(CodeError, match="signature does not verify"):
        verify(inflated(addon_code(count=5), 500))


def test_the_leader_refuses_an_edited_code_even_when_the_change_is_signed() -> None:
    net = formed()
    leader = net.leader().name
    reply = net.admin(
        leader,
        signed(
            pool_msgs.AddLicenseCode(sender="cli", epoch=0, request_id="r1", code=inflated(license_code(10), 1000)),
            at=WALL0 + net.now,
        ),
    )
    assert not reply.ok and "signature does not verify" in reply.error
    assert not any(node.pool.features for node in net.nodes.values())


def test_an_edited_code_in_a_committed_entry_adds_nothing() -> None:
    pool = PoolState.new(SERVERS)
    assert pool.apply(entries.AddLicense(code=license_code(10)), 1, 1, verify).ok
    assert not pool.apply(entries.AddAddon(code=inflated(addon_code(count=5), 500)), 2, 1, verify).ok
    assert not pool.apply(entries.AddLicense(code=inflated(license_code(10, serial="L2"), 900)), 3, 1, verify).ok
    assert pool.features[("cad", "2.0")].total == 10
    assert pool.count_problems(verify) == []


def _good_state() -> dict[str, Any]:
    pool = PoolState.new(SERVERS)
    pool.apply(entries.AddLicense(code=license_code(10)), 1, 1, verify)
    return pool.to_plain()


def _tampered() -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    state = _good_state()
    state["features"][0]["total"] = 100
    state["features"][0]["free"] += 90
    out["inflated total and free pool"] = state
    state = _good_state()
    state["features"][0]["alloc"]["s1"] += 50
    out["inflated allocation"] = state
    state = _good_state()
    state["licenses"]["L1"] = inflated(state["licenses"]["L1"], 100)
    state["features"][0]["total"] = 100
    state["features"][0]["free"] += 90
    out["edited code to match"] = state
    state = _good_state()
    state["addons"]["A9"] = addon_code(count=5, serial="A9")
    out["add-on with no table change"] = state
    state = _good_state()
    state["features"][0]["free"] = -5
    state["features"][0]["alloc"]["s1"] += 5
    out["negative free pool"] = state
    state = _good_state()
    state["features"] = "garbage"
    out["malformed"] = state
    return out


@pytest.mark.parametrize("what", sorted(_tampered()))
def test_count_problems_finds_every_tampering(what: str) -> None:
    state = _tampered()[what]
    try:
        problems = PoolState.from_plain(state).count_problems(verify)
    except Exception:
        problems = ["does not decode"]
    assert problems, what
    assert PoolState.from_plain(_good_state()).count_problems(verify) == []


@pytest.mark.parametrize("what", sorted(_tampered()))
def test_a_snapshot_with_forged_counts_is_not_installed(what: str) -> None:
    net = formed()
    net.admin(
        net.leader().name,
        signed(
            pool_msgs.AddLicenseCode(sender="cli", epoch=0, request_id="r1", code=license_code(10)), at=WALL0 + net.now
        ),
    )
    follower = next(n for n in SERVERS if n != net.leader().name)
    node = net.nodes[follower]
    before = node.pool.to_plain()
    forged = raft.InstallSnapshot(
        sender=net.leader().name,
        epoch=node.raft.term,
        last_index=node.applied + 50,
        last_epoch=node.raft.term,
        state=_tampered()[what],
        round=99,
    )
    ready = node.receive(net.leader().name, forged, net.now)
    assert [ev.kind for ev in ready.events if ev.kind == "refused_snapshot"] == ["refused_snapshot"]
    assert node.pool.to_plain() == before
    assert not any(isinstance(rec, InstallRecord) for rec in ready.persist)


def test_a_tampered_snapshot_on_disk_stops_the_server_from_starting() -> None:
    net = formed()
    leader = net.leader().name
    net.admin(
        leader,
        signed(
            pool_msgs.AddLicenseCode(sender="cli", epoch=0, request_id="r1", code=license_code(10)), at=WALL0 + net.now
        ),
    )
    node = net.nodes[leader]
    image = node.snapshot()
    image["pool"]["features"][0]["total"] += 40
    image["pool"]["features"][0]["free"] += 40
    with pytest.raises(ValueError, match=r"persisted pool state is refused: cad 2\.0: total 50"):
        type(node).boot(node.settings, (image, []), net.now)
    clean = node.snapshot()
    type(node).boot(node.settings, (clean, []), net.now)  # the untouched image boots


def test_signed_net_is_keyed() -> None:
    net = SignedNet()
    assert {s.admin_key for s in net.settings.values()} == {KEY}
