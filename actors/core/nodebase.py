"""The state one server's core holds, and the plumbing shared by its parts.

``ServerNode`` (node.py) is assembled from three parts that share this state:
the log and its committed entries (node.py), the leader's duties
(leading.py) and the client fast path (serving.py).  Everything here is pure:
``now`` is the server's monotonic clock, passed in by the shell.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from actors.core import adminauth
from actors.core.effects import ClientRef, Message, Ready
from actors.core.expiry import ExpiryWatch
from actors.core.member import Member
from actors.core.node_settings import NodeSettings
from actors.core.pool import DOWN, LIVE, PoolState
from actors.core.raft import Raft
from actors.core.table import FeatureKey, FeatureTable
from actors.protocol import entries as e
from actors.protocol import pool as p
from actors.protocol.client import CheckoutRequest, DenyReason

__all__ = ["WaitingCheckout", "NodeBase"]


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


class NodeBase:
    """Shared state and helpers of one server's core."""

    def __init__(self, settings: NodeSettings) -> None:
        self.settings = settings
        self.name = settings.name
        self.timing = settings.timing
        self.raft = Raft(settings.name, settings.servers, settings.timing, settings.settings_hash, self._may_renew,
                         self._may_serve, settings.max_batch)
        self.member = Member.new(
            settings.name, settings.servers, settings.threshold(settings.name),
            settings.timing.grantor_valid_for(settings.timing.lease_ttl),
        )
        self.applied = 0
        self._now = 0.0
        """The time of the input being handled (for bookkeeping inside apply)."""
        self.book = LeaderBook()
        self.waiting: list[WaitingCheckout] = []
        self.borrow_asked: dict[FeatureKey, float] = {}
        self.borrow_no = 0
        self.admin_refs: dict[str, ClientRef] = {}
        self.failover_refs: dict[str, tuple[ClientRef, int, bool, int]] = {}
        self.released_here: dict[str, tuple[str, float]] = {}
        """lease id -> (client, when): released here, held elsewhere, not yet dead in the log."""
        self.releases_sent_at = float("-inf")
        """lease id -> (client, update seq, reply as checkout?, request id)."""
        self.recent_grants: dict[tuple[str, int], object] = {}
        self.expiry_watch = ExpiryWatch()
        """Which expiry warnings (30, 7, 1 days left) this incarnation gave."""

    # ---- views ----------------------------------------------------------------------

    @property
    def pool(self) -> PoolState:
        return self.member.pool

    @property
    def epoch(self) -> int:
        return self.raft.term

    @property
    def role(self) -> str:
        return self.raft.role

    @property
    def leader(self) -> str | None:
        return self.raft.leader

    def rejoined(self) -> bool:
        """The committed log shows this incarnation back in the pool."""
        me = self.member.pool.servers[self.name]
        return me.incarnation == self.raft.incarnation and me.status != DOWN

    def serve_problem(self, table: FeatureTable | None, now: float) -> DenyReason | None:
        """Why this server may not serve ``table``'s feature now (None: it may).

        Majority-ruled features need this incarnation rejoined, live and under
        a serving lease.  A ``--no-majority`` feature needs only the rejoin: a
        fenced server keeps serving its own seats of it (DESIGN.md 2b item 11).
        """
        me = self.member.pool.servers[self.name]
        if me.incarnation != self.raft.incarnation:
            return DenyReason.NOT_SERVING
        if table is not None and not table.majority and not me.all_reclaimed:
            return None
        if me.status != LIVE:
            return DenyReason.NOT_SERVING
        if not self.raft.holds_serving_lease(now):
            return DenyReason.NO_MAJORITY
        return None

    def _may_renew(self, peer: str, now: float) -> bool:
        """A holder that leaves a cut unanswered for a few heartbeats is not
        renewed, so it is fenced and the fence rules finish the cut."""
        limit = 4 * self.timing.heartbeat_interval
        for t in self.member.pool.transfers.values():
            seen = self.book.intent_seen.get(t.transfer_id)
            if t.giver == peer and t.transfer_id not in self.book.confirms and seen is not None and now - seen > limit:
                return False
        return True

    def _may_serve(self, peer: str) -> bool:
        """Only a live server, with no fence on its way, gets a serving lease."""
        state = self.member.pool.servers.get(peer)
        fencing = self.book.fence_proposed.get(peer, 0) > self.applied
        return state is not None and state.status == LIVE and not fencing

    def send_leader(self, msg: Message, ready: Ready) -> bool:
        """Send to the leader, if one is known and it is not us."""
        if self.raft.leader is None or self.raft.leader == self.name:
            return False
        ready.to(self.raft.leader, msg)
        return True

    def admin_problem(self, msg: object, hop: str, ready: Ready) -> tuple[p.AdminAuth | None, str]:
        """Check an admin change's signature, timestamp and nonce (``adminauth``).

        Returns its ``AdminAuth`` and ``""``, or ``None`` and the one-line
        reason, which is also recorded as an ``admin_refused`` event (an audit
        line).  ``hop`` is ``received`` (from the CLI) or ``leader``.  The
        nonces checked are the committed ones and those in the log not yet
        applied, so a replay is refused also across a leader change.
        """
        key, wall = self.settings.admin_key, self.settings.wall
        if key is None or wall is None:
            return None, ""  # simulator and unit tests: an authenticated operator is modelled
        used = set(self.member.pool.admin_nonces)
        for item in self.raft.log.entries:
            if item.index > self.applied and isinstance(item.entry, e.AdminNonce):
                used.add(item.entry.nonce)
        try:
            return adminauth.check(key, msg, wall(), used), ""
        except adminauth.AdminRefused as refused:
            ready.event("admin_refused", hop=hop, message=type(msg).__name__,
                        request_id=str(getattr(msg, "request_id", ""))[:64],
                        via=str(getattr(msg, "sender", ""))[:64], reason=str(refused))
            return None, str(refused)

    def propose(self, entries: list[e.Entry], ready: Ready) -> int:
        """Append entries as leader; returns the index of the last one (0: none)."""
        if not entries:
            return 0
        return self.raft.append(entries, ready)
