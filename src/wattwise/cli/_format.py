"""Human formatting of figures for the terminal: built on :mod:`wattwise._units`.

Every piece of user text printed by the CLI (run names, tags, metric keys, paths, error
messages, anything read from the ledger or the command line) goes through :func:`safe`, so
that control characters are shown, never interpreted by the terminal.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, TextIO

from wattwise._spelling import cli_spelling
from wattwise._units import carbon, duration, energy, method_label

if TYPE_CHECKING:  # for annotations only: every command imports this, and most need no ledger
    from wattwise.store import BaseRunStore, ComponentEnergy

__all__ = ["carbon", "cli_spelling", "component_line", "document", "duration", "energy",
           "ledger", "lines", "method_label", "safe", "table", "with_band"]  # fmt: skip

_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
#: Unicode categories a terminal may act on instead of showing: controls (C0, DEL, C1),
#: format characters (bidirectional overrides, zero-width spaces, BOM), lone surrogates
#: (from undecodable file names; printing them raises UnicodeEncodeError), line and
#: paragraph separators.
_ESCAPED_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})
#: Format characters that real text needs: the zero-width (non-)joiners of Persian, Indic
#: scripts and emoji sequences.
_KEPT = frozenset({"\u200c", "\u200d"})


def _escape(char: str) -> str:
    if char in _KEPT or unicodedata.category(char) not in _ESCAPED_CATEGORIES:
        return char
    if char in _NAMED:
        return _NAMED[char]
    code = ord(char)
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


def safe(value: object) -> str:
    """``value`` as text fit for a terminal: control characters made visible, on one line.

    ``"a\\x1b[31mb\\nc"`` → ``"a\\\\x1b[31mb\\\\nc"``: escape sequences, newlines, tabs, DEL,
    C1 controls, bidirectional overrides and lone surrogates are written as ``\\xNN``,
    ``\\n``, ``\\t``, ``\\uNNNN``. Printable text (any script, emoji) is unchanged, and
    ``safe(safe(x)) == safe(x)``.
    """
    text = value if isinstance(value, str) else str(value)
    if text.isprintable():
        return text
    return "".join(_escape(char) for char in text)


def ledger(store: BaseRunStore) -> str:
    """Where a ledger is, for people: a SQLite ledger's file path, else the store's URL
    (``postgresql://alice@db.lab/ml``, never with its password). Not the ``path`` of a
    server ledger: that only names its spool's place in the project."""
    url = store.url
    return str(store.path) if url.startswith("sqlite:") else url


def lines(items: Iterable[str]) -> str:
    """Lines for the terminal, each through :func:`safe`, joined by newlines.

    Build each line with its user text in it; a newline inside a run name then shows as
    ``\\n`` instead of starting a line the reader would take for wattwise's own.
    """
    return "\n".join(safe(item) for item in items)


def document(text: str, stream: TextIO) -> str:
    """A document (a report, a model card) as it should go to ``stream``.

    On a terminal, each line goes through :func:`safe` (as GNU ``ls`` hides control
    characters only on a terminal); to a file or a pipe the document stays byte-exact.
    """
    isatty = getattr(stream, "isatty", None)
    if callable(isatty) and isatty():
        return lines(text.split("\n"))
    return text


def with_band(value: float, band: float | None, fmt: Callable[[float], str] = energy) -> str:
    """``"412 J ± 165 J"``, or ``"412 J (band unknown)"``."""
    if band is None:
        return f"{fmt(value)} (band unknown)"
    if band == 0:
        return fmt(value)
    return f"{fmt(value)} ± {fmt(band)}"


def component_line(comp: ComponentEnergy) -> str:
    """``cpu 380 J ± 152 J estimated (cpu-model)``."""
    band = comp.band_j
    text = with_band(comp.energy_j, band) if band is not None else energy(comp.energy_j)
    return f"{safe(comp.component)} {text} {method_label(comp.method)} ({safe(comp.meter)})"


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A plain aligned text table; every cell goes through :func:`safe`."""
    headers = [safe(h) for h in headers]
    rows = [[safe(cell) for cell in row] for row in rows]
    widths = [len(h) for h in headers]
    for row in rows:
        widths = [max(w, len(cell)) for w, cell in zip(widths, row, strict=True)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()]
    lines += [
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in rows
    ]
    return "\n".join(lines)
