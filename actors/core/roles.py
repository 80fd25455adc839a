"""What the two roles of one server share: the view of their server, and each role's book.

``ServerNode`` (node.py) owns a ``Raft``, a ``Member`` and two role objects,
the way etcd's ``raft`` owns its ``raftLog`` and ``trk``:

* ``LeaderDuties`` (leading.py), with its ``LeaderBook``: what the server does
  while it leads;
* ``ClientSide`` (serving.py), with its ``ClientBook``: the client fast path
  and the forwarding to the leader.

Each role reads its server through a ``typing.Protocol`` (``ServerView`` and
the role's extension of it), so neither role inherits the other or the node;
what both read the same way is in ``RoleView``.
Everything here is pure: ``now`` is the server's monotonic clock, passed in by
the shell.
"""

from __future__ import annotations

from collections import Counter, OrderedDict
from dataclasses import dataclass, field
from typing import Protocol

from actors.core.effects import ClientRef, Ready
from actors.core.member import Member
from actors.core.node_settings import NodeSettings
from actors.core.pool import PoolState
from actors.core.raft import Raft
from actors.core.table import FeatureKey
from actors.core.timing import Timing
from actors.protocol.client import CheckoutGranted, CheckoutRequest
from actors.protocol.pool import AdminAuth

__all__ = ["ServerView", "RoleView", "WaitingCheckout", "LeaderBook", "ClientBook"]


class ServerView(Protocol):
    """What a role reads of the server it runs on.

    The server never replaces its ``Raft`` or its ``Member`` (only the pool
    state inside the ``Member``), so a role may keep references to both.
    """

    @property
    def name(self) -> str: ...

    @property
    def settings(self) -> NodeSettings: ...

    @property
    def raft(self) -> Raft: ...

    @property
    def member(self) -> Member: ...

    @property
    def applied(self) -> int:
        """The index of the last committed entry applied to ``member``."""
        ...

    def admin_problem(self, msg: object, hop: str, ready: Ready) -> tuple[AdminAuth | None, str]:
        """Check an admin change's signature, timestamp and nonce (``adminauth``)."""
        ...


class RoleView:
    """What both roles read of their server: its name, its ``Raft`` and
    ``Member`` (kept by reference: the server never replaces them), and its
    settings, timing, pool state and applied index (read through the server,
    so a test that replaces the settings is seen by both roles)."""

    def __init__(self, node: ServerView) -> None:
        self.name = node.name
        self.raft = node.raft
        self.member = node.member
        self._server = node

    @property
    def settings(self) -> NodeSettings:
        return self._server.settings

    @property
    def timing(self) -> Timing:
        return self._server.settings.timing

    @property
    def pool(self) -> PoolState:
        return self.member.pool

    @property
    def applied(self) -> int:
        return self._server.applied


@dataclass
class WaitingCheckout:
    """A checkout held while this server borrows (claims 3, 31)."""

    client: ClientRef
    request: CheckoutRequest
    since: float
    exhausted: dict[FeatureKey, int] = field(default_factory=dict)
    """Table -> the log index as of which the leader found no seat of it
    anywhere.  Once that is applied here the request moves on to the next
    higher version that serves it; when every one is exhausted and still no
    seat is spare here, the answer is NO_SEATS."""
    queue_key: FeatureKey | None = None
    """A queued checkout (``queue=True``): the table whose pool-wide queue it joined."""
    deadline: float = float("inf")
    """A queued checkout: when it is answered QUEUE_TIMEOUT (its ``queue_timeout`` from the latest send)."""
    seen: float = 0.0
    """A queued checkout: when its session last (re-)sent it; silent for ``failure_timeout``, it is gone."""
    join_sent: float = float("-inf")
    """A queued checkout: when its ``QueueJoinRequest`` was last sent to the leader."""


