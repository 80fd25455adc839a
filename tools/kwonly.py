"""Rewrite positional constructions of protocol messages into keyword form.

Issue 10 makes every protocol dataclass ``kw_only``.  Before that flag can be
set, every ``SyncReply(self.name, self.term, success, ...)`` in the tree must
name its arguments: ``SyncReply(sender=self.name, epoch=self.term,
success=success, ...)``.  This tool does that mechanical pass::

    python -m tools.kwonly actors tests tools           # rewrite in place
    python -m tools.kwonly --check actors tests tools   # list, change nothing
    python -m tools.kwonly --kw-only actors tests tools # also add kw_only=True

Measured on the tree of this commit: 363 constructions in 40 files, and one
``*args`` call left for a hand edit (``LeaseNotice("deadline", *changed[0])``
in ``actors/shell/session_actor.py``).  With ``--kw-only`` added, the unit
tier passes and the simulator's trace hashes are unchanged; 140 rewritten
lines then exceed 120 columns, which ``ruff format`` folds.

It knows the protocol's classes by importing ``actors.protocol``'s modules and
finds the calls with ``ast``: a call's function is resolved through the file's
imports (``from actors.protocol import pool as p`` then ``p.BorrowRequest``,
``from actors.protocol.client import CheckoutRequest``, ``import
actors.protocol.raft`` then ``actors.protocol.raft.SyncReply``, and the names
the package re-exports).  Each positional argument gets ``field=`` inserted
in front of it, at the column ``ast`` and ``tokenize`` give, so the argument's
own text, comments and line breaks are kept.

Limits, reported rather than guessed: a ``*args`` call is left alone; imports
are resolved per file, not per scope, so a file that binds one name to two
different protocol things is skipped; a class reached through a variable
(``cls = p.SyncReply; cls(...)``) is not seen.  Only the standard library
(Python 3.11) and ``actors.protocol`` itself are used.
"""

from __future__ import annotations

import ast
import bisect
import dataclasses
import importlib
import io
import sys
import tokenize
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["PROTOCOL_MODULES", "protocol_fields", "Rewrite", "rewrite_source", "add_kw_only", "main"]

PROTOCOL_PACKAGE = "actors.protocol"
PROTOCOL_MODULES = ("admin", "client", "entries", "pool", "raft")
"""The modules of ``actors.protocol`` that define message dataclasses."""


def protocol_fields() -> dict[str, tuple[str, ...]]:
    """Qualified name -> init field names, for every protocol dataclass.

    Each class is known under its defining module (``actors.protocol.raft.SyncReply``)
    and under the package, which re-exports it (``actors.protocol.SyncReply``)."""
    out: dict[str, tuple[str, ...]] = {}
    for short in PROTOCOL_MODULES:
        module = importlib.import_module(f"{PROTOCOL_PACKAGE}.{short}")
        for name, obj in vars(module).items():
            if isinstance(obj, type) and dataclasses.is_dataclass(obj) and obj.__module__ == module.__name__:
                names = tuple(f.name for f in dataclasses.fields(obj) if f.init)
                out[f"{module.__name__}.{name}"] = names
                out[f"{PROTOCOL_PACKAGE}.{name}"] = names
    return out


@dataclass
class Rewrite:
    """What ``rewrite_source`` did to one file."""

    source: str
    rewritten: list[tuple[int, str, int]] = field(default_factory=list)
    """(line, class, positional arguments named) per construction rewritten."""
    skipped: list[tuple[int, str, str]] = field(default_factory=list)
    """(line, class, why) per construction left alone."""


# ---- resolving names ---------------------------------------------------------------


def _bindings(tree: ast.AST) -> tuple[dict[str, str], set[str]]:
    """Local name -> dotted path it stands for, from every import in the file
    that touches ``actors``; and the names bound to two different paths."""
    bound: dict[str, str] = {}
    clashes: set[str] = set()

    def bind(name: str, path: str) -> None:
        if bound.get(name, path) != path:
            clashes.add(name)
        bound[name] = path

    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if not alias.name.startswith("actors"):
                    continue
                if alias.asname is not None:
                    bind(alias.asname, alias.name)
                else:
                    bind(alias.name.split(".")[0], alias.name.split(".")[0])
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").startswith("actors"):
            for alias in node.names:
                if alias.name != "*":
                    bind(alias.asname or alias.name, f"{node.module}.{alias.name}")
    return bound, clashes


def _dotted(expr: ast.expr) -> list[str] | None:
    """``a.b.C`` -> ``["a", "b", "C"]``; None for anything but names and attributes."""
    parts: list[str] = []
    while isinstance(expr, ast.Attribute):
        parts.append(expr.attr)
        expr = expr.value
    if not isinstance(expr, ast.Name):
        return None
    parts.append(expr.id)
    return parts[::-1]


# ---- positions -----------------------------------------------------------------------


def _char_col(lines: list[str], lineno: int, byte_col: int) -> int:
    """``ast`` columns count UTF-8 bytes; ``tokenize`` and slicing count characters."""
    return len(lines[lineno - 1].encode("utf-8")[:byte_col].decode("utf-8"))


