"""Admin changes are signed: an HMAC under the pool's admin key, a timestamp and a nonce.

Every state-changing admin command (``license add``, ``allocations add``,
``distribution set``, ``release``, ``server down``) carries an ``AdminAuth``:

    mac = HMAC-SHA256(admin_key, canonical(msg) | "{timestamp:.6f}" | nonce)

* ``admin_key = HMAC-SHA256(admin_secret, "licpool admin changes v1|" + pool)``:
  the secret is the stripped content of ``[pool] admin_key_file``; the pool
  name binds a signature to one pool, and the label keeps this key apart from
  the lease-id key taken from the same secret (``leaseid.derive_lease_key``).
* ``canonical(msg)`` is compact, key-sorted JSON of ``[class name, fields]``
  without ``sender``, ``epoch`` (a forwarding server rewrites them) and
  ``auth``.  Only str, int, float, bool and None field values are admitted;
  anything else is refused as malformed, so no peer-chosen object is encoded.
* ``timestamp`` is the operator's wall clock (seconds since the epoch) and
  ``nonce`` 32 lowercase hex digits (16 random bytes).

``check`` is run by the server that receives the change from the CLI and again
by the leader (``serving.ClientSide.admin_from``, ``leading.LeaderDuties.on_admin``):
MAC, then the timestamp within ``WINDOW`` of the checking server's clock, then
the nonce against the ones remembered.  The leader commits an ``AdminNonce``
entry in the same append as the change, so the nonces are part of the
replicated state: they survive a leader change and a restart.  Nonces are
forgotten ``NONCE_KEEP`` after the newest admin timestamp applied, by then a
replay is outside every server's window (docs/security.md).

Pure: no clock, no random source (the caller passes both in).
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import json
import math
import re
from typing import Any

from actors.protocol import pool as pool_msgs

__all__ = [
    "ADMIN_KEY_LABEL",
    "NONCE_KEEP",
    "WINDOW",
    "AdminRefused",
    "canonical",
    "check",
    "derive_admin_key",
    "mac",
    "sign",
]

ADMIN_KEY_LABEL = b"licpool admin changes v1"
WINDOW = 120.0
"""Seconds an admin change's timestamp may differ from the checking server's clock."""
NONCE_KEEP = 2 * WINDOW + 60.0
"""Seconds (of admin timestamps) a used nonce is remembered in the replicated state."""

_NONCE = re.compile(r"[0-9a-f]{32}")
_MAC = re.compile(r"[0-9a-f]{64}")
_UNSIGNED = frozenset({"sender", "epoch", "auth"})
_SCALARS = (str, int, float, bool, type(None))


class AdminRefused(ValueError):
    """An admin change failed its check; ``str()`` is the one-line reason."""


def derive_admin_key(admin_secret: str, pool: str) -> bytes:
    """The MAC key of admin changes of pool ``pool``."""
    return hmac.new(
        admin_secret.encode("utf-8"), ADMIN_KEY_LABEL + b"|" + pool.encode("utf-8"), hashlib.sha256
    ).digest()


def canonical(msg: Any) -> bytes:
    """The signed encoding of an admin message; ``AdminRefused`` if it is malformed."""
    if not dataclasses.is_dataclass(msg) or isinstance(msg, type):
        raise AdminRefused("malformed admin change: not a protocol message")
    fields: dict[str, Any] = {}
    for f in dataclasses.fields(msg):
        if f.name in _UNSIGNED:
            continue
        value = getattr(msg, f.name)
        if not isinstance(value, _SCALARS) or (isinstance(value, float) and not math.isfinite(value)):
            raise AdminRefused(f"malformed admin change: field {f.name} is a {type(value).__name__}")
        fields[f.name] = value
    return json.dumps([type(msg).__name__, fields], sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode(
        "ascii"
    )


def mac(key: bytes, msg: Any, timestamp: float, nonce: str) -> str:
    """The hex HMAC of ``msg`` signed at ``timestamp`` with ``nonce``."""
    data = canonical(msg) + b"|" + f"{timestamp:.6f}".encode("ascii") + b"|" + nonce.encode("ascii")
    return hmac.new(key, data, hashlib.sha256).hexdigest()


def sign(key: bytes, msg: Any, timestamp: float, nonce: str) -> Any:
    """``msg`` with its ``auth`` set (``nonce``: 32 hex digits from a random source)."""
    if not _NONCE.fullmatch(nonce):
        raise ValueError("nonce must be 32 lowercase hex digits")
    return dataclasses.replace(
        msg, auth=pool_msgs.AdminAuth(timestamp=timestamp, nonce=nonce, mac=mac(key, msg, timestamp, nonce))
    )


def check(key: bytes, msg: Any, now_wall: float, used: Any = frozenset()) -> pool_msgs.AdminAuth:
    """The message's ``AdminAuth`` if it is genuine, fresh and unused; else
    ``AdminRefused`` with the reason.  ``used`` answers ``nonce in used``."""
    auth = getattr(msg, "auth", None)
    if auth is None:
        raise AdminRefused("admin change refused: not signed (the CLI signs with the config's admin_key_file)")
    if not (
        isinstance(auth, pool_msgs.AdminAuth)
        and isinstance(auth.timestamp, (int, float))
        and not isinstance(auth.timestamp, bool)
        and math.isfinite(auth.timestamp)
        and isinstance(auth.nonce, str)
        and _NONCE.fullmatch(auth.nonce)
        and isinstance(auth.mac, str)
        and _MAC.fullmatch(auth.mac)
    ):
        raise AdminRefused("admin change refused: malformed signature")
    expected = mac(key, msg, float(auth.timestamp), auth.nonce)
    if not hmac.compare_digest(expected, auth.mac):
        raise AdminRefused("admin change refused: bad signature (wrong admin key, or the message was altered)")
    skew = float(auth.timestamp) - now_wall
    if abs(skew) > WINDOW:
        raise AdminRefused(
            f"admin change refused: its timestamp is {skew:+.0f} s off this server's clock "
            f"(allowed: {WINDOW:.0f} s); a replay, or check the clocks"
        )
    if auth.nonce in used:
        raise AdminRefused("admin change refused: replayed (its nonce was used before)")
    return auth
