"""Invariant checkers, run after every simulator event.

Safety, checked continuously:

* **S1** from the clients' view: per feature, the seats of the distinct leases
  live clients hold (``session.held(local now)``; a multi-seat lease counts
  its ``seats``) never exceed the licensed total (the largest committed total
  any server has shown: totals only grow).
* **Table invariant**: every running server's committed pool state has no
  ``problems()``.
* **S4**: at most one leader per epoch; committed log entries never change
  (one ``LogEntry`` per index, across all servers and restarts); a running
  server's applied index never goes backwards.
* **LEASE** (leadership.md M3, M17): while a leader of epoch e acts, no other
  server acts as a leader of an older epoch nor holds a serving lease granted
  in one: the new leader waited out every earlier lease.

Liveness, checked where the design promises it (see docs/simulator.md):

* **REGISTRY** (after every server event): every server at the most advanced
  applied index holds, in its local table, each lease the committed registry
  places there, unless a transfer of that lease is under way or the server's
  own change (release, expiry) of it is not committed yet, or the server's
  table was lost with its disk (those are an earlier incarnation's leases,
  waited out by fence and reclaim: docs/leadership.md, "Rejoin after a lost disk").
* **ABANDON** (shell model, after every client event): a session never holds,
  for longer than a grace period, a lease its app does not know of (a
  checkout the app gave up on must end with no seat held).

* **S2**: a loss is a violation unless an exemption applies, and every
  exemption names the rule that allows the loss (``EXEMPT``): a force-release,
  a lease the app released itself, more than one fault in the lease's last
  renewal window (a whole-pool restart counts as one), no two-way path to a
  healthy majority, or the documented exception (the lease's server was cut off
  less than one report interval after the lease was placed there).
* **S3**: ``liveness.S3Tracker``; **L1**: ``liveness.L1Tracker``.

Figures (``stats``): ``moved_off_live`` counts leases a session moved off a
server that stayed up, unstalled and connected to it (leadership.md M14: it
must be 0 for a leader change); ``moves`` counts every lease moved.
"""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING, Any

from actors.core.table import FeatureKey
from tests.sim.trace import short_id

if TYPE_CHECKING:
    from tests.sim.hosts import ClientHost, ServerHost
    from tests.sim.world import World

__all__ = ["InvariantViolation", "Checker"]


EXEMPT = {
    "force-released": "force-released by the operator (leadership.md M11: a force-release ends the lease)",
    "released": "released by the app itself (S3: a released id is dead for ever; its late release ends a resumed copy)",
    "several faults": "more than one fault in its renewal window (S2 covers one failure of a minority, a "
    "restart or a stall, and one leader change)",
    "no majority path": "the client could not reach a healthy majority (S2 holds only for a client that "
    "can reach a majority partition)",
    "cut off": "granted less than one report interval before its server was cut off (S2's one documented exception)",
    "idle": "reclaimed by the feature's idle_timeout after its app marked it idle (issue 14: the app gets lost, IDLE)",
}
"""S2 exemption -> the rule that allows the loss (stats keys are ``S2 exempt: <exemption>``)."""


class InvariantViolation(Exception):
    """A rule broke: ``rule`` is S1, S2, S3, S4, L1, F1, LEASE, TABLE, REGISTRY, ABANDON,
    EXPECT (a scenario expectation), CRASH (a core raised) or BUDGET (a run
    that never ends)."""

    def __init__(self, rule: str, detail: str) -> None:
        super().__init__(f"{rule}: {detail}")
        self.rule = rule
        self.detail = detail


