"""``licpool report``: usage per feature from every server's audit log.

Reads ``data_dir/<server>/audit.jsonl`` and its rotated files
(``audit.jsonl.1`` ... , oldest first) of every server in the config (copy the
data dirs of the other hosts next to this one, or run it where they are
mounted), merges the records by time and reports, per feature:

- peak concurrent use and when it was first reached;
- seat-hours (leases' time held, clipped to ``--since``/``--until``);
- denials by reason, and unmet demand (``NO_SEATS`` denials and the clients
  they turned away);
- use per client (seat-hours and leases);
- leases that moved between servers (fail-overs, resumes elsewhere) and the
  leader's fail-over handling;
- the licensed total and the days to expiry, from each server's snapshot.

A lease is one interval, keyed by its lease id, whichever servers held it: it
starts at its first grant and ends at its last release or expiry, so a lease
that moved between servers is counted once.  A lease with no end in the logs
is counted as held until ``--until`` (or the last record).  A line that is not
a JSON object (malformed, or cut short by a crash) is reported as
``file:line`` on stderr and skipped.
"""

from __future__ import annotations

import csv
import datetime
import io
import json
import sys
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click

from actors.core.expiry import days_left
from actors.shell.config import PoolConfig, load_config

__all__ = ["Usage", "audit_files", "build_report", "read_records", "register"]

PROGRESS_BYTES = 8 * 1024 * 1024
"""Show a progress bar when the logs to read are larger than this."""
END_EVENTS = frozenset({"release", "expiry"})


def audit_files(directory: Path) -> list[Path]:
    """``audit.jsonl`` and its rotated files in ``directory``, oldest first."""
    rotated = []
    for path in directory.glob("audit.jsonl.*"):
        suffix = path.name.rsplit(".", 1)[1]
        if suffix.isdigit():
            rotated.append((int(suffix), path))
    files = [p for _, p in sorted(rotated, reverse=True)]
    current = directory / "audit.jsonl"
    return files + ([current] if current.exists() else [])


def _parse_time(text: str) -> float:
    return datetime.datetime.fromisoformat(text).timestamp()


@dataclass
class Record:
    at: float
    event: str
    node: str
    fields: dict[str, Any]


def read_records(files: list[Path], warn: Any, progress: bool | None = None) -> list[Record]:
    """Every audit record of ``files``, sorted by time; bad lines go to ``warn(text)``."""
    total = sum(p.stat().st_size for p in files)
    show = total > PROGRESS_BYTES if progress is None else progress
    records: list[Record] = []
    bar = None
    if show:
        from tqdm import tqdm

        bar = tqdm(total=total, unit="B", unit_scale=True, desc="reading audit logs", file=sys.stderr)
    try:
        for path in files:
            with path.open("rb") as f:
                for number, raw in enumerate(f, start=1):
                    if bar is not None:
                        bar.update(len(raw))
                    record = _record(raw, path, number, warn)
                    if record is not None:
                        records.append(record)
    finally:
        if bar is not None:
            bar.close()
    records.sort(key=lambda r: r.at)
    return records


def _record(raw: bytes, path: Path, number: int, warn: Any) -> Record | None:
    where = f"{path}:{number}"
    if not raw.strip():
        return None
    try:
        doc = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        cut = "" if raw.endswith(b"\n") else " (cut short: the last line of a crashed writer?)"
        warn(f"{where}: skipped a malformed line{cut}: {exc}")
        return None
    if not isinstance(doc, dict) or not isinstance(doc.get("event"), str) or not isinstance(doc.get("time"), str):
        warn(f"{where}: skipped a line that is not an audit record (no event or time)")
        return None
    try:
        at = _parse_time(doc["time"])
    except ValueError:
        warn(f"{where}: skipped a record with a bad time {doc['time']!r}")
        return None
    return Record(at, doc["event"], str(doc.get("node", "")), doc)


@dataclass
class Lease:
    lease_id: str
    client_id: str
    feature: str
    version: str
    start: float
    end: float | None = None
    nodes: list[str] = field(default_factory=list)
    seats: int = 1
    """Seats it holds (a multi-seat checkout's ``grant`` says so; absent: 1)."""


