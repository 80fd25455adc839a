"""Fuzz the message handlers: random and mutated protocol messages, as a peer
would send them, at a formed three-server pool with a license and leases.

Each example delivers a batch of messages to random servers the way the
LicenseServer shell does (``actors.shell.server_actor``): a message that
``actors.core.shape`` finds malformed is dropped, any other goes to
``ServerNode.receive`` (from a peer) or ``ServerNode.from_client``.  Then the
pool runs on.  Nothing may raise (the shell would restart the core from disk),
and afterwards every server's committed tables keep their invariants, their
totals are exactly what the signed codes grant, and the leases granted before
are still held.

Values are drawn from the class's own type hints, mostly well typed but
hostile (negative and huge counts, unknown features, servers and lease ids,
another client's lease id, empty strings), and sometimes of the wrong type
altogether (what pickle's ``BUILD`` can deliver; a missing field is checked
in ``test_shape_refuses_wrong_types_and_missing_fields``).
"""

from __future__ import annotations

import copy
import dataclasses
import math
import types
import typing
from enum import Enum
from functools import cache
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from actors.core import shape
from actors.core.effects import ClientRef
from actors.protocol import client as client_msgs
from actors.protocol import entries as log_entries
from actors.protocol import pool as pool_msgs
from actors.protocol import raft
from tests.factories import addon_code, license_code, verify
from tests.unit.test_admin_auth import WALL0, SignedNet, signed
from tests.unit.test_node_smoke import SERVERS

pytestmark = pytest.mark.unit

MESSAGE_CLASSES = [
    getattr(m, n)
    for m in (client_msgs, pool_msgs, raft)
    for n in m.__all__
    if isinstance(getattr(m, n), type)
    and dataclasses.is_dataclass(getattr(m, n))
    and n not in {"HeldLease", "AdminAuth", "LogEntry", "ServingGrant"}
]
ENTRY_CLASSES = [
    getattr(log_entries, n)
    for n in log_entries.__all__
    if isinstance(getattr(log_entries, n), type)
    and dataclasses.is_dataclass(getattr(log_entries, n))
    and n != "LeaseChange"
]


@cache
def _prototype() -> tuple[SignedNet, list[str], list[Any]]:
    """A formed pool with 10 seats of cad 2.0, an add-on, and three granted leases."""
    net = SignedNet()
    net.run(8.0)
    leader = net.leader().name
    assert net.admin(
        leader,
        signed(
            pool_msgs.AddLicenseCode(sender="cli", epoch=0, request_id="r1", code=license_code(10)), at=WALL0 + net.now
        ),
    ).ok
    assert net.admin(
        leader,
        signed(
            pool_msgs.AddAllocations(sender="cli", epoch=0, request_id="r2", addon=addon_code(count=5)),
            at=WALL0 + net.now,
        ),
    ).ok
    for i, server in enumerate(SERVERS):
        net.send(
            f"c{i}",
            server,
            client_msgs.CheckoutRequest(
                client_id=f"c{i}", session_id=f"client{i}", request_id=1, feature="cad", version="2.0"
            ),
        )
    net.run(net.now + 2.0)
    grants = [m for i in range(3) for m in net.replies(f"c{i}", client_msgs.CheckoutGranted)]
    assert len(grants) == 3
    return net, [g.lease_id for g in grants], grants


TEXT = st.one_of(
    st.sampled_from(
        [
            "",
            "s1",
            "s2",
            "s3",
            "s9",
            "cad",
            "2.0",
            "9.9",
            "nope",
            "client0",
            "client1",
            "c0",
            "cli",
            "r1",
            "x" * 300,
            "\x00",
            "cad:2.0",
            "..",
            "s1.1.1.00.00",
        ]
    ),
    st.text(max_size=12),
)
INT = st.one_of(st.integers(-3, 12), st.sampled_from([-(2**63), 2**63, 10**9, -1]))
FLOAT = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.sampled_from([0.0, -1.0, 1e308, 30.0]))
WRONG = st.one_of(
    st.none(),
    st.integers(),
    st.lists(st.integers(), max_size=2),
    st.binary(max_size=4),
    st.dictionaries(st.text(max_size=2), st.integers(), max_size=2),
    st.floats(),
    st.booleans(),
)


def _strategy(hint: Any, lease_ids: list[str], depth: int = 0) -> st.SearchStrategy[Any]:
    origin = typing.get_origin(hint)
    if hint is Any:
        return st.one_of(st.none(), TEXT)
    if origin is typing.Union or origin is types.UnionType:
        return st.one_of(*[_strategy(a, lease_ids, depth) for a in typing.get_args(hint)])
    if origin is tuple:
        args = typing.get_args(hint)
        if len(args) == 2 and args[1] is Ellipsis:
            return st.lists(_strategy(args[0], lease_ids, depth + 1), max_size=3 if depth < 2 else 0).map(tuple)
        return st.tuples(*[_strategy(a, lease_ids, depth + 1) for a in args])
    if origin is dict:
        return st.dictionaries(st.text(max_size=4), st.integers(), max_size=3)
    if hint is type(None):
        return st.none()
    if hint is bool:
        return st.booleans()
    if hint is int:
        return INT
    if hint is float:
        return FLOAT
    if hint is str:
        return st.one_of(
            TEXT,
            st.sampled_from(lease_ids),
            st.sampled_from([license_code(10, serial="Z9"), addon_code(count=50, serial="Z8")]),
        )
    if isinstance(hint, type) and issubclass(hint, Enum):
        return st.sampled_from(list(hint))
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        return _instance(hint, lease_ids, depth + 1)
    if hint == log_entries.Entry or (origin is None and "Entry" in str(hint)):
        return st.one_of(*[_instance(k, lease_ids, depth + 1) for k in ENTRY_CLASSES])
    raise AssertionError(f"no strategy for {hint}")


