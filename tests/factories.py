"""Builders shared by the unit and simulation tests: vendor keys, signed codes,
lease ids and pool states, with no I/O."""

from __future__ import annotations

import functools
import hashlib

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from actors.core import codes, leaseid
from actors.core.member import Member
from actors.core.pool import PoolState
from actors.core.table import FeatureTable
from actors.protocol import entries as log_entries

SERVERS = ("s1", "s2", "s3")
LEASE_KEY = leaseid.derive_lease_key("x" * 40)


@functools.cache
def vendor_key() -> Ed25519PrivateKey:
    # Deterministic, so a failing seed replays with the same codes.
    return Ed25519PrivateKey.from_private_bytes(hashlib.sha256(b"licpool test vendor").digest())


def verify(text: str) -> codes.LicenseCode | codes.AddOn:
    """The ``Verifier`` the pool state uses in tests: the test vendor's key."""
    return codes.verify_code(text, vendor_key().public_key())


def license_code(
    count: int = 10,
    feature: str = "cad",
    version: str = "2.0",
    serial: str = "L1",
    majority: bool = True,
    distribution: str | None = None,
    expires: str = "2099-12-31",
    version_match: str = "range",
) -> str:
    return codes.sign_license(
        vendor_key(),
        feature=feature,
        version=version,
        count=count,
        expires=expires,
        serial=serial,
        majority=majority,
        distribution=distribution,
        version_match=version_match,
    )


def addon_code(of_serial: str = "L1", count: int = 5, serial: str = "A1") -> str:
    return codes.sign_addon(vendor_key(), of_serial=of_serial, count=count, serial=serial)


def lease_id(server: str, counter: int, client_id: str = "c1", incarnation: int = 1) -> str:
    nonce = hashlib.sha256(f"{server}/{counter}/{client_id}".encode()).digest()[:8]
    return leaseid.make_lease_id(
        LEASE_KEY, server=server, incarnation=incarnation, counter=counter, nonce=nonce, client_id=client_id
    )


class Pool:
    """A pool state driven entry by entry, as a committed log would."""

    def __init__(self, servers: tuple[str, ...] = SERVERS) -> None:
        self.state = PoolState.new(servers)
        self.epoch = 1

    def apply(self, *entries: log_entries.Entry) -> list[bool]:
        results = []
        for entry in entries:
            applied = self.state.apply(entry, self.state.index + 1, self.epoch, verify)
            assert not self.state.problems(), self.state.problems()
            results.append(applied.ok)
        return results

    def table(self, feature: str = "cad", version: str = "2.0") -> FeatureTable:
        table = self.state.feature(feature, version)
        assert table is not None
        return table

    def report(self, server: str, *changes: tuple[str, str, str], watermark: int = 0) -> bool:
        """``changes``: (kind, lease_id, client_id) with seqs after the last one."""
        seq = self.state.registry.report_seq.get(server, 0)
        built = tuple(
            log_entries.LeaseChange(
                seq=seq + i + 1, kind=kind, lease_id=lid, client_id=cid, feature="cad", version="2.0"
            )
            for i, (kind, lid, cid) in enumerate(changes)
        )
        return self.apply(log_entries.LeaseReport(server=server, changes=built, watermark=watermark))[0]


def members_of(count: int) -> tuple[dict[str, Member], list[int]]:
    """Three members (``SERVERS``) that applied a license of ``count`` seats,
    and the log index they are at (a one-item list ``apply_to_all`` advances)."""
    members = {name: Member.new(name, SERVERS, threshold=0.9, ttl_hold=30.0) for name in SERVERS}
    index = [0]
    apply_to_all(members, index, log_entries.AddLicense(code=license_code(count)))
    return members, index


def apply_to_all(members: dict[str, Member], index: list[int], entry: log_entries.Entry) -> dict[str, int]:
    """Every member applies the committed ``entry``; returns the consents given."""
    index[0] += 1
    given = {}
    for name, member in members.items():
        applied, consents = member.apply(entry, index[0], 1, verify, 10.0)
        assert applied.ok, (entry, applied)
        for consent in consents:
            given[name] = consent.given
    return given
