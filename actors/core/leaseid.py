"""Lease ids: unguessable, bound to their client, checkable by any server.

This module owns the lease id format (security.md):

    {server}.{incarnation}.{counter}.{nonce_hex}.{mac_hex}

where ``mac = HMAC-SHA256(lease_key, "{server}|{incarnation}|{counter}|{nonce_hex}|{client_id}")``
truncated to 16 bytes.  The lease key is derived from the pool's admin secret,
so every server can check a fail-over update for a lease it never granted,
without asking the server that did.  The client id is bound by the MAC but not
written in the id.

Pure: the caller supplies the 8 random nonce bytes; no clock, no I/O.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Iterable
from dataclasses import dataclass

__all__ = [
    "LEASE_KEY_LABEL",
    "MAC_BYTES",
    "NONCE_BYTES",
    "LeaseIdParts",
    "derive_lease_key",
    "ids_digest",
    "lease_id_valid_for",
    "make_lease_id",
    "parse_lease_id",
]

LEASE_KEY_LABEL = b"licpool lease ids v1"
DIGEST_BYTES = 16
"""A heartbeat's digest of its lease ids: 128 bits, so two different lists never share one in practice."""
"""Domain separation: the lease key differs from any other key taken from the admin secret."""
NONCE_BYTES = 8
MAC_BYTES = 16

_SERVER = re.compile(r"[A-Za-z0-9_-]+")
_NUMBER = re.compile(r"0|[1-9][0-9]*")
"""Canonical decimal: one lease has exactly one id string."""
_NONCE_HEX = re.compile(f"[0-9a-f]{{{2 * NONCE_BYTES}}}")
_MAC_HEX = re.compile(f"[0-9a-f]{{{2 * MAC_BYTES}}}")


@dataclass(frozen=True)
class LeaseIdParts:
    """The fields of a lease id, as parsed (the MAC is not checked here)."""

    server: str
    """The granting server's config name."""
    incarnation: int
    """The granting server's incarnation (bumped on every restart)."""
    counter: int
    """Per-incarnation grant counter."""
    nonce_hex: str
    mac_hex: str


def derive_lease_key(admin_secret: str) -> bytes:
    """The pool's lease key: HMAC-SHA256 keyed by a fixed label over the admin secret
    (HKDF-Extract with the label as salt)."""
    if not admin_secret:
        raise ValueError("the admin secret is empty")
    return hmac.new(LEASE_KEY_LABEL, admin_secret.encode("utf-8"), hashlib.sha256).digest()


def _mac_hex(key: bytes, server: str, incarnation: int, counter: int, nonce_hex: str, client_id: str) -> str:
    message = f"{server}|{incarnation}|{counter}|{nonce_hex}|{client_id}".encode()
    return hmac.new(key, message, hashlib.sha256).digest()[:MAC_BYTES].hex()


def _check_number(value: object, field: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"lease id {field} must be a non-negative integer, got {value!r}")
    return value


def make_lease_id(
    key: bytes,
    *,
    server: str,
    incarnation: int,
    counter: int,
    nonce: bytes,
    client_id: str,
) -> str:
    """A new lease id for ``client_id``; ``nonce`` must be 8 fresh random bytes."""
    if not isinstance(server, str) or not _SERVER.fullmatch(server):
        raise ValueError(f"server name must match [A-Za-z0-9_-]+, got {server!r}")
    _check_number(incarnation, "incarnation")
    _check_number(counter, "counter")
    if not isinstance(nonce, bytes) or len(nonce) != NONCE_BYTES:
        raise ValueError(f"nonce must be {NONCE_BYTES} bytes")
    if not isinstance(client_id, str):
        raise ValueError(f"client_id must be text, got {client_id!r}")
    nonce_hex = nonce.hex()
    mac_hex = _mac_hex(key, server, incarnation, counter, nonce_hex, client_id)
    return f"{server}.{incarnation}.{counter}.{nonce_hex}.{mac_hex}"


def parse_lease_id(lease_id: str) -> LeaseIdParts:
    """Split a lease id into its fields; ValueError if it is not well formed."""
    if not isinstance(lease_id, str):
        raise ValueError(f"lease id must be text, got {type(lease_id).__name__}")
    parts = lease_id.split(".")
    if len(parts) != 5:
        raise ValueError(f"malformed lease id {lease_id!r}: expected 5 dot-separated fields")
    server, incarnation, counter, nonce_hex, mac_hex = parts
    if not (
        _SERVER.fullmatch(server)
        and _NUMBER.fullmatch(incarnation)
        and _NUMBER.fullmatch(counter)
        and _NONCE_HEX.fullmatch(nonce_hex)
        and _MAC_HEX.fullmatch(mac_hex)
    ):
        raise ValueError(f"malformed lease id {lease_id!r}")
    return LeaseIdParts(server, int(incarnation), int(counter), nonce_hex, mac_hex)


def lease_id_valid_for(key: bytes, lease_id: str, client_id: str) -> bool:
    """True when ``lease_id`` was made under ``key`` for ``client_id``."""
    try:
        parts = parse_lease_id(lease_id)
    except ValueError:
        return False
    if not isinstance(client_id, str):
        return False
    expected = _mac_hex(key, parts.server, parts.incarnation, parts.counter, parts.nonce_hex, client_id)
    return hmac.compare_digest(expected, parts.mac_hex)


def ids_digest(lease_ids: Iterable[str]) -> str:
    """The digest a steady heartbeat sends instead of its lease ids, and its ack
    echoes for "all renewed": BLAKE2b-128 of the sorted ids, one per line (an
    id never holds a newline), as 32 hex digits.  Order does not matter."""
    text = "\n".join(sorted(lease_ids)).encode("utf-8")
    return hashlib.blake2b(text, digest_size=DIGEST_BYTES).hexdigest()
