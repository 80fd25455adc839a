"""The distribution table of one feature: who holds how many seats.

For every feature, at every committed version, the table invariant holds:

    sum(allocations) + free pool + seats in flight == licensed total

``FeatureTable`` is plain mutable data owned by ``PoolState``; it is changed only
by applying committed log entries.  Pure: no clock, no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["FeatureKey", "FeatureTable", "feature_label"]

FeatureKey = tuple[str, str]
"""(feature, version), the version as its codes write it.  Which tables serve
a checkout's version is decided by ``actors.core.versions``."""


def feature_label(key: FeatureKey) -> str:
    """``cad:2.0``, the CLI's spelling of a feature."""
    return f"{key[0]}:{key[1]}"


@dataclass
class FeatureTable:
    """Allocations of one (feature, version) across the pool."""

    feature: str
    version: str
    total: int = 0
    """Licensed seats: the sum of the counts of its signed codes and add-ons."""
    majority: bool = True
    """Majority-ruled unless its code was issued with ``--no-majority``."""
    expires: str = ""
    """The latest expiry date of its codes (ISO), checked by servers at grant time."""
    alloc: dict[str, int] = field(default_factory=dict)
    """Seats each server holds (its allocation), 0 included."""
    targets: dict[str, int] = field(default_factory=dict)
    """The distribution criteria: where seats belong when idle (claim 32)."""
    free: int = 0
    """The free pool."""
    in_flight: int = 0
    """Seats cut from a giver whose transfer has not completed (claim 33)."""
    exact: bool = False
    """Its codes were signed ``version_match = "exact"``: it serves requests for
    its own version only; otherwise for its version and every lower one."""
    weight: int = 1
    """Token weight (issue 14): seats one checkout of count 1 takes (its first code's signed ``weight``)."""
    linger: float = 0.0
    """Seconds a released lease stays held (its first code's signed ``linger``); a checkout may set its own."""
    idle_timeout: float = 0.0
    """Admin policy (``SetIdlePolicy``): a lease its app marked idle this long is reclaimed (0: never)."""

    @property
    def key(self) -> FeatureKey:
        return (self.feature, self.version)

    def allocated(self, server: str) -> int:
        return self.alloc.get(server, 0)

    def problems(self) -> list[str]:
        """Every broken invariant of this table, as readable sentences."""
        out = []
        label = feature_label(self.key)
        counted = sum(self.alloc.values()) + self.free + self.in_flight
        if counted != self.total:
            out.append(
                f"{label}: allocations {sum(self.alloc.values())} + free {self.free} + "
                f"in flight {self.in_flight} = {counted}, licensed {self.total}"
            )
        negative = {k: v for k, v in self.alloc.items() if v < 0}
        if negative or self.free < 0 or self.in_flight < 0:
            out.append(f"{label}: negative count (alloc {negative}, free {self.free}, in flight {self.in_flight})")
        return out

    def to_plain(self) -> dict[str, Any]:
        return {
            "feature": self.feature,
            "version": self.version,
            "total": self.total,
            "majority": self.majority,
            "expires": self.expires,
            "alloc": dict(self.alloc),
            "targets": dict(self.targets),
            "free": self.free,
            "in_flight": self.in_flight,
            "exact": self.exact,
            **({"weight": self.weight} if self.weight != 1 else {}),
            **({"linger": self.linger} if self.linger else {}),
            **({"idle_timeout": self.idle_timeout} if self.idle_timeout else {}),
        }

    @classmethod
    def from_plain(cls, data: dict[str, Any]) -> FeatureTable:
        return cls(
            feature=data["feature"],
            version=data["version"],
            total=data["total"],
            majority=data.get("majority", True),
            expires=data.get("expires", ""),
            alloc=dict(data.get("alloc", {})),
            targets=dict(data.get("targets", {})),
            free=data.get("free", 0),
            in_flight=data.get("in_flight", 0),
            exact=data.get("exact", False),
            weight=int(data.get("weight", 1)),
            linger=float(data.get("linger", 0.0)),
            idle_timeout=float(data.get("idle_timeout", 0.0)),
        )
