"""``_format.safe``: user text is shown on the terminal, never interpreted by it."""

from __future__ import annotations

import unicodedata

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wattwise.cli._format import lines, safe, table


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("\x1b[31mred\x1b[0m", "\\x1b[31mred\\x1b[0m"),  # ANSI colour
        ("\x1b]0;title\x07", "\\x1b]0;title\\x07"),  # OSC: set the window title, BEL
        ("a\nb\r\tc", "a\\nb\\r\\tc"),
        ("\x00\x7f\x9b", "\\x00\\x7f\\x9b"),  # NUL, DEL, C1 CSI
        ("abc\u202edcba", "abc\\u202edcba"),  # right-to-left override
        ("zero\u200bwidth\ufeff", "zero\\u200bwidth\\ufeff"),
        ("line\u2028sep", "line\\u2028sep"),
        ("bad\udcffname", "bad\\udcffname"),  # an undecodable file name byte (surrogateescape)
        ("résumé 東京 🚀 naïve", "résumé 東京 🚀 naïve"),  # printable text is unchanged
        ("\u00a0nbsp", "\u00a0nbsp"),  # spaces other than ' ' are harmless
        ("👨\u200d👩\u200d👧 می\u200cخواهم", "👨\u200d👩\u200d👧 می\u200cخواهم"),  # joiners kept
        (42, "42"),
    ],
)
def test_safe_examples(text: object, shown: str) -> None:
    assert safe(text) == shown


_ACTED_ON = {"Cc", "Cf", "Cs", "Zl", "Zp"}


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.characters(), max_size=40))
def test_safe_output_is_one_inert_line(text: str) -> None:
    shown = safe(text)
    assert safe(shown) == shown  # escaping twice changes nothing
    assert "\n" not in shown and "\r" not in shown
    assert all(
        unicodedata.category(c) not in _ACTED_ON or c in "\u200c\u200d" for c in shown
    ), shown
    shown.encode("utf-8")  # printable to a UTF-8 terminal (no lone surrogate)
    if text.isprintable():
        assert shown == text


def test_table_and_lines_escape_every_cell_and_line() -> None:
    out = table(["NAME", "X"], [["a\x1b[2Jb", "1"], ["ok", "c\nd"]])
    assert out.splitlines() == ["NAME       X", "a\\x1b[2Jb  1", "ok         c\\nd"]
    assert lines(["one\x1b", "two\nthree"]) == "one\\x1b\ntwo\\nthree"
