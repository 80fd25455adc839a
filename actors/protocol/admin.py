"""Messages of the Thespian shell that the pure core never sees.

Three conversations live here:

* **server <-> server plumbing**: every server-to-server message travels inside
  a ``PeerEnvelope`` that names the sender and carries its own actor address,
  so peers learn each other's addresses from the traffic itself
  (docs/discovery.md); ``FanOut`` hands the leader's peer-bound messages to its
  ``LeaderRole``; the ``Resolver`` messages find a server's address through its
  host's admin;
* **operator queries**: the status and sessions queries of ``licpool status``
  and ``licpool sessions`` (and the demo), answered from the server's real
  state;
* **app <-> client session**: the ``LicenseClient`` proxy talks to its
  ``ClientSession`` actor.

Every message is a frozen dataclass whose docstring names sender, receiver and
replies.  Fields holding a Thespian ``ActorAddress`` are typed ``Any``: this
package imports no Thespian.  New fields always get defaults (STYLE.md habit 4).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = [
    "StartServer",
    "ServerStarted",
    "ServerStartFailed",
    "PeerEnvelope",
    "PeerHello",
    "Addressed",
    "FanOut",
    "ResolveTarget",
    "ResolverStart",
    "Resolve",
    "PeerResolved",
    "StatusQuery",
    "ServerStatus",
    "ServerUse",
    "FeatureStatus",
    "PendingCut",
    "StatusReply",
    "SessionsQuery",
    "SessionInfo",
    "SessionsReply",
    "SessionStart",
    "SessionReady",
    "OpenCheckout",
    "CheckoutResult",
    "AbandonCheckout",
    "CheckoutAbandoned",
    "ReleaseLease",
    "LeaseReleased",
    "Subscribe",
    "LeaseNotice",
    "CloseSession",
    "SessionClosed",
]


# ---- starting a server ------------------------------------------------------------


@dataclass(frozen=True)
class StartServer:
    """``licpool server`` launcher -> its LicenseServer: load this config and
    serve as ``name``.  Reply: ``ServerStarted`` or ``ServerStartFailed``."""

    config_path: str
    name: str
    launcher_pid: int = 0
    """The launcher process; the server stops its whole system when it dies."""


@dataclass(frozen=True)
class ServerStarted:
    """LicenseServer -> launcher: serving (recovered from ``data_dir``).  No reply."""

    name: str
    incarnation: int
    address: str


@dataclass(frozen=True)
class ServerStartFailed:
    """LicenseServer -> launcher: could not start; ``error`` is one line.  No reply."""

    error: str


# ---- server <-> server plumbing ----------------------------------------------------


@dataclass(frozen=True)
class PeerEnvelope:
    """LicenseServer (or its LeaderRole) -> LicenseServer: one core message
    (``actors.protocol.raft`` / ``pool``) from server ``sender``.

    ``address`` is the sending LicenseServer's own actor address, so every
    message announces where its sender lives now (after a restart it changes).
    A receiver drops envelopes of another pool, and envelopes whose ``mac``
    is wrong.  Reply: what ``body``'s own docstring says, in an envelope too.
    """

    pool: str
    sender: str
    address: Any
    body: Any
    mac: str = ""
    """HMAC of the rest under the pool's peer key (``actors.shell.peerauth``):
    an envelope without the right one is dropped and audited."""


@dataclass(frozen=True)
class PeerHello:
    """LicenseServer -> LicenseServer, as the body of a ``PeerEnvelope``, when it
    has just found that peer: it only announces the sender's address.  No reply."""

    incarnation: int = 0


@dataclass(frozen=True)
class Addressed:
    """One message and the actor address it goes to."""

    address: Any
    message: Any


@dataclass(frozen=True)
class FanOut:
    """LicenseServer -> its LeaderRole: send these peer-bound messages (all of
    one core ``Ready``), in order.  No reply."""

    sends: tuple[Addressed, ...]
    epoch: int = 0


@dataclass(frozen=True)
class ResolveTarget:
    """A server to find: its name and its host's Thespian admin port."""

    name: str
    host: str
    port: int


@dataclass(frozen=True)
class ResolverStart:
    """LicenseServer or ClientSession -> its Resolver child: these are the
    servers you will be asked about; ``global_name`` is the LicenseServer's
    name in its own actor system.  No reply."""

    targets: tuple[ResolveTarget, ...]
    global_name: str
    retry: float
    """Seconds between two lookups of the same server."""


@dataclass(frozen=True)
class Resolve:
    """Owner -> Resolver: find (again) the LicenseServer of each named server.
    Reply: a ``PeerResolved`` per server found; none for a host that is down
    (the Resolver keeps trying every ``retry`` while the name stays wanted)."""

    names: tuple[str, ...]
    stop: bool = False
    """True: stop looking for these names."""


@dataclass(frozen=True)
class PeerResolved:
    """Resolver -> owner: server ``name``'s LicenseServer lives at ``address``.
    No reply."""

    name: str
    address: Any


# ---- operator queries --------------------------------------------------------------


@dataclass(frozen=True)
class StatusQuery:
    """CLI, demo or test -> any LicenseServer: your view of the pool.
    Reply: ``StatusReply``."""

    request_id: str = ""


@dataclass(frozen=True)
class ServerStatus:
    name: str
    address: str
    """``host:port`` from the config."""
    up: bool
    """False when the answering server suspects it, or it is fenced or down."""
    leader: bool
    status: str = "live"
    """Committed pool status: live, fenced or down."""
    incarnation: int = 0


@dataclass(frozen=True)
class ServerUse:
    server: str
    allocated: int
    in_use: int
    target: int = 0


