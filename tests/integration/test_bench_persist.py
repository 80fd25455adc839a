"""The persistence benchmark runs end to end at a small size (it once broke
unnoticed when admin changes had to be signed).  Nothing here is timed; it
lives in the integration tier because its one-server pools take ~40 s to elect."""

from __future__ import annotations

from pathlib import Path

import pytest

from actors.bench import persist


def test_the_persistence_benchmark_runs_and_prints_every_figure(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert persist.main(["--leases", "300", "--ops", "20", "--dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    for figure in ("checkouts/s", "leases held:", "compaction pause", "300 leases:", "from a fresh snapshot alone"):
        assert figure in out, out
    assert list(tmp_path.iterdir()) == []  # its files are gone
