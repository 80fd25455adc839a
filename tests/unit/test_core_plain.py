"""``flat`` must stay equal to ``dataclasses.asdict`` for the per-lease dataclasses."""

from __future__ import annotations

import dataclasses

import pytest

from actors.core.leases import LocalLease
from actors.core.plain import ADDED_DEFAULTS, flat
from actors.core.registry import PendingUpdate, RegisteredLease
from actors.protocol.entries import LeaseChange

SCALAR = {"str", "int", "float", "bool", "None", "str | None", "int | None", "float | None"}


@pytest.mark.parametrize(
    "obj",
    [
        LocalLease("s1.1.1.x.y", "c1", "sess", "cad", "2.0", 12.5, granted_at=1.0, revoked=True, client_seq=3),
        RegisteredLease("s1.1.1.x.y", "c1", "cad", "2.0", "s2", 4, False),
        PendingUpdate("s1.1.1.x.y", "c1", "cad", "2.0", "s3", 7),
        LeaseChange(seq=9, kind="grant", lease_id="s1.1.1.x.y", client_id="c1", feature="cad", version="2.0"),
    ],
)
def test_flat_is_asdict_for_flat_dataclasses(obj: LocalLease | RegisteredLease | PendingUpdate | LeaseChange) -> None:
    assert flat(obj, {}) == dataclasses.asdict(obj)
    assert list(flat(obj, {})) == [f.name for f in dataclasses.fields(obj)]
    # Issue 14's fields are left out at their default: a single-seat lease is stored as before.
    assert flat(obj) == {k: v for k, v in dataclasses.asdict(obj).items() if k not in ADDED_DEFAULTS}
    assert type(obj)(**flat(obj)) == obj
    for f in dataclasses.fields(obj):
        assert str(f.type) in SCALAR, f"{type(obj).__name__}.{f.name} is {f.type}: flat() would share it"


def test_flat_keeps_the_added_fields_that_differ_from_their_default() -> None:
    lease = LocalLease("s1.1.1.x.y", "c1", "sess", "cad", "2.0", 12.5, seats=3, linger=5.0, lingering=True)
    data = flat(lease)
    assert (data["seats"], data["linger"], data["lingering"]) == (3, 5.0, True)
    assert "idle_since" not in data
    assert LocalLease(**data) == lease
