from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest
from cache_support import entry_path, memory_url

import wattwise
from wattwise.cache import ArtifactCache, cached, parse_age, parse_size
from wattwise.cli import main
from wattwise.exceptions import InvalidParameterError
from wattwise.testing import FakeMeter


def fill() -> tuple[ArtifactCache, list[str]]:
    """Three entries: a cheap big one, an expensive small one, a medium one."""

    @cached
    def stage(n: int, work_s: float) -> np.ndarray:
        end = time.perf_counter() + work_s
        while time.perf_counter() < end:
            pass
        return np.zeros(n)

    with wattwise.track("fill", meters=[FakeMeter({"cpu:0": 50.0})]):
        stage(20_000, 0.0)  # big, nearly free
        stage(10, 0.2)  # small, costly
        stage(1_000, 0.05)
        stage(10, 0.2)  # a hit
    keys = [stage.cache_key(20_000, 0.0), stage.cache_key(10, 0.2), stage.cache_key(1_000, 0.05)]
    return stage.cache, keys


def test_ls_info_and_json(capsys: pytest.CaptureFixture[str]) -> None:
    _, keys = fill()
    assert main(["cache", "ls"]) == 0
    out = capsys.readouterr().out
    assert out.count("test_cache_cli:fill.<locals>.stage") == 3
    assert "3 entries" in out and "1 hits in this ledger avoided" in out
    assert main(["cache", "ls", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["is_private"] is True
    hits = {e["key"]: e["hits"] for e in data["entries"]}
    assert hits[keys[1]] == 1 and hits[keys[0]] == 0
    assert all(e["cost"]["energy_j"] >= 0 for e in data["entries"])

    assert main(["cache", "info", keys[1][:8]]) == 0
    out = capsys.readouterr().out
    assert keys[1] in out and "measured" in out and "n: builtins.int" in out
    assert "hits      1 in this ledger" in out
    assert main(["cache", "info", keys[1][:8], "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["key_parts"]["arguments"]["work_s"]["type"] == "builtins.float"
    assert info["hits"][0]["energy_avoided_j"] == pytest.approx(info["cost"]["energy_j"])
    assert main(["cache", "info", "zzzz"]) == 1
    assert "No cache entries match 'zzzz'" in capsys.readouterr().err


def test_verify_exit_codes(capsys: pytest.CaptureFixture[str]) -> None:
    cache, keys = fill()
    assert main(["cache", "verify"]) == 0
    assert "3 entries checked" in capsys.readouterr().out
    path = entry_path(cache, keys[2])
    path.write_bytes(path.read_bytes()[:100])
    assert main(["cache", "verify", "--json"]) == 1
    data = json.loads(capsys.readouterr().out)
    assert [p["key"] for p in data["problems"]] == [keys[2]]
    assert main(["cache", "verify", "--fix"]) == 0
    assert "removed" in capsys.readouterr().out
    assert not path.exists()


def test_gc_evicts_what_is_cheapest_to_recompute_first(
    capsys: pytest.CaptureFixture[str],
) -> None:
    cache, keys = fill()
    sizes = {e.key: e.size_bytes for e in cache.entries()}
    budget = sizes[keys[1]] + sizes[keys[2]]
    assert main(["cache", "gc", "--max-size", str(budget), "--dry-run"]) == 0
    assert "Would remove 1 entries" in capsys.readouterr().out
    assert len(cache.entries()) == 3
    assert main(["cache", "gc", "--max-size", str(budget), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert [e["key"] for e in data["removed"]] == [keys[0]]  # big and nearly free
    assert {e.key for e in cache.entries()} == {keys[1], keys[2]}
    result = cache.gc(max_size_bytes=0, evict="oldest")
    assert {e.key for e in result.removed} == {keys[1], keys[2]}
    assert cache.entries() == []


def test_gc_by_age_and_leftover_temporary_files(capsys: pytest.CaptureFixture[str]) -> None:
    cache, _ = fill()
    assert cache.gc(older_than_s=3600).removed == ()
    result = cache.gc(older_than_s=60, now=time.time() + 120)
    assert len(result.removed) == 3 and result.remaining_bytes == 0
    tmp = Path(cache.location) / "tmp"
    tmp.mkdir(exist_ok=True)
    (tmp / f"{'0' * 64}.dead.part").write_bytes(b"half")
    assert cache.gc(older_than_s=0, now=time.time() + 7200).temporary_removed == 1
    assert main(["cache", "gc", "--older-than", "30d"]) == 0
    assert "Removed 0 entries" in capsys.readouterr().out
    assert main(["cache", "gc"]) == 2
    assert "--max-size" in capsys.readouterr().err
    assert main(["cache", "gc", "--max-size", "lots"]) == 2


def test_cache_option_and_empty_shared_cache(capsys: pytest.CaptureFixture[str]) -> None:
    url = memory_url()
    assert main(["cache", "ls", "--cache", url]) == 0
    assert "is empty" in capsys.readouterr().out
    assert main(["cache", "ls", "--cache", url, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["is_private"] is False


@pytest.mark.parametrize(
    ("text", "expected"),
    [("2048", 2048), ("500MB", 500 * 10**6), ("10GiB", 10 * 2**30), ("1.5G", 1_500_000_000),
     ("3 kb", 3000), ("1KiB", 1024)],
)  # fmt: skip
def test_parse_size(text: str, expected: int) -> None:
    assert parse_size(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [("45", 45), ("45s", 45), ("90m", 5400), ("12h", 43200), ("30d", 2592000), ("2w", 1209600)],
)
def test_parse_age(text: str, expected: float) -> None:
    assert parse_age(text) == expected


@pytest.mark.parametrize("bad", ["", "ten", "-1d", "5y"])
def test_bad_sizes_and_ages(bad: str) -> None:
    with pytest.raises(InvalidParameterError):
        parse_age(bad)
    with pytest.raises(InvalidParameterError):
        parse_size(bad + "X")
