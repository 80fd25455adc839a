"""Peer messages are authenticated: every ``PeerEnvelope`` carries an HMAC.

Two forms, both under the same peer key:

* **sealed** (what servers send each other): the body is pickled by its
  sender into ``sealed``, and

      mac = HMAC-SHA256(peer_key, SEALED_LABEL | json([pool, sender, address_text(address)]) | sealed)

  The receiver checks the MAC over the bytes it got, and only then unpickles
  them (``wire.loads_sealed``: the same allowlist as every frame).  The MAC
  costs one pass of C over the bytes on each side.
* **plain** (what an older server sends and reads):

      mac = HMAC-SHA256(peer_key, pool | sender | address_text(address) | repr(to_plain(body)))

  ``repr(to_plain(body))`` is the text of the body's plain form
  (``actors.protocol.codec``): pickling keeps every type, every dict's order
  and every float exactly, so the receiver computes the same text.  Building
  it walks every value in Python, on both sides: with a few thousand leases
  held it was most of what a server spent on a peer's sync
  (docs/performance.md, "The 30-session run loses its leader under load").

A server sends a peer sealed envelopes once that peer has said it reads them
(``sealed_ok``, set on every envelope this version sends, in either form),
and plain ones until then; an older server never sets it, so it keeps getting
what it reads (rolling upgrade, architecture.md H4).

* ``peer_key = HMAC-SHA256(admin_secret, "licpool peer messages v1|" + pool)``:
  every server holds the admin secret already (it checks admin changes), and
  the label keeps this key apart from the admin and lease-id keys taken from
  the same secret.  The envelope's ``address`` is covered too: a forger cannot
  point a server at an address of its choosing under a real envelope.
* ``sealed_ok`` is not covered by a plain envelope's MAC (an older server
  could not check it): someone who can rewrite packets can make a server send
  a peer envelopes it cannot read, which is no more than dropping them.

There is no timestamp and no nonce, on purpose: a captured envelope replayed
later is a duplicated, delayed message, which every peer protocol already
survives (the simulator duplicates, delays and reorders them).  What the MAC
stops is a message nobody in the pool sent.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import pickle
from typing import Any

from actors.protocol import admin as admin_msgs
from actors.protocol.codec import to_plain
from actors.shell import wire

__all__ = [
    "PEER_KEY_LABEL",
    "SEALED_LABEL",
    "address_text",
    "derive_peer_key",
    "genuine",
    "opened",
    "peer_mac",
    "seal",
    "sealed_mac",
]

PEER_KEY_LABEL = b"licpool peer messages v1"
SEALED_LABEL = b"licpool sealed peer message v2"
_PICKLE_PROTOCOL = 5
"""Read by every Python the pool runs on (3.8 and later)."""


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
    """The MAC of a plain envelope."""
    text = "|".join((pool, sender, address_text(address), repr(to_plain(body))))
    return hmac.new(key, text.encode("utf-8", "surrogatepass"), hashlib.sha256).hexdigest()


def sealed_mac(key: bytes, pool: str, sender: str, address: Any, sealed: bytes) -> str:
    """The MAC of a sealed envelope: over the pickled body's bytes as sent."""
    head = json.dumps([pool, sender, address_text(address)]).encode("utf-8", "surrogatepass")
    mac = hmac.new(key, SEALED_LABEL + b"|", hashlib.sha256)
    mac.update(head + b"|")
    mac.update(sealed)
    return mac.hexdigest()


def seal(
    key: bytes, pool: str, sender: str, address: Any, body: Any, *, sealed: bool = False, reads_sealed: bool = True
) -> admin_msgs.PeerEnvelope:
    """An envelope of ``body`` from server ``sender`` (at ``address``), with its
    MAC: sealed if ``sealed`` (the receiver said it reads them), else plain.
    ``reads_sealed`` is the sender's own ``sealed_ok``."""
    if sealed:
        data = pickle.dumps(body, protocol=_PICKLE_PROTOCOL)
        carried, mac = None, sealed_mac(key, pool, sender, address, data)
    else:
        data, carried, mac = b"", body, peer_mac(key, pool, sender, address, body)
    return admin_msgs.PeerEnvelope(
        pool=pool,
        sender=sender,
        address=address,
        body=carried,
        sealed=data,
        sealed_ok=reads_sealed or sealed,
        mac=mac,
    )


def genuine(key: bytes, env: admin_msgs.PeerEnvelope) -> bool:
    """The envelope's MAC is right (constant-time compare), in either form."""
    if not isinstance(env.mac, str):
        return False
    try:
        if env.sealed:
            expected = sealed_mac(key, env.pool, env.sender, env.address, env.sealed)
        else:
            expected = peer_mac(key, env.pool, env.sender, env.address, env.body)
    except Exception:  # a body whose plain form cannot be built is not ours
        return False
    return hmac.compare_digest(env.mac.encode("ascii", "replace"), expected.encode("ascii"))


def opened(env: admin_msgs.PeerEnvelope) -> Any:
    """The body of a genuine envelope: unpickled (allowlisted) if sealed.  Raises
    whatever bad bytes make the unpickler raise; call ``genuine`` first."""
    return wire.loads_sealed(env.sealed) if env.sealed else env.body
