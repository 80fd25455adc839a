"""The LicenseServer actor: one per host, a thin shell around ``ServerNode``.

Every handler does the same three things (architecture.md H1): call the core,
persist what its ``Ready`` says (append, fsync), then send.  **Group commit**:
the fsync and the sends wait for the end of a burst.  The records of every
message handled in a burst are appended as each is handled, and its outgoing
messages wait in ``outbox``; when Thespian has no further received message
queued for this actor (or after ``_MAX_BATCH`` messages), one fsync makes
them all durable and only then does the outbox go out, in order.  So no
message leaves before the records of its own Ready, and of every Ready before
it, are durable.  Where the queue cannot be seen (another transport, the
in-process tests) a ``GroupCommitFlush`` sent to itself, which Thespian queues
behind the messages already received, ends the burst.  ``LICPOOL_GROUP_COMMIT=0``
syncs after every message (for measuring).  Around that the shell owns only
what the core cannot know:

* **addresses**: server names <-> actor addresses (``AddressBook``, fed by the
  ``Resolver`` child and by the sender address inside every ``PeerEnvelope``),
  and ``ClientRef`` <-> the actor address of a client session or CLI;
* **time**: ``tick`` is driven by ``wakeupAfter``; wakeups cannot be
  cancelled, so each carries a generation and only the latest one ticks;
* **the leader's fan-out**: while the core leads, its peer-bound messages go to
  the ``LeaderRole`` child in one ``FanOut`` per Ready (docs/operations.md);
* **queries**: ``StatusQuery`` and ``SessionsQuery`` are answered from the
  node's real state (``actors.shell.views``).

An exception in the core, or a failed write, restarts the core from disk: the
half-changed state is thrown away and the server rejoins as a new incarnation.
"""

from __future__ import annotations

import dataclasses
import os
import time
from dataclasses import dataclass
from datetime import timedelta
from time import perf_counter as _perf_counter
from typing import Any

from loguru import logger
from thespian.actors import (
    ActorExitRequest,
    ActorTypeDispatcher,
    ChildActorExited,
    PoisonMessage,
    WakeupMessage,
)

from actors.core import shape
from actors.core.codes import CodeError
from actors.core.effects import ClientRef, Ready
from actors.core.node import ServerNode
from actors.persist import PersistError
from actors.protocol import admin as admin_msgs
from actors.protocol import client as client_msgs
from actors.protocol import pool as pool_msgs
from actors.protocol.raft import SyncReply
from actors.shell import logs, peerauth, profiling
from actors.shell.book import AddressBook
from actors.shell.config import ConfigError, PoolConfig, load_config
from actors.shell.flow import SyncWindow
from actors.shell.leader_actor import LeaderRole
from actors.shell.metrics import ServerMetrics
from actors.shell.persistence import NodeStore
from actors.shell.resolver import Resolver, ask_for_stale
from actors.shell.system import SERVER_GLOBAL_NAME, kill_own_family, process_alive, process_start_time
from actors.shell.views import node_settings, sessions_reply, status_reply

__all__ = ["LicenseServer"]

_TICK = "licpool-server-tick"
_CLIENT_IDLE = 120.0
"""Seconds after which an address of a silent client is forgotten."""
_EVENTS_AT_INFO = frozenset(
    {
        "leader",
        "step_down",
        "leader_lease_lost",
        "fence",
        "reclaim",
        "rejoin",
        "serverdown",
        "boot",
        "borrow",
        "transfer",
        "failover",
        "rebalance",
        "settings_mismatch",
    }
)


_SLOW_STEP = 0.25
"""A step longer than this fraction of ``failure_timeout`` is logged as a warning."""

_MAX_BATCH = 64
"""Messages handled at most before a group commit's fsync and sends (a steady
stream would otherwise keep a batch open)."""


@dataclass(frozen=True)
class GroupCommitFlush:
    """Sent by the server to itself: the end of a burst (never crosses the wire)."""


def _group_commit() -> bool:
    """``LICPOOL_GROUP_COMMIT=0``: fsync and send after every message (for measuring)."""
    return os.environ.get("LICPOOL_GROUP_COMMIT", "1") != "0"


def _fanout_enabled() -> bool:
    """``LICPOOL_FANOUT=0`` sends peer messages from the server itself (for measuring)."""
    return os.environ.get("LICPOOL_FANOUT", "1") != "0"


