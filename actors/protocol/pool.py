"""Messages between license servers and the leader about seats and admin changes.

Every one carries ``sender`` (a server name from the config) and the sender's
``epoch``.  A receiver ignores a message from an older epoch and logs it
(architecture.md H3).  The distribution criteria sync itself is in
``actors.protocol.raft`` because it is the replicated log's append message.
"""

from __future__ import annotations

from dataclasses import dataclass

from actors.protocol.client import HeldLease

__all__ = [
    "AdminAuth",
    "BorrowRequest",
    "BorrowReply",
    "TransferRequest",
    "TransferConfirm",
    "FailoverForward",
    "ReleaseForward",
    "FailoverOutcome",
    "AddLicenseCode",
    "AddAllocations",
    "ChangeDistributionCriteria",
    "ForceReleaseLease",
    "DeclareServerDown",
    "SetIdleTimeout",
    "AdminReply",
    "QueueJoinRequest",
    "QueueLeaveRequest",
    "QueueFull",
]


@dataclass(frozen=True, kw_only=True)
class AdminAuth:
    """An HMAC-SHA256 under the pool's admin key over the canonical encoding of
    an admin change, its timestamp and its nonce; checked by the receiving
    server and by the leader, which commits the nonce so a replay is refused
    (``actors.core.adminauth``, docs/security.md)."""

    timestamp: float
    """The operator's wall clock when signing, in seconds since the Unix epoch; a checking server refuses it outside
    ``WINDOW`` (120 s) of its own clock."""
    nonce: str
    """32 lowercase hex digits (16 random bytes), chosen by the CLI; committed as ``AdminNonce`` so a replay is
    refused."""
    mac: str
    """HMAC-SHA256, hex, under the pool's admin key, over the message's canonical JSON (without ``sender``,
    ``epoch``, ``auth``), the timestamp and the nonce."""


@dataclass(frozen=True, kw_only=True)
class BorrowRequest:
    """LicenseServer -> leader: my use passed my borrowing threshold, or a
    request found no spare seat (claims 1, 3, 16, 31).

    Reply: ``BorrowReply``.  The seats themselves arrive as a committed entry in
    the distribution criteria sync; the server uses them only after applying it.
    """

    sender: str
    epoch: int
    feature: str
    version: str
    count: int
    """Seats wanted: enough to bring the server back under its threshold, >= 1."""
    in_use: int
    """The borrower's seats of the feature in use now (live leases plus releases not yet committed). For the record:
    the leader plans from the committed table, not from this."""
    allocated: int
    """The borrower's usable seats of the feature (committed allocation plus seats it kept back in transfers still
    in flight).  For the record, like ``in_use``."""
    request_no: int
    """The borrower's borrow counter (one per request sent); echoed in ``BorrowReply``."""


@dataclass(frozen=True, kw_only=True)
class BorrowReply:
    """Leader -> LicenseServer: no seat is unused anywhere in the pool, so the
    server answers its waiting checkouts with NO_SEATS.  No reply.

    A borrow that finds seats needs no reply: the seats arrive as committed
    entries in the distribution criteria sync.  ``index`` is the leader's last
    log index when it looked: the server denies only after applying that far,
    since seats already on their way may be in those entries.  ``granted`` is
    kept for future use (always 0 today).
    """

    sender: str
    epoch: int
    feature: str
    version: str
    request_no: int
    """Echoes ``BorrowRequest.request_no``."""
    granted: int
    """Always 0 today (kept for future use)."""
    index: int = 0
    """The leader's last log index when it found no seat: the borrower denies its waiting checkouts only once it has
    applied this far."""
    exhausted: bool = False
    """True: no seat is unused anywhere in the pool.  False with ``granted=0``: none now, but one of the table is
    on its way back (released, not yet committed); the borrower asks again (docs/leadership.md)."""


@dataclass(frozen=True, kw_only=True)
class TransferRequest:
    """Leader -> giving LicenseServer: a committed ``TransferIntent`` asks you to
    give ``count`` seats (with ``lease_id``: that lease and its seat) (claim 33).

    Reply: ``TransferConfirm`` after the giver has persisted its decision.
    """

    sender: str
    epoch: int
    transfer_id: str
    """The committed ``TransferIntent``'s id, ``"<epoch>.<n>"`` as the planning leader numbered it."""
    feature: str
    version: str
    count: int
    """Seats the intent takes from the giver (1 for a fail-over seat or a handover)."""
    lease_id: str | None = None
    """The intent's lease, if any (a handover or fail-over seat); for the record: the giver decides from the intent
    it applied, not from this message."""


