"""The Markdown report never carries control characters from user text: they are shown."""

from __future__ import annotations

import time
import unicodedata
from pathlib import Path

from report_support import insert_run

from wattwise.report import build_report, render_markdown
from wattwise.report._markdown import md
from wattwise.store import open_store

#: A colour escape and clear-screen, a carriage return that would overwrite the line, a
#: bell, DEL, a C1 CSI, a right-to-left override, a zero-width space, a BOM, a line
#: separator and a lone surrogate (an undecodable file name).
HOSTILE = "a\x1b[31mred\x1b[2J\rover\x07\x7fDEL\x9bC1\u202eRLO\u200bZW\ufeffBOM\u2028LS\udcff"
HIDDEN = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})


def _hidden(text: str) -> list[str]:
    """Characters of ``text`` a reader cannot see, newlines between lines excepted."""
    return [
        ch for ch in text
        if ch != "\n" and ch not in "\u200c\u200d" and unicodedata.category(ch) in HIDDEN
    ]  # fmt: skip


def test_control_characters_become_visible_text() -> None:
    out = md(HOSTILE)
    assert _hidden(out) == []
    # each shows as its code (its backslash escaped for Markdown: rendered "\x1b")
    for code in ("\\\\x1b", "\\\\x07", "\\\\x7f", "\\\\x9b", "\\\\u202e", "\\\\u200b",
                 "\\\\ufeff", "\\\\udcff"):  # fmt: skip
        assert code in out, code
    assert "\\\\x1b\\[31mred" in out  # the "[" is Markdown-escaped as before
    out.encode("utf-8")  # a lone surrogate no longer makes the file unwritable


def test_line_breaks_and_tabs_are_spaces_and_real_text_is_untouched() -> None:
    assert md("two\nlines\r\nand\ta tab") == "two lines and a tab"
    text = "Ünïcødé 日本語 فارسی\u200cها 👩\u200d💻 ok"  # ZWNJ and ZWJ are part of the text
    assert md(text) == text
    assert md("1 < 2 | a_b") == "1 &lt; 2 \\| a\\_b"


def test_a_report_with_a_hostile_run_name_holds_no_control_character(
    isolated_project: Path,
) -> None:
    store = open_store()
    name = HOSTILE.replace("\udcff", "")  # SQLite text is UTF-8: no lone surrogate
    run_id = insert_run(store, name, tags=[f"tag{name}"], host=f"host{name}",
                        started_at=time.time() - 100)  # fmt: skip
    insert_run(store, "plain", started_at=time.time() - 300, host="h2")  # groups show
    for report in (build_report(store), build_report(store, run=run_id)):
        text = render_markdown(report)
        assert _hidden(text) == [], _hidden(text)
        assert "a\\\\x1b\\[31mred\\\\x1b\\[2J over" in text  # the \r became a space
        text.encode("utf-8")
    store.close()
