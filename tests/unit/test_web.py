"""The status page and its JSON, with Starlette's TestClient over a fixed
source; tests/integration/test_web_page.py renders a real pool in Chromium."""

from __future__ import annotations

from typing import Any

from starlette.testclient import TestClient

from actors.cli.web import make_app

STATUS = {
    "pool": "eng",
    "epoch": 7,
    "leader": "s2",
    "answered_by": "s2",
    "today": "2026-11-28",
    "servers": [
        {"name": "s1", "address": "10.0.0.1:1950", "up": False, "leader": False, "status": "fenced", "incarnation": 3},
        {"name": "s2", "address": "10.0.0.2:1950", "up": True, "leader": True, "status": "live", "incarnation": 5},
    ],
    "features": [
        {
            "feature": "cad",
            "version": "2.0",
            "total": 10,
            "free_pool": 2,
            "in_flight": 0,
            "majority": True,
            "expires": "2026-12-10",
            "servers": {
                "s1": {"allocated": 3, "in_use": 0, "target": 5},
                "s2": {"allocated": 5, "in_use": 4, "target": 5},
            },
        }
    ],
    "pending": [],
    "licenses": [
        {"serial": "X1", "feature": "cad", "version": "2.0", "count": 10, "expires": "2026-12-10", "days_left": 13}
    ],
}
SESSIONS = [
    {
        "lease_id": "L1",
        "client_id": "ws1/cad",
        "feature": "cad",
        "version": "2.0",
        "server": "s2",
        "granted_at": "2026-11-28T09:00:00+00:00",
        "expires_at": "2026-11-28T09:00:30+00:00",
    },
    {
        "lease_id": "L2",
        "client_id": "ws2/cam",
        "feature": "cam",
        "version": "1",
        "server": "s2",
        "granted_at": None,
        "expires_at": None,
    },
]


class Source:
    def __init__(self, status: Any = STATUS, fail: Exception | None = None) -> None:
        self._status, self.fail = status, fail

    def status(self) -> Any:
        if self.fail is not None:
            raise self.fail
        return (
            None if self._status is None else {**self._status, "features": [dict(f) for f in self._status["features"]]}
        )

    def sessions(self) -> Any:
        return list(SESSIONS), ["s1"]

    def events(self) -> Any:
        return [
            {
                "time": "2026-11-28 09:00:00",
                "node": "s2",
                "event": "grant",
                "details": "lease_id=L1",
                "fields": {"lease_id": "L1"},
            }
        ]


def test_the_page_shows_leader_servers_seats_licenses_sessions_and_events() -> None:
    page = TestClient(make_app(Source(), "eng")).get("/")
    assert page.status_code == 200
    html = page.text
    assert 'http-equiv="refresh"' in html
    assert '<b id="leader">s2</b>' in html and '<b id="epoch">7</b>' in html
    assert "DOWN (fenced)" in html and 'class="up">up · leader' in html
    assert 'class="use-s2">4 in use / 5 allocated (target 5)' in html
    assert 'style="width: 40.0%"' in html  # s2's 4 of 10 seats in use
    assert "X1" in html and ">\n13</td>" in html and 'class="soon"' in html
    assert "ws1/cad" in html and "ws2/cam" in html and "Not answering" in html
    assert "lease_id=L1" in html


def test_sessions_filter_by_feature_and_client_and_json_under_api() -> None:
    client = TestClient(make_app(Source(), "eng"))
    html = client.get("/", params={"feature": "cam"}).text
    assert "ws2/cam" in html and "ws1/cad" not in html
    html = client.get("/", params={"client": "ws1"}).text
    assert "ws1/cad" in html and "ws2/cam" not in html
    doc = client.get("/api/sessions", params={"feature": "cad:2.0"}).json()
    assert [x["lease_id"] for x in doc["sessions"]] == ["L1"] and doc["silent"] == ["s1"]
    assert client.get("/api/status").json()["status"]["epoch"] == 7
    assert client.get("/api/events").json()["events"][0]["event"] == "grant"
    assert client.get("/api/nope").status_code == 404
    assert client.post("/").status_code == 405  # read-only


def test_an_unreachable_pool_or_a_failing_ask_is_a_banner_never_a_traceback() -> None:
    client = TestClient(make_app(Source(status=None), "eng"), raise_server_exceptions=False)
    page = client.get("/")
    assert page.status_code == 200 and "No server of pool &#39;eng&#39; answered" in page.text
    assert client.get("/api/all").json()["status"] is None
    client = TestClient(
        make_app(Source(fail=RuntimeError("actor system\nstopped")), "eng"), raise_server_exceptions=False
    )
    page = client.get("/")
    assert page.status_code == 200 and "Asking the pool failed: RuntimeError: actor system stopped" in page.text
    assert "Traceback" not in page.text