@dataclass(frozen=True, kw_only=True)
class TransferConfirm:
    """Giving LicenseServer -> leader: I persisted that I give ``given`` seats
    (0 refuses); they were unused.  No reply; the leader commits the outcome."""

    sender: str
    epoch: int
    transfer_id: str
    """The transfer decided: sent once the giver applied the intent, and again for each ``TransferRequest``."""
    given: int
    """Seats the giver persisted that it gives, 0..count; the rest go back to it when the leader commits
    ``TransferComplete``."""


@dataclass(frozen=True, kw_only=True)
class FailoverForward:
    """LicenseServer -> leader: a client failed over to me with these leases
    (claims 13-15, 27-29).  Reply: ``FailoverOutcome``."""

    sender: str
    epoch: int
    client_id: str
    """The client whose leases fail over; each lease id's MAC was checked against it."""
    client_seq: int
    """The client's ``FailoverUpdate.seq`` (or a resume's ``CheckoutRequest.client_seq``): a lease already placed by
    this number or a newer one is not moved again."""
    leases: tuple[HeldLease, ...]
    """The leases the receiving server does not hold for this client already."""


@dataclass(frozen=True, kw_only=True)
class ReleaseForward:
    """LicenseServer -> leader: a client released a lease that I do not hold (it
    was failing over from a server it cannot reach).  The leader commits
    ``ForceRelease`` so the id can never be resumed or failed over again
    (S3), even while its holder's own release is unreported.  No reply."""

    sender: str
    epoch: int
    client_id: str
    """The client that released it (the id's MAC was checked against it)."""
    lease_id: str
    """The released lease, to be killed in the log with ``ForceRelease``."""


@dataclass(frozen=True, kw_only=True)
class FailoverOutcome:
    """Leader -> LicenseServer: which forwarded leases are ``pending`` (held as
    log entries until a seat appears) or ``refused`` (dead, or not this
    client's).  No reply.  Seated leases need no outcome: the server learns of
    them when their entry commits.  ``seated`` is kept for future use."""

    sender: str
    epoch: int
    client_id: str
    """Echoes ``FailoverForward.client_id``."""
    client_seq: int
    """Echoes ``FailoverForward.client_seq``."""
    seated: tuple[str, ...] = ()
    """Always empty today: seated leases are learnt from their committed entry."""
    pending: tuple[str, ...] = ()
    """Leases held as ``FailoverPending`` entries until a seat appears."""
    refused: tuple[str, ...] = ()
    """Leases that are dead (released, reclaimed, revoked, being killed) or not this client's."""


@dataclass(frozen=True, kw_only=True)
class AddLicenseCode:
    """CLI -> any LicenseServer -> leader: add a signed license code (claims 11,
    12, 25, 26).  Reply: ``AdminReply`` once committed (or refused)."""

    sender: str
    epoch: int
    request_id: str
    """Chosen by the CLI (a fresh uuid hex per attempt); the receiving server keeps the CLI's address under it until
    ``AdminReply`` comes back."""
    code: str
    """The vendor-signed license code, as text; verified by the receiving server, the leader, and every server again
    on apply."""
    auth: AdminAuth | None = None
    """The operator's signature; None is accepted only by a server without an admin key (simulator, unit tests)."""


@dataclass(frozen=True, kw_only=True)
class AddAllocations:
    """CLI -> any LicenseServer -> leader: add a signed add-on's seats to the
    free pool (claims 9, 10, 23, 24).  Reply: ``AdminReply``."""

    sender: str
    epoch: int
    request_id: str
    """Chosen by the CLI (a fresh uuid hex per attempt); echoed in ``AdminReply``."""
    addon: str
    """The vendor-signed add-on, as text; it names the serial of the license code it extends."""
    auth: AdminAuth | None = None
    """The operator's signature; None is accepted only by a server without an admin key."""


@dataclass(frozen=True, kw_only=True)
class ChangeDistributionCriteria:
    """CLI -> any LicenseServer -> leader: new criteria ``s1:4^s2:3`` for a
    feature (claims 7, 8, 21, 22).  Reply: ``AdminReply``."""

    sender: str
    epoch: int
    request_id: str
    """Chosen by the CLI (a fresh uuid hex per attempt); echoed in ``AdminReply``."""
    feature: str
    version: str
    criteria: str
    """Target seats per server as ``server:count`` pairs joined by ``^`` (``s1:4^s2:3``); servers not named target
    0; the sum may not exceed the feature's total."""
    auth: AdminAuth | None = None
    """The operator's signature; None is accepted only by a server without an admin key."""


