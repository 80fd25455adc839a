"""The tables of ``docs/protocol.md``, generated from the protocol's docstrings.

Each message's docstring begins ``Sender -> Receiver: what it says`` and states
its replies (``Reply: X``, ``Replies: X or Y`` or ``No reply``).  This module
reads those docstrings, adds the claim numbers and proposers kept below, and
builds Markdown.  ``python -m tools.protocol_doc`` prints the generated part of
``docs/protocol.md`` (``--write docs/protocol.md`` splices it in between the
page's marker comments); ``tests/unit/test_protocol_doc.py`` checks that the
page still matches it, so the page cannot drift from the code.

Under each table, every class's fields are listed with their types, defaults
and docstrings: the string literal right below a field is its docstring (the
Pykka style; Python keeps no such thing at run time, so they are read from the
source with ``ast``).  A field needs one unless its name is in
``OBVIOUS_FIELDS``, whose text the page shows for it instead.

A new message needs a docstring in that form and an entry in ``CLAIMS``.  A new
log entry needs a docstring and entries in ``CLAIMS`` and ``PROPOSED_BY``.  A new
class that only travels inside messages belongs in ``VALUES``.
"""

from __future__ import annotations

import ast
import dataclasses
import inspect
import re
import sys
import textwrap
import typing
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from types import ModuleType

from actors.protocol import admin, client, entries, pool, raft

__all__ = [
    "CLAIMS",
    "PROPOSED_BY",
    "VALUES",
    "OBVIOUS_FIELDS",
    "message_classes",
    "entry_classes",
    "value_classes",
    "own_doc",
    "docstring_claims",
    "parse_message",
    "carried_in",
    "field_docs",
    "undocumented_fields",
    "field_list",
    "message_table",
    "shell_table",
    "entry_table",
    "value_table",
    "generated",
    "BEGIN",
    "END",
    "splice",
    "main",
]

MESSAGE_MODULES: tuple[ModuleType, ...] = (client, pool, raft)
"""The modules whose classes are sent between actors, one per conversation."""

SHELL_VALUES: frozenset[str] = frozenset(
    {
        "Addressed",
        "ResolveTarget",
        "ServerStatus",
        "ServerUse",
        "FeatureStatus",
        "PendingCut",
        "SessionInfo",
        "LicenseInfo",
        "QueuedInfo",
    }
)
"""Classes of ``actors.protocol.admin`` that only travel inside shell messages."""

VALUES: frozenset[str] = frozenset({"DenyReason", "HeldLease", "AdminAuth", "LogEntry", "ServingGrant", "LeaseChange"})
"""Protocol classes that are never sent alone: they travel inside messages or entries."""

OBVIOUS_FIELDS: dict[str, str] = {
    "sender": "The sending server's config name (a forwarding server puts its own).",
    "epoch": "The sender's epoch, which is its Raft term.",
    "feature": "The feature's name.",
    "version": "The feature's version.",
    "client_id": "The client: the app identity a lease is bound to.",
    "session_id": "The client session: one per app process.",
    "request_id": "Chosen by the asker; the reply echoes it.",
    "lease_id": "The lease concerned.",
}
"""Field names that mean the same in every class.  A field with one of these
names needs no docstring of its own; the page shows this text for it.  Any
other field without a docstring fails ``tests/unit/test_protocol_doc.py``."""

