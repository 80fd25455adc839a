"""docs/protocol.md cannot drift from the protocol classes.

The tables in the page are generated from the docstrings by
``tools.protocol_doc``; these tests fail when the page is stale, when a message
no longer says who sends it to whom, when a class is missing from the
claim and proposer tables kept in that module, or when a field whose name is
not in ``OBVIOUS_FIELDS`` has no docstring.
"""

from __future__ import annotations

import dataclasses
import importlib
import re
from enum import Enum
from pathlib import Path
from typing import Any

import pytest

from actors.core import pool as core_pool
from actors.protocol import admin, client, entries, raft
from actors.protocol import pool as pool_messages
from tools import protocol_doc as doc

PAGE = Path(__file__).resolve().parents[2] / "docs" / "protocol.md"
MODULES = (client, pool_messages, raft, entries)
CANCELLED_CLAIMS = {2, 17}
"""Claims the seed document cancels: nothing may cite them."""

IMMUTABLE_DEFAULTS = (type(None), str, int, float, bool, tuple, frozenset, Enum)


def _names(classes: list[type]) -> list[str]:
    return [cls.__name__ for cls in classes]


def _every_class() -> list[type]:
    """Every protocol class the page shows: messages, entries, values and the shell's own."""
    shell = [obj for obj in (getattr(admin, name) for name in admin.__all__) if isinstance(obj, type)]
    return [*doc.message_classes(), *doc.entry_classes(), *doc.value_classes(), *shell]


@dataclasses.dataclass(frozen=True)
class _Sample:
    """A message with one field of each kind, for the field-docstring checks."""

    sender: str
    mystery: int
    told: tuple[str, ...] = ()
    """What the sample says."""


# ---- the page --------------------------------------------------------------------


def test_page_holds_exactly_the_generated_text() -> None:
    page = PAGE.read_text(encoding="utf-8")
    assert page.count(doc.BEGIN) == 1 and page.count(doc.END) == 1
    assert page == doc.splice(page), (
        "docs/protocol.md is stale: run `python -m tools.protocol_doc --write docs/protocol.md`"
    )


def test_page_lists_every_message_entry_and_value() -> None:
    block = PAGE.read_text(encoding="utf-8").split(doc.BEGIN)[1].split(doc.END)[0]
    for cls in (*doc.message_classes(), *doc.entry_classes(), *doc.value_classes()):
        assert f"| [`{cls.__name__}`](#{cls.__name__.lower()}) |" in block, cls.__name__


def test_page_lists_every_field_with_its_docstring() -> None:
    block = PAGE.read_text(encoding="utf-8").split(doc.BEGIN)[1].split(doc.END)[0]
    for cls in _every_class():
        assert block.count(f"\n#### `{cls.__name__}`\n") == 1, cls.__name__
        section = block.split(f"\n#### `{cls.__name__}`\n")[1].split("\n#### ")[0]
        for f in doc.field_docs(cls):
            assert f"- `{f.name}" in section, f"{cls.__name__}.{f.name} is not listed"
            text = f.doc if f.doc is not None else doc.OBVIOUS_FIELDS.get(f.name, "")
            assert doc._md(text) in section, f"{cls.__name__}.{f.name}: its docstring is not shown"


# ---- field docstrings -------------------------------------------------------------------


@pytest.mark.parametrize("cls", _every_class(), ids=lambda c: c.__name__)
def test_every_field_has_a_docstring_or_an_obvious_name(cls: type) -> None:
    missing = doc.undocumented_fields(cls)
    assert not missing, (
        f"{cls.__name__}: give {missing} a docstring (a string literal right below the field) saying what it "
        "means, its unit and who sets it; or, if the name means the same in every class, add it to "
        "tools.protocol_doc.OBVIOUS_FIELDS"
    )


def test_field_docs_read_the_source() -> None:
    fields = doc.field_docs(_Sample)
    assert [(f.name, f.type, f.default, f.doc) for f in fields] == [
        ("sender", "str", None, None),
        ("mystery", "int", None, None),
        ("told", "tuple[str, ...]", "()", "What the sample says."),
    ]
    assert doc.undocumented_fields(_Sample) == ["mystery"]
    listed = doc.field_list(_Sample)
    assert "- `told: tuple[str, ...] = ()`: What the sample says." in listed
    assert f"- `sender: str`: {doc.OBVIOUS_FIELDS['sender']}" in listed
    assert "- `mystery: int`\n" in listed + "\n"


def test_every_field_is_listed_once_per_class() -> None:
    for cls in _every_class():
        names = [f.name for f in doc.field_docs(cls)]
        if issubclass(cls, Enum):
            assert names == list(cls.__members__), cls.__name__
        elif dataclasses.is_dataclass(cls):
            assert names == [f.name for f in dataclasses.fields(cls)], cls.__name__
        else:
            pytest.fail(f"{cls.__name__} is neither an Enum nor a dataclass")


# ---- classification -------------------------------------------------------------------


def test_every_protocol_class_is_a_message_an_entry_or_a_value() -> None:
    known = set(_names(doc.message_classes())) | set(_names(doc.entry_classes())) | doc.VALUES
    for module in MODULES:
        for name in module.__all__:
            if isinstance(getattr(module, name), type):
                assert name in known, f"{module.__name__}.{name} is in no table of tools.protocol_doc"


