from __future__ import annotations

import fractions
import math
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from cache_support import Calls, entry_path, memory_url, plant_pickle

import wattwise
from wattwise.cache import ArtifactCache, UnsafeEntryError, cached
from wattwise.exceptions import CacheError, CacheWarning


def test_safe_formats_round_trip_exactly() -> None:
    calls = Calls()

    @cached
    def produce() -> Any:
        calls()
        return {
            "ints": [1, -2, 10**30], "floats": (0.1, -0.0, math.inf, math.nan), "text": "é",
            "none": None, "flags": {True, False}, "frozen": frozenset({"a"}), 3: "int key",
            ("tuple", "key"): b"\x00bytes", "mutable": bytearray(b"ba"), "c": 1 + 2j,
            "array": np.arange(6, dtype=np.int16).reshape(2, 3), "f32": np.float32(1.5),
            "fortran": np.asfortranarray(np.ones((2, 2))), "empty": np.zeros((0, 3)),
            "strings": np.array(["a", "bc"]), "record": np.zeros(2, dtype=[("x", "<i4")]),
        }  # fmt: skip

    first = produce()
    second = produce()
    assert calls.n == 1
    assert second["ints"] == [1, -2, 10**30] and isinstance(second["floats"], tuple)
    assert math.copysign(1, second["floats"][1]) == -1 and math.isnan(second["floats"][3])
    assert second[("tuple", "key")] == b"\x00bytes" and second["mutable"] == bytearray(b"ba")
    assert second["flags"] == {True, False} and isinstance(second["frozen"], frozenset)
    assert second["c"] == 1 + 2j and second[3] == "int key" and second["text"] == "é"
    for name in ("array", "fortran", "empty", "strings", "record"):
        assert second[name].dtype == first[name].dtype
        np.testing.assert_array_equal(second[name], first[name])
    assert isinstance(second["f32"], np.float32) and second["f32"] == 1.5


def test_file_and_folder_results_come_back_as_verified_copies(tmp_path: Path) -> None:
    calls = Calls()

    @cached
    def export(n: int) -> tuple[Path, Path]:
        calls()
        out = tmp_path / f"out{n}"
        (out / "deep").mkdir(parents=True, exist_ok=True)
        (out / "deep" / "w.bin").write_bytes(bytes(range(n)))
        (tmp_path / "model.txt").write_text(f"model {n}")
        return tmp_path / "model.txt", out

    export(5)
    model, folder = export(5)
    assert calls.n == 1
    assert model.read_text() == "model 5" and model.parent != tmp_path
    assert (folder / "deep" / "w.bin").read_bytes() == bytes(range(5))
    assert ".wattwise" in model.parts  # materialised under the project's cache folder


def test_results_without_a_safe_format_are_returned_uncached() -> None:
    calls = Calls()

    @cached
    def produce() -> fractions.Fraction:
        calls()
        return fractions.Fraction(1, 3)

    with pytest.warns(CacheWarning, match="no safe format.*allow_pickle=True"):
        assert produce() == fractions.Fraction(1, 3)
    with pytest.warns(CacheWarning):
        produce()
    assert calls.n == 2


def test_pickle_is_opt_in_for_the_private_cache() -> None:
    calls = Calls()

    @cached(allow_pickle=True)
    def produce() -> fractions.Fraction:
        calls()
        return fractions.Fraction(1, 3)

    assert produce() == produce() == fractions.Fraction(1, 3)
    assert calls.n == 1
    entry = produce.cache.entries()[0]
    assert entry.has_pickle and "pickle" in entry.formats


def test_pickle_is_refused_with_a_shared_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WATTWISE_CACHE", memory_url())
    calls = Calls()

    @cached(allow_pickle=True)
    def produce() -> int:
        calls()
        return 1

    with pytest.raises(CacheError, match="shared"):
        produce()
    assert calls.n == 0  # refused before any work
    with pytest.raises(CacheError, match="private local cache"):
        ArtifactCache(memory_url()).save("a" * 64, 1, header={}, allow_pickle=True)


# -- corruption --------------------------------------------------------------------------


def _flip(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:-10])


def _empty(path: Path) -> None:
    path.write_bytes(b"")


def _garbage(path: Path) -> None:
    path.write_bytes(b"not a cache entry at all, just some bytes" * 3)


def _digest_only(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[:-32] + bytes(32))


