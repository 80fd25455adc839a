"""Messages between a client session and a license server (the fast path).

Every message is a frozen dataclass; its class name is the protocol (Thespian's
``ActorTypeDispatcher`` dispatches on it).  Each docstring names the sender, the
receiver and the replies to expect.  New fields always get defaults, so an older
peer's message still decodes (architecture.md H4).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

__all__ = [
    "DenyReason",
    "HeldLease",
    "CheckoutRequest",
    "CheckoutGranted",
    "CheckoutDenied",
    "SessionHeartbeat",
    "HeartbeatAck",
    "ReleaseRequest",
    "ReleaseAck",
    "FailoverUpdate",
    "FailoverReply",
    "CheckoutQueued",
]


class DenyReason(str, Enum):
    """Why a checkout was refused (``LicenseDenied.reason`` in the client API)."""

    NO_SEATS = "NO_SEATS"
    """Every seat of the feature is in use anywhere in the pool."""
    UNKNOWN_FEATURE = "UNKNOWN_FEATURE"
    """No license code in the pool serves this (feature, version)."""
    EXPIRED = "EXPIRED"
    """Every license code of the feature has expired."""
    NO_MAJORITY = "NO_MAJORITY"
    """The server cannot reach a majority, and the feature is majority-ruled."""
    NOT_SERVING = "NOT_SERVING"
    """The server is rejoining or fenced; try another server."""
    UNREACHABLE = "UNREACHABLE"
    """No server answered (raised by the client proxy, never sent)."""
    TIMEOUT = "TIMEOUT"
    """No answer within the checkout timeout (raised by the client proxy)."""
    QUEUE_TIMEOUT = "QUEUE_TIMEOUT"
    """A queued checkout (``queue=True``) got no seat before its timeout."""
    QUEUE_FULL = "QUEUE_FULL"
    """A queued checkout found its table's queue full (``[pool] queue_limit``)."""


@dataclass(frozen=True, kw_only=True)
class HeldLease:
    """One lease a client holds, as listed in a fail-over update (claims 13, 27)."""

    lease_id: str
    """The lease the client holds (an id issued by the server that first granted it)."""
    feature: str
    """The lease's feature: the new server needs it to find a seat."""
    version: str
    """The lease's feature version."""
    seats: int = 1
    """Seats the lease holds (a multi-seat checkout): the new server seats all of them or none."""


@dataclass(frozen=True, kw_only=True)
class CheckoutRequest:
    """ClientSession -> LicenseServer: ask for one seat of a feature (claim 30).

    Replies: ``CheckoutGranted`` or ``CheckoutDenied``.  The server may hold the
    request while it borrows from the leader (claims 3, 31); it always answers.
    Carrying ``lease_id`` resumes that lease instead of taking a second seat.
    """

    client_id: str
    """Who the seat is for; lease ids are bound to it."""
    session_id: str
    """The client session (one per app process); its heartbeat renews the lease."""
    request_id: int
    """Chosen by the session; echoed in the reply."""
    feature: str
    """The feature asked for; with ``version`` it names one distribution table."""
    version: str
    """The feature version asked for: any table whose version serves it may grant (``exact_version``)."""
    lease_id: str | None = None
    """A lease this client already holds here: resume it, never take a second seat."""
    client_seq: int = 0
    """With ``lease_id``: the client's fail-over sequence number.  A resume at
    another server moves the lease only if this is newer than the move that
    placed it, so retries of one reconnect never bounce it between servers."""
    exact_version: bool = True
    """True: only the table of exactly ``version`` may grant (what a request of
    a session older than version ranges means, so it is the default).  Sessions
    that know ranges send False: the lowest licensed version that serves
    ``version`` grants (``actors.core.versions``, docs/licenses.md)."""
    queue: bool = False
    """True: wait in the pool's first-come-first-served queue instead of a NO_SEATS denial (the server answers
    ``CheckoutQueued``, and the session re-sends the request every ``2h`` while it waits)."""
    queue_timeout: float | None = None
    """With ``queue``: seconds the app still waits, from this send; past it the answer is QUEUE_TIMEOUT (None: not
    queued)."""
    count: int = 1
    """Seats asked for in one lease (issue 14): all are granted or none, never a
    part.  The table's token ``weight`` multiplies it (docs/licenses.md)."""
    linger: float = 0.0
    """Seconds the seats stay held after the release (0: the code's ``linger``);
    the same client may take them back meanwhile without a new seat."""
    direct: bool = False
    """Sent by the app itself, not by its session (docs/performance.md, "Lever 4"): the answer goes to the
    sender, and the session's address stays what the session last used.  The app tells its session of a grant."""


