"""Prometheus metrics: what a server exports, read back with prometheus_client's
own text parser, and the alert rules shipped in deploy/prometheus/.

The numbers come from real ``ServerNode``s on the smoke tests' perfect network
(a license, grants, a denial); tests/integration/test_metrics.py scrapes a
real pool's HTTP endpoints.
"""

from __future__ import annotations

import re
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from actors.core.effects import Event, Ready
from actors.core.expiry import days_left
from actors.protocol import client as client_msgs
from actors.protocol import pool as pool_msgs
from actors.protocol.admin import MetricsReply
from actors.shell.config import default_config_text, load_config
from actors.shell.metrics import METRIC_NAMES, MetricsEndpoint, ServerMetrics
from actors.shell.system import free_port
from tests.factories import license_code
from tests.unit.test_node_smoke import Net

RULES = Path(__file__).resolve().parents[2] / "deploy" / "prometheus" / "licpool.rules.yml"
TODAY = "2026-11-28"  # the smoke Net's injected date


class MeteredNet(Net):
    def __init__(self) -> None:
        self.metrics = {name: ServerMetrics("licpool", name) for name in ("s1", "s2", "s3")}
        super().__init__()

    def carry(self, name: str, ready: Ready) -> None:
        self.metrics[name].events(ready.events)
        if name in self.nodes:
            self.metrics[name].stepped(self.nodes[name])
        super().carry(name, ready)


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    found = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            found[(s.name, frozenset(s.labels.items()))] = s.value
    return found


def value(found: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str) -> float:
    want = set(labels.items())
    hits = [v for (n, ls), v in found.items() if n == name and want <= ls]
    assert len(hits) == 1, (name, labels, hits)
    return hits[0]


@pytest.fixture
def pool_cfg(tmp_path: Path) -> Any:
    path = tmp_path / "pool.toml"
    path.write_text(default_config_text(tmp_path, (1950, 1951, 1952)))
    return load_config(path, client=True)


@pytest.fixture
def net() -> MeteredNet:
    net = MeteredNet()
    net.run(8.0)
    net.send(
        "admin",
        net.leader().name,
        pool_msgs.AddLicenseCode(
            sender="cli", epoch=0, request_id="r1", code=license_code(10, expires="2027-01-31", serial="X1")
        ),
    )
    net.run(net.now + 1.0)
    for i in (1, 2):
        net.send(
            f"c{i}",
            "s2",
            client_msgs.CheckoutRequest(
                client_id=f"c{i}", session_id=f"c{i}", request_id=1, feature="cad", version="2.0"
            ),
        )
    net.send(
        "c9",
        "s2",
        client_msgs.CheckoutRequest(client_id="c9", session_id="c9", request_id=1, feature="nope", version="1.0"),
    )
    net.run(net.now + 1.0)
    return net


def test_a_server_exports_the_pools_real_numbers(net: MeteredNet, pool_cfg: Any, tmp_path: Path) -> None:
    leader = net.leader()
    data = tmp_path / "data" / "s2"
    data.mkdir(parents=True)
    (data / "node.journal").write_bytes(b"x" * 1234)
    s2 = samples(net.metrics["s2"].render(net.nodes["s2"], pool_cfg, data, net.now))
    ld = samples(net.metrics[leader.name].render(leader, pool_cfg, None, net.now))
    cad = {"feature": "cad", "version": "2.0"}

    assert value(s2, "licpool_seats_licensed", **cad) == 10
    assert value(s2, "licpool_seats_in_use", holder="s2", **cad) == 2
    assert value(s2, "licpool_leases_held") == 2 and value(s2, "licpool_sessions") == 2
    assert value(s2, "licpool_checkouts_granted_total", **cad) == 2
    assert value(s2, "licpool_checkouts_denied_total", feature="nope", reason="UNKNOWN_FEATURE") == 1
    assert value(s2, "licpool_journal_bytes") == 1234
    table = leader.pool.features[("cad", "2.0")]
    alloc = {h: value(ld, "licpool_seats_allocated", holder=h, **cad) for h in ("s1", "s2", "s3")}
    assert alloc == {h: table.allocated(h) for h in ("s1", "s2", "s3")}
    assert (
        sum(alloc.values()) + value(ld, "licpool_seats_free_pool", **cad) + value(ld, "licpool_seats_in_flight", **cad)
        == 10
    )
    assert value(ld, "licpool_is_leader") == 1 and value(s2, "licpool_is_leader") == 0
    assert value(s2, "licpool_epoch") == leader.raft.term == value(ld, "licpool_epoch")
    assert value(ld, "licpool_commit_index") == leader.raft.commit_index
    assert value(s2, "licpool_apply_lag") == net.nodes["s2"].raft.commit_index - net.nodes["s2"].applied
    assert value(s2, "licpool_leader_changes_total") == 1
    assert value(s2, "licpool_peer_up", holder="s1") == 1
    assert value(s2, "licpool_license_days_to_expiry", serial="X1", **cad) == days_left("2027-01-31", TODAY) == 65
    assert value(s2, "licpool_feature_days_to_expiry", **cad) == 65
    assert value(s2, "licpool_server_info", today=TODAY) == 1


