"""Serialise plain data with cloudpickle; load it with an allowlisting unpickler.

The server's data directory is under the licensee's control, and licensees have
a motive to cheat. A pickle can name any importable callable and call it
(``posix.system``, ``builtins.eval``...), so loading is done by
:class:`SafeUnpickler`, whose ``find_class`` admits only a handful of builtin
data types. Everything else raises :class:`UnsafePayload` before the global is
even imported.

Writers check the object tree first (:func:`check_plain`): an object the safe
reader would refuse must never reach the disk, or the only copy of the state
would become unreadable.
"""

from __future__ import annotations

import collections
import io
import pickle
from typing import Any

import cloudpickle

from .errors import MalformedPayload, NotPlainData, UnsafePayload

__all__ = ["ALLOWED_GLOBALS", "PICKLE_PROTOCOL", "check_plain", "safe_dumps", "safe_loads"]

#: Protocol 5 encodes bytes, bytearray, set and frozenset with opcodes, so the
#: only globals our writer emits for plain data are ``complex`` and
#: ``OrderedDict``. The cheap conversion types are admitted too, so a
#: plain-data pickle written with protocol 3 or 4 still loads. (Protocol 2
#: spells the module ``__builtin__``, which is refused; we never write it.)
PICKLE_PROTOCOL = 5

#: ``bytes`` and ``bytearray`` are left out on purpose: ``bytes(10**12)`` in a
#: ten-byte pickle would allocate a terabyte. Nothing callable beyond these
#: constructors is admitted (no ``getattr``, ``eval``, ``exec``, ``__import__``,
#: ``copyreg._reconstructor``, ``_codecs.encode``...).
ALLOWED_GLOBALS: frozenset[tuple[str, str]] = frozenset(
    {
        ("builtins", "bool"),
        ("builtins", "complex"),
        ("builtins", "dict"),
        ("builtins", "float"),
        ("builtins", "frozenset"),
        ("builtins", "int"),
        ("builtins", "list"),
        ("builtins", "set"),
        ("builtins", "str"),
        ("builtins", "tuple"),
        ("collections", "OrderedDict"),
    }
)

_SCALARS: frozenset[type] = frozenset({type(None), bool, int, float, complex, str, bytes, bytearray})
_CONTAINERS: frozenset[type] = frozenset({list, tuple, set, frozenset, dict, collections.OrderedDict})


class SafeUnpickler(pickle.Unpickler):
    """An unpickler that resolves only the globals in :data:`ALLOWED_GLOBALS`."""

    def find_class(self, module: str, name: str) -> Any:
        """Admit allowlisted plain types; refuse everything else by name."""
        if (module, name) not in ALLOWED_GLOBALS:
            raise UnsafePayload(f"{module}.{name}")
        return super().find_class(module, name)

    def persistent_load(self, pid: Any) -> Any:
        """Refuse persistent ids: plain data never has any."""
        raise UnsafePayload(f"persistent_id {pid!r}")


def check_plain(obj: Any) -> None:
    """Raise :class:`NotPlainData` unless ``obj`` is a tree of plain values.

    Exact types are required (``type(x) in ...``): a subclass such as an
    ``IntEnum`` member would pickle as a reference to its class, which the safe
    reader refuses. The walk is iterative, so deep nesting cannot overflow the
    C stack here.
    """
    if _all_plain(obj):
        return
    stack: list[tuple[Any, str]] = [(obj, "state")]
    while stack:
        value, path = stack.pop()
        kind = type(value)
        if kind in _SCALARS:
            continue
        if kind not in _CONTAINERS:
            raise NotPlainData(f"{path} is a {kind.__module__}.{kind.__qualname__}, not plain data")
        if isinstance(value, dict):
            for key, item in value.items():
                stack.append((key, f"{path}.<key {key!r}>"))
                stack.append((item, f"{path}[{key!r}]"))
        else:
            for index, item in enumerate(value):
                stack.append((item, f"{path}[{index}]"))


def _all_plain(obj: Any) -> bool:
    """The same walk without building paths (a snapshot has millions of
    values): True if everything is plain; :func:`check_plain` then names the
    culprit only when there is one."""
    scalars, containers = _SCALARS, _CONTAINERS
    stack: list[Any] = [obj]
    pop, extend = stack.pop, stack.extend
    while stack:
        value = pop()
        kind = type(value)
        if kind in scalars:
            continue
        if kind not in containers:
            return False
        if kind is dict or kind is collections.OrderedDict:
            extend(value.keys())
            extend(value.values())
        else:
            extend(value)
    return True


def safe_dumps(obj: Any) -> bytes:
    """Check that ``obj`` is plain data, then serialise it with cloudpickle."""
    check_plain(obj)
    data: bytes = cloudpickle.dumps(obj, protocol=PICKLE_PROTOCOL)
    return data


def safe_loads(data: bytes, *, source: str | None = None) -> Any:
    """Load plain data from ``data`` without running any code from it.

    Raises :class:`UnsafePayload` for a refused global and
    :class:`MalformedPayload` for anything else that is not a valid pickle.
    ``source`` names the file in error messages.
    """
    try:
        return SafeUnpickler(io.BytesIO(data)).load()
    except UnsafePayload as exc:
        raise UnsafePayload(exc.global_name, source) from None
    except Exception as exc:  # any decoding failure of untrusted bytes
        where = f" in {source}" if source else ""
        raise MalformedPayload(f"undecodable payload{where}: {exc!r}") from exc
