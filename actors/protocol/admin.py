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
package imports no Thespian.  New fields always get defaults (architecture.md H4).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from actors.protocol.client import CheckoutGranted

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
    "LicenseInfo",
    "StatusReply",
    "QueuedInfo",
    "SessionsQuery",
    "SessionInfo",
    "SessionsReply",
    "MetricsQuery",
    "MetricsReply",
    "SessionStart",
    "SessionReady",
    "OpenCheckout",
    "MarkIdle",
    "CheckoutResult",
    "AbandonCheckout",
    "CheckoutAbandoned",
    "AdoptGrant",
    "AdoptGrants",
    "ReleaseLease",
    "LeaseReleased",
    "Subscribe",
    "LeaseNotice",
    "CloseSession",
    "SessionClosed",
]


# ---- starting a server ------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class StartServer:
    """``licpool server`` launcher -> its LicenseServer: load this config and
    serve as ``name``.  Reply: ``ServerStarted`` or ``ServerStartFailed``."""

    config_path: str
    """Path of the pool's config file (pool.toml) on this host."""
    name: str
    """Which server of the config this LicenseServer is."""
    launcher_pid: int = 0
    """The launcher process; the server stops its whole system when it dies."""


@dataclass(frozen=True, kw_only=True)
class ServerStarted:
    """LicenseServer -> launcher: serving (recovered from ``data_dir``).  No reply."""

    name: str
    """The server's config name."""
    incarnation: int
    """Its incarnation after this start (it grows at every restart)."""
    address: str
    """``str()`` of its actor address, for the launcher's log line."""


@dataclass(frozen=True, kw_only=True)
class ServerStartFailed:
    """LicenseServer -> launcher: could not start; ``error`` is one line.  No reply."""

    error: str
    """Why, one line (a config, code, persistence or socket error)."""


# ---- server <-> server plumbing ----------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class PeerEnvelope:
    """LicenseServer (or its LeaderRole) -> LicenseServer: one core message
    (``actors.protocol.raft`` / ``pool``) from server ``sender``.

    ``address`` is the sending LicenseServer's own actor address, so every
    message announces where its sender lives now (after a restart it changes).
    A receiver drops envelopes of another pool, and envelopes whose ``mac``
    is wrong.  Reply: what ``body``'s own docstring says, in an envelope too.
    """

    pool: str
    """The sender's pool name (``[pool] name``): an envelope of another pool is dropped."""
    sender: str
    """The sending server's config name; it must be a server of the receiver's config."""
    address: Any
    """The sending LicenseServer's own ``ActorAddress`` (also when its LeaderRole sends the envelope)."""
    body: Any
    """A core message of ``actors.protocol.raft`` or ``pool``, or a ``PeerHello``."""
    mac: str = ""
    """HMAC of the rest under the pool's peer key (``actors.shell.peerauth``):
    an envelope without the right one is dropped and audited."""
    sealed: bytes = b""
    """The body pickled by its sender, when not empty (then ``body`` is ``None``):
    the MAC covers these bytes, and the receiver unpickles them (allowlisted)
    only once the MAC is right.  Sent only to a server that set ``sealed_ok``."""
    sealed_ok: bool = False
    """The sender reads sealed envelopes: a receiver may send it ``sealed`` ones
    (an older server leaves it unset and gets ``body`` as before)."""


@dataclass(frozen=True, kw_only=True)
class PeerHello:
    """LicenseServer -> LicenseServer, as the body of a ``PeerEnvelope``, when it
    has just found that peer: it only announces the sender's address.  No reply."""

    incarnation: int = 0
    """The sender's incarnation (not read today: the envelope's ``address`` is the news)."""


@dataclass(frozen=True, kw_only=True)
class Addressed:
    """One message and the actor address it goes to."""

    address: Any
    """The destination ``ActorAddress``."""
    message: Any
    """What to send there (a sealed ``PeerEnvelope``)."""


@dataclass(frozen=True, kw_only=True)
class FanOut:
    """LicenseServer -> its LeaderRole: send these peer-bound messages (all of
    one core ``Ready``), in order.  No reply."""

    sends: tuple[Addressed, ...]
    """The sealed envelopes, in the order the core produced them."""
    epoch: int = 0
    """The sender's term when it handed them over, for the LeaderRole's log."""