@dataclass(frozen=True, kw_only=True)
class CheckoutGranted:
    """LicenseServer -> ClientSession: the seat is yours until your deadline.

    The client's deadline is the send time of the request plus ``ttl`` minus the
    drift margin (leadership.md M10).  No reply is expected.
    """

    request_id: int
    """Echoes ``CheckoutRequest.request_id``; the session matches the grant to its checkout by it."""
    lease_id: str
    """The lease: renewed by heartbeats, given back by ``ReleaseRequest``; bound to the client id by a MAC."""
    server: str
    """The granting server's config name (the session files the lease under it)."""
    feature: str
    """Echoed from the request; a grant whose feature differs from the checkout's is released at once."""
    version: str
    """The licensed version whose seat was granted: the request's, or (a range match) a higher one that serves it.
    The session files the lease under it, so a fail-over asks for a seat of the same table."""
    ttl: float
    """lease_ttl, in seconds, timed from the client's send."""
    resumed: bool = False
    """True when an existing lease was resumed rather than a seat taken."""
    seats: int = 1
    """Seats the lease holds: the request's ``count`` times the table's token weight."""


@dataclass(frozen=True, kw_only=True)
class CheckoutDenied:
    """LicenseServer -> ClientSession: the checkout was refused.  No reply."""

    request_id: int
    """Echoes ``CheckoutRequest.request_id``."""
    reason: DenyReason
    """Why: ``NOT_SERVING`` and ``NO_MAJORITY`` send the session on to the next server, the others end the checkout."""
    detail: str = ""
    """One human-readable line for the app (for example "every seat in the pool is in use"); may be empty."""
    server: str = ""
    """The denying server's config name (the session uses it when it does not know the sender's address yet)."""


@dataclass(frozen=True, kw_only=True)
class SessionHeartbeat:
    """ClientSession -> LicenseServer: renew every lease this session holds here.

    One heartbeat per session and server per ``heartbeat_interval``, whatever the
    number of leases: the cost follows client processes, not leases.  Its size
    does too once nothing changes: after this server renewed the whole list and
    said so (``HeartbeatAck.digest``), the session sends the list's ``digest``
    instead of the list until the list changes (docs/architecture.md, "Renewal").
    Reply: ``HeartbeatAck``.
    """

    client_id: str
    session_id: str
    seq: int
    """Numbered by the session; the ack echoes it so the session knows its send time."""
    lease_ids: tuple[str, ...] = ()
    """The leases this session holds at this server and is not failing over; the ack says which were renewed.
    Empty when ``digest`` stands for them."""
    idle: tuple[str, ...] = ()
    """Those of the leases the app marked idle (``auth.idle()``): the server's
    ``idle_timeout`` policy may reclaim a lease idle too long (reason ``IDLE``)."""
    digest: str = ""
    """When set, ``lease_ids`` is empty and this stands for it: ``leaseid.ids_digest`` of the sorted lease ids, a list
    this server renewed whole before.  The server renews on it only if its own table for this client and session
    gives the same digest and ``count``; otherwise it renews nothing and answers ``resend``."""
    count: int = 0
    """With ``digest``: how many leases it stands for."""


@dataclass(frozen=True, kw_only=True)
class HeartbeatAck:
    """LicenseServer -> ClientSession: which of the listed leases were renewed.

    A lease in ``lost`` is dead here (released, expired or never known); one in
    ``moved`` was handed over to the named server (a later fail-over update of
    this client moved it), so the session follows it there.  One in ``held`` is
    held here but not renewed: this server has no serving lease now (between
    leaders); the session stays.  ``fail_over`` tells the session to move to
    another server (this one is not serving: fenced, not rejoined, or of an old
    incarnation).  ``digest`` says every lease was renewed; ``resend`` that a
    digest did not match and nothing was.  No reply.
    """

    seq: int
    """Echoes ``SessionHeartbeat.seq``: the session times the renewal from that heartbeat's send."""
    server: str
    """The answering server's config name."""
    renewed: tuple[str, ...] = ()
    """Listed leases renewed here: their deadline moves to the heartbeat's send plus ``ttl * (1 - rho)``."""
    lost: tuple[str, ...] = ()
    """Listed leases dead here (released, expired, reclaimed or never known): the app must stop using them."""
    fail_over: bool = False
    """True when this server may not serve some listed lease at all (not rejoined, fenced, an old incarnation:
    ``NOT_SERVING``): the session fails its leases over to the next server.  Only a missing serving lease (between
    leaders) gives ``held`` instead."""
    ttl: float = 0.0
    """The pool's ``lease_ttl`` in seconds (0: the session uses its own configured value)."""
    moved: tuple[tuple[str, str], ...] = ()
    """(lease id, the server it moved to)."""
    held: tuple[str, ...] = ()
    """Held here, not renewed: no serving lease, so no deadline is extended (docs/leadership.md, M14)."""
    serving: bool = False
    """True when this server would grant a new checkout now (rejoined, live, under a serving lease).  A session
    whose new checkouts moved away from its start server sends it an empty heartbeat now and then, and goes back
    to it on this answer (docs/architecture.md, "Fail-back").  Older servers leave it False: no fail-back to them."""
    reasons: tuple[tuple[str, str], ...] = ()
    """(lease id, reason) for ``lost`` leases whose reason is known, such as ``"IDLE"`` (reclaimed by the
    feature's ``idle_timeout``); a lost lease not listed has no stated reason."""
    digest: str = ""
    """Set when every lease of the heartbeat was renewed: their ``leaseid.ids_digest``.  It answers a full list
    (which ``renewed`` still lists: a session older than digests reads only that) and tells the session it may
    send the digest next; it answers a digest heartbeat alone, ``renewed`` then empty ("all renewed")."""
    resend: bool = False
    """The heartbeat's digest does not match this server's table for the session (a lease lost, moved or
    released, another session, a restart): nothing was renewed; the session sends the full list at once."""


