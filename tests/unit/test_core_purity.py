"""The pure layers stay pure: ``actors/core`` and ``actors/protocol`` import no
I/O, no clock, no randomness and nothing of the shell.

Purity used to hold by convention and a grep.  This test walks every import
statement of both packages (module level and inside functions) and every call
that would read the clock or a file, and names each offender.  Time, dates and
randomness reach the core only as arguments (``now``) or as functions injected
through ``NodeSettings`` (``today``, ``nonce``, ``wall``).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PURE_PACKAGES = ("actors/core", "actors/protocol")

FORBIDDEN_MODULES = frozenset(
    {
        "thespian",
        "time",
        "os",
        "socket",
        "random",
        "secrets",
        "loguru",
        "subprocess",
        "threading",
        "multiprocessing",
        "asyncio",
        "selectors",
        "signal",
        "shutil",
        "tempfile",
        "pathlib",
        "io",
        "importlib",
        "logging",
        "uuid",
        "sys",
    }
)
"""Top-level modules a pure module may not import (I/O, clock, randomness, process state)."""

FORBIDDEN_ACTORS = ("actors.shell", "actors.persist", "actors.cli", "actors.client")
"""The impure parts of the package itself."""

FORBIDDEN_CALLS = frozenset({"open", "__import__", "input", "print", "breakpoint"})
FORBIDDEN_METHODS = frozenset({"now", "today", "utcnow", "fromtimestamp", "monotonic", "perf_counter", "time"})
CLOCK_OWNERS = frozenset({"datetime", "date", "time"})
"""``datetime.now()`` and friends read the clock; the core gets ``now`` as an
argument, and ``settings.today()`` is an injected function, which is fine."""


def offences(source: str) -> list[str]:
    """Every impure import or call in one module's source, as ``line: what``."""
    found: list[str] = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.stmt | ast.expr):
            continue
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        else:
            names = []
        for name in names:
            top = name.split(".")[0]
            if top in FORBIDDEN_MODULES or name.startswith(FORBIDDEN_ACTORS):
                found.append(f"{node.lineno}: imports {name}")
        if isinstance(node, ast.Call):
            func = node.func
            if isinstance(func, ast.Name) and func.id in FORBIDDEN_CALLS:
                found.append(f"{node.lineno}: calls {func.id}()")
            elif (
                isinstance(func, ast.Attribute)
                and func.attr in FORBIDDEN_METHODS
                and _owner(func.value) in CLOCK_OWNERS
            ):
                found.append(f"{node.lineno}: calls {_owner(func.value)}.{func.attr}()")
    return found


def _owner(node: ast.expr) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    return ""


def pure_modules() -> list[Path]:
    return sorted(p for package in PURE_PACKAGES for p in (ROOT / package).rglob("*.py"))


@pytest.mark.parametrize("path", pure_modules(), ids=lambda p: str(p.relative_to(ROOT)))
def test_pure_module_imports_no_io_clock_or_shell(path: Path) -> None:
    found = offences(path.read_text(encoding="utf-8"))
    assert not found, f"{path.relative_to(ROOT)} is not pure:\n" + "\n".join(found)


def test_the_pure_packages_are_where_the_test_looks() -> None:
    # Guards against the test passing vacuously after a move.
    assert len(pure_modules()) > 20
    assert any(p.name == "node.py" for p in pure_modules())


@pytest.mark.parametrize(
    "source",
    [
        "import time",
        "import os.path",
        "from thespian.actors import Actor",
        "from actors.shell import logs",
        "from actors.persist.store import Store",
        "def f():\n    import random\n    return random.random()",
        "from datetime import datetime\nx = datetime.now()",
        "data = open('f').read()",
        "import datetime\nx = datetime.date.today()",
        "import loguru",
    ],
)
def test_each_kind_of_impurity_is_caught(source: str) -> None:
    assert offences(source)


@pytest.mark.parametrize(
    "source",
    [
        "from __future__ import annotations",
        "from datetime import date\nx = date(2026, 1, 1)",
        "import hashlib, hmac",
        "from actors.core.effects import Ready",
        "from actors.protocol import entries",
        "def f(settings):\n    return settings.today()",
    ],
)
def test_pure_code_is_not_flagged(source: str) -> None:
    assert offences(source) == []
