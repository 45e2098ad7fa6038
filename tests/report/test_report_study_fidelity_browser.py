"""The study section's fidelity line in headless Chromium, at laptop and phone widths
(issue 12): shown beside the study's other recorded facts, inside the page.

The browser and its fixture are ``test_report_browser.py``'s (skipped, saying why, without
selenium or Chromium); the study is ``test_report_study_fidelity.py``'s.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from test_report_browser import FIT_JS, _severe, chrome  # noqa: F401 (the fixture)
from test_report_study_fidelity import expected_line, study

from wattwise.cli import main


def test_the_line_reads_in_a_browser_at_laptop_and_phone_widths(
    chrome: Any,  # noqa: F811 (the fixture imported above)
    tmp_path: Path,
) -> None:
    from selenium.webdriver.common.by import By

    result = study()
    line = expected_line(result.study_id)
    page = tmp_path / "study.html"
    assert main(["report", "--study", result.study_id, "-o", str(page)]) == 0
    for width in (1280, 390):
        chrome.set_window_size(width, 900)
        chrome.get(page.as_uri())
        fit = chrome.execute_script(FIT_JS)  # opens folded sections, measures every box
        assert fit["bad"] == [] and fit["page"] <= 0, (width, fit["bad"])
        terms = chrome.find_elements(By.CSS_SELECTOR, "#studies dl.kv dt")
        shown = [t for t in terms if t.text == "fidelity"]
        assert len(shown) == 1, [t.text for t in terms]
        dd = shown[0].find_element(By.XPATH, "following-sibling::dd[1]")
        assert dd.is_displayed() and dd.text == line
        right = dd.rect["x"] + dd.rect["width"]
        assert right <= width, (width, dd.rect)  # wraps inside the page, not past it
    assert _severe(chrome) == []