CLAIMS: dict[str, tuple[int, ...]] = {
    # client <-> server
    "CheckoutRequest": (3, 30, 31),
    "CheckoutGranted": (30,),
    "CheckoutDenied": (),
    "SessionHeartbeat": (),
    "HeartbeatAck": (),
    "ReleaseRequest": (),
    "ReleaseAck": (),
    "FailoverUpdate": (13, 27),
    "FailoverReply": (13, 27),
    "CheckoutQueued": (),
    # server <-> leader
    "BorrowRequest": (1, 3, 16, 31),
    "BorrowReply": (5, 19),
    "TransferRequest": (33,),
    "TransferConfirm": (33,),
    "FailoverForward": (13, 14, 15, 27, 28, 29),
    "ReleaseForward": (),
    "FailoverOutcome": (13, 14, 15, 27, 28, 29),
    "AddLicenseCode": (11, 12, 25, 26),
    "AddAllocations": (9, 10, 23, 24),
    "ChangeDistributionCriteria": (7, 8, 21, 22),
    "ForceReleaseLease": (),
    "DeclareServerDown": (5, 14, 19, 28),
    "SetIdleTimeout": (),
    "AdminReply": (),
    "QueueJoinRequest": (),
    "QueueLeaveRequest": (),
    "QueueFull": (),
    # the replicated log
    "VoteRequest": (16, 18),
    "VoteReply": (16, 18),
    "DistributionCriteriaSync": (6, 8, 10, 12, 20, 22, 24, 26),
    "SyncReply": (),
    "InstallSnapshot": (6, 20),
    # log entries
    "NoOp": (),
    "AddLicense": (11, 12, 25, 26),
    "AddAddon": (9, 10, 23, 24),
    "SetCriteria": (7, 8, 21, 22),
    "Grant": (1, 3, 5, 19, 32),
    "TransferIntent": (5, 15, 19, 29, 32, 33),
    "TransferComplete": (33,),
    "TransferAbort": (33,),
    "LeaseReport": (),
    "FailoverSeat": (13, 14, 15, 27, 28, 29),
    "FailoverPending": (13, 27),
    "Fence": (),
    "Reclaim": (5, 14, 19, 28),
    "Rejoin": (),
    "ServerDown": (5, 14, 19, 28),
    "ForceRelease": (),
    "AdminNonce": (),
    "QueueJoin": (),
    "QueueLeave": (),
    "SetIdlePolicy": (),
}
"""Claims of the seed patent each message or entry implements (empty: none;
the mechanism of leadership.md M1–M17).  A docstring's own ``(claims ...)``
must be a subset of its entry here."""

PROPOSED_BY: dict[str, str] = {
    "NoOp": "a new leader, as the first entry of its epoch: `raft.Raft._become_leader`",
    "AddLicense": "the leader, for `AddLicenseCode`: `leading.LeaderDuties.on_admin`",
    "AddAddon": "the leader, for `AddAllocations`: `leading.LeaderDuties.on_admin`",
    "SetCriteria": "the leader, for `ChangeDistributionCriteria`: `leading.LeaderDuties.on_admin`",
    "Grant": (
        "the leader: a borrow covered by the free pool or a down server (`planner.plan_borrow`); "
        "a refill of a server below its criteria target (`planner.plan_rebalance`)"
    ),
    "TransferIntent": (
        "the leader: a borrow from its own or a live server's spare seats (`planner.plan_borrow`); "
        "a fail-over handover or a seat from a live server (`planner.plan_failover`, `planner.plan_pending`); "
        "idle seats back to the free pool (`planner.plan_rebalance`)"
    ),
    "TransferComplete": (
        "the leader, once the giver's consent is in (`TransferConfirm`, or its own): `leading.LeaderDuties._transfers`"
    ),
    "TransferAbort": (
        "the leader, when the giver is no longer live: `leading.LeaderDuties._transfers` "
        "(a handover is re-planned at once with `planner.plan_failover`)"
    ),
    "LeaseReport": (
        "the leader, from a follower's `SyncReply` (`node.ServerNode._on_sync_reply`) or from itself "
        "(`leading.LeaderDuties._own_report`), if it says anything new (`leading.LeaderDuties.on_report`)"
    ),
    "FailoverSeat": (
        "the leader, for a `FailoverForward` (`planner.plan_failover`) or a pending update that found "
        "a seat (`planner.plan_pending`)"
    ),
    "FailoverPending": "the leader, when `planner.plan_failover` finds no seat for a lease",
    "Fence": (
        "the leader, when a live server's serving lease has certainly expired "
        "(`leading.LeaderDuties.fence_due`): `leading.LeaderDuties._membership`"
    ),
    "Reclaim": (
        "the leader, T(1+ρ) after it saw the fence committed, unless the server rejoined first: "
        "`leading.LeaderDuties._membership`"
    ),
    "Rejoin": (
        "the leader, once a restarted or fenced server has caught up with the log: `leading.LeaderDuties._membership`"
    ),
    "ServerDown": "the leader, for `DeclareServerDown`: `leading.LeaderDuties.on_admin`",
    "ForceRelease": "the leader, for `ForceReleaseLease`: `leading.LeaderDuties.on_admin`",
    "AdminNonce": "the leader, just before every admin change's entry: `leading.LeaderDuties.on_admin`",
    "QueueJoin": "the leader, for a `QueueJoinRequest` from the waiter's server: `leading.LeaderDuties.on_queue_join`",
    "QueueLeave": (
        "the leader, for a `QueueLeaveRequest` (`leading.LeaderDuties.on_queue_leave`), or its own backstop "
        "for a waiter past its timeout or whose server was lost (`leading.LeaderDuties._queues`)"
    ),
    "SetIdlePolicy": "the leader, for `SetIdleTimeout`: `leading.LeaderDuties.on_admin`",
}
"""Who proposes each log entry, naming the code in ``actors.core`` that does it."""


