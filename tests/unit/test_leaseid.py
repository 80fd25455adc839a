"""Lease ids: format, client binding, and refusal of forgeries (actors.core.leaseid)."""

from __future__ import annotations

import re

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from actors.core.leaseid import (
    LeaseIdParts,
    derive_lease_key,
    lease_id_valid_for,
    make_lease_id,
    parse_lease_id,
)

KEY = derive_lease_key("x" * 40)
NONCE = bytes(range(8))


def lease(**overrides: object) -> str:
    fields: dict[str, object] = {
        "server": "s1",
        "incarnation": 3,
        "counter": 17,
        "nonce": NONCE,
        "client_id": "ws17/cad",
    }
    fields.update(overrides)
    return make_lease_id(KEY, **fields)  # type: ignore[arg-type]  # tests pass wrongly typed fields on purpose


LEASE = lease()


def test_format() -> None:
    assert re.fullmatch(r"s1\.3\.17\.0001020304050607\.[0-9a-f]{32}", LEASE)


def test_parse_round_trip() -> None:
    parts = parse_lease_id(LEASE)
    assert parts == LeaseIdParts("s1", 3, 17, NONCE.hex(), LEASE.rsplit(".", 1)[1])


def test_valid_only_for_its_client_and_key() -> None:
    assert lease_id_valid_for(KEY, LEASE, "ws17/cad")
    assert not lease_id_valid_for(KEY, LEASE, "ws18/cad")
    assert not lease_id_valid_for(KEY, LEASE, "")
    assert not lease_id_valid_for(derive_lease_key("y" * 40), LEASE, "ws17/cad")


def test_any_server_with_the_key_can_check() -> None:
    other_server_key = derive_lease_key("x" * 40)
    assert lease_id_valid_for(other_server_key, LEASE, "ws17/cad")


def test_client_ids_with_separators_are_bound() -> None:
    for client_id in ("a|b", "a.b", "", "ü/ß", "a|b|c"):
        lease_id = lease(client_id=client_id)
        assert lease_id_valid_for(KEY, lease_id, client_id)
    assert not lease_id_valid_for(KEY, lease(client_id="a|b"), "a")


def test_nonce_makes_ids_distinct() -> None:
    assert lease(nonce=b"\x00" * 8) != lease(nonce=b"\x00" * 7 + b"\x01")


def test_derive_lease_key() -> None:
    assert len(KEY) == 32
    assert derive_lease_key("x" * 40) == KEY
    assert derive_lease_key("x" * 41) != KEY
    with pytest.raises(ValueError):
        derive_lease_key("")


@pytest.mark.parametrize(
    "overrides",
    [
        {"server": "s.1"},
        {"server": ""},
        {"server": "a|b"},
        {"incarnation": -1},
        {"incarnation": True},
        {"counter": -5},
        {"counter": 1.0},
        {"nonce": b"short"},
        {"nonce": b"\x00" * 9},
        {"nonce": "0" * 8},
        {"client_id": None},
    ],
)
def test_make_refuses_bad_fields(overrides: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        lease(**overrides)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "s1.3.17.0001020304050607",
        LEASE + ".x",
        LEASE.replace("s1.", "s 1.", 1),
        LEASE.replace(".3.", ".03.", 1),
        LEASE.replace(".3.", ".-3.", 1),
        LEASE.replace(".3.", ".+3.", 1),
        LEASE.replace("0001020304050607", "0001020304050607".upper().replace("0", "A", 1), 1),
        LEASE[:-1],
        LEASE + "0",
        LEASE[:-1] + "G",
        LEASE.upper(),
    ],
)
def test_parse_refuses_malformed_ids(text: str) -> None:
    with pytest.raises(ValueError):
        parse_lease_id(text)
    assert not lease_id_valid_for(KEY, text, "ws17/cad")


def test_non_text_is_refused() -> None:
    with pytest.raises(ValueError):
        parse_lease_id(None)  # type: ignore[arg-type]  # non-text on purpose
    assert not lease_id_valid_for(KEY, None, "ws17/cad")  # type: ignore[arg-type]  # non-text on purpose
    assert not lease_id_valid_for(KEY, LEASE, None)  # type: ignore[arg-type]  # non-text on purpose


@given(st.data(), st.characters(codec="utf-8"))
def test_any_single_character_change_is_refused(data: st.DataObject, replacement: str) -> None:
    index = data.draw(st.integers(0, len(LEASE) - 1))
    assume(replacement != LEASE[index])
    assert not lease_id_valid_for(KEY, LEASE[:index] + replacement + LEASE[index + 1 :], "ws17/cad")


@given(
    st.from_regex(r"[A-Za-z0-9_-]{1,12}", fullmatch=True),
    st.integers(0, 2**40),
    st.integers(0, 2**40),
    st.binary(min_size=8, max_size=8),
    st.text(),
)
def test_made_ids_parse_and_check(server: str, incarnation: int, counter: int, nonce: bytes, client: str) -> None:
    lease_id = make_lease_id(
        KEY, server=server, incarnation=incarnation, counter=counter, nonce=nonce, client_id=client
    )
    parts = parse_lease_id(lease_id)
    assert (parts.server, parts.incarnation, parts.counter, parts.nonce_hex) == (
        server,
        incarnation,
        counter,
        nonce.hex(),
    )
    assert lease_id_valid_for(KEY, lease_id, client)
    assert not lease_id_valid_for(KEY, lease_id, client + "x")
