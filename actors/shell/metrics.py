"""Prometheus metrics of one server, and the HTTP endpoint that serves them.

Two halves, in two processes:

* ``ServerMetrics`` lives in the ``LicenseServer`` actor.  It owns a
  ``prometheus_client`` registry: counters and histograms are updated as the
  server works (each audit event, each fsync, each compaction), and the gauges
  are set from the node's real state when a ``MetricsQuery`` arrives
  (``render``), from the same ``status_reply`` that ``licpool status`` shows.
  The actor stays single-threaded: no HTTP server runs inside it.
* ``MetricsEndpoint`` runs in the ``licpool server`` launcher (the process
  systemd supervises), when the server's ``metrics_port`` is set: an HTTP
  server (``prometheus_client.start_http_server``) whose one collector asks the
  local ``LicenseServer`` for its text on each scrape and passes it on,
  plus ``licpool_server_responding`` (0 when the actor did not answer in time).

Every series carries ``pool`` and ``server`` labels (the reporting server);
per-holder series carry ``holder`` for the server the seats are at, as the
reporting server sees it.  The names are listed in ``METRIC_NAMES`` (the
alert rules in deploy/prometheus/ are checked against it).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.parser import text_string_to_metric_families

from actors.core.effects import Event
from actors.core.expiry import days_left
from actors.core.node import ServerNode
from actors.shell import wire
from actors.shell.config import PoolConfig
from actors.shell.views import status_reply

__all__ = ["METRIC_NAMES", "MetricsEndpoint", "ServerMetrics"]

disable_created_metrics()  # type: ignore[no-untyped-call]  # no *_created series: they double the output and no rule uses them

FSYNC_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0)
COMPACTION_BUCKETS = (0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
STEP_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)

_BASE = ("pool", "server")
_FEATURE = (*_BASE, "feature", "version")
_HOLDER = (*_FEATURE, "holder")

METRIC_NAMES = frozenset(
    {
        "licpool_server_responding",
        "licpool_server_info",
        "licpool_peer_up",
        "licpool_is_leader",
        "licpool_leader_known",
        "licpool_serving",
        "licpool_epoch",
        "licpool_commit_index",
        "licpool_applied_index",
        "licpool_apply_lag",
        "licpool_leader_changes",
        "licpool_seats_licensed",
        "licpool_seats_allocated",
        "licpool_seats_in_use",
        "licpool_seats_target",
        "licpool_seats_free_pool",
        "licpool_seats_in_flight",
        "licpool_checkouts_granted",
        "licpool_checkouts_denied",
        "licpool_checkouts_waiting",
        "licpool_checkouts_queued",
        "licpool_failovers_pending",
        "licpool_failovers",
        "licpool_transfers",
        "licpool_borrows",
        "licpool_journal_bytes",
        "licpool_snapshot_bytes",
        "licpool_compactions",
        "licpool_compaction_seconds",
        "licpool_fsync_seconds",
        "licpool_step_seconds",
        "licpool_timer_lateness_seconds",
        "licpool_sessions",
        "licpool_leases_held",
        "licpool_license_days_to_expiry",
        "licpool_feature_days_to_expiry",
        "licpool_frames_received",
        "licpool_frame_bytes_received",
    }
)
"""Every metric family a server exports, by family name (a counter's samples add ``_total``, a
histogram's ``_bucket``, ``_count`` and ``_sum``)."""


class ServerMetrics:
    """The metrics of one server, kept in the LicenseServer actor's process."""

    def __init__(self, pool: str, server: str) -> None:
        self.pool, self.server = pool, server
        self.base = (pool, server)
        r = self.registry = CollectorRegistry(auto_describe=True)

        def gauge(name: str, doc: str, labels: tuple[str, ...] = _BASE) -> Gauge:
            return Gauge(name, doc, labels, registry=r)

        self.info = gauge(
            "licpool_server_info",
            "Always 1; labels: the incarnation and the date the server counts expiry from.",
            (*_BASE, "incarnation", "today"),
        )
        self.peer_up = gauge(
            "licpool_peer_up", "1 if the reporting server sees the holder up (its status view).", (*_BASE, "holder")
        )
        self.is_leader = gauge("licpool_is_leader", "1 if this server is the leader.")
        self.leader_known = gauge("licpool_leader_known", "1 if this server knows a leader it hears from.")
        self.serving = gauge("licpool_serving", "1 if this server may serve majority-ruled features now.")
        self.epoch = gauge("licpool_epoch", "The Raft term this server is in.")
        self.commit_index = gauge("licpool_commit_index", "The highest log index this server knows committed.")
        self.applied_index = gauge("licpool_applied_index", "The highest log index this server has applied.")
        self.apply_lag = gauge("licpool_apply_lag", "Committed entries not yet applied here (commit - applied).")
        self.leader_changes = Counter(
            "licpool_leader_changes", "Times this server saw a new leader.", _BASE, registry=r
        )
        self.total = gauge("licpool_seats_licensed", "Licensed seats of the feature.", _FEATURE)
        self.allocated = gauge("licpool_seats_allocated", "Seats allocated to the holder.", _HOLDER)
        self.in_use = gauge(
            "licpool_seats_in_use",
            "Seats in use at the holder (exact for the reporting server, as last committed for the others).",
            _HOLDER,
        )
        self.target = gauge("licpool_seats_target", "The holder's distribution criteria target.", _HOLDER)
        self.free_pool = gauge("licpool_seats_free_pool", "Seats in the feature's free pool.", _FEATURE)
        self.in_flight = gauge(
            "licpool_seats_in_flight", "Seats cut from a giver whose transfer has not completed.", _FEATURE
        )
        self.granted = Counter(
            "licpool_checkouts_granted", "Checkouts granted here (resumes included).", _FEATURE, registry=r
        )
        self.denied = Counter(
            "licpool_checkouts_denied", "Checkouts denied here, by reason.", (*_FEATURE, "reason"), registry=r
        )
        self.waiting = gauge("licpool_checkouts_waiting", "Checkouts held here while a borrow is under way.")
        self.queued = Counter(
            "licpool_checkouts_queued",
            "Checkouts that had to wait here (unmet demand), by reason (QUEUED: held for a borrow).",
            (*_FEATURE, "reason"),
            registry=r,
        )
        self.failovers_pending = gauge(
            "licpool_failovers_pending", "Leases a client failed over to this server that are not seated yet."
        )
        self.failovers = Counter(
            "licpool_failovers", "Fail-overs the leader handled (counted at the leader).", _BASE, registry=r
        )
        self.transfers = Counter(
            "licpool_transfers", "Seat transfers completed (counted at the leader).", _BASE, registry=r
        )
        self.borrows = Counter("licpool_borrows", "Borrow requests the leader acted on.", _BASE, registry=r)
        self.journal = gauge("licpool_journal_bytes", "Size of the server's journal file.")
        self.snapshot = gauge("licpool_snapshot_bytes", "Size of the server's snapshot file.")
        self.compactions = Counter("licpool_compactions", "Journal compactions into a snapshot.", _BASE, registry=r)
        self.compaction_seconds = Histogram(
            "licpool_compaction_seconds",
            "How long each compaction held the server up.",
            _BASE,
            buckets=COMPACTION_BUCKETS,
            registry=r,
        )
        self.fsync = Histogram(
            "licpool_fsync_seconds",
            "Append and fsync of one step's records (group commit).",
            _BASE,
            buckets=FSYNC_BUCKETS,
            registry=r,
        )
        self.step = Histogram(
            "licpool_step_seconds",
            "How long the server spent on one received message: its handler, and the group commit's flush"
            " when it ended a burst. Nothing else is handled meanwhile.",
            _BASE,
            buckets=STEP_BUCKETS,
            registry=r,
        )
        self.lateness = Histogram(
            "licpool_timer_lateness_seconds",
            "How late the server's timer (heartbeats, elections, expiries) was handled: how long messages"
            " queued ahead of it kept it waiting.",
            _BASE,
            buckets=STEP_BUCKETS,
            registry=r,
        )
        self.sessions = gauge("licpool_sessions", "Client sessions holding leases here.")
        self.leases = gauge("licpool_leases_held", "Leases held at this server.")
        self.license_days = gauge(
            "licpool_license_days_to_expiry",
            "Days the license code still works, today included (0 or less: expired).",
            (*_FEATURE, "serial"),
        )
        self.feature_days = gauge(
            "licpool_feature_days_to_expiry", "Days the feature still works: its latest code's.", _FEATURE
        )
        self.frames = Counter(
            "licpool_frames_received",
            "Thespian frames the LicenseServer actor's process decoded, by message class (SessionHeartbeat, ...).",
            (*_BASE, "message"),
            registry=r,
        )
        self.frame_bytes = Counter(
            "licpool_frame_bytes_received",
            "Bytes of those frames: the pickled (sender, message) envelope, without the length prefix.",
            (*_BASE, "message"),
            registry=r,
        )
        self._frames_seen = wire.received_frames()
        """The counts inherited by fork: only what arrives after this point is this server's."""
        self._leader: str | None = None
        for metric in (
            self.leader_changes,
            self.failovers,
            self.transfers,
            self.borrows,
            self.compactions,
            self.compaction_seconds,
            self.fsync,
            self.step,
            self.lateness,
        ):
            metric.labels(*self.base)  # present (at 0) from the start
        self._step = self.step.labels(*self.base)
        self._lateness = self.lateness.labels(*self.base)

    # ---- as the server works ---------------------------------------------------------

    def events(self, events: Iterable[Event]) -> None:
        for event in events:
            fields = dict(event.fields)
            kind = event.kind
            if kind == "grant":
                self.granted.labels(*self.base, str(fields.get("feature")), str(fields.get("version"))).inc()
            elif kind == "denial":
                self.denied.labels(
                    *self.base, str(fields.get("feature")), str(fields.get("version")), str(fields.get("reason"))
                ).inc()
            elif kind == "queued":
                self.queued.labels(
                    *self.base, str(fields.get("feature")), str(fields.get("version")), str(fields.get("reason"))
                ).inc()
            elif kind == "failover":
                self.failovers.labels(*self.base).inc()
            elif kind == "transfer":
                self.transfers.labels(*self.base).inc()
            elif kind == "borrow":
                self.borrows.labels(*self.base).inc()

    def stepped(self, node: ServerNode) -> None:
        """After each step: count a leader this server had not seen leading."""
        leader = node.raft.leader
        if leader is not None and leader != self._leader:
            self.leader_changes.labels(*self.base).inc()
        if leader is not None:
            self._leader = leader

    def count_frames(self) -> None:
        """Move the wire's per-message frame counts (since the last call) into the counters."""
        now = wire.received_frames()
        for name, (n, size) in now.items():
            n0, size0 = self._frames_seen.get(name, (0, 0))
            if n > n0:
                self.frames.labels(*self.base, name).inc(n - n0)
                self.frame_bytes.labels(*self.base, name).inc(size - size0)
        self._frames_seen = now

    def observe_fsync(self, seconds: float) -> None:
        self.fsync.labels(*self.base).observe(seconds)

    def observe_step(self, seconds: float) -> None:
        """Every received message: the labelled child is looked up once, not per message."""
        self._step.observe(seconds)

    def observe_lateness(self, seconds: float) -> None:
        self._lateness.observe(seconds)

    def observe_compaction(self, seconds: float) -> None:
        self.compactions.labels(*self.base).inc()
        self.compaction_seconds.labels(*self.base).observe(seconds)

    # ---- on a scrape -------------------------------------------------------------------

    def render(self, node: ServerNode, cfg: PoolConfig, data_dir: Path | None, now: float) -> str:
        """Set the gauges from the node's state now; the registry as Prometheus text."""
        status = status_reply(node, cfg, now, "")
        b = self.base
        self.count_frames()
        for g in (
            self.info,
            self.peer_up,
            self.total,
            self.allocated,
            self.in_use,
            self.target,
            self.free_pool,
            self.in_flight,
            self.license_days,
            self.feature_days,
        ):
            g.clear()
        self.info.labels(*b, str(node.raft.incarnation), status.today).set(1)
        for s in status.servers:
            self.peer_up.labels(*b, s.name).set(1 if s.up else 0)
        self.is_leader.labels(*b).set(1 if node.raft.is_leader else 0)
        self.leader_known.labels(*b).set(1 if status.leader is not None else 0)
        self.serving.labels(*b).set(1 if status.serving else 0)
        self.epoch.labels(*b).set(node.raft.term)
        self.commit_index.labels(*b).set(node.raft.commit_index)
        self.applied_index.labels(*b).set(node.applied)
        self.apply_lag.labels(*b).set(max(0, node.raft.commit_index - node.applied))
        for f in status.features:
            fb = (*b, f.feature, f.version)
            self.total.labels(*fb).set(f.total)
            self.free_pool.labels(*fb).set(f.free_pool)
            self.in_flight.labels(*fb).set(f.in_flight)
            for u in f.servers:
                self.allocated.labels(*fb, u.server).set(u.allocated)
                self.in_use.labels(*fb, u.server).set(u.in_use)
                self.target.labels(*fb, u.server).set(u.target)
            left = days_left(f.expires, status.today)
            if left is not None:
                self.feature_days.labels(*fb).set(left)
            self.granted.labels(*fb)  # every feature's counters exist, at 0 before the first checkout
        for code in status.licenses:
            self.license_days.labels(*b, code.feature, code.version, code.serial).set(code.days_left)
        self.waiting.labels(*b).set(len(node.serving.book.waiting))
        self.failovers_pending.labels(*b).set(len(node.serving.book.failover_refs))
        leases = node.member.leases.leases
        self.leases.labels(*b).set(len(leases))
        self.sessions.labels(*b).set(len({x.session_id for x in leases.values()}))
        if data_dir is not None:
            self.journal.labels(*b).set(_size(data_dir / "node.journal"))
            self.snapshot.labels(*b).set(_size(data_dir / "node.snap"))
        return generate_latest(self.registry).decode("utf-8")


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


# ---- the HTTP endpoint, in the launcher -------------------------------------------------


class _FromServer:
    """A collector that asks the local LicenseServer on every scrape."""

    def __init__(self, ask: Any, pool: str, server: str, timeout: float) -> None:
        self.ask, self.pool, self.server, self.timeout = ask, pool, server, timeout
        self.lock = threading.Lock()

    def describe(self) -> list[Metric]:
        return []

    def collect(self) -> Iterator[Metric]:
        from actors.protocol.admin import MetricsQuery, MetricsReply

        with self.lock:  # one ask at a time through the launcher's actor system handle
            reply = self.ask(MetricsQuery(), self.timeout)
        ok = isinstance(reply, MetricsReply)
        if ok:
            yield from text_string_to_metric_families(reply.text)
        up = GaugeMetricFamily(
            "licpool_server_responding",
            "1 if the server's LicenseServer actor answered this scrape in time.",
            labels=list(_BASE),
        )
        up.add_metric([self.pool, self.server], 1.0 if ok else 0.0)
        yield up


class MetricsEndpoint:
    """``http://host:metrics_port/metrics`` for one server (started by the launcher)."""

    def __init__(self, ask: Any, pool: str, server: str, host: str, port: int, timeout: float = 2.0) -> None:
        from prometheus_client import start_http_server

        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(_FromServer(ask, pool, server, timeout))
        self.httpd, self.thread = start_http_server(port, addr=host, registry=self.registry)
        self.url = f"http://{host}:{port}/metrics"

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.httpd.shutdown()
            self.httpd.server_close()
        self.thread.join(5.0)
