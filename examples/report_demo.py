"""The end of `make demo`: write report.html for the current project and print its path.

Run it from the demo project (where `.wattwise/` is); it reads the ledger only. Open the
file in any browser: it is one self-contained page (no network, no scripts).
"""

from __future__ import annotations

import sys
from pathlib import Path


def main(output: str = "report.html") -> int:
    """Write the project report and print where it is."""
    from wattwise.report import build_report, render_html
    from wattwise.store import open_store

    store = open_store()
    try:
        report = build_report(store)
    finally:
        store.close()
    path = Path(output).resolve()
    path.write_text(render_html(report), encoding="utf-8")
    print(f"Report: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:2]))