@dataclass(frozen=True, kw_only=True)
class ForceReleaseLease:
    """CLI -> any LicenseServer -> leader: force-release a lease.  Reply:
    ``AdminReply``."""

    sender: str
    epoch: int
    request_id: str
    """Chosen by the CLI (a fresh uuid hex per attempt); echoed in ``AdminReply``."""
    lease_id: str
    """The lease to kill; refused if the committed registry already knows it dead."""
    auth: AdminAuth | None = None
    """The operator's signature; None is accepted only by a server without an admin key."""


@dataclass(frozen=True, kw_only=True)
class DeclareServerDown:
    """CLI -> any LicenseServer -> leader: the operator asserts ``server`` is
    really stopped (STONITH), so all its seats may be reclaimed.  Reply:
    ``AdminReply``."""

    sender: str
    epoch: int
    request_id: str
    """Chosen by the CLI (a fresh uuid hex per attempt); echoed in ``AdminReply``."""
    server: str
    """The config name of the server asserted stopped; never the leader itself."""
    auth: AdminAuth | None = None
    """The operator's signature; None is accepted only by a server without an admin key."""


@dataclass(frozen=True, kw_only=True)
class SetIdleTimeout:
    """CLI -> any LicenseServer -> leader: a feature's ``idle_timeout`` policy
    (issue 14): a lease its app has marked idle for that long is reclaimed,
    even while its session renews it.  Reply: ``AdminReply``."""

    sender: str
    epoch: int
    request_id: str
    """Chosen by the CLI (a fresh uuid hex per attempt); echoed in ``AdminReply``."""
    feature: str
    version: str
    idle_timeout: float
    """Seconds; 0 removes the policy (idle leases are never reclaimed)."""
    auth: AdminAuth | None = None
    """The operator's signature; None is accepted only by a server without an admin key."""


@dataclass(frozen=True, kw_only=True)
class AdminReply:
    """Leader -> forwarding LicenseServer -> CLI: the outcome of an admin change.

    ``ok`` with ``already_present`` means the same serial was added before (a
    no-op, exit 0).  ``error`` is one line.  No reply.
    """

    sender: str
    epoch: int
    request_id: str
    """Echoes the admin message's ``request_id``."""
    ok: bool
    """True once the change committed (or, with ``already_present``, was already in the pool)."""
    already_present: bool = False
    """The same serial was added before: a no-op, reported as success."""
    error: str = ""
    """One line: why it failed, or with ``already_present`` what was there already; empty on a plain success."""
    index: int = 0
    """The log index of the change's entry once applied (also when applying it was a no-op and ``ok`` is False); 0
    when it never reached the log."""


@dataclass(frozen=True, kw_only=True)
class QueueJoinRequest:
    """LicenseServer -> leader: put a queued checkout in its table's queue (or
    move it to this server, keeping its place).

    Reply: ``QueueFull`` when the queue is full.

    Otherwise the leader proposes a ``QueueJoin`` entry, and the server
    re-sends until it sees the waiter in the committed queue."""

    sender: str
    epoch: int
    waiter_id: str
    """``"<session id>:<request id>"`` of the checkout."""
    client_id: str
    """The waiting client."""
    feature: str
    version: str
    """With ``feature``: the table it waits for."""
    seats: int = 1
    """Seats it waits for."""
    timeout: float = 0.0
    """Seconds the app still waits."""


@dataclass(frozen=True, kw_only=True)
class QueueLeaveRequest:
    """LicenseServer -> leader: take a waiter out of its table's queue (granted,
    timed out, or its session stopped asking).  No reply: the leader proposes a
    ``QueueLeave``, and the server re-sends until the waiter is gone from the
    committed queue."""

    sender: str
    epoch: int
    waiter_id: str
    """The waiter to remove."""
    feature: str
    version: str
    """With ``feature``: its table."""
    reason: str = "granted"
    """``"granted"``, ``"timeout"`` or ``"gone"``."""


@dataclass(frozen=True, kw_only=True)
class QueueFull:
    """Leader -> LicenseServer: the table's queue holds ``[pool] queue_limit``
    waiters already; the server answers the checkout QUEUE_FULL.  No reply."""

    sender: str
    epoch: int
    waiter_id: str
    """The waiter refused."""
    limit: int = 0
    """The leader's queue limit."""