class Checker:
    """Safety checks and the S2 judgement; liveness trackers live in ``liveness``."""

    def __init__(self, world: World) -> None:
        from tests.sim.liveness import L1Tracker, S3Tracker
        from tests.sim.queue_check import QueueTracker

        self.w = world
        self.total: dict[FeatureKey, int] = {}
        self.leaders: dict[int, str] = {}
        self.committed: dict[int, Any] = {}
        self.checked_commit: dict[str, int] = {}
        self.stats: Counter[str] = Counter()
        self._held: dict[str, dict[str, FeatureKey]] = {}
        self._seats: dict[str, int] = {}
        """lease id -> seats, of the multi-seat leases clients hold (absent: 1)."""
        self._servers_changed = False
        self._placed_ok: dict[str, tuple[int, ...]] = {}
        self.exemptions: list[tuple[float, str, str, str]] = []
        """(time, client, lease id, the rule that allowed the loss) of every exempt S2 loss."""
        self.moves_off_live: list[tuple[float, str, str, str]] = []
        """(time, client, lease id, server) of every lease moved off a live, connected server."""
        self.unrecorded_releases: list[tuple[float, str, str, str]] = []
        """(time, client, lease id, server) of every released lease that expired at that server
        with no server having recorded its release."""
        self.s3 = S3Tracker(world, self)
        self.l1 = L1Tracker(world, self)
        self.queue = QueueTracker(world)

    # ---- safety --------------------------------------------------------------------

    def server_changed(self, host: ServerHost) -> None:
        node = host.node
        if node is None:
            return
        pool = node.pool
        problems = pool.problems()
        if problems:
            raise InvariantViolation("TABLE", f"{host.name} at index {pool.index}: {'; '.join(problems)}")
        for key, table in pool.features.items():
            if table.total > self.total.get(key, 0):
                self.total[key] = table.total
        if node.role == "leader":
            other = self.leaders.setdefault(node.epoch, host.name)
            if other != host.name:
                raise InvariantViolation("S4", f"two leaders in epoch {node.epoch}: {other} and {host.name}")
        if node.applied < host.applied_seen:
            raise InvariantViolation("S4", f"{host.name} applied index went back {host.applied_seen} -> {node.applied}")
        if pool.index != node.applied:
            # The table's own version must be the applied index: an older table
            # installed under a newer index is the table going backwards.
            raise InvariantViolation(
                "S4", f"{host.name} holds the table of index {pool.index} but has applied up to {node.applied}"
            )
        host.applied_seen = node.applied
        self._committed_prefix(host)
        self._servers_changed = True

    def _committed_prefix(self, host: ServerHost) -> None:
        raft = host.node.raft
        log = raft.log
        upto = min(raft.commit_index, log.last_index)
        start = max(self.checked_commit.get(host.name, 0), log.snap_index) + 1
        for index in range(start, upto + 1):
            item = log.entry(index)
            seen = self.committed.setdefault(index, item)
            if seen != item:
                raise InvariantViolation(
                    "S4", f"{host.name} committed {item!r} at {index}, but {seen!r} was committed there before"
                )
        self.checked_commit[host.name] = max(upto, self.checked_commit.get(host.name, 0))

    def server_restarted(self, host: ServerHost) -> None:
        self.checked_commit[host.name] = 0

    def clients_changed(self, touched: set[str] | None = None) -> None:
        """S1 from the clients' view.  Holdings only shrink with time, so the
        cached sets of untouched clients can only over-count: a suspected
        breach is recounted exactly before it is reported."""
        now = self.w.now
        for client in self.w.clients.values():
            if touched is None or client.name in touched or client.name not in self._held:
                self._held[client.name] = self._holding(client, now)
                if client.proxy is not None and client.alive and "ABANDON" not in self.w.config.skip_rules:
                    self._orphans(client, now)
        held: dict[FeatureKey, set[str]] = {}
        for lids in self._held.values():
            for lid, key in lids.items():
                held.setdefault(key, set()).add(lid)
        seats = {key: sum(self._seats.get(lid, 1) for lid in lids) for key, lids in held.items()}
        if all(n <= self.total.get(key, 0) for key, n in seats.items()):
            return
        if touched is not None:
            self.clients_changed(None)
            return
        for key, ids in held.items():
            if seats[key] > self.total.get(key, 0):
                owners = {name: sorted(set(x) & ids) for name, x in self._held.items() if set(x) & ids}
                raise InvariantViolation(
                    "S1",
                    f"{seats[key]} seats ({len(ids)} leases) of {key} held by clients, "
                    f"licensed {self.total.get(key, 0)}: {owners}",
                )

    def _orphans(self, client: ClientHost, now: float) -> None:
        """ABANDON: the session holds a lease its app does not know of.  The app
        learns a grant one local hop after its session, and tells its session of a
        release one hop after it forgot it: a grace far above both."""
        known = client.proxy.auths
        held = self._held[client.name]
        since = client.orphan_since
        for lid in [lid for lid in since if lid not in held or lid in known]:
            del since[lid]
        assert self.w.shell is not None  # apps and their orphans exist only in shell mode
        grace = max(1.0, 10 * self.w.shell.local_hop[1])
        for lid in held:
            if lid in known:
                continue
            first = since.setdefault(lid, now)
            if now - first > grace:
                raise InvariantViolation(
                    "ABANDON",
                    f"{client.name}'s session has held {lid} since {first:.3f}, and its app does not "
                    f"know it (a grant the app gave up on?): the seat stays taken while the session lives",
                )

    def _holding(self, client: ClientHost, now: float) -> dict[str, FeatureKey]:
        if not client.alive:
            return {}
        held = client.core.held(client.clock.local(now))
        for lid, x in held.items():
            if x.seats != 1:
                self._seats[lid] = x.seats
        return {lid: (x.feature, x.version) for lid, x in held.items()}

    # ---- S2 ---------------------------------------------------------------------------

    def lost(self, client: ClientHost, lease_id: str, why: str, reason: str = "") -> None:
        """Judge one loss: a violation unless an exemption applies, and each
        exemption names the rule that allows it (``EXEMPT``).  ``reason``: the
        server's stated reason (``IDLE``)."""
        w, t = self.w, self.w.now
        self.stats["S2 losses"] += 1
        if lease_id in w.forced:
            self._exempt(client, lease_id, "force-released")
            return
        if reason == "IDLE" and lease_id in w.idled:
            self._exempt(client, lease_id, "idle")
            return
        if lease_id in client.released:
            # The app released it, then restarted from a stale file that still
            # listed it: the resume can win the race with the release, and the
            # release, when it lands, rightly ends the lease (seed 7946).
            self._exempt(client, lease_id, "released")
            return
        deadline = client.deadlines.get(lease_id)
        placed = client.placed.get(lease_id, [])
        if deadline is None or not placed:
            raise InvariantViolation(
                "S2",
                f"{client.name} lost {lease_id} ({why}) at {t:.3f}, a lease the checker never saw placed "
                f"or renewed (a checker gap: no rule allows this loss)",
            )
        ri = w.bounds.report_interval
        renewed = client.clock.real(deadline - w.timing.holder_valid_for(w.timing.lease_ttl))
        a = min(renewed, placed[-1][0]) - ri
        relevant = [
            f
            for f in w.history.active(a, t)
            if f.kind != "cut" or client.name in f.subjects or len(f.subjects & set(w.servers)) >= 2
        ]
        if self.fault_count(relevant) > 1:
            self._exempt(client, lease_id, "several faults")
            return
        if not w.history.had_majority_path(client.name, a, t, self.pool_restarts(relevant)):
            self._exempt(client, lease_id, "no majority path")
            return
        for at, server in placed:
            if any(server in f.subjects and f.start <= at + ri and f.end >= at - ri for f in relevant):
                self._exempt(client, lease_id, "cut off")
                return
        self.stats["S2 checked"] += 1
        raise InvariantViolation(
            "S2",
            f"{client.name} lost {lease_id} ({why}) at {t:.3f}; placed {placed}, last renewal sent at "
            f"{renewed:.3f}; faults in the window (counted as {self.fault_count(relevant)}): "
            f"{[(f.kind, sorted(f.subjects), f.start, f.end) for f in relevant]}",
        )

    def _exempt(self, client: ClientHost, lease_id: str, why: str) -> None:
        self.stats[f"S2 exempt: {why}"] += 1
        self.exemptions.append((self.w.now, client.name, lease_id, EXEMPT[why]))

    def _pool_groups(self, faults: list[Any]) -> tuple[list[Any], list[list[Any]]]:
        """The ``down`` faults, and those of them grouped into whole-pool
        restarts: faults that together had every server down at one moment
        (two such outages that share a fault are one)."""
        servers = frozenset(self.w.servers)
        downs = [f for f in faults if f.kind == "down"]
        parent = list(range(len(downs)))

        def root(i: int) -> int:
            while parent[i] != i:
                i = parent[i]
            return i

        grouped: set[int] = set()
        for f in downs:
            during = [i for i, g in enumerate(downs) if g.start <= f.start <= g.end]
            if frozenset().union(*(downs[i].subjects for i in during)) >= servers:
                for i in during:
                    parent[root(i)] = root(during[0])
                grouped.update(during)
        groups: dict[int, list[Any]] = {}
        for i in sorted(grouped):
            groups.setdefault(root(i), []).append(downs[i])
        return downs, list(groups.values())

    def fault_count(self, faults: list[Any]) -> int:
        """Faults in a window, a whole-pool restart counted once."""
        _, groups = self._pool_groups(faults)
        return len(faults) - sum(len(g) for g in groups) + len(groups)

    def pool_restarts(self, faults: list[Any]) -> list[tuple[float, float]]:
        """[first kill, last restart] of each whole-pool restart: S2 covers
        server restarts, so those moments are no "no majority path" excuse."""
        _, groups = self._pool_groups(faults)
        return [(min(f.start for f in g), max(f.end for f in g)) for g in groups]

    def moved(self, client: ClientHost, lease_id: str, from_server: str) -> None:
        """A session seated ``lease_id`` at a new server.  The figure
        ``moved_off_live`` counts moves off a server that was up, unstalled and
        untouched by any fault (nor was the client, nor the network as a whole)
        from a failure timeout before the session decided to move until then."""
        w = self.w
        self.stats["moves"] += 1
        decided, server, why = client.failing.pop(lease_id, (w.now, from_server, "unannounced"))
        host = w.servers.get(server)
        if host is None or not host.up or host.stalled:
            return
        t = w.timing
        start = decided - t.failure_timeout * w.bounds.slow - 2 * t.heartbeat_interval - w.net.max_delay
        if (host.up_since or 0.0) > start:
            return
        for f in w.history.active(start, decided):
            if server in f.subjects or client.name in f.subjects or f.kind == "lossy":
                return
        self.stats["moved_off_live"] += 1
        self.stats[f"moved_off_live: {why}"] += 1
        self.moves_off_live.append((w.now, client.name, lease_id, server))

    # ---- per event ----------------------------------------------------------------------

    def after_event(self) -> None:
        self.s3.due()
        self.l1.sample()
        self.queue.after_event()
        self._fenced_means_stopped()
        self._one_lease_at_a_time()
        if self._servers_changed:
            self._servers_changed = False
            if "REGISTRY" not in self.w.config.skip_rules:
                self._registry_placed()

    def _registry_placed(self) -> None:
        """REGISTRY: at the most advanced applied index, the committed registry
        and each server's local table agree on what the server holds.  A lease
        placed at S is in S's table, or on its way (a transfer of it under way),
        or S's own change of it (release, expiry) is not committed yet."""
        w = self.w
        views = [h for h in w.servers.values() if h.node is not None]
        if not views:
            return
        top = max(h.node.applied for h in views)
        for host in views:
            node = host.node
            if node.applied != top or node.member.table_lost():
                continue
            # The registry changes only when entries apply; the table only by
            # grants, releases, expiries (change_seq) and applied entries.
            local = node.member.leases
            signature = (host.gen, node.applied, local.change_seq, local.committed_seq, len(local.leases))
            if self._placed_ok.get(host.name) == signature:
                continue
            registry = node.pool.registry
            local = node.member.leases
            moving: set[str] | None = None
            changed: set[str] | None = None
            for lease in registry.leases.values():
                if lease.holder != host.name or lease.lease_id in local.leases:
                    continue
                if moving is None:
                    moving = {t.lease_id for t in node.pool.transfers.values() if t.lease_id is not None}
                    changed = {c.lease_id for c in local.changes}
                if lease.lease_id in moving or lease.lease_id in (changed or set()):
                    continue
                raise InvariantViolation(
                    "REGISTRY",
                    f"{host.name} at applied index {node.applied} (the most advanced): the committed "
                    f"registry places {short_id(lease.lease_id)} of {lease.client_id} there, but its lease table "
                    f"lacks it and no transfer or unreported change of it is under way",
                )
            self._placed_ok[host.name] = signature

    def _fenced_means_stopped(self) -> None:
        """F1: once any server has applied Fence (or Reclaim) of a server's
        incarnation, that server no longer serves majority-ruled seats.  This is
        the invariant the fence rests on: its seats are moved and reclaimed on
        the strength of it (leadership.md M3-M5)."""
        w = self.w
        views = [h.node for h in w.servers.values() if h.node is not None]
        if not views:
            return
        latest = max(views, key=lambda n: n.applied).pool  # the most advanced committed table
        fenced = {name: st.incarnation for name, st in latest.servers.items() if st.status != "live"}
        for name, inc in fenced.items():
            host = w.servers[name]
            node = host.node
            if node is None or host.stalled or node.raft.incarnation != inc:
                continue
            local = host.clock.local(w.now)
            me = node.pool.servers[name]
            serving = me.incarnation == inc and me.status == "live" and node.raft.holds_serving_lease(local)
            if serving:
                raise InvariantViolation(
                    "F1", f"{name} (incarnation {inc}) still serves under its lease after its Fence was applied"
                )

    def _one_lease_at_a_time(self) -> None:
        """LEASE: every lease a server acts on now (its leader lease, or a
        serving lease, labelled with the epoch of the last grant it took:
        never older than the lease's own) belongs to the newest acting
        leader's epoch.  Crashed servers hold nothing; a stalled one still
        holds what it would act on when it resumes."""
        w = self.w
        acting: list[tuple[int, str]] = []
        held: list[tuple[int, str]] = []
        for host in w.servers.values():
            if host.node is None:
                continue
            raft = host.node.raft
            local = host.clock.local(w.now)
            if raft.role == "leader":
                if raft.leader_active(local):
                    acting.append((raft.term, host.name))
            elif raft.holds_serving_lease(local):
                held.append((raft.last_grant_id // 1_000_000_000, host.name))
        if not acting:
            return
        epoch, leader = max(acting)
        for older, name in acting + held:
            if older < epoch:
                kind = "acts as the leader of" if (older, name) in acting else "holds a serving lease of"
                raise InvariantViolation(
                    "LEASE", f"{leader} acts as the leader of epoch {epoch} while {name} still {kind} epoch {older}"
                )

    def granted_by(self, host: ServerHost, events: Any) -> None:
        """F1, the serving side (leadership.md M6): a server grants or resumes a
        majority-ruled lease only once its own committed table shows its
        current incarnation live, i.e. after its Rejoin committed."""
        node = host.node
        for ev in events:
            if ev.kind != "grant":
                continue
            table = node.pool.features.get((ev.get("feature"), ev.get("version")))
            me = node.pool.servers.get(host.name)
            if (
                table is not None
                and table.majority
                and (me is None or me.status != "live" or me.incarnation != node.raft.incarnation)
            ):
                raise InvariantViolation(
                    "F1",
                    f"{host.name} granted {ev.get('lease_id')} while its table shows it "
                    f"{me.status if me else 'unknown'} (incarnation {me.incarnation if me else '?'}, "
                    f"running {node.raft.incarnation})",
                )

    def expired_by(self, host: ServerHost, events: Any) -> None:
        """The figure ``releases no server recorded`` (the chaos run's figure of
        the same name): ``host`` let a lease expire that its app had released,
        and no server ever recorded that release, so its seat stayed taken until
        the expiry.  Not counted: a lease its app got back after the release
        (a restart resumed it from a stale file first, and the release rightly
        did nothing).  A release made during a fault may rightly reach no server
        in time (its server down or cut off for the rest of the lease's time), so
        in random schedules this is a figure; the scenario
        ``release_races_failover`` requires it to be 0."""
        for ev in events:
            if ev.kind != "expiry":
                continue
            lid = ev.get("lease_id")
            client = self.w.clients.get(ev.get("client_id"))
            if client is None or lid not in client.released or lid in self.w.dead_ids:
                continue
            released_at = client.released_at.get(lid, 0.0)
            if not any(at >= released_at for at, _ in client.placed.get(lid, [])):
                self.stats["releases no server recorded"] += 1
                self.unrecorded_releases.append((self.w.now, client.name, lid, host.name))

    def finish(self) -> None:
        self.s3.due(final=True)
        self.l1.finish()
