"""Messages between license servers and the leader about seats and admin changes.

Every one carries ``sender`` (a server name from the config) and the sender's
``epoch``.  A receiver ignores a message from an older epoch and logs it
(STYLE.md habit 3).  The distribution criteria sync itself is in
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
    "FailoverOutcome",
    "AddLicenseCode",
    "AddAllocations",
    "ChangeDistributionCriteria",
    "ForceReleaseLease",
    "DeclareServerDown",
    "AdminReply",
]


@dataclass(frozen=True)
class AdminAuth:
    """An HMAC-SHA256 under the pool's admin key over the canonical encoding of
    an admin change, its timestamp and its nonce; checked by the receiving
    server and by the leader, which commits the nonce so a replay is refused
    (``actors.core.adminauth``, docs/security.md)."""

    timestamp: float
    nonce: str
    mac: str


@dataclass(frozen=True)
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
    allocated: int
    request_no: int


@dataclass(frozen=True)
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
    granted: int
    index: int = 0
    exhausted: bool = False


@dataclass(frozen=True)
class TransferRequest:
    """Leader -> giving LicenseServer: a committed ``TransferIntent`` asks you to
    give ``count`` seats (with ``lease_id``: that lease and its seat) (claim 33).

    Reply: ``TransferConfirm`` after the giver has persisted its decision.
    """

    sender: str
    epoch: int
    transfer_id: str
    feature: str
    version: str
    count: int
    lease_id: str | None = None


@dataclass(frozen=True)
class TransferConfirm:
    """Giving LicenseServer -> leader: I persisted that I give ``given`` seats
    (0 refuses); they were unused.  No reply; the leader commits the outcome."""

    sender: str
    epoch: int
    transfer_id: str
    given: int


@dataclass(frozen=True)
class FailoverForward:
    """LicenseServer -> leader: a client failed over to me with these leases
    (claims 13-15, 27-29).  Reply: ``FailoverOutcome``."""

    sender: str
    epoch: int
    client_id: str
    client_seq: int
    leases: tuple[HeldLease, ...]


@dataclass(frozen=True)
class ReleaseForward:
    """LicenseServer -> leader: a client released a lease that I do not hold (it
    was failing over from a server it cannot reach).  The leader commits
    ``ForceRelease`` so the id can never be resumed or failed over again
    (S3), even while its holder's own release is unreported.  No reply."""

    sender: str
    epoch: int
    client_id: str
    lease_id: str


@dataclass(frozen=True)
class FailoverOutcome:
    """Leader -> LicenseServer: which forwarded leases are ``pending`` (held as
    log entries until a seat appears) or ``refused`` (dead, or not this
    client's).  No reply.  Seated leases need no outcome: the server learns of
    them when their entry commits.  ``seated`` is kept for future use."""

    sender: str
    epoch: int
    client_id: str
    client_seq: int
    seated: tuple[str, ...] = ()
    pending: tuple[str, ...] = ()
    refused: tuple[str, ...] = ()


@dataclass(frozen=True)
class AddLicenseCode:
    """CLI -> any LicenseServer -> leader: add a signed license code (claims 11,
    12, 25, 26).  Reply: ``AdminReply`` once committed (or refused)."""

    sender: str
    epoch: int
    request_id: str
    code: str
    auth: AdminAuth | None = None


@dataclass(frozen=True)
class AddAllocations:
    """CLI -> any LicenseServer -> leader: add a signed add-on's seats to the
    free pool (claims 9, 10, 23, 24).  Reply: ``AdminReply``."""

    sender: str
    epoch: int
    request_id: str
    addon: str
    auth: AdminAuth | None = None


@dataclass(frozen=True)
class ChangeDistributionCriteria:
    """CLI -> any LicenseServer -> leader: new criteria ``s1:4^s2:3`` for a
    feature (claims 7, 8, 21, 22).  Reply: ``AdminReply``."""

    sender: str
    epoch: int
    request_id: str
    feature: str
    version: str
    criteria: str
    auth: AdminAuth | None = None


@dataclass(frozen=True)
class ForceReleaseLease:
    """CLI -> any LicenseServer -> leader: force-release a lease.  Reply:
    ``AdminReply``."""

    sender: str
    epoch: int
    request_id: str
    lease_id: str
    auth: AdminAuth | None = None


@dataclass(frozen=True)
class DeclareServerDown:
    """CLI -> any LicenseServer -> leader: the operator asserts ``server`` is
    really stopped (STONITH), so all its seats may be reclaimed.  Reply:
    ``AdminReply``."""

    sender: str
    epoch: int
    request_id: str
    server: str
    auth: AdminAuth | None = None


@dataclass(frozen=True)
class AdminReply:
    """Leader -> forwarding LicenseServer -> CLI: the outcome of an admin change.

    ``ok`` with ``already_present`` means the same serial was added before (a
    no-op, exit 0).  ``error`` is one line.  No reply.
    """

    sender: str
    epoch: int
    request_id: str
    ok: bool
    already_present: bool = False
    error: str = ""
    index: int = 0