@dataclass(frozen=True, kw_only=True)
class ReleaseRequest:
    """ClientSession -> LicenseServer: give a seat back.  Reply: ``ReleaseAck``.

    After the release the lease id is dead for ever (tombstoned).
    """

    client_id: str
    lease_id: str
    """The lease given back; dead for ever once released."""
    request_id: int
    """Numbered by the session (its release counter); echoed in ``ReleaseAck``."""
    session_id: str = ""
    """The releasing session: a release from an older session of the same
    client (an app that restarted and resumed the lease) is ignored."""


@dataclass(frozen=True, kw_only=True)
class ReleaseAck:
    """LicenseServer -> ClientSession: the release was recorded.  No reply."""

    request_id: int
    """Echoes ``ReleaseRequest.request_id``."""
    lease_id: str
    """Echoes ``ReleaseRequest.lease_id``."""
    released: bool
    """False when the server did not hold the lease (already dead, or elsewhere)."""
    moved_to: str = ""
    """When not released: the server this server's committed registry (or a
    handover under way) places the lease at, so the session sends the release
    there too; empty when it knows the lease live nowhere else."""


@dataclass(frozen=True, kw_only=True)
class FailoverUpdate:
    """ClientSession -> LicenseServer: take over the leases I hold (claims 13, 27).

    Sent when the session's server went silent past ``failure_timeout`` or told it
    to fail over.  Reply: ``FailoverReply``.  ``seq`` orders a client's updates,
    so a delayed old update never moves a lease back.
    """

    client_id: str
    session_id: str
    seq: int
    """The session's sequence number (shared with its heartbeats); each lease's ``client_seq`` in the log records
    the newest update that placed it, and the reply echoes it."""
    leases: tuple[HeldLease, ...]
    """Every lease the session held at the suspected server, in one update."""


@dataclass(frozen=True, kw_only=True)
class FailoverReply:
    """LicenseServer -> ClientSession: what became of each lease in an update.

    ``seated`` leases are renewed here from the update's send.  ``pending`` ones
    wait for a seat; a pending reply never extends the client's deadline.
    ``refused`` ones are dead (released, reclaimed, or not this client's).
    No reply.
    """

    seq: int
    """Echoes ``FailoverUpdate.seq``; a reply to an older update than the latest is ignored."""
    server: str
    """The answering server's config name."""
    seated: tuple[str, ...] = ()
    """Leases held here now: their deadline moves to the update's send plus ``ttl * (1 - rho)``."""
    pending: tuple[str, ...] = ()
    """Leases waiting for a seat (held in the log): the session re-sends the update after ``2h``; their deadline
    does not move."""
    refused: tuple[str, ...] = ()
    """Leases that are dead (released, reclaimed, revoked) or not this client's: the app must stop using them."""
    ttl: float = 0.0
    """The pool's ``lease_ttl`` in seconds (0: the session uses its own configured value)."""


@dataclass(frozen=True, kw_only=True)
class CheckoutQueued:
    """LicenseServer -> ClientSession: a ``queue=True`` checkout waits in the
    pool's queue (docs/licenses.md, "Queued checkouts").  No reply.

    The session keeps re-sending the same request to this server every ``2h``
    (that is how the server knows the app still waits); a server silent for
    ``failure_timeout`` is replaced by the next one, where the same request
    keeps the waiter's place.  The checkout ends with ``CheckoutGranted`` or
    ``CheckoutDenied`` (QUEUE_TIMEOUT, QUEUE_FULL).
    """

    request_id: int
    """Echoes ``CheckoutRequest.request_id``."""
    server: str
    """The answering server's config name."""
    position: int = 0
    """1-based place in its table's committed queue (0: the join is not committed yet)."""
    queue_timeout: float | None = None
    """Echoes the ``CheckoutRequest.queue_timeout`` of the send it answers: the session knows that send's time, and
    a grant that comes later is timed from it (the seat is granted after the server answered it)."""
