"""``licpool snapshot show``: a server's persisted state, as plain data.

The files are read from a copy (``load_readonly``) and replayed into a
``ServerNode`` exactly as a restart would, without writing anything, so what
is shown is what the server would come back with.
"""

from __future__ import annotations

import time
from typing import Any

from actors.core.node import ServerNode
from actors.shell.config import PoolConfig
from actors.shell.persistence import load_readonly
from actors.shell.views import node_settings

__all__ = ["describe"]


def describe(cfg: PoolConfig, name: str) -> dict[str, Any]:
    directory = cfg.data_dir / name
    state, records = load_readonly(directory)
    now = time.monotonic()
    node, _ = ServerNode.boot(node_settings(cfg, name), (state, records) if state or records else None, now)
    raft = node.raft
    wall = time.time()
    return {
        "server": name,
        "data_dir": str(directory),
        "snapshot": state is not None,
        "journal_records": len(records),
        "incarnation": raft.incarnation - 1,
        "epoch": raft.term,
        "voted_for": raft.voted_for,
        "log": {"snap_index": raft.log.snap_index, "last_index": raft.log.last_index},
        "applied": node.applied,
        "servers": {s: {"status": x.status, "incarnation": x.incarnation} for s, x in node.pool.servers.items()},
        "features": [
            {
                "feature": t.feature,
                "version": t.version,
                "total": t.total,
                "free": t.free,
                "in_flight": t.in_flight,
                "majority": t.majority,
                "expires": t.expires,
                "alloc": dict(t.alloc),
                "targets": dict(t.targets),
            }
            for _, t in sorted(node.pool.features.items())
        ],
        "licenses": sorted(node.pool.licenses),
        "addons": sorted(node.pool.addons),
        "leases": [
            {
                "lease_id": x.lease_id,
                "client_id": x.client_id,
                "feature": x.feature,
                "version": x.version,
                "expires_in": round(x.expires_at - now, 3),
                "granted_at": wall - (now - x.granted_at),
            }
            for x in node.member.leases.leases.values()
        ],
        "registry_leases": len(node.pool.registry.leases),
        "transfers": len(node.pool.transfers),
    }
