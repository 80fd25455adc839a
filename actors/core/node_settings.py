"""The settings a server's core runs with: names, timing and injected capabilities.

The shell builds them from pool.toml; the simulator builds them directly.
Functions (signature check, randomness, today's date) are injected so that the
core itself reads no clock, key file or random source.
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
    queue_limit: int = 100
    """Queued checkouts one table's queue holds; the leader refuses one more (QUEUE_FULL)."""
    leader_preemption: bool = False
    compact_every: int = 500
    """Log entries kept before the applied prefix is compacted into a snapshot."""
    max_batch: int = 64
    """Most log entries per sync message."""
    admin_key: bytes | None = None
    """MAC key of signed admin changes (``adminauth.derive_admin_key``).  The
    shell always binds it (``actors.shell.views.node_settings``); ``None``, in
    the simulator and unit tests only, accepts unsigned admin changes."""
    wall: Callable[[], float] | None = None
    """The wall clock (seconds since the epoch) for admin timestamps; needed with ``admin_key``."""
    incarnation_floor: int = 0
    """The lowest incarnation this boot may take: the shell passes the wall clock's
    seconds at boot, so a server rebuilt on an empty disk starts above every
    earlier incarnation of it (docs/leadership.md, "Rejoin").  The simulator
    passes 0 (a restart is then persisted + 1, as before)."""

    def threshold(self, server: str) -> float:
        return self.thresholds.get(server, self.default_threshold)
