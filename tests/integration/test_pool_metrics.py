"""A real pool's metrics endpoints (``[[server]] metrics_port``), scraped over
HTTP and read with prometheus_client's parser, against ``status``."""

from __future__ import annotations

import re
import subprocess
import sys
import urllib.request
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from actors.shell.config import load_config
from tests.integration.procs import free_port


def _scrape(url: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    with urllib.request.urlopen(url, timeout=10) as r:
        text = r.read().decode()
    return {
        (s.name, frozenset(s.labels.items())): s.value for f in text_string_to_metric_families(text) for s in f.samples
    }


def _value(found: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str) -> float:
    hits = [v for (n, ls), v in found.items() if n == name and set(labels.items()) <= ls]
    assert len(hits) == 1, (name, labels, hits)
    return hits[0]


def test_each_server_serves_its_metrics_with_the_pools_real_numbers(licpool_pool: Any) -> None:
    pool = licpool_pool(start=False)
    ports = {name: free_port() for name in pool.names}
    text = pool.config.read_text()
    for name, port in ports.items():
        text = re.sub(rf'(name = "{name}"\nhost = "[^"]+"\nport = \d+\n)', rf"\1metrics_port = {port}\n", text)
    pool.config.write_text(text)
    pool.procs.cfg = load_config(pool.config)
    assert all(s.metrics_port == ports[s.name] for s in pool.procs.cfg.servers)
    pool.start()
    formed = pool.wait_formed()
    pool.add_license(pool.license(10))
    follower = next(n for n in pool.names if n != formed.leader)
    client = pool.client("metrics-client", prefer=follower)
    held = [client.checkout("cad", version="2.0", timeout=5.0) for _ in range(3)]
    assert {a.server for a in held} == {follower}
    status = pool.wait_status(
        lambda s: sum(u.in_use for f in s.features for u in f.servers) == 3, 10.0, "the three leases to be committed"
    )

    got = {name: _scrape(f"http://127.0.0.1:{port}/metrics") for name, port in ports.items()}
    cad = {"feature": "cad", "version": "2.0"}
    leader = status.answered_by
    (feature,) = status.features
    for name, found in got.items():
        assert _value(found, "licpool_server_responding", server=name) == 1
        assert _value(found, "licpool_seats_licensed", **cad) == 10
        assert _value(found, "licpool_is_leader") == (1 if name == leader else 0)
        assert _value(found, "licpool_fsync_seconds_count") > 0
        assert _value(found, "licpool_license_days_to_expiry", serial="T1") > 365 * 50
    ld = got[leader]
    for u in feature.servers:
        assert _value(ld, "licpool_seats_allocated", holder=u.server, **cad) == u.allocated
        assert _value(ld, "licpool_seats_in_use", holder=u.server, **cad) == u.in_use
    assert _value(ld, "licpool_seats_free_pool", **cad) == feature.free_pool
    assert _value(ld, "licpool_epoch") == status.epoch
    assert _value(got[follower], "licpool_checkouts_granted_total", **cad) == 3
    assert _value(got[follower], "licpool_leases_held") == 3
    assert _value(got[follower], "licpool_sessions") == 1
    days = _value(ld, "licpool_license_days_to_expiry", serial="T1")
    shown = subprocess.run(
        [sys.executable, "-m", "actors", "status", "--config", str(pool.config)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert shown.returncode == 0, shown.stderr
    assert f"license T1: cad 2.0, 10 seats, expires 2099-12-31: {days:.0f} days left" in shown.stdout, shown.stdout
    print(
        f"\nmetrics of {len(got)} servers: {len(got[leader])} samples at the leader; "
        f"fsync count at {follower}: {_value(got[follower], 'licpool_fsync_seconds_count'):.0f}"
    )