# The two classes below are private on purpose: ``actors.shell.wire`` lets a peer
# unpickle every *public* class defined under ``actors.protocol``, and these are
# not messages.


class _DocstringError(ValueError):
    """A protocol class's docstring does not say what the tables need."""


@dataclass(frozen=True)
class _MessageDoc:
    """What one message's docstring says."""

    name: str
    route: str
    """``Sender -> Receiver`` (possibly via a forwarder), as written."""
    says: str
    replies: str
    """The reply clause as written, or ``""`` for no reply."""
    reply_names: tuple[str, ...]


@dataclass(frozen=True)
class _FieldDoc:
    """One field of a protocol class, as its source declares it."""

    name: str
    type: str
    """The annotation as written (the modules use postponed annotations)."""
    default: str | None
    """The default as written, or None: the field is required."""
    doc: str | None
    """The string literal right below the field, flattened to one line; None: none."""


_CLAIMS_NOTE = re.compile(r"\s*\(claims?\s+([0-9][0-9,\s\-–and]*)\)")
_REPLY = re.compile(r"\b(?:Reply|Replies):\s*(.+?)\.(?:\s|$)")
_NO_REPLY = re.compile(r"\bNo reply\b")
_CODE = re.compile(r"``([^`]+)``")


# ---- the classes -----------------------------------------------------------------


def _classes(module: ModuleType) -> list[type]:
    out = []
    for name in module.__all__:
        obj = getattr(module, name)
        if isinstance(obj, type):
            out.append(obj)
    return out


def message_classes() -> list[type]:
    """Every class sent between actors, in module then ``__all__`` order."""
    return [cls for module in MESSAGE_MODULES for cls in _classes(module) if cls.__name__ not in VALUES]


def entry_classes() -> list[type]:
    """Every log entry, in the order of the ``Entry`` union."""
    return [cls for cls in typing.get_args(entries.Entry) if isinstance(cls, type)]


def value_classes() -> list[type]:
    """Classes carried inside messages or entries, in module order."""
    return [cls for module in (*MESSAGE_MODULES, entries) for cls in _classes(module) if cls.__name__ in VALUES]


# ---- docstrings ------------------------------------------------------------------


def own_doc(cls: type) -> str | None:
    """The class's own docstring, flattened to one line (None: it has none;
    ``dataclass`` writes a signature into ``__doc__`` when the class has none)."""
    doc = cls.__dict__.get("__doc__")
    if not doc or (dataclasses.is_dataclass(cls) and doc.startswith(f"{cls.__name__}(")):
        return None
    return " ".join(doc.split())


def _numbers(text: str) -> set[int]:
    out: set[int] = set()
    for lo, hi in re.findall(r"(\d+)(?:\s*[-–]\s*(\d+))?", text):
        out.update(range(int(lo), int(hi or lo) + 1))
    return out


def docstring_claims(cls: type) -> set[int]:
    """Claim numbers the docstring itself cites, as ``(claim N)`` or ``(claims N, M-K)``."""
    out: set[int] = set()
    for match in _CLAIMS_NOTE.finditer(own_doc(cls) or ""):
        out |= _numbers(match.group(1))
    return out


def _strip_claims(text: str) -> str:
    return _CLAIMS_NOTE.sub("", text)


def _md(text: str) -> str:
    """Docstring reST to Markdown table cell: ``x`` -> `x`, and no bare pipes."""
    return _CODE.sub(r"`\1`", text).replace("|", "\\|").strip()


def parse_message(cls: type) -> _MessageDoc:
    """Read route, purpose and replies from a message's docstring."""
    doc = own_doc(cls)
    if doc is None:
        raise _DocstringError(f"{cls.__name__} has no docstring")
    route, colon, rest = doc.partition(":")
    if not colon or "->" not in route:
        raise _DocstringError(f"{cls.__name__}: the docstring must begin 'Sender -> Receiver: ...'")
    sentence = re.match(r"(.*?)\.(?:\s|$)", rest.strip())
    says = _strip_claims(sentence.group(1) if sentence else rest).strip()
    reply = _REPLY.search(doc)
    if reply is not None:
        clause = reply.group(1).strip()
        names = tuple(_CODE.findall(clause))
        if not names:
            raise _DocstringError(f"{cls.__name__}: its reply clause names no ``Message``")
        return _MessageDoc(cls.__name__, " ".join(route.split()), says, clause, names)
    if _NO_REPLY.search(doc) is None:
        raise _DocstringError(f"{cls.__name__}: the docstring must say 'Reply: ``X``' or 'No reply'")
    return _MessageDoc(cls.__name__, " ".join(route.split()), says, "", ())


