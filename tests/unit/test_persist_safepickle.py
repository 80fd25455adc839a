"""The safe unpickler: plain data round-trips, nothing else is ever resolved."""

from __future__ import annotations

import builtins
import collections
import os
import pickle
import subprocess
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from actors.persist import (
    ALLOWED_GLOBALS,
    MalformedPayload,
    NotPlainData,
    PersistError,
    UnsafePayload,
    check_plain,
    safe_dumps,
    safe_loads,
)

_hashable = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False)
    | st.text(max_size=8)
    | st.binary(max_size=8)
    | st.complex_numbers(allow_nan=False)
)
_hashable_tree = st.recursive(
    _hashable, lambda inner: st.tuples(inner, inner) | st.frozensets(inner, max_size=3), max_leaves=6
)
plain_data = st.recursive(
    _hashable | st.binary(max_size=8).map(bytearray),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.tuples(inner, inner)
        | st.dictionaries(_hashable_tree, inner, max_size=4)
        | st.dictionaries(st.text(max_size=4), inner, max_size=3).map(collections.OrderedDict)
        | st.sets(_hashable_tree, max_size=4)
        | st.frozensets(_hashable_tree, max_size=4)
    ),
    max_leaves=25,
)


@given(plain_data)
def test_plain_data_round_trips(value: object) -> None:
    assert safe_loads(safe_dumps(value)) == value


def test_round_trip_keeps_types() -> None:
    value = {"t": (1,), "l": [1], "s": {1}, "f": frozenset({2}), "b": b"x", "ba": bytearray(b"y"), "c": 1j}
    loaded = safe_loads(safe_dumps(value))
    assert {k: type(v) for k, v in loaded.items()} == {k: type(v) for k, v in value.items()}


class _Opaque:
    pass


@pytest.mark.parametrize(
    "value",
    [_Opaque(), {"a": [1, _Opaque()]}, os.system, {_Opaque: 1}, range(3), Path("/x"), {"k": {1: (2, object())}}],
)
def test_writer_refuses_non_plain_data(value: object) -> None:
    with pytest.raises(NotPlainData):
        safe_dumps(value)


def test_writer_refuses_subclasses_of_plain_types() -> None:
    class Seats(int):
        pass

    with pytest.raises(NotPlainData, match="Seats"):
        check_plain({"seats": Seats(3)})
    assert issubclass(NotPlainData, TypeError)
    assert issubclass(NotPlainData, PersistError)


class _RunsShell:
    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.system, (self.command,))


class _RunsExec:
    def __init__(self, source: str) -> None:
        self.source = source

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (builtins.exec, (self.source,))


def test_hostile_os_system_pickle_never_runs(tmp_path: Path) -> None:
    marker = tmp_path / "MARKER"
    hostile = pickle.dumps({"state": [_RunsShell(f"touch {marker}")]}, protocol=5)
    with pytest.raises(UnsafePayload) as caught:
        safe_loads(hostile, source="leases.snap")
    assert not marker.exists()
    assert caught.value.global_name in {"posix.system", "nt.system"}
    assert "system" in str(caught.value) and "leases.snap" in str(caught.value)


@pytest.mark.parametrize("protocol", [2, 5])
def test_hostile_exec_pickle_never_runs(tmp_path: Path, protocol: int) -> None:
    marker = tmp_path / "MARKER"
    hostile = pickle.dumps(_RunsExec(f"open({str(marker)!r}, 'w').close()"), protocol=protocol)
    with pytest.raises(UnsafePayload, match=r"(builtins|__builtin__)\.exec"):
        safe_loads(hostile)
    assert not marker.exists()


def test_hostile_pickles_are_real(tmp_path: Path) -> None:
    """Positive control: the standard unpickler does run them."""
    marker = tmp_path / "CONTROL"
    pickle.loads(pickle.dumps(_RunsExec(f"open({str(marker)!r}, 'w').close()")))
    assert marker.exists()
    marker.unlink()
    subprocess.run(["true"], check=True)  # the shell exists in this environment
    pickle.loads(pickle.dumps(_RunsShell(f"touch {marker}")))
    assert marker.exists()


def _stack_global(module: str, name: str) -> bytes:
    def text(value: str) -> bytes:
        raw = value.encode()
        return b"\x8c" + bytes([len(raw)]) + raw

    return b"\x80\x05" + text(module) + text(name) + b"\x93."


@pytest.mark.parametrize(
    ("module", "name"),
    [
        ("builtins", "eval"),
        ("builtins", "exec"),
        ("builtins", "getattr"),
        ("builtins", "__import__"),
        ("builtins", "open"),
        ("builtins", "bytes"),
        ("builtins", "bytearray"),
        ("builtins", "set.__init__"),
        ("posix", "system"),
        ("os", "system"),
        ("subprocess", "Popen"),
        ("copyreg", "_reconstructor"),
        ("_codecs", "encode"),
        ("collections", "namedtuple"),
    ],
)
def test_every_global_outside_the_allowlist_is_refused(module: str, name: str) -> None:
    with pytest.raises(UnsafePayload) as caught:
        safe_loads(_stack_global(module, name))
    assert caught.value.global_name == f"{module}.{name}"


def test_protocol_zero_global_opcode_is_refused(tmp_path: Path) -> None:
    marker = tmp_path / "MARKER"
    hostile = f"cos\nsystem\n(S'touch {marker}'\ntR.".encode()
    with pytest.raises(UnsafePayload, match=r"os\.system"):
        safe_loads(hostile)
    assert not marker.exists()


def test_allowlist_holds_only_data_types() -> None:
    for module, name in ALLOWED_GLOBALS:
        assert module in {"builtins", "collections"}
        assert isinstance(getattr(__import__(module), name), type)


@pytest.mark.parametrize("data", [b"", b"garbage", b"\x80\x05", pickle.dumps([1, 2])[:-3], b"\x80\x05Q."])
def test_malformed_bytes_raise_malformed_payload(data: bytes) -> None:
    with pytest.raises(MalformedPayload):
        safe_loads(data)
