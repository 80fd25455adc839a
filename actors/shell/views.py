"""What a server answers to the operator's queries, read from its real state.

``status_reply`` reads the node's committed pool state (``node.pool``), its
Raft state (``node.raft``) and its local leases (``node.member.leases``);
``sessions_reply`` lists leases.  Both are pure functions of the node, the
config and the clocks passed in.  ``node_settings`` builds the core's
``NodeSettings`` from a loaded config.
"""

from __future__ import annotations

import os
import time
from typing import Any

from actors.cli.vendor import today_iso
from actors.core.adminauth import derive_admin_key
from actors.core.codes import CodeError, LicenseCode, verify_code
from actors.core.expiry import days_left
from actors.core.leaseid import derive_lease_key
from actors.core.node import NodeSettings, ServerNode
from actors.core.pool import DOWN, LIVE
from actors.core.raft import LEADER
from actors.core.sources import idle_excess
from actors.protocol.admin import (
    FeatureStatus,
    LicenseInfo,
    PendingCut,
    QueuedInfo,
    ServerStatus,
    ServerUse,
    SessionInfo,
    SessionsReply,
    StatusReply,
)
from actors.shell.config import PoolConfig

__all__ = ["license_infos", "node_settings", "queue_infos", "sessions_reply", "status_reply"]


def node_settings(cfg: PoolConfig, name: str) -> NodeSettings:
    """The core's settings for server ``name``: keys bound, clock and randomness injected."""
    cfg.server(name)  # ConfigError if unknown
    public_key = cfg.vendor_key()
    admin_secret = cfg.admin_secret()

    def verify(text: str) -> Any:
        return verify_code(text, public_key)

    return NodeSettings(
        name=name,
        servers=cfg.server_names,
        timing=cfg.timing,
        verify=verify,
        lease_key=derive_lease_key(admin_secret),
        nonce=lambda: os.urandom(8),
        today=today_iso,
        thresholds={s.name: s.borrow_threshold for s in cfg.servers},
        default_threshold=cfg.borrow_threshold,
        settings_hash=cfg.settings_hash(),
        rebalance_idle=cfg.rebalance_idle,
        queue_limit=cfg.queue_limit,
        leader_preemption=cfg.leader_preemption,
        admin_key=derive_admin_key(admin_secret, cfg.name),
        wall=time.time,
    )


def _peer_up(node: ServerNode, name: str, now: float) -> bool:
    """The leader knows who answers its heartbeats; a follower knows only whether
    it hears the leader, and takes every other server's committed status."""
    if name == node.name:
        return True
    state = node.pool.servers.get(name)
    if state is None or state.status != LIVE:
        return False
    if node.raft.role == LEADER:
        peer = node.raft.peers.get(name)
        return peer is not None and now - peer.last_heard < node.timing.failure_timeout
    if name == node.raft.leader:
        return node.raft.heard_from_leader(now)
    return True


def license_infos(node: ServerNode, today: str) -> tuple[LicenseInfo, ...]:
    """Every license code of the pool with its days left on ``today`` (codes
    that no longer verify, which the pool could not have applied, are left out)."""
    found = []
    for serial, text in sorted(node.pool.licenses.items()):
        try:
            code = node.settings.verify(text)
        except CodeError:
            continue
        if isinstance(code, LicenseCode):
            left = days_left(code.expires, today)
            found.append(
                LicenseInfo(
                    serial=serial,
                    feature=code.feature,
                    version=code.version,
                    count=code.count,
                    expires=code.expires,
                    days_left=left if left is not None else 0,
                )
            )
    return tuple(found)


