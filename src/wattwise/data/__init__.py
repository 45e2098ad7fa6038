"""Data shipped with wattwise: grid intensity, hardware power, PUE, embodied carbon.

Every file here is copied from a cited public source; ``PROVENANCE.md`` beside this module
says where each came from (repository, commit, licence) and ``LICENSES/`` holds the licence
texts. Nothing is downloaded at run time.
"""

from __future__ import annotations

import csv
import functools
import io
import json
from importlib import resources
from typing import Any


def read_text(relpath: str) -> str:
    """Text of a shipped data file, by its path under ``wattwise/data`` (``grid/x.csv``)."""
    ref = resources.files(__name__).joinpath(*relpath.split("/"))
    return ref.read_text(encoding="utf-8-sig")


@functools.cache
def read_csv(relpath: str, *, skip_rows: int = 0) -> tuple[dict[str, str], ...]:
    """Rows of a shipped CSV file as dicts (cached per process).

    Args:
        relpath: Path under ``wattwise/data``.
        skip_rows: Lines to drop before the header (some upstream files carry a units row
            above the real header).
    """
    text = read_text(relpath)
    lines = io.StringIO(text)
    for _ in range(skip_rows):
        lines.readline()
    return tuple(csv.DictReader(lines))


@functools.cache
def read_json(relpath: str) -> Any:
    """Parsed content of a shipped JSON file (cached per process)."""
    return json.loads(read_text(relpath))
