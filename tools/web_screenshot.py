"""Headless Chromium for the status page: its DOM and a screenshot.

``python -m tools.web_screenshot [docs/web-status.png]`` starts a throwaway
3-server pool on loopback (like ``licpool demo``), adds a license, checks out a
few seats, serves ``licpool web`` for it and has Chromium (Debian's
``chromium`` package) take a screenshot of the page; then it stops everything.
The integration test tests/integration/test_web_page.py uses the same helpers.
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

__all__ = ["chromium", "chromium_missing", "dump_dom", "screenshot", "serving"]

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome")


def chromium() -> str | None:
    for name in CHROMIUM_NAMES:
        found = shutil.which(name)
        if found:
            return found
    return None


def chromium_missing() -> str | None:
    """Why Chromium cannot be used here, or None."""
    if chromium() is None:
        return "Chromium is not installed (Debian: apt-get install -y chromium; .ci/run does it as root)"
    return None


def _flags(user_dir: str) -> list[str]:
    # --no-sandbox: CI runs as root, where Chromium's sandbox refuses to start.
    return [
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--hide-scrollbars",
        "--no-first-run",
        f"--user-data-dir={user_dir}",
    ]


def dump_dom(url: str, timeout: float = 60.0) -> str:
    """The page's DOM after Chromium loaded it."""
    browser = chromium()
    assert browser is not None
    with tempfile.TemporaryDirectory(prefix="licpool-chromium-") as user_dir:
        done = subprocess.run(
            [browser, *_flags(user_dir), "--dump-dom", url],
            capture_output=True,
            text=True,
            timeout=timeout,
            start_new_session=True,
        )
    if done.returncode != 0:
        raise RuntimeError(f"chromium exited {done.returncode}: {done.stderr.strip()[-500:]}")
    return done.stdout


def screenshot(url: str, path: Path, size: tuple[int, int] = (1200, 1100), timeout: float = 60.0) -> None:
    browser = chromium()
    assert browser is not None
    with tempfile.TemporaryDirectory(prefix="licpool-chromium-") as user_dir:
        done = subprocess.run(
            [browser, *_flags(user_dir), f"--window-size={size[0]},{size[1]}", f"--screenshot={path.absolute()}", url],
            capture_output=True,
            text=True,
            timeout=timeout,
            start_new_session=True,
        )
    if done.returncode != 0 or not path.exists():
        raise RuntimeError(f"chromium exited {done.returncode}: {done.stderr.strip()[-500:]}")


@contextlib.contextmanager
def serving(app: Any, host: str, port: int) -> Iterator[str]:
    """Serve ``app`` with uvicorn in a thread; yields its URL; stops it after."""
    import uvicorn

    server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    try:
        yield f"http://{host}:{port}/"
    finally:
        server.should_exit = True
        thread.join(10)


def main(argv: list[str]) -> int:
    from actors.cli.demo import _write_pool
    from actors.cli.web import LiveSource, make_app
    from actors.client import LicenseClient
    from actors.core.codes import load_private_key, sign_license
    from actors.protocol.pool import AddLicenseCode
    from actors.shell import logs
    from actors.shell.launcher import PoolProcesses
    from actors.shell.system import free_port

    out = Path(argv[0] if argv else "docs/web-status.png")
    why = chromium_missing()
    if why is not None:
        print(f"web_screenshot: {why}", file=sys.stderr)
        return 1
    logs.configure(level="ERROR", console=True)
    workdir = Path(tempfile.mkdtemp(prefix="licpool-shot-"))
    procs = None
    source = None
    apps: list[Any] = []
    try:
        config, _ = _write_pool(workdir)
        procs = PoolProcesses(config, quiet=True, output=workdir / "out")
        procs.start_all()
        source = LiveSource(procs.cfg)
        deadline = time.monotonic() + 30
        while (s := source.link.status()) is None or s.leader is None or not all(x.up for x in s.servers):
            if time.monotonic() > deadline:
                raise RuntimeError("the pool did not form")
            time.sleep(0.2)
        vendor = load_private_key((workdir / "vendor.key").read_bytes())
        for serial, feature, count in (("DEMO-1", "cad", 10), ("DEMO-2", "cam", 4)):
            code = sign_license(
                vendor,
                feature=feature,
                version="2.0",
                count=count,
                expires="2099-12-31",
                serial=serial,
                majority=True,
                distribution=None,
            )
            reply = source.link.admin(
                lambda rid, code=code: AddLicenseCode(sender="shot", epoch=0, request_id=rid, code=code)
            )
            if not reply.ok:
                raise RuntimeError(reply.error)
        for i, (feature, prefer) in enumerate((("cad", "s1"), ("cad", "s2"), ("cad", "s2"), ("cam", "s3"))):
            app = LicenseClient.from_config(config, client_id=f"ws{i + 1}/{feature}", prefer=prefer, log_level="ERROR")
            apps.append(app)
            app.checkout(feature, version="2.0", timeout=10.0)
        time.sleep(1.5)  # let the followers' lease reports commit
        port = free_port()
        with serving(make_app(source, procs.cfg.name), "127.0.0.1", port) as url:
            screenshot(url, out)
        print(f"web_screenshot: wrote {out}")
        return 0
    finally:
        for app in apps:
            with contextlib.suppress(Exception):
                app.close()
        if source is not None:
            source.close()
        if procs is not None:
            procs.stop_all(grace=5.0)
            procs.wait_gone(5.0)
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