@dataclass(frozen=True, kw_only=True)
class ResolveTarget:
    """A server to find: its name and its host's Thespian admin port."""

    name: str
    """The server's config name."""
    host: str
    """Its host name or address from the config (looked up once with DNS)."""
    port: int
    """The Thespian admin port of its actor system on that host."""


@dataclass(frozen=True, kw_only=True)
class ResolverStart:
    """LicenseServer or ClientSession -> its Resolver child: these are the
    servers you will be asked about; ``global_name`` is the LicenseServer's
    name in its own actor system.  No reply."""

    targets: tuple[ResolveTarget, ...]
    """Every server the owner may ask about, from the config."""
    global_name: str
    """The global name the LicenseServer is registered under in its actor system."""
    retry: float
    """Seconds between two lookups of the same server."""


@dataclass(frozen=True, kw_only=True)
class Resolve:
    """Owner -> Resolver: find (again) the LicenseServer of each named server.
    Reply: a ``PeerResolved`` per server found; none for a host that is down
    (the Resolver keeps trying every ``retry`` while the name stays wanted)."""

    names: tuple[str, ...]
    """Config names of the servers to find; names not among the targets are ignored."""
    stop: bool = False
    """True: stop looking for these names."""


@dataclass(frozen=True, kw_only=True)
class PeerResolved:
    """Resolver -> owner: server ``name``'s LicenseServer lives at ``address``.
    No reply."""

    name: str
    """The server's config name."""
    address: Any
    """Its LicenseServer's ``ActorAddress``."""


# ---- operator queries --------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class StatusQuery:
    """CLI, demo or test -> any LicenseServer: your view of the pool.
    Reply: ``StatusReply``."""

    request_id: str = ""
    """Chosen by the asker (a uuid hex); echoed in ``StatusReply``."""


@dataclass(frozen=True, kw_only=True)
class ServerStatus:
    name: str
    """The server's config name."""
    address: str
    """``host:port`` from the config."""
    up: bool
    """False when the answering server suspects it, or it is fenced or down."""
    leader: bool
    """It is the leader the answering server knows and still hears (or the answerer itself, leading)."""
    status: str = "live"
    """Committed pool status: live, fenced or down."""
    incarnation: int = 0
    """Its incarnation in the committed pool state (0: unknown)."""


@dataclass(frozen=True, kw_only=True)
class ServerUse:
    server: str
    """The server's config name."""
    allocated: int
    """Its committed allocation of the feature, in seats."""
    in_use: int
    """Seats in use there: exact for the answering server itself, as committed in lease reports for the others."""
    target: int = 0
    """Its seats under the distribution criteria (0: none set)."""
    lingering: int = 0
    """Of ``in_use``, seats held only because a released lease lingers (answering server only)."""


@dataclass(frozen=True, kw_only=True)
class FeatureStatus:
    feature: str
    version: str
    total: int
    """Seats the signed codes and add-ons grant for this feature."""
    free_pool: int
    """Seats in the free pool."""
    in_flight: int
    """Seats in transfers not yet completed."""
    majority: bool
    """Majority-ruled (False: a ``--no-majority`` feature, served by a fenced server too)."""
    expires: str
    """The latest expiry date among its license codes, as written in them."""
    servers: tuple[ServerUse, ...]
    """Allocation and use per configured server, in config order."""
    exact_version: bool = False
    """Its codes were signed ``version_match = "exact"``: it serves requests for its own version only (False: that
    version and every lower one)."""
    unmet: tuple[tuple[str, int], ...] = ()
    """Unmet demand at the answering server since it started: (reason, count), a ``DenyReason`` value per denial,
    ``QUEUED`` per checkout held for a borrow."""
    weight: int = 1
    """Token weight: seats one checkout takes (its code's signed ``weight``)."""
    idle_timeout: float = 0.0
    """The ``idle_timeout`` policy in seconds (0: none)."""


@dataclass(frozen=True, kw_only=True)
class PendingCut:
    """A server holding more seats than its criteria target needs: idle
    rebalancing will cut it down to ``target`` as those seats stay unused (a
    criteria change waiting for seats to come free)."""

    feature: str
    version: str
    server: str
    """The config name of the server holding the excess."""
    allocated: int
    """Its committed allocation now, in seats."""
    target: int
    """What it will keep: max(criteria target, what its own use needs)."""