def test_every_metric_name_is_exported(net: MeteredNet, pool_cfg: Any) -> None:
    m = net.metrics["s2"]
    m.observe_fsync(0.003)
    m.observe_compaction(0.02)
    m.observe_step(0.0004)
    m.observe_step(0.3)
    m.observe_lateness(1.2)
    text = m.render(net.nodes["s2"], pool_cfg, None, net.now)
    families = {f.name for f in text_string_to_metric_families(text)}
    assert families | {"licpool_server_responding"} == METRIC_NAMES
    found = samples(text)
    assert value(found, "licpool_fsync_seconds_count") == 1
    assert value(found, "licpool_fsync_seconds_bucket", le="0.005") == 1
    assert value(found, "licpool_compaction_seconds_count") == 1
    assert value(found, "licpool_step_seconds_count") == 2
    assert value(found, "licpool_step_seconds_bucket", le="0.0005") == 1
    assert value(found, "licpool_timer_lateness_seconds_bucket", le="1.0") == 0
    assert value(found, "licpool_timer_lateness_seconds_bucket", le="2.5") == 1


def test_the_http_endpoint_passes_the_servers_text_on_and_says_when_it_does_not_answer(
    net: MeteredNet, pool_cfg: Any
) -> None:
    text = net.metrics["s2"].render(net.nodes["s2"], pool_cfg, None, net.now)
    answer: list[Any] = [MetricsReply(server="s2", text=text)]
    port = free_port("127.0.0.1")
    endpoint = MetricsEndpoint(lambda msg, timeout: answer[0], "licpool", "s2", "127.0.0.1", port)
    try:

        def scrape() -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
            with urllib.request.urlopen(endpoint.url, timeout=5) as r:
                return samples(r.read().decode())

        got = scrape()
        assert value(got, "licpool_server_responding", server="s2") == 1
        assert value(got, "licpool_seats_in_use", holder="s2", feature="cad") == 2
        answer[0] = None  # the actor did not answer in time
        got = scrape()
        assert value(got, "licpool_server_responding", server="s2") == 0
        assert not any(n == "licpool_seats_licensed" for n, _ in got)
    finally:
        endpoint.close()


_NAME = re.compile(r"\b(licpool_[a-z_]+|up)\b")


def test_the_alert_rules_name_only_metrics_a_server_exports() -> None:
    doc = yaml.safe_load(RULES.read_text())
    rules = [r for g in doc["groups"] for r in g["rules"]]
    alerts = {r["alert"] for r in rules}
    assert {
        "LicpoolServerDown",
        "LicpoolNoLeader",
        "LicpoolPoolNearFull",
        "LicpoolLicenseExpiresSoon",
        "LicpoolApplyLag",
    } <= alerts
    for rule in rules:
        assert set(rule) >= {"alert", "expr", "labels", "annotations"}, rule
        names = set(_NAME.findall(rule["expr"]))
        assert names, rule["alert"]
        for name in names - {"up"}:
            family = re.sub(r"_(total|bucket|count|sum)$", "", name)
            assert family in METRIC_NAMES, f"{rule['alert']}: {name} is not exported"


def test_frames_received_are_counted_by_message_class(net: MeteredNet, pool_cfg: Any) -> None:
    """Every frame the wire decodes counts, by message class, with its pickled size;
    a server exports only what arrived after its metrics were made (not what a
    forked parent had counted)."""
    import pickle

    from thespian.actors import ActorAddress
    from thespian.system.transport.IPBase import TCPv4ActorAddress

    from actors.shell import wire

    sender = ActorAddress(TCPv4ActorAddress("127.0.0.1", 19999, external=True))
    wire.SERIALIZER.loads(pickle.dumps((sender, client_msgs.SessionHeartbeat(client_id="a", session_id="s", seq=0))))
    m = ServerMetrics("licpool", "s2")  # made after that frame: it is not counted
    sizes = []
    for n in (1, 100):
        hb = client_msgs.SessionHeartbeat(
            client_id="a", session_id="s", seq=n, lease_ids=tuple(f"lease-{i:06d}" for i in range(n))
        )
        data = pickle.dumps((sender, hb))
        sizes.append(len(data))
        assert wire.SERIALIZER.loads(data)[1] == hb
    wire.SERIALIZER.loads(wire.SERIALIZER.dumps("ACK"))  # Thespian's acks are not messages
    found = samples(m.render(net.nodes["s2"], pool_cfg, None, net.now))
    assert value(found, "licpool_frames_received_total", message="SessionHeartbeat") == 2
    assert value(found, "licpool_frame_bytes_received_total", message="SessionHeartbeat") == sum(sizes)
    assert sizes[1] > sizes[0] + 99 * 10  # each lease id adds its bytes
    assert not [k for k in found if k[0] == "licpool_frames_received_total" and ("message", "str") in k[1]]
    wire.SERIALIZER.loads(pickle.dumps((sender, client_msgs.SessionHeartbeat(client_id="a", session_id="s", seq=9))))
    again = samples(m.render(net.nodes["s2"], pool_cfg, None, net.now))
    assert value(again, "licpool_frames_received_total", message="SessionHeartbeat") == 3


def test_unmet_demand_is_counted_per_feature_and_reason() -> None:
    m = ServerMetrics("licpool", "s1")
    m.events(
        [
            Event("queued", (("feature", "cad"), ("version", "2.0"), ("reason", "QUEUED"))),
            Event("queued", (("feature", "cad"), ("version", "2.0"), ("reason", "QUEUED"))),
            Event("denial", (("feature", "cad"), ("version", "2.0"), ("reason", "NO_SEATS"))),
        ]
    )
    found = samples(generate_latest(m.registry).decode())
    assert value(found, "licpool_checkouts_queued_total", feature="cad", version="2.0", reason="QUEUED") == 2
    assert value(found, "licpool_checkouts_denied_total", feature="cad", version="2.0", reason="NO_SEATS") == 1