@dataclass
class Usage:
    """The report of one feature (``FEATURE VERSION``)."""

    feature: str
    version: str
    licensed: int | None = None
    expires: str = ""
    days_left: int | None = None
    peak: int = 0
    peak_at: float | None = None
    seat_hours: float = 0.0
    leases: int = 0
    moved: int = 0
    open_leases: int = 0
    denials: dict[str, int] = field(default_factory=dict)
    unmet: int = 0
    clients_turned_away: int = 0
    per_client: dict[str, dict[str, float]] = field(default_factory=dict)
    curve: list[tuple[float, int]] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {
            "feature": self.feature,
            "version": self.version,
            "licensed": self.licensed,
            "expires": self.expires,
            "days_left": self.days_left,
            "peak": self.peak,
            "peak_at": _iso(self.peak_at),
            "seat_hours": round(self.seat_hours, 4),
            "leases": self.leases,
            "moved_leases": self.moved,
            "open_leases": self.open_leases,
            "denials": dict(sorted(self.denials.items())),
            "unmet": self.unmet,
            "clients_turned_away": self.clients_turned_away,
            "per_client": {
                k: {"seat_hours": round(v["seat_hours"], 4), "leases": int(v["leases"])}
                for k, v in sorted(self.per_client.items())
            },
        }


def _iso(at: float | None) -> str | None:
    if at is None:
        return None
    return datetime.datetime.fromtimestamp(at, datetime.UTC).isoformat(timespec="seconds")


@dataclass
class Report:
    features: list[Usage]
    failovers: int
    since: float | None
    until: float
    records: int
    files: int

    def as_json(self) -> dict[str, Any]:
        return {
            "since": _iso(self.since),
            "until": _iso(self.until),
            "records": self.records,
            "files": self.files,
            "failovers_handled": self.failovers,
            "features": [u.as_json() for u in self.features],
        }


