"""loguru for licpool, with Thespian's logging routed into it.

On the multiproc bases Thespian runs one logger process per actor system. It
applies the ``logDefs`` dictConfig given to ``ActorSystem(...)``, and every
actor (and the admin) forwards its stdlib ``logging`` records to it over the
transport (``thespian/system/logdirector.py``). :func:`thespian_log_defs`
returns a dictConfig whose only handler, :class:`LoguruHandler`, passes each
record to loguru in that logger process.

Sinks: call :func:`configure` before the first ``ActorSystem(...)``. The
admin, logger and actor processes are forked from the caller and inherit its
loguru sinks; file sinks are opened in append mode and line-buffered, so the
processes share a file line by line. Never use ``enqueue=True`` (its writer
thread does not survive the fork) or loguru's rotation (each process would
rotate on its own).

Audit records: :func:`audit` writes one JSON line per event to the audit sink.
Records that come through stdlib logging (Thespian's route included) never
reach that sink, so a peer that forges a ``LogRecord`` cannot forge an audit
line.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sys
from pathlib import Path
from typing import Any, TextIO

from loguru import logger

__all__ = [
    "LoguruHandler",
    "audit",
    "configure",
    "thespian_log_defs",
]

_VIA_STDLIB = "stdlib"
_STDLIB_LEVEL_NAMES = frozenset({"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"})
_CONSOLE_FORMAT = (
    "<green>{time:YYYY-MM-DD HH:mm:ss.SSS}</green> | <level>{level: <8}</level> | "
    "{process} | <cyan>{name}</cyan>:<cyan>{function}</cyan>:<cyan>{line}</cyan> - "
    "<level>{message}</level>"
)


class LoguruHandler(logging.Handler):
    """A stdlib logging handler that passes every record to loguru.

    Thespian pre-formats tracebacks into ``record.exc_text`` before a record
    leaves an actor; they are appended to the message. Only the record's
    logger name and actor address are bound as loguru ``extra`` fields:
    attributes a sender set on the record are not copied.
    """

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = record.getMessage()
        except Exception:  # a bad format string must not stop the logger process
            message = f"{record.msg!r} % {record.args!r}"
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            # Thespian joins traceback lines, which end in newlines, with "\n".
            traceback_text = record.exc_text.replace("\n\n", "\n").rstrip()
            message = f"{message}\n{traceback_text}"
        level: str | int = record.levelname if record.levelname in _STDLIB_LEVEL_NAMES else record.levelno

        def restamp(entry: Any) -> None:
            # Show where and when the record was made, not this handler. A
            # record comes from another process: keep loguru's own values
            # for any field it got wrong.
            entry["name"] = str(record.name)
            entry["function"] = str(record.funcName)
            entry["line"] = record.lineno
            entry["process"] = type(entry["process"])(record.process, record.processName)
            stamp = entry["time"]  # loguru's datetime subclass, which its formats need
            with contextlib.suppress(TypeError, ValueError, OverflowError, OSError):
                entry["time"] = type(stamp).fromtimestamp(record.created, stamp.tzinfo)

        logger.patch(restamp).bind(
            via=_VIA_STDLIB,
            logger_name=record.name,
            actor=str(record.__dict__.get("actorAddress", "")),
            origin_pid=record.process,
        ).log(level, message)


def thespian_log_defs(level: str = "INFO") -> dict[str, Any]:
    """The ``logDefs`` for ``ActorSystem(...)``: route every record to loguru.

    Never pass ``logDefs=False`` on a multiproc base: actor processes then
    crash in ``multiprocCommon.get_min_log_level`` (THESPIAN-NOTES.md).
    ``level`` is also the threshold at which actors start forwarding records.
    """
    level = level.upper()
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "handlers": {
            "loguru": {"class": f"{__name__}.LoguruHandler", "level": level},
        },
        "root": {"handlers": ["loguru"], "level": level},
    }


AUDIT_ROTATE_BYTES = 32 * 1024 * 1024
"""An audit file past this size is rotated: ``audit.jsonl`` -> ``audit.jsonl.1`` -> ...
(``LICPOOL_AUDIT_ROTATE_BYTES`` overrides it)."""
AUDIT_KEEP = 20
"""Rotated audit files kept (``audit.jsonl.1`` .. ``.20``); older ones are deleted."""


def _rotate_bytes() -> int:
    try:
        return max(int(os.environ.get("LICPOOL_AUDIT_ROTATE_BYTES", AUDIT_ROTATE_BYTES)), 1024)
    except ValueError:
        return AUDIT_ROTATE_BYTES


class _JsonLinesSink:
    """Appends one JSON object per audit record to a file, rotated by size.

    Only the process that writes audit records (the LicenseServer actor)
    rotates: it renames ``audit.jsonl`` to ``audit.jsonl.1`` (shifting older
    files up, keeping ``AUDIT_KEEP``) and opens a new one.  ``licpool report``
    reads the rotated files too."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._path = path
        self._limit = _rotate_bytes()
        self._file: TextIO = path.open("a", encoding="utf-8", buffering=1)

    def write(self, message: Any) -> None:
        record = message.record
        extra = dict(record["extra"])
        extra.pop("audit", None)
        line = {
            "time": record["time"].isoformat(),
            "event": extra.pop("audit_event", record["message"]),
            "pid": record["process"].id,
            **extra,
        }
        self._file.write(json.dumps(line, default=str, sort_keys=True) + "\n")
        if self._file.tell() >= self._limit:
            self._rotate()

    def _rotate(self) -> None:
        self._file.close()
        path = self._path
        with contextlib.suppress(FileNotFoundError):
            Path(f"{path}.{AUDIT_KEEP}").unlink()
        for n in range(AUDIT_KEEP - 1, 0, -1):
            with contextlib.suppress(FileNotFoundError):
                Path(f"{path}.{n}").rename(f"{path}.{n + 1}")
        with contextlib.suppress(FileNotFoundError):
            path.rename(f"{path}.1")
        self._file = path.open("a", encoding="utf-8", buffering=1)

    def stop(self) -> None:
        self._file.close()


