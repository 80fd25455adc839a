"""License expiry, in days: what ``status``, the metrics and the warnings show.

A code's ``expires`` date is its **last valid day** (``codes.verify_code``
refuses it only when ``expires < today``).  The **expiry day** is the day after
it: the first day on which checkouts get ``EXPIRED`` and leases of the feature
are no longer renewed, so that each one ends at its own deadline.

``days_left(expires, today)`` counts the days, today included, on which the
license still works: 1 on its last valid day, 0 on the expiry day, negative
after.  ``ExpiryWatch`` says when to warn: once as the count reaches each of
``WARN_DAYS`` (30, 7 and 1 days left).  Pure: the caller passes ``today``
(``NodeSettings.today``, injected).
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

__all__ = ["WARN_DAYS", "ExpiryWarning", "ExpiryWatch", "days_left", "expired"]

WARN_DAYS = (30, 7, 1)
"""Days left at which a server warns (largest first)."""


def days_left(expires: str, today: str) -> int | None:
    """Days on which a license valid through ``expires`` still works, counting
    ``today``; ``None`` when either date is missing or not ISO (no expiry)."""
    try:
        end = datetime.date.fromisoformat(expires)
        now = datetime.date.fromisoformat(today)
    except (TypeError, ValueError):
        return None
    return (end - now).days + 1


def expired(expires: str, today: str) -> bool:
    """Whether ``today`` is on or after the expiry day (the day after ``expires``)."""
    left = days_left(expires, today)
    return left is not None and left <= 0


@dataclass(frozen=True)
class ExpiryWarning:
    feature: str
    version: str
    expires: str
    days_left: int
    threshold: int
    """The ``WARN_DAYS`` step reached (``days_left <= threshold``)."""


@dataclass
class ExpiryWatch:
    """Which warning steps were given, per (feature, version, expires).

    ``check`` returns the warnings due today: for each feature, the smallest
    step of ``WARN_DAYS`` that its days left have reached, if that step was not
    warned yet.  So a server warns once at 30, once at 7 and once at 1 day
    left; one that starts 20 days before expiry warns once (the 30-day step)
    and then at 7 and 1.  A new expiry date (a new code) starts afresh.  Work
    is done only when ``today`` changes.
    """

    warned: dict[tuple[str, str, str], int] = field(default_factory=dict)
    last_today: str = ""

    def check(self, features: Iterable[tuple[tuple[str, str], str]], today: str) -> list[ExpiryWarning]:
        """``features``: ((feature, version), expires) pairs."""
        if today == self.last_today:
            return []
        self.last_today = today
        due = []
        for (feature, version), expires in features:
            left = days_left(expires, today)
            if left is None or left <= 0:
                continue
            steps = [d for d in WARN_DAYS if left <= d]
            if not steps:
                continue
            step = min(steps)
            key = (feature, version, expires)
            if self.warned.get(key, WARN_DAYS[0] + 1) <= step:
                continue
            self.warned[key] = step
            due.append(ExpiryWarning(feature, version, expires, left, step))
        return due


def feature_expiries(tables: Mapping[tuple[str, str], object]) -> list[tuple[tuple[str, str], str]]:
    """((feature, version), expires) of every table with an ``expires`` attribute."""
    return [(key, str(getattr(table, "expires", ""))) for key, table in sorted(tables.items())]
