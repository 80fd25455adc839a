"""Fast plain-data form of flat dataclasses, for snapshots and journal records.

``dataclasses.asdict`` deep-copies every value through a recursive walk; for
the dataclasses a server holds one of per lease (``LocalLease``,
``RegisteredLease``, ``PendingUpdate``, ``LeaseChange``), whose fields are all
scalars, a shallow copy gives the same dict several times faster, and the
snapshot of a server holding 100,000 leases is mostly those
(docs/performance.md, "Persistence").
"""

from __future__ import annotations

from typing import Any

__all__ = ["flat"]


def flat(obj: Any) -> dict[str, Any]:
    """``asdict(obj)`` for a dataclass whose fields are all scalars (str, int,
    float, bool, None): a copy of its instance dict, in field order."""
    return dict(obj.__dict__)
