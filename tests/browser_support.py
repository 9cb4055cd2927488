"""Headless Chromium for the browser tests (test_browser, test_explorer), kept offline:
Selenium Manager is told not to download a driver or send usage statistics, and the local
chromedriver (Debian's chromium-driver) is named, so the manager has nothing to look up."""
from __future__ import annotations

import functools
import http.server
import os
import shutil
import tempfile
import threading
from pathlib import Path

import pytest

CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                  "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--hide-scrollbars"]
NO_CHROMIUM = ("headless browser check skipped: chromium is not installed (Debian packages "
               "chromium and chromium-driver)")


def chromium() -> str | None:
    for name in ("chromium", "chromium-browser"):
        if path := shutil.which(name):
            return path
    return None


def chromedriver() -> str:
    for cand in (shutil.which("chromedriver"), "/usr/lib/chromium/chromedriver"):
        if cand and Path(cand).exists():
            return cand
    pytest.fail("chromium is installed but chromedriver is not: install the Debian package "
                "chromium-driver")


def offline_driver(window: str = "1280,900", page_load_timeout: int = 120):
    """Yield a headless Chrome driver that never reaches the network on its own; quit it
    and remove its profile afterwards (use with ``yield from`` in a fixture)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    os.environ["SE_OFFLINE"] = "true"
    os.environ["SE_AVOID_STATS"] = "true"
    profile = tempfile.mkdtemp(prefix="recos-chromium-")
    opts = webdriver.ChromeOptions()
    opts.binary_location = chromium()
    for flag in CHROMIUM_FLAGS + [f"--window-size={window}", f"--user-data-dir={profile}"]:
        opts.add_argument(flag)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    drv = webdriver.Chrome(options=opts, service=Service(executable_path=chromedriver()))
    drv.set_page_load_timeout(page_load_timeout)
    drv.set_script_timeout(60)
    try:
        yield drv
    finally:
        drv.quit()
        shutil.rmtree(profile, ignore_errors=True)


def serve(folder: Path):
    """Serve ``folder`` on 127.0.0.1 (a free port), quietly: yield its URL, then stop."""
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0),
                                          functools.partial(Quiet, directory=str(folder)))
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{srv.server_address[1]}"
    finally:
        srv.shutdown()
        srv.server_close()