@dataclass(frozen=True, kw_only=True)
class LicenseInfo:
    """One license code of the pool (``StatusReply.licenses``)."""

    serial: str
    """The code's serial, as the vendor issued it."""
    feature: str
    version: str
    count: int
    """Seats the code itself grants (add-ons not included)."""
    expires: str
    """Its last valid day (YYYY-MM-DD)."""
    days_left: int
    """Days on which it still works, today included: 1 on ``expires``, 0 or less once expired
    (``actors.core.expiry.days_left``)."""


@dataclass(frozen=True, kw_only=True)
class QueuedInfo:
    """One queued checkout waiting for a seat (``StatusReply.queue``, ``SessionsReply.queued``)."""

    feature: str
    version: str
    position: int
    """1-based place in its table's committed queue."""
    client_id: str
    """The waiting client."""
    waiter_id: str
    """``"<session id>:<request id>"``: the same across its retries and re-registrations."""
    server: str
    """The config name of the server its session waits at."""
    age: float
    """Seconds since the answering server saw it join (a restarted server counts from its restart)."""


@dataclass(frozen=True, kw_only=True)
class StatusReply:
    """LicenseServer -> asker: the committed table and the servers as the
    answering server sees them.  No reply."""

    request_id: str
    """Echoes ``StatusQuery.request_id``."""
    answered_by: str
    """The answering server's config name."""
    pool: str
    """The pool's name."""
    epoch: int
    """The answering server's current term."""
    leader: str | None
    """The leader it knows and still hears from, or None during an election or a partition."""
    role: str
    """Its Raft role: ``follower``, ``pre-candidate``, ``candidate`` or ``leader``."""
    applied: int
    """The last log index it has applied: the version of the table shown."""
    servers: tuple[ServerStatus, ...]
    """Every configured server, in config order."""
    features: tuple[FeatureStatus, ...]
    """Every feature in the pool, sorted by (feature, version)."""
    pending: tuple[PendingCut, ...] = ()
    """Cuts that idle rebalancing will still make."""
    serving: bool = False
    """Whether the answering server may serve majority-ruled features now."""
    licenses: tuple[LicenseInfo, ...] = ()
    """Every license code in the pool, with its days left by the answering server's date."""
    today: str = ""
    """The answering server's date (YYYY-MM-DD), which ``days_left`` counts from."""
    settings_hash: str = ""
    """The answering server's settings hash (``PoolConfig.settings_hash``): ``licpool check`` compares it."""
    wall: float = 0.0
    """The answering server's wall clock when it answered (seconds since the epoch), for clock checks."""
    queue: tuple[QueuedInfo, ...] = ()
    """Every queued checkout waiting for a seat, by table, oldest first (docs/licenses.md, "Queued checkouts")."""


@dataclass(frozen=True, kw_only=True)
class SessionsQuery:
    """CLI -> each LicenseServer: the leases you hold.  Reply: ``SessionsReply``."""

    feature: str = ""
    """Only leases of this feature; empty: every feature."""
    version: str = ""
    """Empty: every version of ``feature`` (or every feature)."""


@dataclass(frozen=True, kw_only=True)
class SessionInfo:
    lease_id: str
    client_id: str
    feature: str
    version: str
    server: str
    """The config name of the server holding it."""
    granted_at: float
    """Wall-clock seconds (time.time()), converted by the holder from its monotonic clock."""
    expires_at: float
    """Wall-clock seconds (time.time()) of the holder's expiry (grantor side); 0.0 in ``SessionsReply.registry``."""
    seats: int = 1
    """Seats the lease holds (a multi-seat checkout)."""
    lingering: bool = False
    """Released by its client and lingering until ``expires_at`` (answering server's own leases only)."""


@dataclass(frozen=True, kw_only=True)
class SessionsReply:
    """LicenseServer -> asker: its local leases, plus the committed registry's
    leases held elsewhere (``registry``, without times).  No reply."""

    answered_by: str
    """The answering server's config name."""
    leases: tuple[SessionInfo, ...]
    """The leases it holds itself, with times, oldest grant first."""
    registry: tuple[SessionInfo, ...] = ()
    """Leases the committed registry places at other servers (no times: 0.0)."""
    queued: tuple[QueuedInfo, ...] = ()
    """The committed queue: checkouts waiting for a seat, with their age."""


