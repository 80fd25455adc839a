"""tools/kwonly.py names the positional arguments of protocol constructions.

The tool prepares the switch of the protocol to ``kw_only`` dataclasses: it
must find a construction however the class was imported, keep every
argument's text as written, and leave everything else alone.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from actors.protocol import client, pool, raft
from tools import kwonly

SAMPLE = """\
import actors.protocol.raft
from actors import protocol
from actors.protocol import pool as p
from actors.protocol.client import CheckoutRequest as Ask, DenyReason, HeldLease
from collections import OrderedDict


def build(name, term, lid):
    wanted = p.BorrowRequest(name, term, "f", "1.0", 2,  # count
                             (0), (1 + 1),
                             request_no=7)
    ask = Ask("c1", "s1", 3, "f", "1.0", lid)
    reply = actors.protocol.raft.SyncReply(name, term, True, 4, 5)
    note = protocol.VoteReply("s2", term, False)
    nested = p.FailoverForward(name, term, "c1", 9, (HeldLease("l1", "ƒéature", "1"),))
    spread = p.TransferConfirm(*("s1", 1, "t", 1))
    why = DenyReason("NO_SEATS")
    other = OrderedDict(a=1)
    return wanted, ask, reply, note, nested, spread, why, other
"""

EXPECTED = """\
import actors.protocol.raft
from actors import protocol
from actors.protocol import pool as p
from actors.protocol.client import CheckoutRequest as Ask, DenyReason, HeldLease
from collections import OrderedDict


def build(name, term, lid):
    wanted = p.BorrowRequest(sender=name, epoch=term, feature="f", version="1.0", count=2,  # count
                             in_use=(0), allocated=(1 + 1),
                             request_no=7)
    ask = Ask(client_id="c1", session_id="s1", request_id=3, feature="f", version="1.0", lease_id=lid)
    reply = actors.protocol.raft.SyncReply(sender=name, epoch=term, success=True, match_index=4, round=5)
    note = protocol.VoteReply(sender="s2", epoch=term, granted=False)
    nested = p.FailoverForward(sender=name, epoch=term, client_id="c1", client_seq=9, \
leases=(HeldLease(lease_id="l1", feature="ƒéature", version="1"),))
    spread = p.TransferConfirm(*("s1", 1, "t", 1))
    why = DenyReason("NO_SEATS")
    other = OrderedDict(a=1)
    return wanted, ask, reply, note, nested, spread, why, other
"""


def _run(source: str) -> tuple[Any, ...]:
    scope: dict[str, Any] = {}
    exec(compile(source, "<sample>", "exec"), scope)
    built: tuple[Any, ...] = scope["build"]("s1", 3, "l9")
    return built


def test_positional_constructions_get_their_field_names_and_keep_their_text() -> None:
    result = kwonly.rewrite_source(SAMPLE, kwonly.protocol_fields())
    assert result.source == EXPECTED
    assert [(cls, n) for _, cls, n in result.rewritten] == [
        ("BorrowRequest", 7),
        ("Ask", 6),
        ("SyncReply", 5),
        ("VoteReply", 3),
        ("FailoverForward", 5),
        ("HeldLease", 3),
    ]
    assert [(line, cls) for line, cls, _ in result.skipped] == [(16, "TransferConfirm")]


def test_the_protocol_is_kw_only_and_the_rewritten_code_builds_its_messages() -> None:
    with pytest.raises(TypeError, match="positional"):
        _run(SAMPLE)  # the protocol dataclasses are kw_only: positional construction is refused
    # The one call the tool leaves for a hand edit (``*args``) is edited as a person would.
    after = _run(
        EXPECTED.replace(
            'p.TransferConfirm(*("s1", 1, "t", 1))', 'p.TransferConfirm(sender="s1", epoch=1, transfer_id="t", given=1)'
        )
    )
    assert isinstance(after[0], pool.BorrowRequest) and after[0].allocated == 2 and after[0].request_no == 7
    assert isinstance(after[1], client.CheckoutRequest) and after[1].lease_id == "l9"
    assert isinstance(after[2], raft.SyncReply) and after[2].round == 5


def test_a_second_run_changes_nothing() -> None:
    result = kwonly.rewrite_source(EXPECTED, kwonly.protocol_fields())
    assert result.source == EXPECTED and not result.rewritten


def test_rewritten_calls_fit_kw_only_classes() -> None:
    """The point of the tool: after it, the classes may become ``kw_only``."""
    fields = kwonly.protocol_fields()
    strict = dataclasses.make_dataclass(
        "BorrowRequest", list(fields["actors.protocol.pool.BorrowRequest"]), frozen=True, kw_only=True
    )
    source = "from actors.protocol import pool as p\nx = p.BorrowRequest('s1', 1, 'f', '1', 2, 0, 2, 7)\n"
    rewritten = kwonly.rewrite_source(source, fields).source
    scope: dict[str, Any] = {"p": SimpleNamespace(BorrowRequest=strict)}
    with pytest.raises(TypeError):
        exec(source.splitlines()[1], scope)
    exec(rewritten.splitlines()[1], scope)
    assert scope["x"].request_no == 7 and scope["x"].allocated == 2


def test_kw_only_is_added_to_the_protocol_decorators_only() -> None:
    source = "@dataclass(frozen=True)\nclass A:\n    x: int\n\n@dataclass\nclass B:\n    y: int\n"
    text, count = kwonly.add_kw_only(source)
    assert count == 1
    assert text.startswith("@dataclass(frozen=True, kw_only=True)\nclass A:") and "@dataclass\nclass B" in text


def test_the_command_rewrites_files_in_place(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text(SAMPLE, encoding="utf-8")
    assert kwonly.main(["--check", str(tmp_path)]) == 0
    assert sample.read_text(encoding="utf-8") == SAMPLE
    assert kwonly.main([str(tmp_path)]) == 0
    assert sample.read_text(encoding="utf-8") == EXPECTED
    out = capsys.readouterr().out
    assert "left TransferConfirm(...) alone: a *args call" in out
    assert out.strip().endswith("rewrote 6 construction(s) in 1 file(s)")
