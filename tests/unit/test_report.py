"""``licpool report`` on synthetic audit logs of two servers: a lease that moved
between them counts once, peaks and seat-hours are exact, bad lines are named
with file:line and skipped, rotated files are read, and the plot is drawn.
Also the audit sink's rotation by size."""

from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from actors.cli.main import licpool
from actors.shell import logs
from actors.shell.config import default_config_text

T0 = "2026-03-02T09:00:00+00:00"


def _at(minutes: float) -> str:
    import datetime

    return (datetime.datetime.fromisoformat(T0) + datetime.timedelta(minutes=minutes)).isoformat()


def _line(minutes: float, event: str, node: str, **fields: Any) -> str:
    return json.dumps({"time": _at(minutes), "event": event, "node": node, "pid": 1, **fields}) + "\n"


def _grant(m: float, node: str, lid: str, client: str, feature: str = "cad", resumed: bool = False) -> str:
    return _line(m, "grant", node, lease_id=lid, client_id=client, feature=feature, version="2.0", resumed=resumed)


@pytest.fixture
def pool(tmp_path: Path) -> Path:
    config = tmp_path / "pool.toml"
    config.write_text(default_config_text(tmp_path, (1950, 1951)))
    s1, s2 = tmp_path / "data" / "s1", tmp_path / "data" / "s2"
    s1.mkdir(parents=True)
    s2.mkdir(parents=True)
    # s1, rotated: an older file (.1) and the current one.
    (s1 / "audit.jsonl.1").write_text(
        _grant(0, "s1", "L1", "ws1/cad")  # L1: 09:00 .. 11:00 at s1
        + _grant(30, "s1", "L2", "ws2/cad")  # L2: 09:30 at s1, moves to s2, released there 10:30
        + "{this is not json\n"
    )
    (s1 / "audit.jsonl").write_text(
        _line(60, "denial", "s1", client_id="ws3/cad", feature="cad", version="2.0", reason="NO_SEATS")
        + _line(61, "denial", "s1", client_id="ws3/cad", feature="cad", version="2.0", reason="NO_SEATS")
        + _line(62, "denial", "s1", client_id="ws9/x", feature="cam", version="1", reason="UNKNOWN_FEATURE")
        + _line(120, "release", "s1", lease_id="L1", client_id="ws1/cad")
        + '{"time": "2026-03-02T11:30:00+00:00", "event": "gra'  # a crash cut this line short
    )
    (s2 / "audit.jsonl").write_text(
        _line(45, "failover", "s2", server="s2", client_id="ws2/cad", seated=1, moving=0, pending=0, refused=0)
        + _grant(50, "s2", "L2", "ws2/cad", resumed=True)  # the same lease, resumed here
        + _grant(55, "s2", "L3", "ws4/cad")  # L3: 09:55 .. 10:10 (expired)
        + _line(70, "expiry", "s2", lease_id="L3", client_id="ws4/cad", feature="cad")
        + _line(90, "release", "s2", lease_id="L2", client_id="ws2/cad")
        + _grant(100, "s2", "L4", "ws1/cad")  # L4: 10:40 .. still held
    )
    return config


def _run(*args: str) -> Any:
    return CliRunner().invoke(licpool, ["report", *args], catch_exceptions=False)


def test_json_report_counts_a_moved_lease_once_and_names_every_bad_line(pool: Path) -> None:
    done = _run("--config", str(pool), "--format", "json", "--until", "2026-03-02T12:00:00")
    assert done.exit_code == 0, done.output
    doc = json.loads(done.stdout)
    assert doc["records"] == 12 and doc["files"] == 3 and doc["failovers_handled"] == 1
    cad = next(f for f in doc["features"] if f["feature"] == "cad")
    assert cad["leases"] == 4 and cad["moved_leases"] == 1 and cad["open_leases"] == 1
    # L1 2 h + L2 1 h + L3 0.25 h + L4 (10:40 .. 12:00) 1.333 h; L2 counted once although two servers held it
    assert cad["seat_hours"] == pytest.approx(2 + 1 + 0.25 + 80 / 60, abs=1e-3)
    assert cad["peak"] == 3 and cad["peak_at"] == "2026-03-02T09:55:00+00:00"  # L1, L2, L3
    assert cad["denials"] == {"NO_SEATS": 2} and cad["unmet"] == 2 and cad["clients_turned_away"] == 1
    assert cad["per_client"]["ws1/cad"] == {"seat_hours": pytest.approx(2 + 80 / 60, abs=1e-3), "leases": 2}
    cam = next(f for f in doc["features"] if f["feature"] == "cam")
    assert cam["denials"] == {"UNKNOWN_FEATURE": 1} and cam["leases"] == 0
    warnings = [x for x in done.stderr.splitlines() if x.startswith("licpool: warning:")]
    s1 = pool.parent / "data" / "s1"
    assert any(f"{s1 / 'audit.jsonl.1'}:3: skipped a malformed line:" in x for x in warnings), warnings
    assert any(f"{s1 / 'audit.jsonl'}:5: skipped a malformed line (cut short" in x for x in warnings), warnings