def _is_audit(record: Any) -> bool:
    extra = record["extra"]
    return extra.get("audit") is True and extra.get("via") != _VIA_STDLIB


def configure(
    json_audit_path: str | Path | None = None,
    level: str = "INFO",
    *,
    log_path: str | Path | None = None,
    console: bool = True,
    capture_stdlib: bool = True,
) -> list[int]:
    """Replace loguru's sinks with licpool's; returns the new sink ids.

    - ``console``: human-readable lines on ``sys.stderr``.
    - ``log_path``: the same lines appended to a file.
    - ``json_audit_path``: JSON lines written by :func:`audit` only.
    - ``capture_stdlib``: route this process's own stdlib logging (for
      example the CLI's, or a library's) into loguru too.
    """
    logger.remove()
    level = level.upper()
    ids: list[int] = []
    if console:
        ids.append(logger.add(sys.stderr, level=level, format=_CONSOLE_FORMAT, colorize=False))
    if log_path is not None:
        ids.append(logger.add(Path(log_path), level=level, format=_CONSOLE_FORMAT))
    if json_audit_path is not None:
        ids.append(logger.add(_JsonLinesSink(Path(json_audit_path)), level=0, filter=_is_audit))
    if capture_stdlib:
        logging.basicConfig(handlers=[LoguruHandler()], level=level, force=True)
    return ids


def audit(event: str, **fields: Any) -> None:
    """Write one audit record (grant, release, expiry, borrow, ...).

    ``fields`` must be JSON-serialisable or have a meaningful ``str``.
    """
    logger.bind(audit=True, audit_event=event, **fields).info("audit {}", event)
