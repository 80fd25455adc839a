"""Fast plain-data form of flat dataclasses, for snapshots and journal records.

``dataclasses.asdict`` deep-copies every value through a recursive walk; for
the dataclasses a server holds one of per lease (``LocalLease``,
``RegisteredLease``, ``PendingUpdate``, ``LeaseChange``), whose fields are all
scalars, a shallow copy gives the same dict several times faster, and the
snapshot of a server holding 100,000 leases is mostly those
(docs/performance.md, "Persistence").
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["flat", "ADDED_DEFAULTS"]

ADDED_DEFAULTS: Mapping[str, Any] = {"seats": 1, "linger": 0.0, "lingering": False, "idle_since": None}
"""Fields added by issue 14 (multi-seat, linger, idle), with their defaults.  At
their default they are left out of the plain form, so a single-seat lease is
stored exactly as before (an older licpool reads it) and old data loads."""


def flat(obj: Any, omit: Mapping[str, Any] = ADDED_DEFAULTS) -> dict[str, Any]:
    """``asdict(obj)`` for a dataclass whose fields are all scalars (str, int,
    float, bool, None): a copy of its instance dict, in field order, without
    the ``omit`` fields that hold their default."""
    data = dict(obj.__dict__)
    for name, default in omit.items():
        if name in data and data[name] == default and type(data[name]) is type(default):
            del data[name]
    return data
