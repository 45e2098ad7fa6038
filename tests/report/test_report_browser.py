"""The HTML report in a real browser: headless Chromium through selenium, offline.

Needs Debian's ``chromium`` and ``chromium-driver`` (``make test`` installs them when it
can). The driver path is given explicitly, so selenium never tries to download one.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from report_support import XSS, project_ledger

from wattwise.cli import main

By: Any = pytest.importorskip(
    "selenium.webdriver.common.by", reason="selenium is not installed"
).By

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


#: Every table and chart (and each section, and the page) must fit its box: nothing wider
#: than the box it sits in, so no column is clipped and nothing scrolls sideways. Folded
#: sections are opened first, so what they hold is measured too.
FIT_JS = """
document.querySelectorAll('details').forEach(d => { d.open = true; });
const root = document.documentElement, bad = [];
const name = el => el.tagName.toLowerCase() + (el.id ? '#' + el.id : '') + ' in #'
  + (el.closest('section, nav')?.id || 'page');
for (const el of document.querySelectorAll('.table-wrap, figure, section.panel, main, .charts'))
  if (el.scrollWidth > el.clientWidth + 1) bad.push([name(el), el.scrollWidth, el.clientWidth]);
const tables = [...document.querySelectorAll('table')];
for (const t of tables) {
  const box = t.closest('.table-wrap');
  if (!box) { bad.push([name(t), 'outside a .table-wrap']); continue; }
  if (t.getBoundingClientRect().width > box.clientWidth + 1)
    bad.push([name(t), Math.round(t.getBoundingClientRect().width), box.clientWidth]);
}
const charts = [...document.querySelectorAll('svg.chart')].filter(s => s.getClientRects().length);
for (const s of charts) {
  const box = s.parentElement;
  if (s.getBoundingClientRect().right > box.getBoundingClientRect().right + 1)
    bad.push([name(s), 'past its box']);
}
const runs = document.getElementById('runs-table');
const runsFit = runs.getBoundingClientRect().width <= runs.closest('.table-wrap').clientWidth + 1;
return {bad, tables: tables.length, charts: charts.length, runsFit,
        page: root.scrollWidth - root.clientWidth, open: root.scrollHeight};
"""


def _curves_ledger() -> None:
    """The project ledger plus runs that logged metrics over steps (a study's trials with
    their reports and energy, a run with an epoch metric and samples)."""
    from report_support import insert_run

    from wattwise.store import open_store

    project_ledger()
    store = open_store()
    now = time.time()
    driver = insert_run(store, "wide-sweep", kind="study", started_at=now - 3000, duration_s=900)
    for i in range(4):
        start = now - 2900 + i * 200
        trial = insert_run(store, f"trial-w{i}", kind="trial", study_id=driver, started_at=start,
                           duration_s=150, energy_j=2000 + 300 * i)  # fmt: skip
        points = [(s, key, v, start + 10 * s + 5) for s in range(6) for key, v in
                  (("value", 0.5 + 0.07 * s - 0.02 * i), ("energy_j", 300.0 * (s + 1) + i))]
        store.flush_run(trial, {}, metrics=points)
    run = insert_run(store, "epochs-logged", started_at=now - 400, duration_s=300)
    store.flush_run(run, {}, metrics=[
        (s, key, v, now - 400 + 30 * (s + 1)) for s in range(8)
        for key, v in (("val_acc", 0.6 + 0.04 * s), ("train_loss", 1.0 / (s + 1)),
                       ("epoch", float(s // 2)))
    ])  # fmt: skip
    store.close()


def test_every_table_and_chart_fits_at_1280_and_390_px(chrome: Any, tmp_path: Path) -> None:
    _curves_ledger()
    page = tmp_path / "report.html"
    assert main(["report", "-o", str(page)]) == 0
    chrome.set_window_size(1280, 900)
    chrome.get(page.as_uri())
    folded = chrome.execute_script("return document.documentElement.scrollHeight")
    assert chrome.find_element(By.ID, "green-ai").is_displayed()
    desktop = chrome.execute_script(FIT_JS)
    assert desktop["bad"] == [], f"clipped at 1280 px: {desktop['bad']}"
    assert desktop["runsFit"] and desktop["page"] <= 0
    assert desktop["tables"] >= 10 and desktop["charts"] >= 6  # the check covered them
    # folding keeps the desktop page short; what is folded is one click away
    assert folded < 0.8 * desktop["open"], (folded, desktop["open"])

    chrome.set_window_size(390, 844)
    chrome.get(page.as_uri())
    phone = chrome.execute_script(FIT_JS)
    assert phone["bad"] == [], f"sideways scrolling at 390 px: {phone['bad']}"
    assert phone["page"] <= 0 and phone["tables"] == desktop["tables"]
    energy = chrome.find_element(By.ID, "headline-energy")
    assert energy.is_displayed() and energy.rect["x"] + energy.rect["width"] <= 390
    shot = tmp_path / "report-phone-open.png"
    assert chrome.save_screenshot(str(shot))
    assert _severe(chrome) == []