def test_window_feature_csv_table_and_plot(pool: Path, tmp_path: Path) -> None:
    done = _run(
        "--config",
        str(pool),
        "--format",
        "csv",
        "--feature",
        "cad:2.0",
        "--since",
        "2026-03-02T10:00:00",
        "--until",
        "2026-03-02T11:00:00",
    )
    assert done.exit_code == 0, done.output
    (row,) = list(csv.DictReader(io.StringIO(done.stdout)))
    # 10:00-11:00: L1 1 h, L2 0.5 h, L3 10 min, L4 20 min
    assert float(row["seat_hours"]) == pytest.approx(1 + 0.5 + 10 / 60 + 20 / 60, abs=1e-3)
    assert row["denials"] == "NO_SEATS=2" and row["feature"] == "cad"
    table = _run("--config", str(pool), "--plot", str(tmp_path / "use.png"))
    assert table.exit_code == 0, table.output
    assert "cad 2.0: licensed ?" in table.stdout and "peak 3 at 2026-03-02T09:55:00+00:00" in table.stdout
    assert "ws1/cad" in table.stdout
    assert (tmp_path / "use.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_bad_input_is_one_line_and_a_non_zero_exit(pool: Path, tmp_path: Path) -> None:
    for args, says in (
        (["--since", "yesterday"], "not a date"),
        (["--since", "2026-03-03", "--until", "2026-03-01"], "must be after --since"),
        (["--plot", str(tmp_path / "x.jpg")], "give a .png file"),
        (["--format", "xml"], "xml"),
    ):
        done = _run("--config", str(pool), *args)
        assert done.exit_code != 0 and says in done.output, (args, done.output)
        assert done.output.count("\n") == 1 and "Traceback" not in done.output
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "pool.toml").write_text(default_config_text(empty, (1950,)))
    done = _run("--config", str(empty / "pool.toml"))
    assert done.exit_code == 1 and "no audit log under" in done.output


def test_the_audit_sink_rotates_by_size_and_the_report_reads_every_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from actors.cli.report import audit_files, read_records

    monkeypatch.setenv("LICPOOL_AUDIT_ROTATE_BYTES", "2048")
    path = tmp_path / "s1" / "audit.jsonl"
    logs.configure(json_audit_path=path, console=False, capture_stdlib=False)
    try:
        for i in range(100):
            logs.audit("grant", node="s1", lease_id=f"L{i}", client_id="c", feature="cad", version="2.0")
    finally:
        logs.configure(console=False, capture_stdlib=False)
    files = audit_files(path.parent)
    assert len(files) > 3 and files[-1] == path and files[0].name.startswith("audit.jsonl.")
    assert all(f.stat().st_size < 2048 + 400 for f in files)
    records = read_records(files, lambda text: pytest.fail(text), progress=False)
    assert [r.fields["lease_id"] for r in records] == [f"L{i}" for i in range(100)]
    assert os.environ["LICPOOL_AUDIT_ROTATE_BYTES"] == "2048"


def test_a_multi_seat_lease_counts_its_seats_in_peaks_and_seat_hours(tmp_path: Path) -> None:
    config = tmp_path / "pool.toml"
    config.write_text(default_config_text(tmp_path, (1950, 1951)))
    s1 = tmp_path / "data" / "s1"
    s1.mkdir(parents=True)
    (s1 / "audit.jsonl").write_text(
        _line(0, "grant", "s1", lease_id="M1", client_id="ws1/cad", feature="cad", version="2.0", seats=3)
        + _grant(0, "s1", "M2", "ws2/cad")
        + _line(60, "release", "s1", lease_id="M1", client_id="ws1/cad")
        + _line(60, "release", "s1", lease_id="M2", client_id="ws2/cad")
    )
    result = _run("--config", str(config), "--format", "json")
    assert result.exit_code == 0, result.output
    (cad,) = json.loads(result.stdout)["features"]
    assert cad["peak"] == 4 and cad["seat_hours"] == 4.0