def test_every_public_class_of_a_protocol_module_is_exported() -> None:
    # ReleaseForward was once left out of pool.__all__, and so out of the page.
    for module in (*MODULES, admin):
        for name, obj in vars(module).items():
            if isinstance(obj, type) and obj.__module__ == module.__name__ and not name.startswith("_"):
                assert name in module.__all__, f"{module.__name__}.{name} is missing from __all__"


def test_values_are_never_sent_alone() -> None:
    assert set(_names(doc.value_classes())) == doc.VALUES
    for cls in doc.value_classes():
        assert doc.carried_in(cls), f"{cls.__name__} is listed as a value but no message or entry carries it"


def test_every_entry_is_in_the_entry_union_and_applied_by_pool_state() -> None:
    listed = {getattr(entries, name) for name in entries.__all__} - {entries.Entry}
    union = set(doc.entry_classes())
    assert {cls for cls in listed if isinstance(cls, type) and cls.__name__ not in doc.VALUES} == union
    assert union == set(core_pool._HANDLERS), "PoolState.apply must handle every entry"


# ---- docstrings -------------------------------------------------------------------


@pytest.mark.parametrize("cls", doc.message_classes(), ids=lambda c: c.__name__)
def test_every_message_names_sender_receiver_and_replies(cls: type) -> None:
    parsed = doc.parse_message(cls)
    hops = [hop.strip() for hop in parsed.route.split("->")]
    assert len(hops) >= 2 and all(hops), f"{cls.__name__}: route {parsed.route!r}"
    assert parsed.says, f"{cls.__name__}: the docstring says nothing after the route"
    messages = set(_names(doc.message_classes()))
    for name in parsed.reply_names:
        assert name in messages, f"{cls.__name__} replies with {name}, which is not a message"


@pytest.mark.parametrize("cls", doc.entry_classes() + doc.value_classes(), ids=lambda c: c.__name__)
def test_every_entry_and_value_has_its_own_docstring(cls: type) -> None:
    assert doc.own_doc(cls), f"{cls.__name__} has no docstring"


def test_a_docstring_without_route_or_replies_is_refused() -> None:
    @dataclasses.dataclass(frozen=True)
    class NoRoute:
        """Ask for something."""

    @dataclasses.dataclass(frozen=True)
    class NoReplies:
        """Somebody -> somebody else: ask for something."""

    @dataclasses.dataclass(frozen=True)
    class NoDocstring:
        x: int

    for cls in (NoRoute, NoReplies, NoDocstring):
        with pytest.raises(ValueError):
            doc.parse_message(cls)
    assert doc.own_doc(NoDocstring) is None


# ---- the shape of every message -------------------------------------------------------


@pytest.mark.parametrize(
    "cls",
    [c for c in doc.message_classes() + doc.entry_classes() + doc.value_classes() if not issubclass(c, Enum)],
    ids=lambda c: c.__name__,
)
def test_every_message_is_a_frozen_dataclass_with_immutable_defaults(cls: type) -> None:
    assert dataclasses.is_dataclass(cls), f"{cls.__name__} is not a dataclass"
    params: Any = getattr(cls, "__dataclass_params__")  # noqa: B009
    assert params.frozen, f"{cls.__name__} is not frozen"
    seen_default = False
    for f in dataclasses.fields(cls):
        assert f.default_factory is dataclasses.MISSING, f"{cls.__name__}.{f.name}: use an immutable default"
        if f.default is dataclasses.MISSING:
            assert not seen_default, f"{cls.__name__}.{f.name}: required after a defaulted field"
        else:
            seen_default = True
            assert isinstance(f.default, IMMUTABLE_DEFAULTS), f"{cls.__name__}.{f.name}: mutable default"


# ---- the tables kept in tools.protocol_doc ---------------------------------------------


def test_claims_cover_exactly_the_messages_and_entries() -> None:
    assert set(doc.CLAIMS) == set(_names(doc.message_classes())) | set(_names(doc.entry_classes()))
    for name, claims in doc.CLAIMS.items():
        assert all(1 <= n <= 33 and n not in CANCELLED_CLAIMS for n in claims), name


@pytest.mark.parametrize("cls", doc.message_classes() + doc.entry_classes(), ids=lambda c: c.__name__)
def test_claims_cited_in_a_docstring_are_in_the_table(cls: type) -> None:
    missing = doc.docstring_claims(cls) - set(doc.CLAIMS[cls.__name__])
    assert not missing, f"{cls.__name__}'s docstring cites claims {sorted(missing)} missing from doc.CLAIMS"


def _resolve(ref: str) -> object:
    """``leading.LeaderDuties.on_admin`` in actors.core, or ``SyncReply`` in actors.protocol."""
    head, *rest = ref.split(".")
    if head[0].isupper():
        obj: object = next(getattr(m, head) for m in MODULES if hasattr(m, head))
    else:
        obj = importlib.import_module(f"actors.core.{head}")
    for part in rest:
        obj = getattr(obj, part)
    return obj


def test_proposers_name_real_code() -> None:
    assert set(doc.PROPOSED_BY) == set(_names(doc.entry_classes()))
    for name, text in doc.PROPOSED_BY.items():
        refs = re.findall(r"`([A-Za-z_][\w.]*)`", text)
        assert refs, f"{name}: name the code that proposes it"
        for ref in refs:
            try:
                _resolve(ref)
            except (AttributeError, ImportError, StopIteration) as err:
                pytest.fail(f"PROPOSED_BY[{name!r}] names {ref!r}, which does not exist: {err}")