def status_reply(node: ServerNode, cfg: PoolConfig, now: float, request_id: str, wall: float = 0.0) -> StatusReply:
    leader = node.raft.leader if (node.raft.role == LEADER or node.raft.heard_from_leader(now)) else None
    today = node.settings.today()
    servers = []
    for spec in cfg.servers:
        state = node.pool.servers.get(spec.name)
        servers.append(
            ServerStatus(
                name=spec.name,
                address=spec.address,
                up=_peer_up(node, spec.name, now),
                leader=spec.name == leader,
                status=state.status if state is not None else "unknown",
                incarnation=state.incarnation if state is not None else 0,
            )
        )
    features = []
    pending = []
    for key, table in sorted(node.pool.features.items()):
        uses = []
        for spec in cfg.servers:
            if spec.name == node.name:
                in_use = node.member.leases.held(key)
            else:
                in_use = node.pool.registry.in_use(spec.name, key)
            allocated = table.allocated(spec.name)
            target = table.targets.get(spec.name, 0)
            lingering = node.member.leases.lingering(key) if spec.name == node.name else 0
            uses.append(
                ServerUse(server=spec.name, allocated=allocated, in_use=in_use, target=target, lingering=lingering)
            )
            # A cut still to come: seats idle rebalancing will take back (never
            # those a server needs for its own use, leadership.md M9).
            excess = idle_excess(allocated, in_use, target, node.settings.threshold(spec.name))
            if table.targets and excess > 0 and node.pool.servers[spec.name].status != DOWN:
                pending.append(
                    PendingCut(
                        feature=key[0], version=key[1], server=spec.name, allocated=allocated, target=allocated - excess
                    )
                )
        features.append(
            FeatureStatus(
                feature=key[0],
                version=key[1],
                total=table.total,
                free_pool=table.free,
                in_flight=table.in_flight,
                majority=table.majority,
                expires=table.expires,
                servers=tuple(uses),
                exact_version=table.exact,
                unmet=tuple(sorted((r, n) for (f, v, r), n in node.serving.book.unmet.items() if (f, v) == key and n)),
                weight=table.weight,
                idle_timeout=table.idle_timeout,
            )
        )
    return StatusReply(
        request_id=request_id,
        answered_by=node.name,
        pool=cfg.name,
        epoch=node.raft.term,
        leader=leader,
        role=node.raft.role,
        applied=node.applied,
        servers=tuple(servers),
        features=tuple(features),
        pending=tuple(pending),
        serving=node.serve_problem(None, now) is None,
        licenses=license_infos(node, today),
        today=today,
        settings_hash=node.settings.settings_hash,
        wall=wall,
        queue=queue_infos(node, now),
    )


def queue_infos(node: ServerNode, now: float, feature: str = "", version: str = "") -> tuple[QueuedInfo, ...]:
    """The committed queue as this node sees it, with each waiter's age here."""
    return tuple(
        QueuedInfo(
            feature=key[0],
            version=key[1],
            position=place,
            client_id=w.client_id,
            waiter_id=w.waiter_id,
            server=w.server,
            age=max(0.0, now - node.queue_seen.get(w.waiter_id, now)),
        )
        for key, queue in sorted(node.pool.queues.items())
        if (not feature or key[0] == feature) and (not version or key[1] == version)
        for place, w in enumerate(queue, start=1)
    )


def sessions_reply(node: ServerNode, now: float, wall_now: float, feature: str, version: str) -> SessionsReply:
    def wanted(f: str, v: str) -> bool:
        return (not feature or f == feature) and (not version or v == version)

    local = tuple(
        SessionInfo(
            lease_id=x.lease_id,
            client_id=x.client_id,
            feature=x.feature,
            version=x.version,
            server=node.name,
            granted_at=wall_now - (now - x.granted_at),
            expires_at=wall_now + (x.expires_at - now),
            seats=x.seats,
            lingering=x.lingering,
        )
        for x in sorted(node.member.leases.leases.values(), key=lambda x: x.granted_at)
        if wanted(x.feature, x.version)
    )
    registry = tuple(
        SessionInfo(
            lease_id=x.lease_id,
            client_id=x.client_id,
            feature=x.feature,
            version=x.version,
            server=x.holder,
            granted_at=0.0,
            expires_at=0.0,
            seats=x.seats,
        )
        for x in node.pool.registry.leases.values()
        if wanted(x.feature, x.version) and x.holder != node.name
    )
    return SessionsReply(
        answered_by=node.name, leases=local, registry=registry, queued=queue_infos(node, now, feature, version)
    )