def _seats(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 1


def _leases(records: list[Record]) -> dict[str, Lease]:
    leases: dict[str, Lease] = {}
    for r in records:
        lid = r.fields.get("lease_id")
        if not isinstance(lid, str):
            continue
        lease = leases.get(lid)
        if r.event == "grant":
            if lease is None:
                lease = leases[lid] = Lease(
                    lid,
                    str(r.fields.get("client_id", "")),
                    str(r.fields.get("feature", "")),
                    str(r.fields.get("version", "")),
                    r.at,
                    seats=_seats(r.fields.get("seats", 1)),
                )
            lease.start = min(lease.start, r.at)
        elif r.event in END_EVENTS and lease is not None:
            lease.end = r.at if lease.end is None else max(lease.end, r.at)
        else:
            continue
        if r.node not in lease.nodes:
            lease.nodes.append(r.node)
    return leases


def build_report(
    records: list[Record],
    since: float | None,
    until: float | None,
    feature: str | None,
    snapshot: dict[tuple[str, str], tuple[int, str]],
    today: str,
    files: int = 0,
) -> Report:
    """The report of ``records`` between ``since`` and ``until`` (None: the whole log)."""
    end = until if until is not None else max((r.at for r in records), default=0.0)
    usage: dict[tuple[str, str], Usage] = {}

    def of(key: tuple[str, str]) -> Usage:
        if key not in usage:
            licensed, expires = snapshot.get(key, (None, ""))
            usage[key] = Usage(key[0], key[1], licensed, expires, days_left(expires, today) if expires else None)
        return usage[key]

    for key in snapshot:
        of(key)
    for lease in _leases(records).values():
        stop = lease.end if lease.end is not None else end
        lo = max(lease.start, since) if since is not None else lease.start
        hi = min(stop, end)
        if hi < lo:
            continue  # wholly outside the window
        u = of((lease.feature, lease.version))
        u.leases += 1
        u.moved += len(lease.nodes) > 1
        u.open_leases += lease.end is None
        hours = lease.seats * max(0.0, hi - lo) / 3600
        u.seat_hours += hours
        c = u.per_client.setdefault(lease.client_id, {"seat_hours": 0.0, "leases": 0})
        c["seat_hours"] += hours
        c["leases"] += 1
        u.curve.extend([(lo, lease.seats), (hi, -lease.seats)])
    turned_away: dict[tuple[str, str], set[str]] = defaultdict(set)
    failovers = 0
    for r in records:
        if (since is not None and r.at < since) or r.at > end:
            continue
        if r.event == "denial":
            u = of((str(r.fields.get("feature", "")), str(r.fields.get("version", ""))))
            reason = str(r.fields.get("reason", "?"))
            u.denials[reason] = u.denials.get(reason, 0) + 1
            if reason == "NO_SEATS":
                u.unmet += 1
                turned_away[(u.feature, u.version)].add(str(r.fields.get("client_id", "")))
        elif r.event == "failover":
            failovers += 1
    for key, clients in turned_away.items():
        usage[key].clients_turned_away = len(clients)
    for u in usage.values():
        level, points = 0, []
        for at, step in sorted(u.curve, key=lambda x: (x[0], x[1])):  # ends before starts at the same instant
            level += step
            points.append((at, level))
            if level > u.peak:
                u.peak, u.peak_at = level, at
        u.curve = points
    chosen = [u for key, u in sorted(usage.items()) if feature is None or _matches(feature, key)]
    return Report(chosen, failovers, since, end, len(records), files)


def _matches(wanted: str, key: tuple[str, str]) -> bool:
    name, _, version = wanted.partition(":")
    return key[0] == name and (not version or key[1] == version)


# ---- output ------------------------------------------------------------------------------


def render_table(report: Report) -> str:
    out = [
        f"usage {_iso(report.since) or 'from the first record'} .. {_iso(report.until)}: "
        f"{report.records} audit records in {report.files} files; fail-overs handled: {report.failovers}"
    ]
    if not report.features:
        out.append("no feature in the logs")
    for u in report.features:
        licensed = "?" if u.licensed is None else str(u.licensed)
        expiry = "" if u.days_left is None else f", expires {u.expires} ({u.days_left} days left)"
        out.append(f"{u.feature} {u.version}: licensed {licensed}{expiry}")
        out.append(
            f"  peak {u.peak} at {_iso(u.peak_at) or '-'}; {u.seat_hours:.2f} seat-hours over {u.leases} "
            f"leases ({u.moved} moved between servers, {u.open_leases} still held)"
        )
        denials = ", ".join(f"{k} {v}" for k, v in sorted(u.denials.items())) or "none"
        out.append(f"  denials: {denials}; unmet demand: {u.unmet} requests from {u.clients_turned_away} clients")
        for client, c in sorted(u.per_client.items(), key=lambda x: -x[1]["seat_hours"]):
            out.append(f"    {client:<24} {c['seat_hours']:9.2f} seat-hours  {int(c['leases']):5d} leases")
    return "\n".join(out)


CSV_FIELDS = (
    "feature",
    "version",
    "licensed",
    "expires",
    "days_left",
    "peak",
    "peak_at",
    "seat_hours",
    "leases",
    "moved_leases",
    "open_leases",
    "denials",
    "unmet",
    "clients_turned_away",
)


def render_csv(report: Report) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=CSV_FIELDS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for u in report.features:
        row = u.as_json()
        row["denials"] = ";".join(f"{k}={v}" for k, v in row["denials"].items())
        writer.writerow(row)
    return buf.getvalue().rstrip("\n")


def plot(report: Report, path: Path) -> None:
    """Concurrent use over time per feature, with the licensed total as a line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.dates as mdates
    import matplotlib.pyplot as plt

    features = report.features or []
    fig, axes = plt.subplots(max(len(features), 1), 1, figsize=(10, 2.8 * max(len(features), 1)), squeeze=False)
    for ax, u in zip(axes[:, 0], features, strict=False):
        times = [datetime.datetime.fromtimestamp(at, datetime.UTC) for at, _ in u.curve]
        levels = [level for _, level in u.curve]
        if times:
            ax.step(times, levels, where="post", label="in use")
        if u.licensed is not None:
            ax.axhline(u.licensed, color="tab:red", linestyle="--", label=f"licensed ({u.licensed})")
        ax.set_title(
            f"{u.feature} {u.version}: peak {u.peak}, {u.seat_hours:.1f} seat-hours, {u.unmet} denied for lack of seats"
        )
        ax.set_ylabel("seats")
        ax.set_ylim(bottom=0, top=max(u.peak, u.licensed or 0) + 1)
        ax.xaxis.set_major_formatter(mdates.DateFormatter("%m-%d %H:%M"))  # type: ignore[no-untyped-call]
        if times or u.licensed is not None:
            ax.legend(loc="upper left")
        ax.grid(alpha=0.3)
    if not features:
        axes[0, 0].text(0.5, 0.5, "no feature in the logs", ha="center")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


# ---- the command ---------------------------------------------------------------------------


def _snapshot_numbers(cfg: PoolConfig, warn: Any) -> dict[tuple[str, str], tuple[int, str]]:
    """(licensed total, expires) per feature, from the servers' snapshots (the most seats seen)."""
    from actors.shell.snapshot_view import describe

    found: dict[tuple[str, str], tuple[int, str]] = {}
    for name in cfg.server_names:
        if not (cfg.data_dir / name).is_dir():
            continue
        try:
            doc = describe(cfg, name)
        except Exception as exc:  # a report never fails on one unreadable snapshot
            warn(
                f"{cfg.data_dir / name}: cannot read its state ({type(exc).__name__}: {exc}); "
                "licensed totals from the other servers"
            )
            continue
        for f in doc["features"]:
            key = (f["feature"], f["version"])
            old = found.get(key, (0, ""))
            found[key] = (max(old[0], f["total"]), max(old[1], f["expires"]))
    return found


def _date(text: str | None, option: str, end_of_day: bool = False) -> float | None:
    if text is None:
        return None
    try:
        if len(text) == 10:
            day = datetime.date.fromisoformat(text)
            moment = datetime.datetime.combine(day, datetime.time.min, datetime.UTC)
            if end_of_day:
                moment += datetime.timedelta(days=1)
            return moment.timestamp()
        parsed = datetime.datetime.fromisoformat(text)
        return (parsed if parsed.tzinfo else parsed.replace(tzinfo=datetime.UTC)).timestamp()
    except ValueError:
        raise click.BadParameter(f"{text!r} is not a date (YYYY-MM-DD) or an ISO time", param_hint=option) from None


def files_of(cfg: PoolConfig) -> Iterator[Path]:
    for name in cfg.server_names:
        yield from audit_files(cfg.data_dir / name)


def register(licpool: click.Group) -> None:
    @licpool.command("report")
    @click.option(
        "--config",
        "config_path",
        type=click.Path(dir_okay=False, path_type=Path),
        envvar="LICPOOL_CONFIG",
        required=True,
        help="The pool config file: its data_dir holds every server's audit log.",
    )
    @click.option("--since", default=None, help="From this date (YYYY-MM-DD, UTC) or ISO time.")
    @click.option("--until", default=None, help="Up to the end of this date (YYYY-MM-DD, UTC) or this ISO time.")
    @click.option("--feature", default=None, help="Only FEATURE or FEATURE:VERSION.")
    @click.option("--format", "fmt", type=click.Choice(["table", "csv", "json"]), default="table", show_default=True)
    @click.option(
        "--plot",
        "plot_path",
        type=click.Path(dir_okay=False, path_type=Path),
        default=None,
        help="Also draw concurrent use over time per feature into this PNG file.",
    )
    @click.option("--progress/--no-progress", default=None, help="A progress bar (default: for logs over 8 MiB).")
    def report(
        config_path: Path,
        since: str | None,
        until: str | None,
        feature: str | None,
        fmt: str,
        plot_path: Path | None,
        progress: bool | None,
    ) -> int:
        """Usage per feature from every server's audit log: peaks, seat-hours, denials, clients."""
        cfg = load_config(config_path, client=True)
        start, stop = _date(since, "--since"), _date(until, "--until", end_of_day=True)
        if start is not None and stop is not None and stop <= start:
            raise click.BadParameter("must be after --since", param_hint="--until")
        if plot_path is not None and plot_path.suffix.lower() != ".png":
            raise click.BadParameter(f"{plot_path}: give a .png file", param_hint="--plot")

        def warn(text: str) -> None:
            click.echo(f"licpool: warning: {text}", err=True)

        files = list(files_of(cfg))
        if not files:
            raise click.ClickException(
                f"no audit log under {cfg.data_dir} for servers "
                f"{', '.join(cfg.server_names)} (data_dir/<server>/audit.jsonl)"
            )
        records = read_records(files, warn, progress)
        today = datetime.date.today().isoformat()
        result = build_report(records, start, stop, feature, _snapshot_numbers(cfg, warn), today, len(files))
        if fmt == "json":
            click.echo(json.dumps(result.as_json(), sort_keys=True))
        elif fmt == "csv":
            click.echo(render_csv(result))
        else:
            click.echo(render_table(result))
        if plot_path is not None:
            plot(result, plot_path)
            click.echo(f"licpool: plot written to {plot_path}", err=True)
        return 0