@dataclass(frozen=True)
class FeatureStatus:
    feature: str
    version: str
    total: int
    free_pool: int
    in_flight: int
    majority: bool
    expires: str
    servers: tuple[ServerUse, ...]


@dataclass(frozen=True)
class PendingCut:
    """A server holding more seats than its criteria target needs: idle
    rebalancing will cut it down to ``target`` as those seats stay unused (a
    criteria change waiting for seats to come free)."""

    feature: str
    version: str
    server: str
    allocated: int
    target: int
    """What it will keep: max(criteria target, what its own use needs)."""


@dataclass(frozen=True)
class StatusReply:
    """LicenseServer -> asker: the committed table and the servers as the
    answering server sees them.  No reply."""

    request_id: str
    answered_by: str
    pool: str
    epoch: int
    leader: str | None
    role: str
    applied: int
    servers: tuple[ServerStatus, ...]
    features: tuple[FeatureStatus, ...]
    pending: tuple[PendingCut, ...] = ()
    serving: bool = False
    """Whether the answering server may serve majority-ruled features now."""


@dataclass(frozen=True)
class SessionsQuery:
    """CLI -> each LicenseServer: the leases you hold.  Reply: ``SessionsReply``."""

    feature: str = ""
    version: str = ""
    """Empty: every version of ``feature`` (or every feature)."""


@dataclass(frozen=True)
class SessionInfo:
    lease_id: str
    client_id: str
    feature: str
    version: str
    server: str
    granted_at: float
    """Wall-clock seconds (time.time()), converted by the holder from its monotonic clock."""
    expires_at: float


@dataclass(frozen=True)
class SessionsReply:
    """LicenseServer -> asker: its local leases, plus the committed registry's
    leases held elsewhere (``registry``, without times).  No reply."""

    answered_by: str
    leases: tuple[SessionInfo, ...]
    registry: tuple[SessionInfo, ...] = ()


# ---- app <-> ClientSession ---------------------------------------------------------


@dataclass(frozen=True)
class SessionStart:
    """LicenseClient -> its ClientSession: who you are and where the servers
    are.  Reply: ``SessionReady``."""

    pool: str
    client_id: str
    session_id: str
    servers: tuple[ResolveTarget, ...]
    timing: tuple[float, float, float, float, float, float]
    """(h, f, L, F, T, rho): ``actors.core.timing.Timing`` as plain numbers."""
    prefer: str | None = None
    app_pid: int = 0
    """The app process; the session ends its actor system when it dies."""
    app_start: int = 0
    """The app process's start time (/proc stat field 22), against pid reuse."""
    log_level: str = "WARNING"
    """The session's own log lines below this level are dropped."""


@dataclass(frozen=True)
class SessionReady:
    """ClientSession -> LicenseClient: the session is up under ``session_id``.  No reply."""

    session_id: str


@dataclass(frozen=True)
class OpenCheckout:
    """LicenseClient -> ClientSession: check out a seat (or resume ``lease_id``).
    Reply: ``CheckoutResult`` once a server granted or refused it."""

    request_id: int
    feature: str
    version: str
    lease_id: str | None = None


@dataclass(frozen=True)
class CheckoutResult:
    """ClientSession -> LicenseClient: the outcome.  ``deadline`` is the lease's
    deadline on the host's monotonic clock.  No reply."""

    request_id: int
    granted: bool
    lease_id: str = ""
    server: str = ""
    reason: str = ""
    detail: str = ""
    deadline: float = 0.0


@dataclass(frozen=True)
class AbandonCheckout:
    """LicenseClient -> ClientSession: I stopped waiting (timeout).  A late grant
    is released.  Reply: ``CheckoutAbandoned``."""

    request_id: int


@dataclass(frozen=True)
class CheckoutAbandoned:
    """ClientSession -> LicenseClient: ``heard`` is False when no server
    answered anything since the checkout began (UNREACHABLE).  No reply."""

    request_id: int
    heard: bool


@dataclass(frozen=True)
class ReleaseLease:
    """LicenseClient -> ClientSession: give a lease back.  Reply: ``LeaseReleased``."""

    lease_id: str


@dataclass(frozen=True)
class LeaseReleased:
    """ClientSession -> LicenseClient: the release of ``lease_id`` was sent.  No reply."""

    lease_id: str


@dataclass(frozen=True)
class Subscribe:
    """LicenseClient's listener endpoint -> ClientSession: send lease notices
    here.  Reply: a first ``LeaseNotice`` with kind ``subscribed``."""


@dataclass(frozen=True)
class LeaseNotice:
    """ClientSession -> LicenseClient listener: something happened to a lease.

    ``kind``: ``deadline`` (renewed: new deadline), ``deadlines`` (several
    renewed at once, in ``deadlines``), ``lost`` (the app must stop using it),
    ``failed_over`` (now at ``server``), ``subscribed``.  No reply.
    """

    kind: str
    lease_id: str = ""
    server: str = ""
    deadline: float = 0.0
    detail: str = ""
    deadlines: tuple[tuple[str, str, float], ...] = ()
    """``(lease_id, server, deadline)`` of every lease renewed in one session step:
    one message per step, not one per lease, so that a session holding many
    leases does not spend its time telling the app about renewals."""


@dataclass(frozen=True)
class CloseSession:
    """LicenseClient -> ClientSession: release everything; the app is done.
    Reply: ``SessionClosed`` after the releases were sent."""


@dataclass(frozen=True)
class SessionClosed:
    """ClientSession -> LicenseClient: closed; ``released`` leases were given back.  No reply."""

    released: int = 0