@dataclass
class LeaderBook:
    """What only the current leader tracks; reset at every change of leader."""

    epoch: int = 0
    fence_proposed: dict[str, int] = field(default_factory=dict)
    """server -> log index of the last Fence proposed for it (likewise below)."""
    fenced_seen: dict[str, float] = field(default_factory=dict)
    rejoin_proposed: dict[str, int] = field(default_factory=dict)
    live_since: dict[str, float] = field(default_factory=dict)
    """When this leader saw a server's Rejoin applied."""
    reclaim_proposed: dict[str, int] = field(default_factory=dict)
    report_proposed: dict[str, int] = field(default_factory=dict)
    watermark_proposed: dict[str, int] = field(default_factory=dict)
    confirms: dict[str, int] = field(default_factory=dict)
    completing: set[str] = field(default_factory=set)
    intent_seen: dict[str, float] = field(default_factory=dict)
    asked_at: dict[str, float] = field(default_factory=dict)
    borrowing: dict[tuple[str, FeatureKey], int] = field(default_factory=dict)
    """(borrower, feature) -> log index of its last planned entry."""
    killing: dict[str, int] = field(default_factory=dict)
    """lease id -> log index of a ForceRelease proposed for a forwarded release."""
    seating: dict[str, int] = field(default_factory=dict)
    """lease id -> log index of a fail-over seat proposal not yet applied."""
    admin: dict[int, tuple[str, str]] = field(default_factory=dict)
    """log index -> (server the request came through, request id)."""
    rebalance_index: int = 0
    last_busy: dict[tuple[str, FeatureKey], float] = field(default_factory=dict)
    last_use: dict[tuple[str, FeatureKey], tuple[int, int]] = field(default_factory=dict)
    next_rebalance: float = 0.0
    incarnations: dict[str, int] = field(default_factory=dict)
    """Incarnation each server reported in its latest heartbeat."""
    table_lost: dict[str, bool] = field(default_factory=dict)
    """Whether its latest heartbeat said its lease table was lost with a disk."""
    empty_boot: dict[str, bool] = field(default_factory=dict)
    """Whether its latest heartbeat said it booted on an empty disk and has not rejoined since."""
    transfer_seq: int = 0
    """The number of the last transfer id this leader made (``new_transfer_id``)."""
    queue_joining: dict[str, tuple[FeatureKey, int]] = field(default_factory=dict)
    """waiter id -> (table, log index) of the last ``QueueJoin`` proposed for it."""
    queue_leaving: dict[str, int] = field(default_factory=dict)
    """waiter id -> log index of the ``QueueLeave`` proposed for it."""
    queue_seen: dict[str, float] = field(default_factory=dict)
    """waiter id -> when this leader first saw it queued (its timeout backstop runs from there)."""
    queue_server_lost: dict[str, float] = field(default_factory=dict)
    """waiter id -> when this leader first saw its server not live."""


@dataclass
class ClientBook:
    """What the client side of one server tracks between messages (volatile:
    a restarted server starts with an empty book)."""

    waiting: list[WaitingCheckout] = field(default_factory=list)
    """Checkouts held while this server borrows, oldest first."""
    borrow_asked: dict[FeatureKey, float] = field(default_factory=dict)
    """feature -> when this server last asked the leader to borrow seats of it."""
    borrow_no: int = 0
    """The number of the last borrow request sent (``BorrowRequest.request_no``)."""
    admin_refs: dict[str, ClientRef] = field(default_factory=dict)
    """admin request id -> the CLI session the reply goes to."""
    failover_refs: dict[str, tuple[ClientRef, int, bool, int]] = field(default_factory=dict)
    """lease id -> (client, update seq, reply as checkout?, request id): a lease
    forwarded to the leader to be moved here, and who waits for it."""
    released_here: dict[str, tuple[str, float]] = field(default_factory=dict)
    """lease id -> (client, when): released here, held elsewhere, not yet dead or revoked in the log."""
    release_forwarded: dict[str, float] = field(default_factory=dict)
    """lease id -> when its release (in ``released_here``) was last forwarded to the leader."""
    releases_sent_at: float = float("-inf")
    """When ``released_here`` was last looked at for releases to resend to the leader."""
    recent_grants: OrderedDict[tuple[str, int], tuple[CheckoutGranted, float]] = field(default_factory=OrderedDict)
    """(session id, request id) -> (the grant sent, when), in the order granted, so a retried checkout gets it
    again.  Each is kept for ``Timing.app_transmit`` after its grant (``serving.RECENT_GRANTS_KEEP``, ``_MAX``):
    as long as an app's direct ask of the same request can still arrive, which then never takes a second seat."""
    queue_leaving: dict[str, tuple[FeatureKey, str, float, float]] = field(default_factory=dict)
    """waiter id -> (table, reason, first asked, last sent): a waiter that left here (granted, timed out, gone),
    asked out of the committed queue until it is gone from it."""
    queue_orphans: dict[str, float] = field(default_factory=dict)
    """waiter id -> when a committed waiter at this server was first seen with no checkout waiting here."""
    unmet: Counter[tuple[str, str, str]] = field(default_factory=Counter)
    """Unmet demand since this server started (issue 14): (feature, version,
    reason) -> checkouts denied here for a ``DenyReason``, or held here waiting
    for a borrow (reason ``QUEUED``)."""
