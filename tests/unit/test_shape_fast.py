"""The shape check's compiled fast path accepts exactly what its slow path accepts.

``actors.core.shape.problem`` first runs a check built once per type (closures,
no text); only a message it refuses is walked by the slow path, which says
why.  If the fast path accepted a message the slow path refuses, a malformed
message would reach the core; if it refused one the slow path accepts, the
message would still pass, only slowly.  So both are compared here on the
handler fuzz's messages, each also mutated at a random depth: a field of a
nested value replaced with a value of another type, or removed.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from actors.core import shape
from actors.protocol import entries as log_entries
from actors.protocol import raft
from tests.unit.test_fuzz_handlers import MESSAGE_CLASSES, WRONG, _instance, _prototype

pytestmark = pytest.mark.unit

ODD = st.one_of(
    WRONG,
    st.sampled_from([float("nan"), float("inf"), True, False, "x" * (shape.MAX_TEXT + 1), (), (1,), {1: 2}]),
)


def _slots(obj: Any, depth: int = 0) -> list[tuple[Any, str]]:
    """Every (dataclass instance, field name) inside ``obj``."""
    out: list[tuple[Any, str]] = []
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        for f in dataclasses.fields(obj):
            out.append((obj, f.name))
            out.extend(_slots(getattr(obj, f.name, None), depth + 1))
    elif isinstance(obj, tuple):
        for item in obj:
            out.extend(_slots(item, depth + 1))
    return out


def _agree(msg: Any) -> None:
    fast = shape._object_check(type(msg))(msg, 0)
    slow = shape._object(msg, type(msg).__name__, 0)
    assert fast == (slow is None), (fast, slow, msg)
    assert shape.problem(msg) == slow


@st.composite
def _mutated(draw: Any) -> Any:
    _, lease_ids, _ = _prototype()
    msg = draw(st.one_of(*[_instance(k, lease_ids) for k in MESSAGE_CLASSES]))
    slots = _slots(msg)
    for _ in range(draw(st.integers(0, 2))):
        if not slots:
            break
        holder, name = slots[draw(st.integers(0, len(slots) - 1))]
        if draw(st.booleans()):
            object.__setattr__(holder, name, draw(ODD))
        else:
            holder.__dict__.pop(name, None)
    return msg


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(msg=_mutated())
def test_the_fast_path_accepts_exactly_what_the_slow_path_accepts(msg: Any) -> None:
    _agree(msg)


def test_a_deep_sync_and_its_limits() -> None:
    change = log_entries.LeaseChange(seq=1, kind="grant", lease_id="l1", client_id="c1", feature="cad", version="2.0")
    report = log_entries.LeaseReport(server="s2", changes=(change,) * 50, watermark=3)
    sync = raft.DistributionCriteriaSync(
        sender="s1",
        epoch=2,
        prev_index=0,
        prev_epoch=0,
        entries=tuple(raft.LogEntry(index=i + 1, epoch=2, entry=report) for i in range(64)),
        commit_index=0,
        round=1,
    )
    _agree(sync)
    assert shape.problem(sync) is None
    bad = dataclasses.replace(change, seats=True)  # bool is not an int here
    _agree(
        dataclasses.replace(
            sync, entries=(raft.LogEntry(index=1, epoch=2, entry=dataclasses.replace(report, changes=(bad,))),)
        )
    )
    long = dataclasses.replace(change, lease_id="x" * (shape.MAX_TEXT + 1))
    refused = dataclasses.replace(
        sync, entries=(raft.LogEntry(index=1, epoch=2, entry=dataclasses.replace(report, changes=(long,))),)
    )
    _agree(refused)
    assert "longer than" in str(shape.problem(refused))
