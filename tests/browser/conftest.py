"""A reusable headless Chromium for browser tests (selenium + Debian's chromium-driver).

``chromium`` gives a fresh browser per test with its console log and resource
timing kept whole. Nothing is ever downloaded: the browser and the driver are the
system's (``apt-get install chromium chromium-driver``); without them the tests skip
and say why.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field

import pytest

CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--window-size=1280,900",
)
# Resource Timing keeps 250 entries by default; a zooming viewer loads more tiles.
_BIG_TIMING_BUFFER = "performance.setResourceTimingBufferSize(100000);"


def _find(*names: str) -> str | None:
    for name in names:
        if path := shutil.which(name):
            return path
    return None


@dataclass
class Browser:
    driver: object
    console: list[dict] = field(default_factory=list)

    def open(self, url: str) -> None:
        self.driver.get(url)

    def run(self, script: str, *args):
        return self.driver.execute_script(script, *args)

    def wait_for(self, script: str, *, timeout_s: float = 30.0, what: str = "condition"):
        """Poll a JavaScript expression until it is truthy; fail the test after ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        while True:
            value = self.run(f"return ({script});")
            if value:
                return value
            if time.monotonic() > deadline:
                pytest.fail(f"timed out waiting for {what}: {script}")
            time.sleep(0.2)

    def resource_urls(self, fragment: str = "") -> list[str]:
        names = self.run("return performance.getEntriesByType('resource').map(e => e.name);")
        return [n for n in names if fragment in n]

    def console_errors(self) -> list[dict]:
        self.console.extend(self.driver.get_log("browser"))
        return [e for e in self.console if e.get("level") == "SEVERE"]


@pytest.fixture
def chromium():
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        pytest.skip("selenium is not installed (pip install -r requirements-test.txt)")
    binary = _find("chromium", "chromium-browser")
    driver_path = _find("chromedriver")
    if binary is None or driver_path is None:
        pytest.skip("headless browser tests need Debian's chromium and chromium-driver (apt-get install chromium chromium-driver)")
    os.environ.setdefault("SE_OFFLINE", "true")  # Selenium Manager must not fetch anything
    profile = tempfile.mkdtemp(prefix="vitrine-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={profile}")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(executable_path=driver_path))
    try:
        driver.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": _BIG_TIMING_BUFFER})
        yield Browser(driver)
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)
