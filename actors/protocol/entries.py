"""Entries of the replicated pool log (DESIGN.md 2b item 1).

Every decision about shared state is one of these entries.  The leader proposes
them; once committed, every server applies them in log order to its copy of the
pool state (``actors.core.pool``).  They travel inside
``DistributionCriteriaSync`` and are stored in the log, so they are plain frozen
dataclasses with no absolute times (timers only *propose* entries).

``FREE_POOL`` stands for the free pool wherever a server name is expected.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "FREE_POOL",
    "Entry",
    "NoOp",
    "AddLicense",
    "AddAddon",
    "SetCriteria",
    "Grant",
    "TransferIntent",
    "TransferComplete",
    "TransferAbort",
    "LeaseChange",
    "LeaseReport",
    "FailoverSeat",
    "FailoverPending",
    "Fence",
    "Reclaim",
    "Rejoin",
    "ServerDown",
    "ForceRelease",
    "AdminNonce",
]

FREE_POOL = ""
"""The taker or source name that means the free pool."""


@dataclass(frozen=True)
class NoOp:
    """The first entry of every leader's epoch: committing it commits older
    entries indirectly (Raft's Figure 8 rule)."""

    leader: str


@dataclass(frozen=True)
class AddLicense:
    """Add a vendor-signed license code (claims 11, 12, 25, 26).

    Applying verifies the signature again; a bad code is a no-op.  A serial
    already present is a no-op.
    """

    code: str


@dataclass(frozen=True)
class AddAddon:
    """Add a vendor-signed add-on: ``count`` more seats for the feature of the
    code it names go to the free pool (claims 9, 10, 23, 24)."""

    code: str


@dataclass(frozen=True)
class SetCriteria:
    """Change the distribution criteria of a feature (claims 7, 8, 21, 22).

    Targets apply as seats come free: increases from the free pool on commit,
    cuts only through consented transfers.  Servers not named target 0.
    """

    feature: str
    version: str
    targets: tuple[tuple[str, int], ...]


@dataclass(frozen=True)
class Grant:
    """Increase ``server``'s allocation from a source that needs no consent:
    the free pool, or a server whose seats were reclaimed (claims 5, 19).
    Applies on commit; a grant the source can no longer cover is a no-op."""

    feature: str
    version: str
    server: str
    count: int
    source: str = FREE_POOL
    reason: str = "borrow"


@dataclass(frozen=True)
class TransferIntent:
    """Phase one of a cut to a live server's allocation (claim 33).

    ``count`` seats leave ``giver`` and are *in flight* until the giver's
    persisted consent lets the leader commit ``TransferComplete``.  With
    ``lease_id`` set it is a handover: the lease moves together with its seat.
    ``taker`` may be ``FREE_POOL`` (idle rebalancing, criteria change).
    """

    transfer_id: str
    feature: str
    version: str
    giver: str
    taker: str
    count: int
    lease_id: str | None = None
    client_id: str = ""
    client_seq: int = 0
    reason: str = "borrow"


@dataclass(frozen=True)
class TransferComplete:
    """Phase two: the giver consented to give ``given`` seats (0..count); the
    rest go back to it.  The taker gets its seats on commit."""

    transfer_id: str
    given: int


@dataclass(frozen=True)
class TransferAbort:
    """Roll a transfer back: every in-flight seat returns to the giver."""

    transfer_id: str


@dataclass(frozen=True)
class LeaseChange:
    """One numbered change to a server's live lease ids, as reported."""

    seq: int
    kind: str
    """``"grant"``, ``"release"`` or ``"expire"``."""
    lease_id: str
    client_id: str = ""
    feature: str = ""
    version: str = ""


@dataclass(frozen=True)
class LeaseReport:
    """A server's cumulative lease changes since its last committed report.

    Changes with ``seq`` at or below the committed report number are skipped,
    so a report may be re-sent until it is seen committed.
    """

    server: str
    changes: tuple[LeaseChange, ...]
    watermark: int = 0
    """The highest lease counter the server has issued: ids at or below it that
    are not live anywhere are dead (tombstoned) for ever."""
    generation: int = 0
    """How many ``Reclaim``/``ServerDown`` of this server it had applied when it
    built the report.  A report from before a reclaim is void: the leases it
    lists were dropped, and a late copy must never resurrect them."""


@dataclass(frozen=True)
class FailoverSeat:
    """Seat a failed-over lease at ``to_server`` (claims 13-15, 27-29).

    ``source`` is where its seat comes from: the fenced server that held it
    (the lease moves together with its seat), the free pool, or a reclaimed
    server.  Live sources go through ``TransferIntent`` instead.
    """

    lease_id: str
    client_id: str
    feature: str
    version: str
    to_server: str
    client_seq: int
    source: str


@dataclass(frozen=True)
class FailoverPending:
    """A fail-over update found no seat yet: hold it, seat it when one appears.
    Held in the log, so it survives a leader change (DESIGN.md 2b item 8)."""

    lease_id: str
    client_id: str
    feature: str
    version: str
    to_server: str
    client_seq: int


@dataclass(frozen=True)
class Fence:
    """``server``'s serving lease has certainly expired: it serves nothing
    majority-ruled until ``Rejoin`` (DESIGN.md 2b item 4)."""

    server: str
    incarnation: int


@dataclass(frozen=True)
class Reclaim:
    """T(1+rho) after the fence: the fenced server's majority-ruled seats become
    a *down server* source, and its leases there are dropped."""

    server: str


@dataclass(frozen=True)
class Rejoin:
    """The server has applied the current log and may serve again."""

    server: str
    incarnation: int


@dataclass(frozen=True)
class ServerDown:
    """Operator assertion (``licpool server down``): the server is really
    stopped.  Every seat it holds, ``--no-majority`` ones included, is reclaimed
    at once."""

    server: str


@dataclass(frozen=True)
class ForceRelease:
    """Operator force-release of a lease (``licpool release``): the lease id
    is dead for ever and its holder drops it."""

    lease_id: str


@dataclass(frozen=True)
class AdminNonce:
    """The nonce and timestamp of a signed admin change, committed in the same
    append just before the change itself, so that every server, and every later
    leader, refuses a replay of it (``actors.core.adminauth``).

    ``stamp`` is the operator's timestamp from the signature, not a server's
    clock: applying forgets nonces stamped more than ``NONCE_KEEP`` before the
    newest stamp applied, the same way on every server.
    """

    nonce: str
    stamp: float


Entry = (
    NoOp
    | AddLicense
    | AddAddon
    | SetCriteria
    | Grant
    | TransferIntent
    | TransferComplete
    | TransferAbort
    | LeaseReport
    | FailoverSeat
    | FailoverPending
    | Fence
    | Reclaim
    | Rejoin
    | ServerDown
    | ForceRelease
    | AdminNonce
)
"""Any pool log entry."""
