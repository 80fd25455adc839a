"""Entries of the replicated pool log (leadership.md M1).

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
    "QueueJoin",
    "QueueLeave",
    "SetIdlePolicy",
]

FREE_POOL = ""
"""The taker or source name that means the free pool."""


@dataclass(frozen=True, kw_only=True)
class NoOp:
    """The first entry of every leader's epoch: committing it commits older
    entries indirectly (Raft's Figure 8 rule)."""

    leader: str
    """The config name of the leader that opened its epoch with it."""


@dataclass(frozen=True, kw_only=True)
class AddLicense:
    """Add a vendor-signed license code (claims 11, 12, 25, 26).

    Applying verifies the signature again; a bad code is a no-op.  A serial
    already present is a no-op.
    """

    code: str
    """The vendor-signed license code, as text (verified again by every server on apply)."""


@dataclass(frozen=True, kw_only=True)
class AddAddon:
    """Add a vendor-signed add-on: ``count`` more seats for the feature of the
    code it names go to the free pool (claims 9, 10, 23, 24)."""

    code: str
    """The vendor-signed add-on, as text; it names the serial of the license code it extends."""


@dataclass(frozen=True, kw_only=True)
class SetCriteria:
    """Change the distribution criteria of a feature (claims 7, 8, 21, 22).

    Targets apply as seats come free: increases from the free pool on commit,
    cuts only through consented transfers.  Servers not named target 0.
    """

    feature: str
    version: str
    targets: tuple[tuple[str, int], ...]
    """(server name, target seats) pairs; servers not listed target 0, and the sum may not exceed the feature's
    total."""


@dataclass(frozen=True, kw_only=True)
class Grant:
    """Increase ``server``'s allocation from a source that needs no consent:
    the free pool, or a server whose seats were reclaimed (claims 5, 19).
    Applies on commit; a grant the source can no longer cover is a no-op."""

    feature: str
    version: str
    server: str
    """The config name of the server whose allocation grows."""
    count: int
    """Seats granted, at least 1."""
    source: str = FREE_POOL
    """Where the seats come from: ``FREE_POOL``, or a server whose seats may be taken without its consent (down, or
    ``ServerDown`` for ``--no-majority`` seats)."""
    reason: str = "borrow"
    """Why it was planned, for the event log: ``"borrow"`` or ``"criteria"`` (a refill up to the target)."""


@dataclass(frozen=True, kw_only=True)
class TransferIntent:
    """Phase one of a cut to a live server's allocation (claim 33).

    ``count`` seats leave ``giver`` and are *in flight* until the giver's
    persisted consent lets the leader commit ``TransferComplete``.  With
    ``lease_id`` set it is a handover: the lease moves together with its seat.
    ``taker`` may be ``FREE_POOL`` (idle rebalancing, criteria change).
    """

    transfer_id: str
    """``"<epoch>.<n>"``: the planning leader's epoch and counter; names the transfer until its ``TransferComplete``
    or ``TransferAbort``."""
    feature: str
    version: str
    giver: str
    """The config name of the live server that gives the seats (and must consent)."""
    taker: str
    """The config name of the server that gets them on completion, or ``FREE_POOL``."""
    count: int
    """Seats in flight, at least 1; with ``lease_id``, exactly the lease's seats."""
    lease_id: str | None = None
    """A lease moving to ``taker``: with reason ``"handover"`` the giver holds it and gives it with its seat; with
    ``"failover"`` the giver gives a spare seat and the lease is seated at the taker on completion.  None: plain
    seats."""
    client_id: str = ""
    """With ``lease_id``: the client the lease must belong to."""
    client_seq: int = 0
    """With ``lease_id``: the client's fail-over sequence number; the giver consents to a handover only if it is
    newer than the one that placed the lease there."""
    reason: str = "borrow"
    """``"borrow"``, ``"handover"``, ``"failover"`` or ``"rebalance"`` (idle seats back to the free pool); the giver
    decides a ``"handover"`` by the lease, the others by its spare seats."""


@dataclass(frozen=True, kw_only=True)
class TransferComplete:
    """Phase two: the giver consented to give ``given`` seats (0..count); the
    rest go back to it.  The taker gets its seats on commit."""

    transfer_id: str
    """The ``TransferIntent`` completed."""
    given: int
    """Seats the giver consented to give, 0..count; the rest return to it."""


@dataclass(frozen=True, kw_only=True)
class TransferAbort:
    """Roll a transfer back: every in-flight seat returns to the giver."""

    transfer_id: str
    """The ``TransferIntent`` rolled back."""


@dataclass(frozen=True, kw_only=True)
class LeaseChange:
    """One numbered change to a server's live lease ids, as reported."""

    seq: int
    """The reporting server's change counter: numbers its changes 1, 2, ... across reports."""
    kind: str
    """``"grant"``, ``"release"`` or ``"expire"``."""
    lease_id: str
    """The lease that changed."""
    client_id: str = ""
    """The lease's client (the registry records it on ``grant``)."""
    feature: str = ""
    """The lease's feature."""
    version: str = ""
    """The lease's feature version."""
    seats: int = 1
    """Seats the lease holds (a multi-seat checkout)."""


@dataclass(frozen=True, kw_only=True)
class LeaseReport:
    """A server's cumulative lease changes since its last committed report.

    Changes with ``seq`` at or below the committed report number are skipped,
    so a report may be re-sent until it is seen committed.  The leader's own
    reports hold only what its term's log does not hold yet.
    """

    server: str
    """The config name of the reporting server (the leader proposes its own reports too)."""
    changes: tuple[LeaseChange, ...]
    """Every change after the last committed report, oldest first; the pool skips those at or below the report
    number it has committed for this server.  The leader's own: only those after its earlier entries of the
    term (``LeaderDuties._own_report``), which commit before this one or are dropped with it."""
    watermark: int = 0
    """The highest lease counter the server has issued: ids at or below it that
    are not live anywhere are dead (tombstoned) for ever."""
    generation: int = 0
    """How many ``Reclaim``/``ServerDown`` of this server it had applied when it
    built the report.  A report from before a reclaim is void: the leases it
    lists were dropped, and a late copy must never resurrect them."""


@dataclass(frozen=True, kw_only=True)
class FailoverSeat:
    """Seat a failed-over lease at ``to_server`` (claims 13-15, 27-29).

    ``source`` is where its seat comes from: the fenced server that held it
    (the lease moves together with its seat), the free pool, or a reclaimed
    server.  Live sources go through ``TransferIntent`` instead.
    """

    lease_id: str
    """The failed-over lease."""
    client_id: str
    """Its client: a lease the registry holds for another client is not moved."""
    feature: str
    version: str
    to_server: str
    """The config name of the server the client failed over to."""
    client_seq: int
    """The client's fail-over sequence number: applied only if newer than the one that placed the lease last (a late
    duplicate never moves it back)."""
    source: str
    """The fenced holder's name (the lease moves with its seat), ``FREE_POOL``, or a down server."""
    seats: int = 1
    """Seats the lease holds: all are seated at ``to_server`` or none (a no-op)."""


@dataclass(frozen=True, kw_only=True)
class FailoverPending:
    """A fail-over update found no seat yet: hold it, seat it when one appears.
    Held in the log, so it survives a leader change (leadership.md M8)."""

    lease_id: str
    """The lease waiting for a seat."""
    client_id: str
    """Its client."""
    feature: str
    version: str
    to_server: str
    """The config name of the server the client failed over to, where it will be seated."""
    client_seq: int
    """The client's fail-over sequence number: a newer pending update of the lease replaces this one."""
    seats: int = 1
    """Seats the lease holds: it waits until that many are free at once."""


@dataclass(frozen=True, kw_only=True)
class Fence:
    """``server``'s serving lease has certainly expired: it serves nothing
    majority-ruled until ``Rejoin`` (leadership.md M4)."""

    server: str
    """The config name of the fenced server."""
    incarnation: int
    """Its incarnation as the committed pool state knew it; the pool keeps the larger one."""


@dataclass(frozen=True, kw_only=True)
class Reclaim:
    """T(1+rho) after the fence: the fenced server's majority-ruled seats become
    a *down server* source, and its leases there are dropped."""

    server: str
    """The config name of the fenced server whose majority-ruled seats become a source."""


@dataclass(frozen=True, kw_only=True)
class Rejoin:
    """The server has applied the current log and may serve again."""

    server: str
    """The config name of the server that rejoins."""
    incarnation: int
    """The incarnation that caught up (its latest ``SyncReply.incarnation``): only that incarnation may serve."""


@dataclass(frozen=True, kw_only=True)
class ServerDown:
    """Operator assertion (``licpool server down``): the server is really
    stopped.  Every seat it holds, ``--no-majority`` ones included, is reclaimed
    at once."""

    server: str
    """The config name of the server the operator asserts stopped."""


@dataclass(frozen=True, kw_only=True)
class ForceRelease:
    """Operator force-release of a lease (``licpool release``): the lease id
    is dead for ever and its holder drops it."""

    lease_id: str
    """The lease killed: revoked if live, or made dead for ever if unreported or pending."""


@dataclass(frozen=True, kw_only=True)
class AdminNonce:
    """The nonce and timestamp of a signed admin change, committed in the same
    append just before the change itself, so that every server, and every later
    leader, refuses a replay of it (``actors.core.adminauth``).

    ``stamp`` is the operator's timestamp from the signature, not a server's
    clock: applying forgets nonces stamped more than ``NONCE_KEEP`` before the
    newest stamp applied, the same way on every server.
    """

    nonce: str
    """The admin change's ``AdminAuth.nonce``."""
    stamp: float
    """The admin change's ``AdminAuth.timestamp``: operator wall-clock seconds since the Unix epoch."""


@dataclass(frozen=True, kw_only=True)
class QueueJoin:
    """A queued checkout (``queue=True``) waits for a seat of one table, in log
    order across the whole pool (docs/licenses.md, "Queued checkouts").

    Idempotent per ``waiter_id``: a waiter already queued keeps its place and
    only its ``server`` changes (a re-registration after a fail-over).  A join
    for a table not in the pool is a no-op.
    """

    waiter_id: str
    """``"<session id>:<request id>"``: the same for every retry and re-registration of one checkout."""
    client_id: str
    """The waiting client (shown by ``status`` and ``sessions``)."""
    feature: str
    version: str
    """With ``feature``: the table the waiter queues for."""
    server: str
    """The config name of the server the waiter's session waits at: the seat it gets is granted there."""
    seats: int = 1
    """Seats the waiter asks for (1; multi-seat checkouts may ask for more)."""
    timeout: float = 0.0
    """Seconds the waiter has left when it joins, for the leader's backstop (a relative time: entries hold no
    clock readings)."""


@dataclass(frozen=True, kw_only=True)
class QueueLeave:
    """A waiter leaves its table's queue: granted, timed out, gone (its session
    stopped asking), or its server was lost and it never re-registered.
    A waiter not queued is a no-op."""

    waiter_id: str
    """The ``QueueJoin.waiter_id`` removed."""
    feature: str
    version: str
    """The table whose queue it leaves."""
    reason: str = "granted"
    """``"granted"``, ``"timeout"``, ``"gone"`` or ``"server_lost"``, for the event log."""
    server: str = ""
    """The server that asked: a waiter that re-registered at another server since keeps its place (empty: the
    leader's own decision, whatever the waiter's server)."""


@dataclass(frozen=True, kw_only=True)
class SetIdlePolicy:
    """A feature's ``idle_timeout`` (issue 14), from a signed ``SetIdleTimeout``:
    each server reclaims a lease whose app marked it idle that long."""

    feature: str
    version: str
    idle_timeout: float
    """Seconds (0: no policy); a negative or non-finite value is a no-op."""


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
    | QueueJoin
    | QueueLeave
    | SetIdlePolicy
)
"""Any pool log entry."""
