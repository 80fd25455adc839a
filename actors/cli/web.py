"""``licpool web --config F [--bind 127.0.0.1:8080]``: a read-only status page.

Starlette app, served by uvicorn, Jinja2 template; the page reloads itself
every ``REFRESH`` seconds (filters stay in the query string).  It shows the
pool, the leader and epoch, the servers and their state, each feature's seats
per server as bars, the sessions (filterable by feature and client), recent
audit events from the data dirs this host can read, and each code's expiry.
The same data is JSON under ``/api/`` (``/api/status``, ``/api/sessions``,
``/api/events``, ``/api/all``).  Nothing can be changed through it.

A pool that does not answer, or a server that is down, is shown as such; an
error while asking is shown as one line on the page (and logged), never as a
stack trace.
"""

from __future__ import annotations

import datetime
import json
import threading
from collections import deque
from pathlib import Path
from typing import Any

import click
import jinja2
from loguru import logger
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from actors.cli.report import audit_files
from actors.shell.config import PoolConfig, load_config

__all__ = ["LiveSource", "make_app", "register"]

REFRESH = 5
EVENTS = 50
_SKIP_EVENTS = frozenset({"stale_message"})

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="refresh" content="{{ refresh }}">
<title>licpool: {{ pool }}</title>
<style>
body { font-family: system-ui, sans-serif; margin: 1.5em; color: #222; }
h1 { font-size: 1.4em; margin-bottom: .2em; } h2 { font-size: 1.1em; margin-top: 1.4em; }
table { border-collapse: collapse; } td, th { padding: .2em .7em; text-align: left; border-bottom: 1px solid #ddd; }
.up { color: #176b25; font-weight: 600; } .down { color: #b00020; font-weight: 600; }
.banner { background: #fde2e1; border: 1px solid #b00020; padding: .6em 1em; margin: .5em 0; }
.bar { background: #eee; width: 320px; height: 1em; position: relative; display: inline-block; }
.bar .alloc { background: #9cc3e6; height: 100%; position: absolute; }
.bar .use { background: #1f6fb2; height: 100%; position: absolute; }
.muted { color: #777; } .expired { color: #b00020; font-weight: 600; } .soon { color: #a15c00; font-weight: 600; }
</style></head><body>
<h1>licpool pool <span id="pool">{{ pool }}</span></h1>
{% if error %}<div class="banner" id="error">{{ error }}</div>{% endif %}
{% if status %}
<p id="summary">leader <b id="leader">{{ status.leader or "none (election under way)" }}</b>,
 epoch <b id="epoch">{{ status.epoch }}</b> (view of {{ status.answered_by }}, {{ now }})</p>
<h2>Servers</h2>
<table id="servers"><tr><th>server</th><th>address</th><th>state</th><th>incarnation</th></tr>
{% for s in status.servers %}<tr><td>{{ s.name }}</td><td>{{ s.address }}</td>
<td class="{{ 'up' if s.up else 'down' }}">{{ 'up' if s.up else ('DOWN (' ~ s.status ~ ')' if s.status != 'live'
 else 'DOWN (not answering)') }}{{ ' · leader' if s.leader else '' }}</td><td>{{ s.incarnation }}</td></tr>{% endfor %}
</table>
<h2>Seats</h2>
{% for f in status.features %}
<h3 class="feature">{{ f.feature }} {{ f.version }}: {{ f.total }} seats, free pool {{ f.free_pool }},
 in flight {{ f.in_flight }}, in use <span class="in-use-total">{{ f.in_use }}</span></h3>
<table>{% for name, u in f.servers.items() %}<tr><td>{{ name }}</td><td>
<span class="bar" title="{{ u.in_use }} in use of {{ u.allocated }} allocated">
<span class="alloc" style="width: {{ (u.allocated * 100 / (f.total or 1))|round(1) }}%"></span>
<span class="use" style="width: {{ (u.in_use * 100 / (f.total or 1))|round(1) }}%"></span></span></td>
<td class="use-{{ name }}">{{ u.in_use }} in use / {{ u.allocated }} allocated (target {{ u.target }})</td></tr>
{% endfor %}</table>
{% else %}<p class="muted">No license codes in the pool yet.</p>{% endfor %}
<h2>Licenses</h2>
<table id="licenses"><tr><th>serial</th><th>feature</th><th>seats</th><th>expires</th><th>days left</th></tr>
{% for c in status.licenses %}<tr><td>{{ c.serial }}</td><td>{{ c.feature }} {{ c.version }}</td><td>{{ c.count }}</td>
<td>{{ c.expires }}</td><td class="{{ 'expired' if c.days_left <= 0 else ('soon' if c.days_left <= 30 else '') }}">
{{ c.days_left if c.days_left > 0 else 'EXPIRED' }}</td></tr>{% endfor %}</table>
{% endif %}
<h2>Sessions</h2>
<form method="get">feature <input name="feature" value="{{ feature }}" size="12">
 client <input name="client" value="{{ client }}" size="16"> <button>filter</button></form>
{% if silent %}<p class="muted">Not answering (their leases shown as committed): {{ silent|join(', ') }}</p>{% endif %}
<table id="sessions"><tr><th>feature</th><th>client</th><th>server</th><th>since</th><th>until</th><th>lease</th></tr>
{% for x in sessions %}<tr><td>{{ x.feature }} {{ x.version }}</td><td>{{ x.client_id }}</td><td>{{ x.server }}</td>
<td>{{ x.granted_at or '?' }}</td><td>{{ x.expires_at or '?' }}</td><td class="muted">{{ x.lease_id }}</td></tr>
{% else %}<tr><td colspan="6" class="muted">no leases</td></tr>{% endfor %}</table>
<h2>Recent events</h2>
<table id="events"><tr><th>time</th><th>server</th><th>event</th><th>details</th></tr>
{% for e in events %}<tr><td>{{ e.time }}</td><td>{{ e.node }}</td><td>{{ e.event }}</td>
<td class="muted">{{ e.details }}</td></tr>{% else %}<tr><td colspan="4" class="muted">no audit log readable on this
 host</td></tr>{% endfor %}</table>
<p class="muted">Read-only. Refreshes every {{ refresh }} s. JSON: <a href="/api/all">/api/all</a>.</p>
</body></html>
"""


def _iso(wall: float) -> str | None:
    if not wall:
        return None
    return datetime.datetime.fromtimestamp(wall, datetime.UTC).isoformat(timespec="seconds")


class LiveSource:
    """Asks a running pool through one ``PoolLink`` (one ask at a time) and
    reads the audit logs under the config's data_dir."""

    def __init__(self, cfg: PoolConfig, timeout: float = 1.0) -> None:
        from actors.shell.remote import PoolLink

        self.cfg = cfg
        self.link = PoolLink(cfg, timeout=timeout)
        self.lock = threading.Lock()

    def close(self) -> None:
        self.link.close()

    def status(self) -> dict[str, Any] | None:
        from actors.shell.remote import status_json

        with self.lock:
            reply = self.link.status()
        return None if reply is None else status_json(reply)

    def sessions(self) -> tuple[list[dict[str, Any]], list[str]]:
        with self.lock:
            leases, silent = self.link.sessions()
        rows = [
            {
                "lease_id": x.lease_id,
                "client_id": x.client_id,
                "feature": x.feature,
                "version": x.version,
                "server": x.server,
                "granted_at": _iso(x.granted_at),
                "expires_at": _iso(x.expires_at),
            }
            for x in leases
        ]
        return rows, silent

    def events(self, limit: int = EVENTS) -> list[dict[str, Any]]:
        return recent_events(self.cfg, limit)


def recent_events(cfg: PoolConfig, limit: int = EVENTS) -> list[dict[str, Any]]:
    """The last ``limit`` audit records of every server's log readable here, newest first."""
    found: list[dict[str, Any]] = []
    for name in cfg.server_names:
        files = audit_files(cfg.data_dir / name)
        if not files:
            continue
        tail: deque[bytes] = deque(maxlen=limit)
        try:
            with files[-1].open("rb") as f:
                tail.extend(f)
        except OSError:
            continue
        for raw in tail:
            try:
                doc = json.loads(raw)
            except ValueError:
                continue
            if isinstance(doc, dict) and doc.get("event") not in _SKIP_EVENTS:
                found.append(doc)
    found.sort(key=lambda d: str(d.get("time", "")), reverse=True)
    rows = []
    for doc in found[:limit]:
        details = {k: v for k, v in doc.items() if k not in ("time", "event", "node", "pid")}
        rows.append(
            {
                "time": str(doc.get("time", ""))[:19].replace("T", " "),
                "node": doc.get("node", ""),
                "event": doc.get("event", ""),
                "details": ", ".join(f"{k}={v}" for k, v in details.items()),
                "fields": details,
            }
        )
    return rows


def _filtered(rows: list[dict[str, Any]], feature: str, client: str) -> list[dict[str, Any]]:
    name, _, version = feature.partition(":")
    return [
        r
        for r in rows
        if (not name or r["feature"] == name)
        and (not version or r["version"] == version)
        and (not client or client in r["client_id"])
    ]


def make_app(source: Any, pool: str) -> Starlette:
    """The app over ``source`` (``status()``, ``sessions()``, ``events()``)."""
    env = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined)
    page = env.from_string(PAGE)

    def gather(request: Request) -> dict[str, Any]:
        feature = request.query_params.get("feature", "").strip()
        client = request.query_params.get("client", "").strip()
        error = None
        status = None
        sessions: list[dict[str, Any]] = []
        silent: list[str] = []
        try:
            status = source.status()
            if status is None:
                error = f"No server of pool {pool!r} answered: the pool is down or unreachable from this host."
            else:
                for f in status["features"]:
                    f["in_use"] = sum(u["in_use"] for u in f["servers"].values())
                sessions, silent = source.sessions()
        except Exception as exc:  # shown as one line, never a stack trace
            logger.warning("licpool web: asking the pool failed: {}: {}", type(exc).__name__, exc)
            error = f"Asking the pool failed: {type(exc).__name__}: {' '.join(str(exc).split())}"
        try:
            events = source.events()
        except Exception as exc:
            logger.warning("licpool web: reading the audit logs failed: {}", exc)
            events = []
        return {
            "pool": pool,
            "status": status,
            "error": error,
            "sessions": _filtered(sessions, feature, client),
            "silent": silent,
            "events": events,
            "feature": feature,
            "client": client,
            "now": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
            "refresh": REFRESH,
        }

    def index(request: Request) -> Response:
        return HTMLResponse(page.render(**gather(request)))

    def api(request: Request) -> Response:
        data = gather(request)
        part = request.path_params["part"]
        body: Any = {
            "status": {"pool": pool, "status": data["status"], "error": data["error"]},
            "sessions": {"sessions": data["sessions"], "silent": data["silent"], "error": data["error"]},
            "events": {"events": data["events"]},
            "all": {k: data[k] for k in ("pool", "status", "error", "sessions", "silent", "events", "now")},
        }.get(part)
        if body is None:
            return JSONResponse({"error": f"no such API: /api/{part} (try /api/all)"}, status_code=404)
        return JSONResponse(body)

    async def not_found(request: Request, exc: Exception) -> Response:
        return PlainTextResponse("not found: this page is read-only; see / and /api/all", status_code=404)

    async def failed(request: Request, exc: Exception) -> Response:
        logger.error("licpool web: {}: {}", type(exc).__name__, exc)
        return PlainTextResponse(f"licpool web: internal error ({type(exc).__name__}); see the log", status_code=500)

    return Starlette(
        routes=[Route("/", index), Route("/api/{part}", api)], exception_handlers={404: not_found, 500: failed}
    )


def _bind(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise click.BadParameter(f"{text!r}: write HOST:PORT, e.g. 127.0.0.1:8080", param_hint="--bind")
    return host, int(port)


def register(licpool: click.Group) -> None:
    @licpool.command("web")
    @click.option(
        "--config",
        "config_path",
        type=click.Path(dir_okay=False, path_type=Path),
        envvar="LICPOOL_CONFIG",
        required=True,
        help="The pool config file, pool.toml (default: $LICPOOL_CONFIG).",
    )
    @click.option("--bind", "bind", default="127.0.0.1:8080", show_default=True, help="HOST:PORT to serve on.")
    def web(config_path: Path, bind: str) -> None:
        """A read-only status page of the pool (and JSON under /api/), until Ctrl-C."""
        import uvicorn

        from actors.shell import logs
        from actors.shell.system import port_is_free

        host, port = _bind(bind)
        cfg = load_config(config_path, client=True)
        if not port_is_free(host, port):
            raise click.ClickException(f"cannot serve on {host}:{port}: in use, or not an address of this host")
        logs.configure(level="WARNING", console=True)
        source = LiveSource(cfg)
        try:
            click.echo(f"licpool web: pool {cfg.name!r} on http://{host}:{port}/ (Ctrl-C stops)")
            uvicorn.run(make_app(source, cfg.name), host=host, port=port, log_level="warning")
        finally:
            source.close()