def _protocol_types(hint: object) -> set[type]:
    found: set[type] = set()
    if isinstance(hint, type) and hint.__module__.startswith("actors.protocol"):
        found.add(hint)
    for arg in typing.get_args(hint):
        found |= _protocol_types(arg)
    return found


def carried_in(cls: type) -> list[str]:
    """The messages and entries with a field whose type mentions ``cls``."""
    out = []
    for holder in (*message_classes(), *entry_classes(), *value_classes()):
        if holder is cls or not dataclasses.is_dataclass(holder):
            continue
        hints = typing.get_type_hints(holder)
        if any(cls in _protocol_types(hint) for hint in hints.values()):
            out.append(holder.__name__)
    return out


# ---- field docstrings --------------------------------------------------------------


def _docstring(node: ast.stmt | None) -> str | None:
    """The text of a bare string literal statement, flattened to one line."""
    if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str):
        return " ".join(node.value.value.split())
    return None


def field_docs(cls: type) -> list[_FieldDoc]:
    """The fields ``cls`` declares, in order, with type, default and docstring
    as its source writes them; for an ``Enum``, its members and their docstrings."""
    source = textwrap.dedent(inspect.getsource(cls))
    body = next(n for n in ast.parse(source).body if isinstance(n, ast.ClassDef)).body
    out: list[_FieldDoc] = []
    for node, after in zip(body, [*body[1:], None], strict=True):
        doc = _docstring(after)
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            default = None if node.value is None else ast.get_source_segment(source, node.value)
            out.append(_FieldDoc(node.target.id, ast.get_source_segment(source, node.annotation) or "", default, doc))
        elif isinstance(node, ast.Assign) and issubclass(cls, Enum) and isinstance(node.targets[0], ast.Name):
            out.append(_FieldDoc(node.targets[0].id, "", None, doc))
    return out


def undocumented_fields(cls: type) -> list[str]:
    """Fields of ``cls`` with no docstring whose name is not in ``OBVIOUS_FIELDS``."""
    return [f.name for f in field_docs(cls) if f.doc is None and f.name not in OBVIOUS_FIELDS]


def field_list(cls: type) -> str:
    """A heading for ``cls`` and one bullet per field: ``name: type = default``, then its docstring."""
    lines = [f"#### `{cls.__name__}`\n"]
    fields = field_docs(cls)
    for f in fields:
        declared = f.name if not f.type else f"{f.name}: {f.type}"
        if f.default is not None:
            declared += f" = {f.default}"
        text = f.doc if f.doc is not None else OBVIOUS_FIELDS.get(f.name, "")
        lines.append(f"- `{declared}`" + (f": {_md(text)}" if text else ""))
    if not fields:
        lines.append("No fields.")
    return "\n".join(lines) + "\n"


def _field_lists(classes: list[type]) -> str:
    return "\n".join(field_list(cls) for cls in classes)


def _name_cell(cls: type) -> str:
    """The class name, linked to its field list below the table."""
    return f"[`{cls.__name__}`](#{cls.__name__.lower()})"


# ---- Markdown ----------------------------------------------------------------------


def _claims_cell(numbers: tuple[int, ...]) -> str:
    """``(13, 14, 15, 27)`` -> ``13-15, 27``; no claims -> an em dash."""
    runs: list[list[int]] = []
    for n in sorted(set(numbers)):
        if runs and n == runs[-1][-1] + 1:
            runs[-1].append(n)
        else:
            runs.append([n])
    return ", ".join(f"{r[0]}-{r[-1]}" if len(r) > 2 else ", ".join(map(str, r)) for r in runs) or "—"


def _row(*cells: str) -> str:
    return "| " + " | ".join(cells) + " |"


def _module_title(module: ModuleType) -> str:
    first = (module.__doc__ or module.__name__).strip().splitlines()[0]
    return first.rstrip(".")