@dataclass(frozen=True, kw_only=True)
class MetricsQuery:
    """``licpool server``'s metrics endpoint -> its own LicenseServer: your
    numbers now.  Reply: ``MetricsReply``."""

    request_id: str = ""


@dataclass(frozen=True, kw_only=True)
class MetricsReply:
    """LicenseServer -> asker: its metrics in the Prometheus text format
    (``prometheus_client.generate_latest`` of the server's registry).  No reply."""

    server: str
    """The answering server's name."""
    text: str
    """Prometheus text exposition format 0.0.4."""
    request_id: str = ""


# ---- app <-> ClientSession ---------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class SessionStart:
    """LicenseClient -> its ClientSession: who you are and where the servers
    are.  Reply: ``SessionReady``."""

    pool: str
    """The pool's name (``[pool] name``); not read by the session today."""
    client_id: str
    session_id: str
    servers: tuple[ResolveTarget, ...]
    """Every server of the pool, in config order (the fail-over list is rotated from it)."""
    timing: tuple[float, float, float, float, float, float]
    """(h, f, L, F, T, rho): ``actors.core.timing.Timing`` as plain numbers."""
    prefer: str | None = None
    """The server to try first; None: chosen by a hash of ``client_id``."""
    app_pid: int = 0
    """The app process; the session ends its actor system when it dies."""
    app_start: int = 0
    """The app process's start time (/proc stat field 22), against pid reuse."""
    log_level: str = "WARNING"
    """The session's own log lines below this level are dropped."""


@dataclass(frozen=True, kw_only=True)
class SessionReady:
    """ClientSession -> LicenseClient: the session is up under ``session_id``.  No reply."""

    session_id: str
    """Echoes ``SessionStart.session_id``."""


@dataclass(frozen=True, kw_only=True)
class OpenCheckout:
    """LicenseClient -> ClientSession: check out a seat (or resume ``lease_id``).
    Reply: ``CheckoutResult`` once a server granted or refused it."""

    request_id: int
    """Chosen by the LicenseClient (its counter); echoed in ``CheckoutResult``."""
    feature: str
    version: str
    lease_id: str | None = None
    """A lease to resume instead of taking a new seat (an app restarting with a lease it held)."""
    queue: bool = False
    """Wait in the pool's queue for a seat instead of a NO_SEATS denial (docs/licenses.md, "Queued checkouts")."""
    queue_timeout: float = 0.0
    """With ``queue``: seconds to wait; past them the result is QUEUE_TIMEOUT."""
    count: int = 1
    """Seats asked for in one lease: all or none."""
    linger: float = 0.0
    """Seconds the seats stay held after the release (0: the license code's value)."""
    server: str = ""
    """Ask this server first: the app asked it directly and got no answer in time (empty: the session's choice)."""


@dataclass(frozen=True, kw_only=True)
class MarkIdle:
    """LicenseClient -> ClientSession: the app marked a lease idle (``auth.idle()``)
    or busy again (``auth.busy()``); the session tells its server in each
    heartbeat.  No reply."""

    lease_id: str
    """The lease marked."""
    idle: bool
    """True: idle; False: busy again."""


@dataclass(frozen=True, kw_only=True)
class CheckoutResult:
    """ClientSession -> LicenseClient: the outcome.  ``deadline`` is the lease's
    deadline on the host's monotonic clock.  No reply."""

    request_id: int
    """Echoes ``OpenCheckout.request_id``."""
    granted: bool
    """True: a seat was granted (``lease_id``, ``server``, ``deadline`` are set); False: ``reason`` says why not."""
    lease_id: str = ""
    """The granted lease; empty when refused."""
    server: str = ""
    """The config name of the granting server; empty when refused."""
    reason: str = ""
    """A ``DenyReason`` value when refused; empty when granted."""
    detail: str = ""
    """One line from the denying server (or the session) when refused."""
    deadline: float = 0.0
    """The lease's deadline on the host's monotonic clock, in seconds; 0.0 when refused."""
    version: str = ""
    """The licensed version granted: the one asked for, or a higher one that serves it; empty when refused."""
    seats: int = 1
    """Seats the granted lease holds (the count asked for, times the feature's token weight)."""
    route: Any = None
    """The granting server's actor address, for the app's next direct checkout (None: ask through the session)."""