def _significant(tokens: list[tokenize.TokenInfo]) -> list[tokenize.TokenInfo]:
    skip = {tokenize.NL, tokenize.NEWLINE, tokenize.COMMENT, tokenize.INDENT, tokenize.DEDENT}
    return [t for t in tokens if t.type not in skip]


def _insert_points(
    call: ast.Call, lines: list[str], tokens: list[tokenize.TokenInfo], starts: list[tuple[int, int]]
) -> list[tuple[int, int]] | None:
    """Where each positional argument's text begins, including any parentheses
    around it: the first token after the call's ``(`` or after the comma that
    ends the previous argument.  ``starts`` holds the tokens' start positions."""
    points: list[tuple[int, int]] = []
    assert call.func.end_lineno is not None and call.func.end_col_offset is not None
    after = (call.func.end_lineno, _char_col(lines, call.func.end_lineno, call.func.end_col_offset))
    opener = "("
    for arg in call.args:
        i = bisect.bisect_left(starts, after)
        # Skip the closing parentheses of a parenthesized previous argument.
        while opener == "," and i < len(tokens) and tokens[i].string == ")":
            i += 1
        if i + 1 >= len(tokens) or tokens[i].string != opener:
            return None
        points.append(tokens[i + 1].start)
        assert arg.end_lineno is not None and arg.end_col_offset is not None
        after = (arg.end_lineno, _char_col(lines, arg.end_lineno, arg.end_col_offset))
        opener = ","
    return points


# ---- rewriting -------------------------------------------------------------------------


def _calls(tree: ast.AST) -> Iterator[ast.Call]:
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and node.args:
            yield node


def rewrite_source(source: str, fields: dict[str, tuple[str, ...]]) -> Rewrite:
    """``source`` with every positional protocol construction in keyword form."""
    result = Rewrite(source)
    tree = ast.parse(source)
    bound, clashes = _bindings(tree)
    lines = source.splitlines(keepends=True)
    tokens = _significant(list(tokenize.generate_tokens(io.StringIO(source).readline)))
    starts = [t.start for t in tokens]
    edits: list[tuple[tuple[int, int], str]] = []
    for call in _calls(tree):
        parts = _dotted(call.func)
        if not parts or parts[0] not in bound:
            continue
        path = ".".join([bound[parts[0]], *parts[1:]])
        names = fields.get(path)
        if names is None:
            continue
        label = parts[-1]
        if parts[0] in clashes:
            result.skipped.append((call.lineno, label, f"{parts[0]!r} is bound to two different imports"))
        elif any(isinstance(arg, ast.Starred) for arg in call.args):
            result.skipped.append((call.lineno, label, "a *args call"))
        elif len(call.args) > len(names):
            result.skipped.append((call.lineno, label, f"{len(call.args)} positional arguments, {len(names)} fields"))
        elif (points := _insert_points(call, lines, tokens, starts)) is None:
            result.skipped.append((call.lineno, label, "could not place the keywords"))
        else:
            edits.extend((point, f"{name}=") for point, name in zip(points, names, strict=False))
            result.rewritten.append((call.lineno, label, len(call.args)))
    result.source = _apply(lines, edits)
    return result


def _apply(lines: list[str], edits: Iterable[tuple[tuple[int, int], str]]) -> str:
    out = list(lines)
    for (row, col), text in sorted(edits, reverse=True):
        out[row - 1] = out[row - 1][:col] + text + out[row - 1][col:]
    return "".join(out)


def add_kw_only(source: str) -> tuple[str, int]:
    """Turn every ``@dataclass(frozen=True)`` into ``@dataclass(frozen=True, kw_only=True)``."""
    old, new = "@dataclass(frozen=True)\n", "@dataclass(frozen=True, kw_only=True)\n"
    return source.replace(old, new), source.count(old)


# ---- command line -----------------------------------------------------------------------


def _python_files(roots: list[str]) -> Iterator[Path]:
    for root in roots:
        path = Path(root)
        yield from ([path] if path.is_file() else sorted(path.rglob("*.py")))


def main(argv: list[str] | None = None) -> int:
    """Rewrite (or with ``--check`` only list) the files under the given roots."""
    args = sys.argv[1:] if argv is None else argv
    check = "--check" in args
    kw_only = "--kw-only" in args
    roots = [a for a in args if not a.startswith("--")]
    if not roots or any(a.startswith("--") and a not in ("--check", "--kw-only") for a in args):
        print("usage: python -m tools.kwonly [--check] [--kw-only] PATH...", file=sys.stderr)
        return 2
    fields = protocol_fields()
    total = files = 0
    for path in _python_files(roots):
        text = path.read_text(encoding="utf-8")
        result = rewrite_source(text, fields)
        new = result.source
        for line, cls, why in result.skipped:
            print(f"{path}:{line}: left {cls}(...) alone: {why}")
        marked = 0
        if kw_only and path.parent.name == "protocol" and path.stem in PROTOCOL_MODULES:
            new, marked = add_kw_only(new)
        if new != text:
            files += 1
            total += len(result.rewritten)
            print(
                f"{path}: {len(result.rewritten)} construction(s) rewritten"
                + (f", {marked} dataclass(es) made kw_only" if marked else "")
            )
            if not check:
                path.write_text(new, encoding="utf-8")
    print(f"{'would rewrite' if check else 'rewrote'} {total} construction(s) in {files} file(s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