@pytest.mark.parametrize(
    "damage",
    [
        pytest.param(_flip, id="flipped-bit"),
        pytest.param(_truncate, id="truncated"),
        pytest.param(_empty, id="empty"),
        pytest.param(_garbage, id="garbage"),
        pytest.param(_digest_only, id="bad-digest"),
    ],
)
def test_a_damaged_entry_is_reported_removed_and_recomputed(damage: Any) -> None:
    calls = Calls()

    @cached
    def produce(n: int) -> np.ndarray:
        calls()
        return np.arange(n, dtype=np.float64)

    produce(1000)
    path = entry_path(produce.cache, produce.cache_key(1000))
    damage(path)
    with pytest.warns(CacheWarning, match="damaged.*removed and will be recomputed"):
        value = produce(1000)
    np.testing.assert_array_equal(value, np.arange(1000.0))
    assert calls.n == 2
    assert produce.cache.verify() == []  # the recomputed entry is good
    produce(1000)
    assert calls.n == 2


def test_an_entry_copied_under_another_key_is_refused() -> None:
    calls = Calls()

    @cached
    def produce(n: int) -> int:
        calls()
        return n

    produce(1)
    produce(2)
    one = entry_path(produce.cache, produce.cache_key(1))
    two = entry_path(produce.cache, produce.cache_key(2))
    two.write_bytes(one.read_bytes())
    with pytest.warns(CacheWarning, match="written for key"):
        assert produce(2) == 2
    assert calls.n == 3


def test_verify_finds_and_fixes_damage() -> None:
    @cached
    def produce(n: int) -> int:
        return n

    for n in range(3):
        produce(n)
    cache = produce.cache
    _flip(entry_path(cache, produce.cache_key(1)))
    problems = cache.verify()
    assert [(p.key, p.kind, p.is_removed) for p in problems] == [
        (produce.cache_key(1), "corrupt", False)
    ]
    assert cache.verify(fix=True)[0].is_removed
    assert cache.verify() == [] and len(cache.entries()) == 2


# -- planted pickles -------------------------------------------------------------------


def test_a_pickle_planted_in_a_shared_cache_is_refused_unloaded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = memory_url()
    monkeypatch.setenv("WATTWISE_CACHE", url)
    marker = tmp_path / "pwned"
    calls = Calls()

    @cached
    def produce(n: int) -> int:
        calls()
        return n

    cache = ArtifactCache(url)
    assert not cache.is_private
    plant_pickle(cache, produce.cache_key(7), marker)
    with pytest.raises(UnsafeEntryError, match=r"shared cache .* pickled data"):
        produce(7)
    assert not marker.exists() and calls.n == 0
    problems = cache.verify()
    assert [p.kind for p in problems] == ["unsafe"] and not marker.exists()
    assert [e.has_pickle for e in cache.entries()] == [True]
    cache.verify(fix=True)
    assert produce(7) == 7 and calls.n == 1 and not marker.exists()


def test_a_raw_pickle_dropped_at_an_entry_path_is_never_unpickled(tmp_path: Path) -> None:
    from cache_support import Booby

    marker = tmp_path / "pwned"
    calls = Calls()

    @cached
    def produce(n: int) -> int:
        calls()
        return n

    path = entry_path(produce.cache, produce.cache_key(3))
    path.parent.mkdir(parents=True)
    path.write_bytes(pickle.dumps(Booby(marker)))
    with pytest.warns(CacheWarning, match="not a wattwise cache entry"):
        assert produce(3) == 3
    assert not marker.exists() and calls.n == 1


def test_a_pickle_in_the_private_cache_needs_the_functions_consent(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"

    @cached
    def produce(n: int) -> int:
        return n

    plant_pickle(produce.cache, produce.cache_key(1), marker)
    with pytest.raises(UnsafeEntryError, match="does not allow pickle"):
        produce(1)
    assert not marker.exists()


def test_the_default_cache_is_private_and_urls_are_shared(tmp_path: Path) -> None:
    assert ArtifactCache().is_private
    assert ArtifactCache(Path(".wattwise/cache")).is_private
    assert not ArtifactCache(tmp_path / "team").is_private
    assert ArtifactCache(tmp_path / "mine", is_private=True).is_private
    assert not ArtifactCache(memory_url()).is_private
    assert "private" in repr(ArtifactCache())
    with wattwise.track("x", meters=[]):  # the public names resolve lazily
        assert wattwise.cached is cached and wattwise.ArtifactCache is ArtifactCache
