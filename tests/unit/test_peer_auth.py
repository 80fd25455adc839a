"""Peer envelopes are sealed with an HMAC under the pool's peer key; a pickled
round trip keeps them genuine, and any change to what they carry does not."""

from __future__ import annotations

import dataclasses
import os
import pickle
from typing import Any

import pytest

from actors.protocol import admin as admin_msgs
from actors.protocol import entries as log_entries
from actors.protocol import raft
from actors.shell.peerauth import derive_peer_key, genuine, opened, seal, sealed_mac
from actors.shell.wire import RefusedGlobal

KEY = derive_peer_key("s3cret-admin-key-file-content-0123456789", "licpool")

BODIES = [
    admin_msgs.PeerHello(incarnation=3),
    raft.DistributionCriteriaSync(
        sender="s1",
        epoch=4,
        prev_index=10,
        prev_epoch=4,
        entries=(
            raft.LogEntry(
                index=11,
                epoch=4,
                entry=log_entries.LeaseReport(
                    server="s2",
                    changes=(
                        log_entries.LeaseChange(
                            seq=1, kind="grant", lease_id="s2.1.1.x.y", client_id="c1", feature="cad", version="2.0"
                        ),
                    ),
                    watermark=1,
                    generation=0,
                ),
            ),
        ),
        commit_index=10,
        round=77,
        serving=raft.ServingGrant(grant_id=4000000001, request=12, duration=2.446),
        settings_hash="abc",
    ),
    raft.InstallSnapshot(
        sender="s1",
        epoch=4,
        last_index=100,
        last_epoch=4,
        state={"features": [{"total": 10, "alloc": {"s1": 4.0}}], "é": ("x", None)},
        round=9,
    ),
]


def test_a_sealed_envelope_survives_a_pickle_round_trip() -> None:
    for body in BODIES:
        env = seal(KEY, "licpool", "s1", "ActorAddr-(T|:4101)", body)
        assert genuine(KEY, pickle.loads(pickle.dumps(env))), body


def test_an_unsealed_or_altered_envelope_is_not_genuine() -> None:
    env = seal(KEY, "licpool", "s1", "ActorAddr-(T|:4101)", BODIES[1])
    assert not genuine(KEY, dataclasses.replace(env, mac=""))
    assert not genuine(KEY, dataclasses.replace(env, sender="s2"))
    assert not genuine(KEY, dataclasses.replace(env, address="ActorAddr-(T|:6666)"))
    assert not genuine(KEY, dataclasses.replace(env, pool="other"))
    sync = BODIES[1]
    assert isinstance(sync, raft.DistributionCriteriaSync)
    assert not genuine(KEY, dataclasses.replace(env, body=dataclasses.replace(sync, commit_index=11)))
    assert not genuine(derive_peer_key("another-secret-entirely-0123456789", "licpool"), env)
    assert not genuine(derive_peer_key("s3cret-admin-key-file-content-0123456789", "other-pool"), env)
    ill_typed = dataclasses.replace(env, mac=["not", "a", "str"])  # type: ignore[arg-type]  # on purpose
    assert not genuine(KEY, ill_typed)


def test_a_thespian_address_seals_the_same_on_another_host(monkeypatch: pytest.MonkeyPatch) -> None:
    """``str()`` of a Thespian address omits the IP on its own host; the MAC must
    not depend on which host computes it (the multihost test caught this)."""
    from thespian.actors import ActorAddress
    from thespian.system.transport import IPBase

    address = ActorAddress(IPBase.TCPv4ActorAddress("127.0.0.1", 4101))
    here = str(address)
    env = seal(KEY, "licpool", "s1", address, BODIES[0])
    monkeypatch.setattr(IPBase.thisSystem, "isLocalAddr", lambda _ip: False)  # as seen from another host
    remote = pickle.loads(pickle.dumps(env))
    assert str(remote.address) != here  # the text really differs there
    assert genuine(KEY, remote)


def test_a_sealed_envelope_carries_the_pickled_body_and_opens_only_to_it() -> None:
    for body in BODIES:
        env = pickle.loads(pickle.dumps(seal(KEY, "licpool", "s1", "ActorAddr-(T|:4101)", body, sealed=True)))
        assert env.body is None and env.sealed and env.sealed_ok
        assert genuine(KEY, env), body
        assert opened(env) == body


def test_an_altered_sealed_envelope_is_not_genuine() -> None:
    env = seal(KEY, "licpool", "s1", "ActorAddr-(T|:4101)", BODIES[1], sealed=True)
    flipped = bytes([env.sealed[0]]) + bytes([env.sealed[1] ^ 1]) + env.sealed[2:]
    assert not genuine(KEY, dataclasses.replace(env, sealed=flipped))
    assert not genuine(KEY, dataclasses.replace(env, sealed=env.sealed + b"."))
    assert not genuine(KEY, dataclasses.replace(env, sender="s2"))
    assert not genuine(KEY, dataclasses.replace(env, address="ActorAddr-(T|:6666)"))
    assert not genuine(KEY, dataclasses.replace(env, pool="other"))
    assert not genuine(derive_peer_key("another-secret-entirely-0123456789", "licpool"), env)
    # The plain MAC of the same body is not the sealed one: one form cannot pass as the other.
    plain = seal(KEY, "licpool", "s1", "ActorAddr-(T|:4101)", BODIES[1])
    assert not genuine(KEY, dataclasses.replace(env, mac=plain.mac))
    assert not genuine(KEY, dataclasses.replace(plain, mac=env.mac))


def test_a_sealed_body_is_unpickled_with_the_wire_allowlist() -> None:
    """Even under the right MAC (a server of the pool, or its key), the bytes may
    name only allowlisted classes: the MAC is checked first, the allowlist still holds."""

    class Evil:
        def __reduce__(self) -> tuple[Any, tuple[str]]:
            return (os.system, ("true",))

    data = pickle.dumps(Evil())
    env = admin_msgs.PeerEnvelope(
        pool="licpool",
        sender="s1",
        address="a",
        body=None,
        sealed=data,
        sealed_ok=True,
        mac=sealed_mac(KEY, "licpool", "s1", "a", data),
    )
    assert genuine(KEY, env)
    with pytest.raises(RefusedGlobal):
        opened(env)


def test_an_older_servers_envelope_is_plain_and_says_it_reads_no_sealed_ones() -> None:
    """A release before sealed envelopes sends none of the new fields: the class
    defaults stand in, and its plain MAC still checks."""
    env = seal(KEY, "licpool", "s1", "ActorAddr-(T|:4101)", BODIES[1], reads_sealed=False)
    old = pickle.loads(pickle.dumps(env))
    del old.__dict__["sealed"], old.__dict__["sealed_ok"]
    assert old.sealed == b"" and old.sealed_ok is False
    assert genuine(KEY, old) and opened(old) == BODIES[1]
