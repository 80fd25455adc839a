"""One license server's whole decision logic: the Raft-style replicated log,
leadership and leases, fencing, and the fast path, as one pure state machine.

API CONTRACT (the simulator and the Thespian shell are written against it):

    node, ready = ServerNode.boot(settings, durable, now)
    ready = node.receive(sender_server_name, msg, now)   # server -> server
    ready = node.from_client(ClientRef, msg, now)        # session/CLI -> server
    ready = node.tick(now)                               # at ready.wake_at
    image = node.snapshot()                              # plain dict, for compaction

``durable`` is ``None`` on first start, else ``(snapshot_or_None, records)``:
the last ``snapshot()`` written plus every record persisted after it, in
order.  ``now`` is the server's own monotonic clock in seconds.

Implementation in progress; see actors/core/raft.py.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from actors.core.pool import Verifier
from actors.core.timing import Timing

__all__ = ["NodeSettings"]


@dataclass(frozen=True)
class NodeSettings:
    name: str
    servers: tuple[str, ...]
    """Every server, in priority order."""
    timing: Timing
    verify: Verifier
    """Checks vendor signatures (the vendor public key, bound by the shell)."""
    lease_key: bytes
    """MAC key for lease ids, derived from the admin secret."""
    nonce: Callable[[], bytes]
    """8 fresh random bytes per lease id (os.urandom in the shell, seeded in the simulator)."""
    today: Callable[[], str]
    """Today's date, YYYY-MM-DD, for license expiry."""
    thresholds: Mapping[str, float] = field(default_factory=dict)
    """Per-server borrowing thresholds; missing servers use ``default_threshold``."""
    default_threshold: float = 0.9
    settings_hash: str = ""
    rebalance_idle: float = 60.0
    leader_preemption: bool = False
    compact_every: int = 500
    """Log entries kept before the applied prefix is compacted into a snapshot."""

    def threshold(self, server: str) -> float:
        return self.thresholds.get(server, self.default_threshold)