def message_table() -> str:
    """One table per conversation: message | sender → receiver | says | replies | claims."""
    parts: list[str] = []
    for module in MESSAGE_MODULES:
        path = module.__name__.replace(".", "/") + ".py"
        parts.append(f"### {_module_title(module)}\n")
        parts.append(f"Defined in `{path}`.\n")
        parts.append(_row("message", "sender → receiver", "says", "replies", "claims"))
        parts.append(_row("---", "---", "---", "---", "---"))
        sent = [cls for cls in _classes(module) if cls.__name__ not in VALUES]
        for cls in sent:
            doc = parse_message(cls)
            route = _md(doc.route.replace("->", "→"))
            parts.append(
                _row(
                    _name_cell(cls),
                    route,
                    _md(doc.says),
                    _md(doc.replies) or "none",
                    _claims_cell(CLAIMS[doc.name]),
                )
            )
        parts.append("")
        parts.append(_field_lists(sent))
    return "\n".join(parts).rstrip() + "\n"


def shell_table() -> str:
    """The shell's own messages (``actors/protocol/admin.py``): message | sender → receiver | says | replies."""
    parts = [_row("message", "sender → receiver", "says", "replies"), _row("---", "---", "---", "---")]
    sent = [cls for cls in _classes(admin) if cls.__name__ not in SHELL_VALUES]
    for cls in sent:
        doc = parse_message(cls)
        parts.append(
            _row(_name_cell(cls), _md(doc.route.replace("->", "→")), _md(doc.says), _md(doc.replies) or "none")
        )
    inside = [cls for cls in _classes(admin) if cls.__name__ in SHELL_VALUES]
    return "\n".join(parts) + "\n\n" + _field_lists(sent + inside)


def entry_table() -> str:
    """entry | proposed by | what applying it does | claims."""
    rows = [
        _row("entry", "proposed by", "what applying it does", "claims"),
        _row("---", "---", "---", "---"),
    ]
    for cls in entry_classes():
        doc = own_doc(cls)
        if doc is None:
            raise _DocstringError(f"log entry {cls.__name__} has no docstring")
        rows.append(
            _row(
                _name_cell(cls),
                _md(PROPOSED_BY[cls.__name__]),
                _md(_strip_claims(doc)),
                _claims_cell(CLAIMS[cls.__name__]),
            )
        )
    return "\n".join(rows) + "\n\n" + _field_lists(entry_classes())


def value_table() -> str:
    """value | carried in | what it is."""
    rows = [_row("value", "carried in", "what it is"), _row("---", "---", "---")]
    for cls in value_classes():
        doc = own_doc(cls)
        if doc is None:
            raise _DocstringError(f"{cls.__name__} has no docstring")
        if issubclass(cls, Enum):
            doc += " One of " + ", ".join(f"``{member.value}``" for member in cls) + "."
        inside = ", ".join(f"`{name}`" for name in carried_in(cls)) or "—"
        rows.append(_row(_name_cell(cls), inside, _md(_strip_claims(doc))))
    return "\n".join(rows) + "\n\n" + _field_lists(value_classes())


def generated() -> str:
    """The whole generated part of docs/protocol.md."""
    return "\n".join(
        [
            "## Messages\n",
            message_table(),
            "## Shell messages\n",
            "Between the actors, the launcher, the CLI and an app's `LicenseClient`; they never reach the core "
            "(`PeerEnvelope` carries a core message between servers). Defined in `actors/protocol/admin.py`.\n",
            shell_table(),
            "## Log entries\n",
            "Proposed by the leader, committed by a majority, then applied by every server in log order "
            "(`PoolState.apply` in `actors/core/pool.py`, and `Member.apply` in `actors/core/member.py` "
            "for the server's local part).\n",
            entry_table(),
            "## Values carried inside messages\n",
            value_table(),
        ]
    )


BEGIN = "<!-- BEGIN GENERATED -->"
END = "<!-- END GENERATED -->"


def splice(page: str) -> str:
    """``page`` with the text between the markers replaced by ``generated()``."""
    head, begin, rest = page.partition(BEGIN)
    _, end, tail = rest.partition(END)
    if not begin or not end or BEGIN in tail or END in head:
        raise ValueError(f"the page must hold {BEGIN} ... {END} exactly once")
    return f"{head}{BEGIN}\n\n{generated()}\n{END}{tail}"


def main(argv: list[str] | None = None) -> None:
    """Print the generated Markdown, or with ``--write PAGE`` splice it into PAGE."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) == 2 and args[0] == "--write":
        page = Path(args[1])
        page.write_text(splice(page.read_text(encoding="utf-8")), encoding="utf-8")
        return
    if args:
        raise SystemExit("usage: python -m tools.protocol_doc [--write docs/protocol.md]")
    print(generated(), end="")


if __name__ == "__main__":
    main()