def _instance(cls: type, lease_ids: list[str], depth: int = 0) -> st.SearchStrategy[Any]:
    hints = typing.get_type_hints(cls)

    def field(hint: Any) -> st.SearchStrategy[Any]:
        good = _strategy(hint, lease_ids, depth)
        if depth > 1:
            return good
        # One field value in 30 is of the wrong type: most messages stay well formed and reach the core.
        return st.integers(0, 29).flatmap(lambda k: WRONG if k == 0 else good)

    fields = {f.name: field(hints[f.name]) for f in dataclasses.fields(cls)}

    @st.composite
    def build(draw: Any) -> Any:
        values = {name: draw(s) for name, s in fields.items()}
        obj: object = object.__new__(cls)
        for name, value in values.items():
            object.__setattr__(obj, name, value)
        return obj

    return build()


def _messages() -> st.SearchStrategy[list[tuple[str, bool, Any]]]:
    _, lease_ids, _ = _prototype()
    message = st.one_of(*[_instance(k, lease_ids) for k in MESSAGE_CLASSES])
    return st.lists(st.tuples(st.sampled_from(SERVERS), st.booleans(), message), min_size=1, max_size=6)


def _check(net: SignedNet, held: list[Any]) -> None:
    for name, node in net.nodes.items():
        assert node.pool.problems() == [], name
        assert node.pool.count_problems(verify) == [], name
        table = node.pool.feature("cad", "2.0")
        assert table is not None and table.total == 15, name
    for grant in held:
        holder = net.nodes[grant.server]
        assert grant.lease_id in holder.member.leases.leases, f"{grant.lease_id} lost at {grant.server}"


FED = {"fed": 0, "dropped": 0}


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(batch=st.deferred(_messages))
def test_random_and_mutated_messages_never_crash_a_server_or_break_the_table(
    batch: list[tuple[str, bool, Any]],
) -> None:
    proto, _, grants = _prototype()
    net = copy.deepcopy(proto)
    start = net.now
    for to, from_peer, msg in batch:
        if shape.problem(msg) is not None:
            FED["dropped"] += 1
            continue
        FED["fed"] += 1
        node = net.nodes[to]
        sender = next(s for s in SERVERS if s != to)
        if from_peer:
            net.carry(to, node.receive(sender, msg, net.now))
        else:
            net.carry(to, node.from_client(ClientRef("fuzz"), msg, net.now))
    # Keep the held leases renewed while the pool digests the batch.
    net.run(net.now + 0.5)
    for i, grant in enumerate(grants):
        net.send(
            f"c{i}",
            grant.server,
            client_msgs.SessionHeartbeat(
                client_id=f"c{i}", session_id=f"client{i}", seq=2, lease_ids=(grant.lease_id,)
            ),
        )
    net.run(net.now + 1.5)
    assert net.now > start
    _check(net, grants)


def test_the_fuzz_feeds_the_core() -> None:
    """Runs after the fuzz test (file order): most messages must have reached the core."""
    if FED["fed"] + FED["dropped"] == 0:
        pytest.skip("the fuzz test did not run")
    print(f"\nfuzz: {FED['fed']} messages reached the core, {FED['dropped']} dropped as malformed")
    assert FED["fed"] > FED["dropped"], FED


def test_shape_refuses_wrong_types_and_missing_fields() -> None:
    good = client_msgs.CheckoutRequest(client_id="c0", session_id="client0", request_id=1, feature="cad", version="2.0")
    assert shape.problem(good) is None
    wrong = dataclasses.replace(good, feature=["cad"])  # type: ignore[arg-type]  # a wrong type on purpose
    assert "not str" in str(shape.problem(wrong))
    assert "not int" in str(shape.problem(dataclasses.replace(good, request_id=True)))
    bare = object.__new__(client_msgs.CheckoutRequest)
    assert "missing" in str(shape.problem(bare))
    sync = raft.DistributionCriteriaSync(
        sender="s1",
        epoch=1,
        prev_index=0,
        prev_epoch=0,
        entries=(
            raft.LogEntry(
                index=1, epoch=1, entry=log_entries.Grant(feature="s1", version="cad", server="2.0", count=1, source="")
            ),
        ),
        commit_index=0,
        round=1,
    )
    assert shape.problem(sync) is None
    bad_entry = raft.LogEntry(index=1, epoch=1, entry="not an entry")  # type: ignore[arg-type]  # a wrong type on purpose
    assert shape.problem(dataclasses.replace(sync, entries=(bad_entry,))) is not None
    assert "finite" in str(
        shape.problem(raft.LogEntry(index=1, epoch=1, entry=log_entries.AdminNonce(nonce="a", stamp=math.nan)))
    )
    assert shape.problem("a string") is not None
