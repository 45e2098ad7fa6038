"""``wattwise cache ls`` and ``cache info`` name each entry's writer (``user@host``)."""

from __future__ import annotations

from pathlib import Path

import pytest
from cache_support import plant_pickle

import wattwise
from wattwise.cache import ArtifactCache, cached
from wattwise.cache._cache import writer_identity
from wattwise.cli import main
from wattwise.testing import FakeMeter


def test_the_listing_has_a_writer_column(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    @cached
    def square(x: int) -> int:
        return x * x

    with wattwise.track("fill", meters=[FakeMeter({"cpu:0": 10.0})]):
        assert square(4) == 16
    me = writer_identity()
    writer = f"{me['user']}@{me['host']}"
    # An entry whose header names no writer (as older releases wrote them).
    marker = tmp_path / "unpickled"
    plant_pickle(ArtifactCache(), "ab" * 32, marker)

    assert main(["cache", "ls"]) == 0
    header, *rows = capsys.readouterr().out.splitlines()[:3]
    assert header.split() == ["KEY", "FUNCTION", "WRITER", "SIZE", "WRITTEN", "ENERGY", "TO",
                              "PRODUCE", "HITS"]  # fmt: skip
    column = header.index("WRITER")
    by_key = {row.split()[0]: row[column:].split()[0] for row in rows}
    assert by_key == {square.cache_key(4)[:12]: writer, "ab" * 6: "unknown"}
    assert not marker.exists()  # listing never unpickles

    assert main(["cache", "info", square.cache_key(4)[:8]]) == 0
    assert f" ago by {writer}  size " in capsys.readouterr().out