def _sealing() -> bool:
    """``LICPOOL_SEALED=0`` sends plain peer envelopes only, as an older server does (for measuring)."""
    return os.environ.get("LICPOOL_SEALED", "1") != "0"


def _sync_window() -> int:
    """Unanswered syncs allowed per peer; ``LICPOOL_SYNC_WINDOW=0`` turns flow control off (for measuring)."""
    try:
        window = int(os.environ.get("LICPOOL_SYNC_WINDOW", "2"))
    except ValueError:
        window = 2
    return window if window > 0 else 1_000_000


def _compact_every() -> int:
    """Journal records between snapshots; ``LICPOOL_COMPACT_EVERY`` lowers it (tests, measuring)."""
    try:
        every = int(os.environ.get("LICPOOL_COMPACT_EVERY", "2000"))
    except ValueError:
        every = 2000
    return max(every, 1)


class LicenseServer(ActorTypeDispatcher):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.cfg: PoolConfig | None = None
        self.name = ""
        self.node: ServerNode | None = None
        self.store: NodeStore | None = None
        self.book: AddressBook | None = None
        self.resolver: Any = None
        self.leader_role: Any = None
        self.clients: dict[str, tuple[Any, float]] = {}
        self.wake_gen = 0
        self.wake_due = float("inf")
        self.launcher = (0, 0)
        self.next_watch = 0.0
        self.dropped_sends = 0
        self.peer_key = b""
        self.exiting = False
        self.window = SyncWindow(window=2, max_hold=0.25)
        self.window_term = -1
        self.metrics: ServerMetrics | None = None
        self.profile: profiling.ServerProfile | None = None
        # group commit: what waits for the end of the burst
        self.outbox: list[tuple[Any, Any]] = []
        self.held_events: list[Any] = []
        self.unsynced = False
        self.batched = 0
        self.flush_asked = False
        self.group_commit = _group_commit()
        self.step_body = ""
        """The class of the peer message the current step handles (for the slow-step warning)."""
        # peer envelopes: which servers get sealed ones (peerauth)
        self.sealing = _sealing()
        self.sealed_peers: dict[str, bool] = {}

    def receiveMessage(self, message: Any, sender: Any) -> None:
        started = _perf_counter()
        self.step_body = ""
        try:
            super().receiveMessage(message, sender)
        finally:
            self._end_of_message()
            self._timed(message, _perf_counter() - started)

    def _timed(self, message: Any, seconds: float) -> None:
        """Count one message's step; warn of a step long enough to cost leases."""
        if self.metrics is not None:
            self.metrics.observe_step(seconds)
        if self.cfg is not None and seconds > self.cfg.timing.failure_timeout * _SLOW_STEP:
            what = type(message).__name__ + (f" ({self.step_body})" if self.step_body else "")
            logger.warning(
                "server {}: one step took {:.2f} s ({}); nothing else was handled meanwhile,"
                " and a step of failure_timeout ({} s) costs the pool its leader",
                self.name,
                seconds,
                what,
                self.cfg.timing.failure_timeout,
            )

    # ---- start ---------------------------------------------------------------------

    def receiveMsg_StartServer(self, msg: admin_msgs.StartServer, sender: Any) -> None:
        if self.node is not None:
            self._out(
                sender,
                admin_msgs.ServerStarted(
                    name=self.name, incarnation=self.node.raft.incarnation, address=str(self.myAddress)
                ),
            )
            return
        try:
            self._open(msg)
        except (ConfigError, CodeError, PersistError, OSError, ValueError) as exc:
            logger.error("server {} cannot start: {}", msg.name, exc)
            self._out(sender, admin_msgs.ServerStartFailed(error=" ".join(str(exc).split())))
            return
        assert self.node is not None
        self._out(
            sender,
            admin_msgs.ServerStarted(
                name=self.name, incarnation=self.node.raft.incarnation, address=str(self.myAddress)
            ),
        )

    def _open(self, msg: admin_msgs.StartServer) -> None:
        cfg = load_config(msg.config_path)
        settings = node_settings(cfg, msg.name)
        self.cfg, self.name = cfg, msg.name
        self.metrics = ServerMetrics(cfg.name, msg.name)
        self.profile = self.profile or profiling.from_environment(msg.name)
        self.peer_key = peerauth.derive_peer_key(cfg.admin_secret(), cfg.name)
        self.launcher = (msg.launcher_pid, process_start_time(msg.launcher_pid) if msg.launcher_pid else 0)
        peers = tuple(s for s in cfg.server_names if s != msg.name)
        self.book = AddressBook(peers, cfg.timing.failure_timeout)
        self.window = SyncWindow(window=_sync_window(), max_hold=cfg.timing.heartbeat_interval / 2)
        self.store = self._open_store()
        self._boot(settings)
        self.resolver = self.createActor(Resolver)
        targets = tuple(
            admin_msgs.ResolveTarget(name=s.name, host=s.host, port=s.port) for s in cfg.servers if s.name != msg.name
        )
        self.send(
            self.resolver,
            admin_msgs.ResolverStart(targets=targets, global_name=SERVER_GLOBAL_NAME, retry=cfg.timing.failure_timeout),
        )
        ask_for_stale(self, self.book, self.resolver, time.monotonic())

    def _open_store(self) -> NodeStore:
        """The server's durable store, ``data_dir/<name>/`` (the shell crash tests inject a storage double)."""
        assert self.cfg is not None
        return NodeStore(self.cfg.data_dir / self.name, compact_every_records=_compact_every())

    def _boot(self, settings: Any = None) -> None:
        """(Re)start the core from disk: a new incarnation that rejoins as a follower."""
        assert self.store is not None and self.cfg is not None
        if settings is None:
            settings = self.node.settings if self.node is not None else node_settings(self.cfg, self.name)
        now = time.monotonic()
        # Incarnations never repeat, even on a disk rebuilt empty: the wall clock's
        # seconds are a floor (docs/leadership.md, "Rejoin after a lost disk").
        settings = dataclasses.replace(settings, incarnation_floor=int(time.time()))
        node, ready = ServerNode.boot(settings, self.store.load(), now)
        self.node = node
        logger.info(
            "server {} up: incarnation {}, epoch {}, applied {}",
            self.name,
            node.raft.incarnation,
            node.raft.term,
            node.applied,
        )
        self._carry(ready, now)

    def _restart_core(self, why: str) -> None:
        logger.error("server {}: {}; restarting the core from disk", self.name, why)
        self._drop_batch()
        self._stop_leader_role()
        try:
            assert self.store is not None and self.cfg is not None
            settings = self.node.settings if self.node is not None else None
            self.store.close()
            self.node = None
            self.store = self._open_store()
            self._boot(settings)
        except Exception as exc:
            logger.critical("server {} cannot recover from disk ({}); it stops serving", self.name, exc)
            self.node = None

    # ---- messages from peers ----------------------------------------------------

    def _malformed(self, msg: Any, sender: Any) -> str | None:
        """Why ``msg`` is not shaped as its class says (``actors.core.shape``), after
        logging and auditing it; ``None`` if it is well formed."""
        problem = shape.problem(msg)
        if problem is not None:
            logger.warning(
                "server {}: dropped a malformed {} from {}: {}", self.name, type(msg).__name__, sender, problem
            )
            self._audit("bad_message", message=type(msg).__name__, origin=str(sender)[:100], problem=problem[:300])
        return problem

    def receiveMsg_PeerEnvelope(self, env: admin_msgs.PeerEnvelope, sender: Any) -> None:
        if self.node is None or self.cfg is None or self.book is None:
            return
        if self._malformed(env, sender) is not None:
            return
        if not env.sealed and self._malformed(env.body, sender) is not None:
            return
        if env.pool != self.cfg.name or env.sender not in self.book.names:
            logger.warning("server {}: dropped a peer message from {!r} of pool {!r}", self.name, env.sender, env.pool)
            return
        if not peerauth.genuine(self.peer_key, env):
            self._refuse_peer(env, sender)
            return
        body = self._opened(env, sender)
        if body is None:
            return
        self.step_body = type(body).__name__
        now = time.monotonic()
        self.sealed_peers[env.sender] = env.sealed_ok and self.sealing
        if self.book.learn(env.sender, env.address, now):
            logger.info("server {}: {} is at {}", self.name, env.sender, env.address)
        self.book.heard(env.sender, now)
        if isinstance(body, admin_msgs.PeerHello):
            return
        if isinstance(body, SyncReply):
            released = self.window.answered(env.sender, body.round, now)
            if released is not None:
                self._send_peers([(env.sender, released)], now)
        node = self.node
        self._run(lambda t: node.receive(env.sender, body, t))

    def _opened(self, env: admin_msgs.PeerEnvelope, sender: Any) -> Any:
        """The body of a genuine envelope, unpickled if sealed and shape-checked;
        ``None`` (logged and audited) if it is not a well-formed message."""
        if not env.sealed:
            return env.body
        try:
            body = peerauth.opened(env)
        except Exception as exc:  # bytes a server of the pool sealed but this one cannot read
            logger.warning("server {}: dropped a sealed message from {} it cannot read: {}", self.name, env.sender, exc)
            self._audit("bad_message", message="PeerEnvelope", origin=env.sender, problem=str(exc)[:300])
            return None
        return None if self._malformed(body, sender) is not None else body

    def _refuse_peer(self, env: admin_msgs.PeerEnvelope, sender: Any) -> None:
        """A well-formed envelope of our pool that no server of it sealed: a
        forgery, or a server whose admin key file differs from ours.  A sealed
        body is not unpickled to name it: it is unread until its MAC is right."""
        what = "sealed message" if env.sealed else type(env.body).__name__
        logger.warning(
            "server {}: dropped a {} claiming to be from {} (wrong MAC; is its admin key file the same as ours?)",
            self.name,
            what,
            env.sender,
        )
        self._audit("peer_refused", claimed=env.sender, message=what, origin=str(sender)[:100])

    def _audit(self, kind: str, **fields: Any) -> None:
        """One audit record of this server; an audit line must never stop the server."""
        try:
            logs.audit(kind, node=self.name, **fields)
        except Exception as exc:
            logger.warning("server {}: audit of {} failed: {}", self.name, kind, exc)

    def _seal(self, body: Any, to: str = "") -> admin_msgs.PeerEnvelope:
        """``body`` for server ``to``: sealed if it said it reads sealed envelopes."""
        assert self.cfg is not None
        sealed = self.sealed_peers.get(to, False)
        return peerauth.seal(
            self.peer_key, self.cfg.name, self.name, self.myAddress, body, sealed=sealed, reads_sealed=self.sealing
        )

    def receiveMsg_PeerResolved(self, msg: admin_msgs.PeerResolved, sender: Any) -> None:
        if self.book is None or self.node is None or self.cfg is None:
            return
        now = time.monotonic()
        if self.book.learn(msg.name, msg.address, now, resolved=True):
            logger.info("server {}: found {} at {}", self.name, msg.name, msg.address)
            self._out(msg.address, self._seal(admin_msgs.PeerHello(incarnation=self.node.raft.incarnation)))

    # ---- messages from client sessions and the CLI --------------------------------

    def _client_msg(self, msg: Any, sender: Any) -> bool:
        """A client or CLI message the core may see (well formed, server started)."""
        return self.node is not None and self._malformed(msg, sender) is None

    def _client(self, session_id: str, sender: Any) -> ClientRef:
        self.clients[session_id] = (sender, time.monotonic())
        return ClientRef(session_id)

    def _from_client(self, ref: ClientRef, msg: Any) -> None:
        node = self.node
        if node is not None:
            self._run(lambda t: node.from_client(ref, msg, t))

    def receiveMsg_CheckoutRequest(self, msg: client_msgs.CheckoutRequest, sender: Any) -> None:
        if self._client_msg(msg, sender):
            # An app's own ask (lever 4): answered at its sender; the session's
            # address, which heartbeat acks and later answers use, stays as it is.
            ref = f"direct:{msg.session_id}:{msg.request_id}" if msg.direct else msg.session_id
            self._from_client(self._client(ref, sender), msg)

    def receiveMsg_SessionHeartbeat(self, msg: client_msgs.SessionHeartbeat, sender: Any) -> None:
        if self._client_msg(msg, sender):
            self._from_client(self._client(msg.session_id, sender), msg)

    def receiveMsg_FailoverUpdate(self, msg: client_msgs.FailoverUpdate, sender: Any) -> None:
        if self._client_msg(msg, sender):
            self._from_client(self._client(msg.session_id, sender), msg)

    def receiveMsg_ReleaseRequest(self, msg: client_msgs.ReleaseRequest, sender: Any) -> None:
        if self._client_msg(msg, sender):
            self._from_client(self._client(f"release:{msg.client_id}:{msg.request_id}", sender), msg)

    def _admin(self, msg: Any, sender: Any) -> None:
        request_id = getattr(msg, "request_id", "")
        request_id = request_id if isinstance(request_id, str) else ""
        problem = self._malformed(msg, sender)
        if problem is not None:
            self._out(
                sender,
                pool_msgs.AdminReply(
                    sender=self.name,
                    epoch=0,
                    request_id=request_id,
                    ok=False,
                    error=f"malformed admin change: {problem}",
                ),
            )
            return
        if self.node is None:
            self._out(
                sender,
                pool_msgs.AdminReply(
                    sender="", epoch=0, request_id=request_id, ok=False, error="the server is not serving"
                ),
            )
            return
        self._from_client(self._client(f"admin:{msg.request_id}", sender), msg)

    receiveMsg_AddLicenseCode = _admin
    receiveMsg_AddAllocations = _admin
    receiveMsg_ChangeDistributionCriteria = _admin
    receiveMsg_ForceReleaseLease = _admin
    receiveMsg_DeclareServerDown = _admin
    receiveMsg_SetIdleTimeout = _admin

    def receiveMsg_StatusQuery(self, msg: admin_msgs.StatusQuery, sender: Any) -> None:
        if self.node is not None and self.cfg is not None and self._malformed(msg, sender) is None:
            self._out(sender, status_reply(self.node, self.cfg, time.monotonic(), msg.request_id, time.time()))

    def receiveMsg_SessionsQuery(self, msg: admin_msgs.SessionsQuery, sender: Any) -> None:
        if self.node is not None and self._malformed(msg, sender) is None:
            self._out(sender, sessions_reply(self.node, time.monotonic(), time.time(), msg.feature, msg.version))

    def receiveMsg_MetricsQuery(self, msg: admin_msgs.MetricsQuery, sender: Any) -> None:
        if (
            self.node is not None
            and self.cfg is not None
            and self.metrics is not None
            and self._malformed(msg, sender) is None
        ):
            text = self.metrics.render(self.node, self.cfg, self.cfg.data_dir / self.name, time.monotonic())
            self._out(sender, admin_msgs.MetricsReply(server=self.name, text=text, request_id=msg.request_id))

    # ---- time ---------------------------------------------------------------------

    def receiveMsg_WakeupMessage(self, msg: WakeupMessage, sender: Any) -> None:
        payload = msg.payload
        if not (isinstance(payload, tuple) and payload[0] == _TICK and payload[1] == self.wake_gen):
            return  # an older wakeup: a newer, earlier one was scheduled after it
        now = time.monotonic()
        if self.metrics is not None:
            self.metrics.observe_lateness(max(0.0, now - self.wake_due))
        self.wake_due = float("inf")
        self._housekeeping(now)
        self._send_peers(list(self.window.due(now)), now)
        node = self.node
        if node is not None:
            self._run(lambda t: node.tick(t))

    def _schedule(self, wake_at: float | None, now: float) -> None:
        assert self.cfg is not None
        latest = now + self.cfg.timing.heartbeat_interval
        wake_at = latest if wake_at is None else min(wake_at, latest)
        held = self.window.next_due()
        if held is not None:
            wake_at = min(wake_at, max(held, now))
        if wake_at < self.wake_due - 0.0005:
            self.wake_gen += 1
            self.wake_due = wake_at
            self.wakeupAfter(timedelta(seconds=max(0.0, wake_at - now)), payload=(_TICK, self.wake_gen))

    def _housekeeping(self, now: float) -> None:
        ask_for_stale(self, self.book, self.resolver, now)
        if self.profile is not None:
            self.profile.maybe_dump()
        if self.store is not None and self.store.compacting:
            self._compact()  # a running compaction may have finished
        if now >= self.next_watch:
            self.next_watch = now + 0.5
            pid, start = self.launcher
            if pid and not process_alive(pid, start):
                logger.critical(
                    "server {}: its launcher (pid {}) is gone; stopping this host's processes", self.name, pid
                )
                kill_own_family()
            self.clients = {k: v for k, v in self.clients.items() if now - v[1] < _CLIENT_IDLE}

    # ---- carrying out a Ready: persist, then send, then wake up ------------------------

    def _run(self, step: Any) -> None:
        now = time.monotonic()
        try:
            ready = step(now)
        except Exception:
            logger.exception("server {}: the core raised", self.name)
            self._restart_core("the core raised an exception")
        else:
            self._carry(ready, now)

    def _carry(self, ready: Ready, now: float) -> None:
        """Append the Ready's records (durable at the burst's flush), queue its
        audit lines and messages behind them, and schedule the next wake-up."""
        store = self.store
        assert self.node is not None and store is not None
        if ready.persist:
            try:
                store.append(ready.persist)
            except (PersistError, OSError) as exc:
                self._restart_core(f"persisting failed: {exc}")
                return
            self.unsynced = True
        self.held_events.extend(ready.events)
        self._sync_leader_role()
        self._send_all(ready, now)
        self._schedule(ready.wake_at, now)

    # ---- group commit: one fsync per burst, then the burst's messages -----------------

    def _out(self, to: Any, msg: Any) -> None:
        """Send ``msg``, after everything queued before it (and so after the fsync
        of every record appended before it)."""
        if self.unsynced or self.outbox:
            self.outbox.append((to, msg))
        else:
            self.send(to, msg)

    def _more_waiting(self) -> bool | None:
        """Whether Thespian holds more received messages for this actor; None if
        it cannot be seen.  (Thespian 4.0.1's TCP transport keeps them in
        ``_incomingEnvelopes`` and pops each one before handing it over.)"""
        transport = getattr(getattr(self, "_myRef", None), "transport", None)
        queued = getattr(transport, "_incomingEnvelopes", None)
        return bool(queued) if isinstance(queued, list) else None

    def _end_of_message(self) -> None:
        """Called after every handled message: flush now, or at the end of the burst."""
        if not (self.unsynced or self.outbox or self.held_events):
            return
        self.batched += 1
        if not self.group_commit or self.batched >= _MAX_BATCH:
            self._flush()
            return
        if self._more_waiting() is False:
            self._flush()
        elif not self.flush_asked:
            # Queued behind every message received so far; a no-op if a later
            # message finds the queue empty and flushes first.
            self.flush_asked = True
            self.send(self.myAddress, GroupCommitFlush())

    def receiveMsg_GroupCommitFlush(self, msg: GroupCommitFlush, sender: Any) -> None:
        if sender != self.myAddress:
            return
        self.flush_asked = False
        self._flush()

    def _flush(self) -> None:
        """One fsync for every record appended since the last one, then the
        held audit lines and messages in order, then compaction if due."""
        self.batched = 0
        store = self.store
        if self.unsynced and store is not None:
            try:
                started = _perf_counter()
                store.sync()
                if self.metrics is not None:
                    self.metrics.observe_fsync(_perf_counter() - started)
            except (PersistError, OSError) as exc:
                self._restart_core(f"persisting failed: {exc}")
                return
        self.unsynced = False
        events, self.held_events = self.held_events, []
        outbox, self.outbox = self.outbox, []
        self._events(events)
        for to, msg in outbox:
            self.send(to, msg)
        self._compact()

    def _compact(self) -> None:
        """Start, advance or finish a compaction (NodeStore: in a forked child)."""
        node, store = self.node, self.store
        if node is None or store is None:
            return
        try:
            started = _perf_counter()
            if store.maybe_compact(node.snapshot):
                if self.metrics is not None:
                    self.metrics.observe_compaction(_perf_counter() - started)
                logger.debug("server {}: compacted the journal into a snapshot", self.name)
        except (PersistError, OSError) as exc:
            self._restart_core(f"compaction failed: {exc}")

    def _drop_batch(self) -> None:
        """The core restarts from disk: nothing of the unsynced batch may leave."""
        self.outbox.clear()
        self.held_events.clear()
        self.unsynced = False
        self.batched = 0

    def _events(self, events: list[Any]) -> None:
        if self.metrics is not None and self.node is not None:
            self.metrics.events(events)
            self.metrics.stepped(self.node)
        for event in events:
            fields = dict(event.fields)
            self._audit(event.kind, **fields)
            if event.kind == "expiry_warning":
                logger.warning(
                    "server {}: license for {} {} expires after {} ({} day(s) left)",
                    self.name,
                    fields.get("feature"),
                    fields.get("version"),
                    fields.get("expires"),
                    fields.get("days_left"),
                )
            elif event.kind in _EVENTS_AT_INFO:
                logger.info("server {}: {} {}", self.name, event.kind, fields)

    def _send_all(self, ready: Ready, now: float) -> None:
        peers: list[tuple[str, Any]] = []
        for out in ready.send:
            if isinstance(out.to, ClientRef):
                ref = out.to.session_id
                # An app's direct ask gets one answer: its address is not kept (one per checkout).
                known = self.clients.pop(ref, None) if ref.startswith("direct:") else self.clients.get(ref)
                if known is None:
                    self.dropped_sends += 1
                    continue
                self._out(known[0], out.msg)
                continue
            msg = self.window.offer(out.to, out.msg, now)
            if msg is not None:
                peers.append((out.to, msg))
        self._send_peers(peers, now)

    def _send_peers(self, sends: list[tuple[str, Any]], now: float) -> None:
        """Peer-bound messages, in envelopes; through the LeaderRole while leading."""
        assert self.cfg is not None and self.book is not None
        fanout: list[admin_msgs.Addressed] = []
        for name, msg in sends:
            address = self.book.address(name)
            if address is None:
                self.dropped_sends += 1  # not found yet: the core retries on its own timers
                continue
            self.book.sent(name, now)
            envelope = self._seal(msg, name)
            if self.leader_role is not None:
                fanout.append(admin_msgs.Addressed(address=address, message=envelope))
            else:
                self._out(address, envelope)
        if fanout:
            assert self.node is not None
            self._out(self.leader_role, admin_msgs.FanOut(sends=tuple(fanout), epoch=self.node.raft.term))

    # ---- the LeaderRole child -----------------------------------------------------------

    def _sync_leader_role(self) -> None:
        leading = self.node is not None and self.node.raft.is_leader
        if leading and self.leader_role is None and _fanout_enabled():
            self.leader_role = self.createActor(LeaderRole)
        elif not leading and self.leader_role is not None:
            self._stop_leader_role()
        if self.node is not None and self.node.raft.term != self.window_term:
            self.window.reset()
            self.window_term = self.node.raft.term

    def _stop_leader_role(self) -> None:
        if self.leader_role is not None:
            self._out(self.leader_role, ActorExitRequest())  # after any FanOut still waiting for it
            self.leader_role = None

    # ---- lifecycle and the unexpected -------------------------------------------------

    def receiveMsg_ChildActorExited(self, msg: ChildActorExited, sender: Any) -> None:
        child = msg.childAddress
        if self.exiting:
            return
        if child == self.leader_role:
            logger.warning("server {}: its LeaderRole exited; sending directly until it is back", self.name)
            self.leader_role = None
            self._sync_leader_role()
        elif child == self.resolver and self.cfg is not None:
            logger.warning("server {}: its Resolver exited; starting a new one", self.name)
            self.resolver = self.createActor(Resolver)
            targets = tuple(
                admin_msgs.ResolveTarget(name=s.name, host=s.host, port=s.port)
                for s in self.cfg.servers
                if s.name != self.name
            )
            self.send(
                self.resolver,
                admin_msgs.ResolverStart(
                    targets=targets, global_name=SERVER_GLOBAL_NAME, retry=self.cfg.timing.failure_timeout
                ),
            )
            if self.book is not None:
                self.book.resolving.clear()

    def receiveMsg_ActorExitRequest(self, msg: ActorExitRequest, sender: Any) -> None:
        logger.info("server {} stopping", self.name or "(not started)")
        self._flush()
        self.exiting = True
        if self.store is not None:
            self.store.close()
            self.store = None
        self.node = None

    def receiveMsg_PoisonMessage(self, msg: PoisonMessage, sender: Any) -> None:
        logger.warning(
            "server {}: a message it sent could not be handled: {}", self.name, type(msg.poisonMessage).__name__
        )

    def receiveUnrecognizedMessage(self, msg: Any, sender: Any) -> None:
        logger.warning("server {}: dropped unknown message {} from {}", self.name, type(msg).__name__, sender)
