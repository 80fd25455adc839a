"""Peer messages are authenticated: every ``PeerEnvelope`` carries an HMAC.

    mac = HMAC-SHA256(peer_key, pool | sender | address_text(address) | repr(to_plain(body)))

* ``peer_key = HMAC-SHA256(admin_secret, "licpool peer messages v1|" + pool)``:
  every server holds the admin secret already (it checks admin changes), and
  the label keeps this key apart from the admin and lease-id keys taken from
  the same secret.
* ``repr(to_plain(body))`` is the text of the body's plain form
  (``actors.protocol.codec``): pickling keeps every type, every dict's order
  and every float exactly, so the receiver computes the same text.  The
  envelope's ``address`` is covered too: a forger cannot point a server at an
  address of its choosing under a real envelope.

There is no timestamp and no nonce, on purpose: a captured envelope replayed
later is a duplicated, delayed message, which every peer protocol already
survives (the simulator duplicates, delays and reorders them).  What the MAC
stops is a message nobody in the pool sent.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

from actors.protocol import admin as admin_msgs
from actors.protocol.codec import to_plain

__all__ = ["PEER_KEY_LABEL", "address_text", "derive_peer_key", "peer_mac", "seal", "genuine"]

PEER_KEY_LABEL = b"licpool peer messages v1"


def derive_peer_key(admin_secret: str, pool: str) -> bytes:
    """The MAC key of peer messages of pool ``pool``."""
    return hmac.new(admin_secret.encode("utf-8"), PEER_KEY_LABEL + b"|" + pool.encode("utf-8"), hashlib.sha256).digest()


def address_text(address: Any) -> str:
    """The same text for an actor address on every host: its kind and socket
    name.  (``str()`` of a Thespian address leaves out the IP when it is one of
    the *local* host's addresses, so the sender and a receiver on another host
    would disagree; the multihost test caught that.)"""
    details = getattr(address, "addressDetails", None)
    sockname = getattr(details, "sockname", None)
    if sockname is None:
        return str(address)
    return repr((type(details).__name__, tuple(sockname)))


def peer_mac(key: bytes, pool: str, sender: str, address: Any, body: Any) -> str:
    text = "|".join((pool, sender, address_text(address), repr(to_plain(body))))
    return hmac.new(key, text.encode("utf-8", "surrogatepass"), hashlib.sha256).hexdigest()


def seal(key: bytes, pool: str, sender: str, address: Any, body: Any) -> admin_msgs.PeerEnvelope:
    """An envelope of ``body`` from server ``sender`` (at ``address``), with its MAC."""
    return admin_msgs.PeerEnvelope(
        pool=pool, sender=sender, address=address, body=body, mac=peer_mac(key, pool, sender, address, body)
    )


def genuine(key: bytes, env: admin_msgs.PeerEnvelope) -> bool:
    """The envelope's MAC is right (constant-time compare)."""
    if not isinstance(env.mac, str):
        return False
    try:
        expected = peer_mac(key, env.pool, env.sender, env.address, env.body)
    except Exception:  # a body whose plain form cannot be built is not ours
        return False
    return hmac.compare_digest(env.mac.encode("ascii", "replace"), expected.encode("ascii"))