@dataclass(frozen=True, kw_only=True)
class AbandonCheckout:
    """LicenseClient -> ClientSession: I stopped waiting (timeout).  A late grant
    is released.  Reply: ``CheckoutAbandoned``."""

    request_id: int
    """The ``OpenCheckout.request_id`` given up on."""


@dataclass(frozen=True, kw_only=True)
class CheckoutAbandoned:
    """ClientSession -> LicenseClient: ``heard`` is False when no server
    answered anything since the checkout began (UNREACHABLE).  No reply."""

    request_id: int
    """Echoes ``AbandonCheckout.request_id``."""
    heard: bool
    """Some server answered since the checkout began: the app hears TIMEOUT; False: UNREACHABLE."""


@dataclass(frozen=True, kw_only=True)
class AdoptGrant:
    """LicenseClient -> ClientSession: the app checked out at ``grant.server``
    itself and got ``grant`` (docs/performance.md, "Lever 4"); the session
    renews it from now on.  No reply."""

    grant: CheckoutGranted
    """The server's grant, as the app received it."""
    sent_at: float
    """When the app sent its request, on the host's monotonic clock: the lease's deadline is timed from it."""


@dataclass(frozen=True, kw_only=True)
class AdoptGrants:
    """LicenseClient -> ClientSession: several direct grants at once, adopted in
    order in one step.  The app's adopter thread tells its session of every
    grant that came within a few milliseconds of the first in one message
    (docs/performance.md, "Coalesced adopts").  No reply."""

    adopts: tuple[AdoptGrant, ...]
    """The grants, oldest first, each as its own ``AdoptGrant`` would carry it."""


@dataclass(frozen=True, kw_only=True)
class ReleaseLease:
    """LicenseClient -> ClientSession: give a lease back.  Reply: ``LeaseReleased``."""

    lease_id: str
    """The lease given back."""
    server: str = ""
    """Where the app was told the lease is: a direct grant the session has not adopted yet is released there."""


@dataclass(frozen=True, kw_only=True)
class LeaseReleased:
    """ClientSession -> LicenseClient: the release of ``lease_id`` was sent.  No reply."""

    lease_id: str
    """Echoes ``ReleaseLease.lease_id``."""


@dataclass(frozen=True, kw_only=True)
class Subscribe:
    """LicenseClient's listener endpoint -> ClientSession: send lease notices
    here.  Reply: a first ``LeaseNotice`` with kind ``subscribed``."""


@dataclass(frozen=True, kw_only=True)
class LeaseNotice:
    """ClientSession -> LicenseClient listener: something happened to a lease.

    ``kind``: ``deadline`` (renewed: new deadline), ``deadlines`` (several
    renewed at once, in ``deadlines``), ``lost`` (the app must stop using it),
    ``failed_over`` (now at ``server``), ``subscribed``.  No reply.
    """

    kind: str
    """``deadline``, ``deadlines``, ``lost``, ``failed_over`` or ``subscribed``."""
    lease_id: str = ""
    """The lease concerned; empty for ``deadlines`` and ``subscribed``."""
    server: str = ""
    """Where the lease is now (``deadline``, ``failed_over``) or was lost (``lost``)."""
    deadline: float = 0.0
    """The lease's new deadline on the host's monotonic clock, in seconds (``deadline`` only)."""
    detail: str = ""
    """Why the lease was lost, one line (``lost`` only)."""
    reason: str = ""
    """The server's stated reason for a ``lost`` lease, such as ``"IDLE"`` (empty: none stated)."""
    deadlines: tuple[tuple[str, str, float], ...] = ()
    """``(lease_id, server, deadline)`` of every lease renewed in one session step:
    one message per step, not one per lease, so that a session holding many
    leases does not spend its time telling the app about renewals."""


@dataclass(frozen=True, kw_only=True)
class CloseSession:
    """LicenseClient -> ClientSession: release everything; the app is done.
    Reply: ``SessionClosed`` after the releases were sent."""


@dataclass(frozen=True, kw_only=True)
class SessionClosed:
    """ClientSession -> LicenseClient: closed; ``released`` leases were given back.  No reply."""

    released: int = 0
    """How many leases the session still held and gave back."""
