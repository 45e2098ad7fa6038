"""The HTML report in a real browser: headless Chromium through selenium, offline.

Needs Debian's ``chromium`` and ``chromium-driver`` (``make test`` installs them when it
can). The driver path is given explicitly, so selenium never tries to download one.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from report_support import XSS, project_ledger

from wattwise.cli import main

INSTALL_HINT = (
    "headless Chromium is not installed, so the HTML report was NOT tested in a real "
    "browser. Install it with: sudo apt-get install -y chromium chromium-driver "
    "(Debian/Ubuntu), then rerun. 'make test' does this when it can."
)


def _browser_paths() -> tuple[str, str] | None:
    browser = next(
        (p for p in ("/usr/bin/chromium", shutil.which("chromium"),
                     shutil.which("chromium-browser"), shutil.which("google-chrome")) if p
         and Path(p).exists()), None,
    )  # fmt: skip
    driver = next(
        (p for p in ("/usr/bin/chromedriver", shutil.which("chromedriver"))
         if p and Path(p).exists()), None,
    )  # fmt: skip
    if browser is None or driver is None:
        return None
    return browser, driver


@pytest.fixture
def chrome(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed")
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    paths = _browser_paths()
    if paths is None:
        pytest.skip(INSTALL_HINT)
    browser, driver_path = paths
    monkeypatch.setenv("SE_OFFLINE", "true")  # Selenium Manager must never go online
    options = Options()
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--disable-background-networking", "--disable-component-update",
                "--disable-sync", "--no-first-run", "--hide-scrollbars",
                "--window-size=1280,900", f"--user-data-dir={tmp_path / 'chrome-profile'}"):
        options.add_argument(arg)  # fmt: skip
    options.binary_location = browser
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(driver_path), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def _severe(driver: Any) -> list[dict[str, Any]]:
    return [entry for entry in driver.get_log("browser") if entry.get("level") == "SEVERE"]


def test_report_opens_offline_without_errors_on_laptop_and_phone(
    chrome: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from selenium.common.exceptions import NoAlertPresentException
    from selenium.webdriver.common.by import By

    project_ledger()
    page = tmp_path / "report.html"
    assert main(["report", "-o", str(page)]) == 0
    assert "Wrote" in capsys.readouterr().out

    chrome.get(page.as_uri())
    assert _severe(chrome) == []
    with pytest.raises(NoAlertPresentException):
        chrome.switch_to.alert.text  # noqa: B018  (the <script> run name must not run)
    headline = chrome.find_element(By.ID, "headline")
    assert headline.is_displayed() and headline.size["width"] > 300
    energy = chrome.find_element(By.ID, "headline-energy")
    assert "energy" in energy.text.lower() and "estimated" in energy.text.lower()
    assert XSS in chrome.find_element(By.ID, "runs").text
    # nothing was fetched: no resource besides the document itself
    assert chrome.execute_script("return performance.getEntriesByType('resource').length") == 0
    height = chrome.execute_script("return document.documentElement.scrollHeight")
    chrome.set_window_size(1280, min(int(height), 9000))
    laptop = tmp_path / "report-laptop.png"
    assert chrome.save_screenshot(str(laptop))
    data = laptop.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20_000

    chrome.set_window_size(390, 844)
    overflow = chrome.execute_script(
        "return document.documentElement.scrollWidth - document.documentElement.clientWidth"
    )
    offenders = chrome.execute_script(
        "const w = document.documentElement.clientWidth; return [...document.querySelectorAll("
        "'body *')].filter(e => e.getBoundingClientRect().right > w + 1 && !e.closest("
        "'.table-wrap')).map(e => e.tagName + '.' + e.className).slice(0, 8)"
    )
    assert overflow <= 1, f"the page scrolls sideways on a phone: {offenders}"
    assert chrome.find_element(By.ID, "headline").is_displayed()
    phone = tmp_path / "report-phone.png"
    assert chrome.save_screenshot(str(phone))
    assert phone.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert _severe(chrome) == []
