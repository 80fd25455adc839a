"""The Python client API: ``LicenseClient``, ``Authorization``, ``LicenseDenied``.

    from actors.client import LicenseClient, LicenseDenied
    with LicenseClient.from_config("pool.toml", client_id="ws17/cad") as client:
        with client.checkout("cad", version="2.0", timeout=5.0) as auth:
            ...  # auth.lease_id, auth.server, auth.lost (threading.Event)

A ``LicenseClient`` starts the app's own actor system (a free port, or the
config's ``client_port``) and one ``ClientSession`` actor in it, which
heartbeats, renews and fails over by itself.  The proxy only asks it for
checkouts and releases, and a listener thread receives its ``LeaseNotice``s:
``auth.lost`` is set (and the callback called) when a lease could not be kept.
The listener also keeps each lease's deadline and sets ``lost`` itself when it
passes, so the app stops in time even if its session process died.  Closing
the client releases everything and shuts its actor system down, always.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import queue
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from types import TracebackType
from typing import Any

from loguru import logger

from actors.core.session import start_server
from actors.core.timing import Timing
from actors.protocol import admin
from actors.protocol.client import CheckoutDenied, CheckoutGranted, CheckoutRequest, DenyReason
from actors.shell.config import PoolConfig, load_config
from actors.shell.launcher import transmit_timeout
from actors.shell.system import (
    StartedSystem,
    free_port,
    process_start_time,
    route_ip,
    start_system,
    stop_system,
    tune_transport,
)

__all__ = ["Authorization", "DenyReason", "LicenseClient", "LicenseDenied"]

LostCallback = Callable[["Authorization"], None]
_ASK = 5.0
"""Seconds to wait for the local session on calls that do not wait for a server."""
_TRANSIENT = frozenset({DenyReason.NOT_SERVING, DenyReason.NO_MAJORITY})
"""Denials a checkout waits out (within its timeout): the pool is between leaders."""
_RETRY_FIRST, _RETRY_MAX = 0.1, 0.5
"""Seconds between checkout attempts while the denials are transient (doubling)."""
_DIRECT_COOLDOWN = 30.0
"""Seconds a LicenseClient asks through its session only, after a direct ask went unanswered."""
ADOPT_WINDOW = 0.02
"""Seconds the adopter waits after a direct grant for more, to tell the session of them in one message."""
_ADOPT_BATCH = 256
"""Most grants in one ``AdoptGrants``."""


def direct_enabled() -> bool:
    """Whether apps ask their server directly (lever 4); ``LICPOOL_DIRECT=0`` turns it off."""
    return os.environ.get("LICPOOL_DIRECT", "1") != "0"


class LicenseDenied(Exception):
    """A checkout was refused; ``reason`` is a ``DenyReason`` (a ``str``)."""

    def __init__(self, reason: DenyReason | str, detail: str = "") -> None:
        self.reason = DenyReason(reason)
        self.detail = detail
        super().__init__(f"{self.reason.value}: {detail}" if detail else self.reason.value)


class Authorization:
    """One seat held by this app.  Use it as a context manager, or call ``release``."""

    def __init__(
        self,
        client: LicenseClient,
        lease_id: str,
        server: str,
        feature: str,
        version: str,
        deadline: float,
        on_lost: LostCallback | None,
    ) -> None:
        self.client = client
        self.lease_id = lease_id
        self.server = server
        self.feature = feature
        self.version = version
        """The version asked for."""
        self.licensed_version = version
        """The licensed version whose seat this is: ``version`` or a higher one that serves it."""
        self.deadline = deadline
        """Monotonic time (this host's clock) until which the app may use the seat."""
        self.lost = threading.Event()
        self.lost_reason = ""
        """Why, one line: the server's reason first when it stated one (``IDLE: ...``)."""
        self.seats = 1
        """Seats this lease holds (``checkout(count=...)`` times the feature's token weight)."""
        self.on_lost = on_lost
        self.released = False
        self.failovers = 0
        self.direct = False
        """Granted to the app's own ask (lever 4): its release names the server, in case the session has not
        adopted it yet."""

    def __enter__(self) -> Authorization:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    def release(self) -> None:
        """Give the seat back (idempotent)."""
        if not self.released:
            self.released = True
            self.client._release(self)

    def idle(self) -> None:
        """Mark this lease idle: the app is not using it.  A pool whose feature has
        an ``idle_timeout`` reclaims it after that long idle (``lost`` with reason
        ``IDLE``), even while the session renews it."""
        self.client._mark(self, True)

    def busy(self) -> None:
        """Mark this lease in use again (the default after checkout)."""
        self.client._mark(self, False)

    def _lose(self, why: str) -> None:
        if self.lost.is_set() or self.released:
            return
        self.lost_reason = why
        self.lost.set()
        logger.warning("lease {} of {} {} lost: {}", self.lease_id, self.feature, self.version, why)
        if self.on_lost is not None:
            try:
                self.on_lost(self)
            except Exception:
                logger.exception("the on_lost callback of lease {} raised", self.lease_id)

    def __repr__(self) -> str:
        state = "lost" if self.lost.is_set() else "released" if self.released else "held"
        return f"Authorization({self.feature}:{self.version}, {self.lease_id}, at {self.server}, {state})"


class _Endpoints:
    """One Thespian endpoint (``ActorSystem.private()``) per app thread, kept
    while the thread lives.  A fresh endpoint per call costs a new connection
    each way: a direct checkout took 1.8 ms in a fresh one and 0.9 ms in a
    kept one (docs/performance.md, "Lever 4").  A late answer to an earlier
    call may reach a kept endpoint; every call skips what is not its own."""

    def __init__(self, asys: Any) -> None:
        self.asys = asys
        self._lock = threading.Lock()
        self._open: dict[int, tuple[threading.Thread, Any, Any]] = {}

    @contextlib.contextmanager
    def get(self) -> Iterator[Any]:
        """This thread's endpoint.  Only a thread's first call opens one, and
        only then are the endpoints of threads that ended closed."""
        me = threading.current_thread()
        entry = self._open.get(me.ident or 0)
        if entry is not None and entry[0] is me:
            yield entry[2]
            return
        with self._lock:
            gone = [k for k, (t, _, _) in self._open.items() if not t.is_alive() or k == me.ident]
            closing = [self._open.pop(k) for k in gone]
        for _, cm, _ in closing:
            with contextlib.suppress(Exception):
                cm.__exit__(None, None, None)
        cm = self.asys.private()
        ctx = cm.__enter__()
        with self._lock:
            self._open[me.ident or 0] = (me, cm, ctx)
        yield ctx

    def close(self) -> None:
        with self._lock:
            closing, self._open = list(self._open.values()), {}
        for _, cm, _ in closing:
            with contextlib.suppress(Exception):
                cm.__exit__(None, None, None)


class _Adopter:
    """Tells the session of each direct grant from a thread of its own, so the
    app's checkout returns without waiting for that send (one Thespian send
    with its acknowledgement, 0.2-0.6 ms here).  It waits ``window`` seconds
    after a grant for more and tells the session of them all in one message
    (``AdoptGrants``): a tell and a session step per grant cost a checkout
    0.63 of its 1.46 ms, competing for the GIL and the two cores
    (docs/performance.md, "Coalesced adopts").  The session needs a grant
    only for its renewals, h later.  In order; a release that overtakes an
    adopt is made at the server it names (``ReleaseLease.server``)."""

    def __init__(self, endpoints: _Endpoints, session: Any, window: float = ADOPT_WINDOW) -> None:
        self.endpoints, self.session, self.window = endpoints, session, window
        self.queue: queue.SimpleQueue[admin.AdoptGrant | None] = queue.SimpleQueue()
        self.thread = threading.Thread(target=self._run, name="licpool-adopter", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        with self.endpoints.get() as ctx:
            done = False
            while not done and (first := self.queue.get()) is not None:
                batch, done = self._gather(first)
                msg: admin.AdoptGrant | admin.AdoptGrants = (
                    batch[0] if len(batch) == 1 else admin.AdoptGrants(adopts=tuple(batch))
                )
                try:
                    ctx.tell(self.session, msg)
                except Exception:
                    logger.exception("could not tell the session of {} lease(s)", len(batch))

    def _gather(self, first: admin.AdoptGrant) -> tuple[list[admin.AdoptGrant], bool]:
        """``first`` and every grant queued within ``window`` of it (at most
        ``_ADOPT_BATCH``); True when ``stop`` was asked meanwhile."""
        batch = [first]
        until = time.monotonic() + self.window
        while len(batch) < _ADOPT_BATCH:
            left = until - time.monotonic()
            try:
                more = self.queue.get(timeout=left) if left > 0 else self.queue.get_nowait()
            except queue.Empty:
                return batch, False
            if more is None:
                return batch, True
            batch.append(more)
        return batch, False

    def stop(self) -> None:
        """Send what waits, then end (before the session is closed)."""
        self.queue.put(None)
        self.thread.join(2.0)


class LicenseClient:
    """The app's connection to a pool (operations.md)."""

    @classmethod
    def from_config(
        cls, path: str | os.PathLike[str], *, client_id: str, prefer: str | None = None, log_level: str = "WARNING"
    ) -> LicenseClient:
        return cls(load_config(path, client=True), client_id=client_id, prefer=prefer, log_level=log_level)

    def __init__(
        self, cfg: PoolConfig, *, client_id: str, prefer: str | None = None, log_level: str = "WARNING"
    ) -> None:
        if prefer is not None and prefer not in cfg.server_names:
            raise ValueError(f"prefer={prefer!r} is not a server of pool {cfg.name!r}")
        self.cfg = cfg
        self.client_id = client_id
        self.session_id = uuid.uuid4().hex
        self.first_server = start_server(client_id, cfg.server_names, prefer)
        self.timing = Timing(*_timing_tuple(cfg))
        self._direct = direct_enabled()
        self._route: tuple[str, Any] | None = None
        """(server name, actor address) of the latest grant: the next plain checkout asks it directly."""
        self._direct_off_until = 0.0
        self.grants = {"direct": 0, "session": 0, "direct_unanswered": 0, "direct_denied": 0}
        """Checkouts granted to the app's own ask and through the session, and direct asks that fell back."""
        self._ids = itertools.count(1)
        self._auths: dict[str, Authorization] = {}
        self._lock = threading.Lock()
        self._closing = threading.Event()
        self._listener: threading.Thread | None = None
        self._started: StartedSystem | None = None
        try:
            self._start(prefer, log_level)
        except BaseException:
            self.close()
            raise

    def _start(self, prefer: str | None, log_level: str) -> None:
        from actors.shell.session_actor import ClientSession

        first = self.cfg.server(self.first_server)
        ip = route_ip(first.host, first.port)
        port = self.cfg.client_port or free_port(ip)
        self._started = start_system(
            ip, port, transmit_timeout=max(transmit_timeout(self.cfg.timing), 1.0), own_group=False, log_level=log_level
        )
        # The system's processes were forked with f: between sessions and servers
        # a message older than that is worthless.  The app's own transmits (its
        # asks of its session, its direct asks) may wait T: on a starved host a
        # give-up after f loses a checkout or a release the session would have
        # taken a moment later (docs/performance.md, "Late direct asks"); a server
        # never gives a late direct ask a second seat (Timing.app_transmit).
        tune_transport(self.cfg.timing.app_transmit)
        asys = self._started.asys
        self._endpoints = _Endpoints(asys)
        self.session = asys.createActor(ClientSession)
        self._adopter = _Adopter(self._endpoints, self.session)
        start = admin.SessionStart(
            pool=self.cfg.name,
            client_id=self.client_id,
            session_id=self.session_id,
            servers=tuple(admin.ResolveTarget(name=s.name, host=s.host, port=s.port) for s in self.cfg.servers),
            timing=_timing_tuple(self.cfg),
            prefer=prefer,
            app_pid=os.getpid(),
            app_start=process_start_time(os.getpid()),
            log_level=log_level,
        )
        with asys.private() as ctx:
            if not isinstance(ctx.ask(self.session, start, _ASK), admin.SessionReady):
                raise RuntimeError("the client session actor did not start")
        subscribed = threading.Event()
        self._listener = threading.Thread(target=self._listen, args=(subscribed,), name="licpool-listener", daemon=True)
        self._listener.start()
        if not subscribed.wait(_ASK):
            raise RuntimeError("the client session did not accept the lease listener")

    def __enter__(self) -> LicenseClient:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # ---- the API -----------------------------------------------------------------------

    def checkout(
        self,
        feature: str,
        version: str = "",
        timeout: float = 10.0,
        on_lost: LostCallback | None = None,
        lease_id: str | None = None,
        *,
        queue: bool = False,
        count: int = 1,
        linger: float = 0.0,
    ) -> Authorization:
        """One seat of (feature, version), or ``LicenseDenied``.  ``feature`` may be
        written ``FEATURE:VERSION``.  ``lease_id`` resumes a lease this client
        holds (after a restart of the app): never a second seat.  ``count``
        takes that many seats in one lease, all or none (the feature's token
        weight multiplies it); ``linger`` keeps them held that many seconds
        after the release, for this client to take back.

        ``queue=True`` waits up to ``timeout`` in the pool's first-come,
        first-served queue instead of a NO_SEATS denial; it ends with the seat,
        or ``LicenseDenied`` with ``QUEUE_TIMEOUT`` or ``QUEUE_FULL``
        (docs/licenses.md, "Queued checkouts").

        While every server answers ``NOT_SERVING`` or ``NO_MAJORITY`` (a leader
        change, a partition healing) the checkout is asked again, with a
        growing pause, until ``timeout`` runs out; the last such answer is
        raised only then.  Every other denial is raised at once."""
        if not version:
            feature, _, version = feature.partition(":")
        if not feature or not version:
            raise ValueError("checkout needs a feature and a version (or 'FEATURE:VERSION')")
        if isinstance(count, bool) or not isinstance(count, int) or count < 1:
            raise ValueError(f"count must be a positive integer, got {count!r}")
        if queue and count > 1:
            raise ValueError("a queued checkout takes one seat: queue=True with count > 1 is not supported")
        if not isinstance(linger, (int, float)) or linger < 0:
            raise ValueError(f"linger must be a number of seconds >= 0, got {linger!r}")
        deadline = time.monotonic() + timeout
        pause = _RETRY_FIRST
        # One request id for the whole checkout: a server that granted an
        # earlier attempt answers a retry with the same grant, never a second
        # seat (issue 11, defect 3).
        request_id = next(self._ids)
        while True:
            try:
                return self._checkout_once(
                    feature,
                    version,
                    request_id,
                    deadline - time.monotonic(),
                    on_lost,
                    lease_id,
                    queue,
                    (count, float(linger)),
                )
            except LicenseDenied as denied:
                if denied.reason not in _TRANSIENT or time.monotonic() + pause >= deadline:
                    raise
                logger.debug(
                    "checkout of {}:{} denied {}; asking again in {:.2f} s",
                    feature,
                    version,
                    denied.reason.value,
                    pause,
                )
            if self._closing.wait(pause):
                raise RuntimeError("the LicenseClient is closed")
            pause = min(2 * pause, _RETRY_MAX)

    def _checkout_once(
        self,
        feature: str,
        version: str,
        request_id: int,
        timeout: float,
        on_lost: LostCallback | None,
        lease_id: str | None,
        queue: bool = False,
        seats: tuple[int, float] = (1, 0.0),
    ) -> Authorization:
        if self._started is None or self._closing.is_set():
            raise RuntimeError("the LicenseClient is closed")
        first = ""
        route = self._route
        direct_ok = self._direct and not queue and lease_id is None and time.monotonic() >= self._direct_off_until
        if route is not None and direct_ok:
            began = time.monotonic()
            direct = self._checkout_direct(route, feature, version, request_id, timeout, on_lost, seats)
            if direct is not None:
                return direct
            # No grant in time, or a denial: through the session, which asks
            # that server first (a repeat of the request id gets its grant).
            first = route[0]
            timeout = max(0.0, timeout - (time.monotonic() - began))
        # A queued checkout: the session answers QUEUE_TIMEOUT itself a little
        # before this ask gives up, so the app gets that reason, not TIMEOUT.
        wait = max(0.05, timeout - min(1.0, timeout / 10)) if queue else 0.0
        with self._endpoints.get() as ctx:
            until = time.monotonic() + timeout
            open_msg = admin.OpenCheckout(
                request_id=request_id,
                feature=feature,
                version=version,
                lease_id=lease_id,
                queue=queue,
                queue_timeout=wait,
                count=seats[0],
                linger=seats[1],
                server=first,
            )
            reply = _answer(
                ctx,
                ctx.ask(self.session, open_msg, timeout),
                admin.CheckoutResult,
                request_id,
                until,
            )
            if reply is None:
                # The session releases the grant if it came after all; its late
                # CheckoutResult may reach this context first and is not the
                # abandon's answer.
                until = time.monotonic() + _ASK
                gave_up = _answer(
                    ctx,
                    ctx.ask(self.session, admin.AbandonCheckout(request_id=request_id), _ASK),
                    admin.CheckoutAbandoned,
                    request_id,
                    until,
                )
                heard = isinstance(gave_up, admin.CheckoutAbandoned) and gave_up.heard
                timed_out = DenyReason.QUEUE_TIMEOUT if queue else DenyReason.TIMEOUT
                raise LicenseDenied(
                    timed_out if heard else DenyReason.UNREACHABLE,
                    f"no grant within {timeout:g} s" if heard else "no server of the pool answered",
                )
        if not isinstance(reply, admin.CheckoutResult):
            raise LicenseDenied(DenyReason.UNREACHABLE, f"unexpected answer {type(reply).__name__}")
        if not reply.granted:
            raise LicenseDenied(reply.reason or DenyReason.UNREACHABLE, reply.detail)
        if reply.route is not None:
            self._route = (reply.server, reply.route)
        return self._hold(reply, reply.server, feature, version, reply.deadline, on_lost, "session")

    def _hold(
        self,
        reply: admin.CheckoutResult | CheckoutGranted,
        server: str,
        feature: str,
        version: str,
        deadline: float,
        on_lost: LostCallback | None,
        path: str,
    ) -> Authorization:
        """The app holds ``reply``'s lease from now on; ``path``: how it came (``grants``)."""
        auth = Authorization(self, reply.lease_id, server, feature, version, deadline, on_lost)
        auth.licensed_version = reply.version or version
        auth.seats = reply.seats
        auth.direct = path == "direct"
        self.grants[path] += 1
        with self._lock:
            self._auths[auth.lease_id] = auth
        return auth

    def _checkout_direct(
        self,
        route: tuple[str, Any],
        feature: str,
        version: str,
        request_id: int,
        timeout: float,
        on_lost: LostCallback | None,
        seats: tuple[int, float],
    ) -> Authorization | None:
        """Ask the server of the latest grant directly (lever 4: two hops, not
        four), for at most ``client_retry``; on a grant, tell the session to
        adopt it.  None: no grant (a denial, or no answer in time; then direct
        asks pause for ``_DIRECT_COOLDOWN``)."""
        started = self._started
        if started is None:
            return None
        name, address = route
        wait = min(timeout, self.timing.client_retry)
        request = CheckoutRequest(
            client_id=self.client_id,
            session_id=self.session_id,
            request_id=request_id,
            feature=feature,
            version=version,
            exact_version=False,
            count=seats[0],
            linger=seats[1],
            direct=True,
        )
        with self._endpoints.get() as ctx:
            sent_at = time.monotonic()
            reply = _answer(
                ctx, ctx.ask(address, request, wait), (CheckoutGranted, CheckoutDenied), request_id, sent_at + wait
            )
            if reply is None:
                self.grants["direct_unanswered"] += 1
                self._direct_off_until = time.monotonic() + _DIRECT_COOLDOWN
                logger.debug("direct checkout at {} unanswered in {:.2f} s; asking through the session", name, wait)
                return None
            if not isinstance(reply, CheckoutGranted) or reply.server != name:
                self.grants["direct_denied"] += 1
                return None
        self._adopter.queue.put(admin.AdoptGrant(grant=reply, sent_at=sent_at))
        deadline = sent_at + self.timing.holder_valid_for(reply.ttl)
        return self._hold(reply, name, feature, version, deadline, on_lost, "direct")

    def held(self) -> list[Authorization]:
        with self._lock:
            return [x for x in self._auths.values() if not x.lost.is_set() and not x.released]

    def close(self) -> None:
        """Release every lease and stop the app's actor system (always)."""
        if self._closing.is_set() and self._started is None:
            return
        self._closing.set()
        started, self._started = self._started, None
        try:
            if started is not None:
                with self._lock:
                    auths = list(self._auths.values())
                for auth in auths:
                    auth.released = True
                self._adopter.stop()  # the session adopts every direct grant before it releases all
                with contextlib.suppress(Exception), started.asys.private() as ctx:
                    ctx.ask(self.session, admin.CloseSession(), _ASK)
        finally:
            if self._listener is not None:
                self._listener.join(2.0)
            if started is not None:
                self._endpoints.close()
                stop_system(started)

    # ---- inside ------------------------------------------------------------------------

    def _release(self, auth: Authorization) -> None:
        started = self._started
        with self._lock:
            self._auths.pop(auth.lease_id, None)
        if started is None:
            return
        with self._endpoints.get() as ctx:
            until = time.monotonic() + _ASK
            release = admin.ReleaseLease(lease_id=auth.lease_id, server=auth.server if auth.direct else "")
            _answer(ctx, ctx.ask(self.session, release, _ASK), admin.LeaseReleased, auth.lease_id, until, "lease_id")

    def _mark(self, auth: Authorization, idle: bool) -> None:
        started = self._started
        if started is None or auth.released:
            return
        with self._endpoints.get() as ctx:
            ctx.tell(self.session, admin.MarkIdle(lease_id=auth.lease_id, idle=idle))

    def _listen(self, subscribed: threading.Event) -> None:
        started = self._started
        if started is None:
            return
        try:
            with started.asys.private() as ctx:
                ctx.tell(self.session, admin.Subscribe())
                while not self._closing.is_set():
                    msg = ctx.listen(0.1)
                    if isinstance(msg, admin.LeaseNotice):
                        if msg.kind == "subscribed":
                            subscribed.set()
                        self._notice(msg)
                    self._expire(time.monotonic())
        except Exception:
            if not self._closing.is_set():
                logger.exception("the lease listener stopped")

    def _notice(self, msg: admin.LeaseNotice) -> None:
        if msg.kind == "deadlines":
            for lease_id, server, deadline in msg.deadlines:
                self._notice(admin.LeaseNotice(kind="deadline", lease_id=lease_id, server=server, deadline=deadline))
            return
        with self._lock:
            auth = self._auths.get(msg.lease_id)
        if auth is None:
            return
        if msg.kind == "deadline":
            auth.deadline = max(auth.deadline, msg.deadline)
            auth.server = msg.server or auth.server
        elif msg.kind == "failed_over":
            auth.server = msg.server
            auth.failovers += 1
        elif msg.kind == "lost":
            why = msg.detail or "lost"
            auth._lose(f"{msg.reason}: {why}" if msg.reason else why)

    def _expire(self, now: float) -> None:
        with self._lock:
            auths = list(self._auths.values())
        for auth in auths:
            if auth.deadline and now >= auth.deadline:
                auth._lose("its deadline passed without a renewal")


def _answer(
    ctx: Any,
    reply: Any,
    kind: type[Any] | tuple[type[Any], ...],
    key: object,
    until: float,
    field: str = "request_id",
) -> Any:
    """The first message of type ``kind`` whose ``field`` is ``key`` in this
    ask context, from ``reply`` (what the ask returned) on; anything else (a
    late answer to an earlier ask in the same context) is skipped.  None when
    ``until`` (monotonic) passes first."""
    while reply is not None and not (isinstance(reply, kind) and getattr(reply, field, None) == key):
        left = until - time.monotonic()
        if left <= 0:
            return None
        reply = ctx.listen(left)
    return reply


def _timing_tuple(cfg: PoolConfig) -> tuple[float, float, float, float, float, float]:
    t = cfg.timing
    return (t.heartbeat_interval, t.failure_timeout, t.leader_lease, t.fence_timeout, t.lease_ttl, t.clock_drift)
