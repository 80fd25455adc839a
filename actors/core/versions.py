"""Which license versions serve a checkout's version, and which one it takes.

A feature's seats live in distribution tables keyed by (feature, version), one
per licensed version.  A request for version ``R`` may be served by a table of
version ``V`` when (docs/licenses.md, "Versions"):

* the table's codes are *range* codes (the default) and ``V >= R``, or
* the table's codes are *exact* codes (``version_match = "exact"``) and ``V == R``.

Versions compare as dotted numbers: ``2.10 > 2.9``, ``2 == 2.0 == 2.0.0``
(a missing component is 0), leading zeros do not count (``2.01 == 2.1``).  A
version that is not dotted decimal digits (``2.0b``, ``v3``) compares by its
exact text only: it serves and is served by the same text and nothing else.

Among the tables that serve a request, the lowest version is taken; a higher
one only once every lower one has no seat anywhere in the pool.  A request is
always served by one seat of one table, so matching never adds seats.

Pure: no clock, no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

__all__ = ["MAX_LENGTH", "Offer", "parse_version", "version_order", "serves", "serving", "choose"]

_NUMERIC = re.compile(r"[0-9]+(?:\.[0-9]+)*")
MAX_LENGTH = 64
"""Longer versions (no code can carry one) compare by exact text only."""


def parse_version(version: str) -> tuple[int, ...] | None:
    """Dotted decimal components without trailing zeros (``"2.10.0"`` ->
    ``(2, 10)``, ``"0"`` -> ``()``); None for a version that is not dotted
    decimal digits, which compares by exact text only."""
    if not isinstance(version, str) or len(version) > MAX_LENGTH or not _NUMERIC.fullmatch(version):
        return None
    parts = [int(x) for x in version.split(".")]
    while parts and parts[-1] == 0:
        parts.pop()
    return tuple(parts)


def version_order(version: str) -> tuple[int, tuple[int, ...], str]:
    """A sort key: numeric versions by value (ties by text, so the order is
    total and deterministic), then the non-numeric ones by text."""
    parsed = parse_version(version)
    return (0, parsed, version) if parsed is not None else (1, (), version)


def serves(license_version: str, exact: bool, requested: str) -> bool:
    """Does a table of ``license_version`` (with exact-match codes when
    ``exact``) serve a request for ``requested``?"""
    if license_version == requested:
        return True
    have, want = parse_version(license_version), parse_version(requested)
    if have is None or want is None:
        return False
    return have == want if exact else have >= want


@dataclass(frozen=True)
class Offer:
    """One table of the requested feature, as a server sees it."""

    version: str
    exact: bool = False
    """Its codes were issued with ``version_match = "exact"``."""
    spare: int = 0
    """Seats of it free at this server now."""
    exhausted: bool = False
    """The leader found no seat of it anywhere in the pool (a borrow round came
    back empty, and this server has applied the log that far)."""


def serving(requested: str, tables: Iterable[tuple[str, bool]]) -> list[str]:
    """The versions of ``(version, exact)`` tables that serve ``requested``, lowest first."""
    return sorted({v for v, exact in tables if serves(v, exact, requested)}, key=version_order)


def choose(requested: str, offers: Iterable[Offer]) -> Offer | None:
    """The table a request goes to: the lowest serving version, unless it has
    no spare seat here and none anywhere, then the next higher one, and so on.

    The returned offer either has a spare seat (grant from it) or not (borrow
    for it).  None: no table serves the request, or every one that does is
    exhausted.
    """
    for offer in sorted(
        (o for o in offers if serves(o.version, o.exact, requested)), key=lambda o: version_order(o.version)
    ):
        if offer.spare > 0 or not offer.exhausted:
            return offer
    return None
