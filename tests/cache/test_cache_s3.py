"""The artifact cache on an S3-protocol object store (moto's server on 127.0.0.1, via s3fs)."""

from __future__ import annotations

import json
import socket
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from cache_support import Booby, Calls, pickle_entry
from s3_support import Bucket, walk_files

from wattwise.cache import (
    ArtifactCache,
    ForeignEntryError,
    FsspecStore,
    UnsafeEntryError,
    cached,
)
from wattwise.cache._cache import current_user
from wattwise.cache._stores import redact_url
from wattwise.cli import main
from wattwise.exceptions import CacheError, CacheWarning
from wattwise.store import open_store


def _object(bucket: Bucket, key: str) -> str:
    return f"{bucket.name}/team-cache/entries/{key[:2]}/{key}.wwc"


def _as(monkeypatch: pytest.MonkeyPatch, user: str) -> None:
    """Make ``getpass.getuser()`` name ``user`` (it reads LOGNAME, then USER)."""
    monkeypatch.setenv("LOGNAME", user)
    monkeypatch.setenv("USER", user)


def test_a_result_round_trips_through_the_bucket_and_its_hit_is_booked(s3: Bucket) -> None:
    cache = ArtifactCache(s3.url)
    assert isinstance(cache.store, FsspecStore) and cache.store.is_object_store
    assert not cache.is_private
    calls = Calls()

    @cached(cache=cache)
    def features(n: int) -> dict[str, Any]:
        calls()
        return {"x": np.arange(n, dtype=np.float32), "n": n}

    first = features(1000)
    second = features(1000)
    assert calls.n == 1
    np.testing.assert_array_equal(second["x"], first["x"])
    assert second["n"] == 1000
    key = features.cache_key(1000)
    # One object per entry at its final key, no temporary object left behind.
    assert list(s3.objects()) == [_object(s3, key)]
    assert cache.store.list_temporary() == []
    [entry] = cache.entries()
    assert entry.key == key and entry.writer == f"{current_user()}@{socket.gethostname()}"
    assert not entry.is_foreign() and cache.verify() == []
    [event] = open_store().reuse_events()
    assert event.cache_key == key and event.cache_url == s3.url


def test_storage_options_reach_the_server_without_any_environment(
    s3: Bucket, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(name)
    cache = ArtifactCache(s3.url, storage_options=s3.server.options())
    info = cache.save("cd" * 32, np.ones(3), header={"function": "t:f"})
    assert cache.load(info.key) is not None
    assert list(s3.objects()) == [_object(s3, info.key)]


def test_a_missing_bucket_is_reported_and_never_created(s3: Bucket) -> None:
    url = f"s3://{s3.name}-typo/team-cache"
    calls = Calls()

    @cached(cache=url)
    def produce() -> list[int]:
        calls()
        return [1, 2]

    with pytest.warns(CacheWarning, match=r"-typo/team-cache.*bucket does not exist"):
        assert produce() == [1, 2]
    assert calls.n == 1
    s3.fs.invalidate_cache()
    assert not s3.fs.exists(f"{s3.name}-typo")


def _flip(data: bytes) -> bytes:
    middle = len(data) // 2
    return data[:middle] + bytes([data[middle] ^ 0x01]) + data[middle + 1 :]


@pytest.mark.parametrize(
    ("damage", "why"),
    [
        (_flip, "content hash mismatch"),
        (lambda data: data[: len(data) - 100], "content hash mismatch|truncated"),
        (lambda data: b"", "truncated"),
    ],
    ids=["flipped-bit", "truncated", "empty"],
)
def test_a_corrupt_object_is_reported_removed_and_recomputed(
    s3: Bucket, damage: Any, why: str
) -> None:
    calls = Calls()

    @cached(cache=s3.url)
    def produce(n: int) -> np.ndarray:
        calls()
        return np.arange(n, dtype=np.int64)

    produce(5000)
    key = produce.cache_key(5000)
    path = _object(s3, key)
    s3.fs.pipe_file(path, damage(s3.fs.cat_file(path)))
    assert [p.kind for p in ArtifactCache(s3.url).verify()] == ["corrupt"]
    with pytest.warns(CacheWarning, match=rf"{key[:16]}.*damaged \(({why})"):
        again = produce(5000)
    assert calls.n == 2  # recomputed: the damaged bytes were never used
    np.testing.assert_array_equal(again, np.arange(5000))
    assert ArtifactCache(s3.url).verify() == []  # replaced by a good entry


def test_an_entry_copied_under_another_key_is_corrupt(s3: Bucket) -> None:
    cache = ArtifactCache(s3.url)
    cache.save("aa" * 32, np.zeros(4), header={"function": "t:f"})
    s3.fs.copy(_object(s3, "aa" * 32), _object(s3, "bb" * 32))
    with pytest.warns(CacheWarning, match="written for key"):
        assert cache.load("bb" * 32) is None
    assert cache.load("aa" * 32) is not None


def test_a_pickle_in_the_bucket_is_never_unpickled(s3: Bucket, tmp_path: Path) -> None:
    marker = tmp_path / "unpickled"
    key = "ef" * 32
    s3.fs.pipe_file(_object(s3, key), pickle_entry(key, marker))
    with pytest.raises(UnsafeEntryError, match="shared cache"):
        ArtifactCache(s3.url).load(key, allow_pickle=True)
    # Declaring the bucket private does not make its writers known: still refused.
    private = ArtifactCache(s3.url, is_private=True)
    with pytest.raises(UnsafeEntryError, match="writers wattwise cannot check"):
        private.load(key, allow_pickle=True)
    assert [(p.kind, p.detail) for p in ArtifactCache(s3.url).verify()] == [
        ("unsafe", "pickled data in a shared cache")
    ]
    assert not marker.exists()


def test_another_users_safe_entry_is_used_once_its_hash_checks(
    s3: Bucket, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = Calls()

    @cached(cache=s3.url)
    def produce(n: int) -> np.ndarray:
        calls()
        return np.linspace(0, 1, n)

    _as(monkeypatch, "alice")
    produce(64)
    _as(monkeypatch, "bob")
    np.testing.assert_array_equal(produce(64), np.linspace(0, 1, 64))
    assert calls.n == 1
    [entry] = ArtifactCache(s3.url).entries()
    assert entry.writer is not None and entry.writer.startswith("alice@")
    assert entry.is_foreign() and not entry.is_foreign("alice")


def test_a_pickle_written_by_another_user_is_refused_even_in_a_private_cache(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    marker = tmp_path / "unpickled"
    cache = ArtifactCache()  # the private local cache: the folder checks pass
    assert cache.is_private
    key = "12" * 32
    _as(monkeypatch, "alice")
    cache.save(key, Booby(marker), header={"function": "t:f"}, allow_pickle=True)
    _as(monkeypatch, "bob")
    with pytest.raises(ForeignEntryError, match=r"written by alice@\S+, not by you \(bob\)"):
        cache.load(key, allow_pickle=True)
    assert not marker.exists()
    [problem] = cache.verify()
    assert problem.kind == "unsafe" and problem.detail.startswith("pickled data written by alice@")
    # The writer itself loads it: the refusal is about who wrote it, nothing else.
    _as(monkeypatch, "alice")
    assert cache.load(key, allow_pickle=True) is not None
    assert marker.exists()


class Opaque:
    """A value with no safe format: only pickle can store it."""

    def __init__(self, n: int) -> None:
        self.n = n


def test_a_cached_function_recomputes_over_another_users_pickle(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls = Calls()

    @cached(allow_pickle=True)
    def produce(n: int) -> Opaque:
        calls()
        return Opaque(n)

    _as(monkeypatch, "alice")
    produce(3)
    _as(monkeypatch, "bob")
    with pytest.warns(CacheWarning, match="written by alice@"):
        assert produce(3).n == 3
    assert calls.n == 2
    [entry] = produce.cache.entries()
    assert entry.writer is not None and entry.writer.startswith("bob@")  # bob's own now
    assert produce(3).n == 3 and calls.n == 2


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def test_an_unreachable_store_costs_the_cache_not_the_job(s3: Bucket) -> None:
    options = {
        **s3.server.options(),
        "endpoint_url": f"http://127.0.0.1:{_closed_port()}",
        "config_kwargs": {"retries": {"max_attempts": 1}, "connect_timeout": 1},
    }
    cache = ArtifactCache(f"s3://{s3.name}/team-cache", storage_options=options)
    calls = Calls()

    @cached(cache=cache)
    def produce() -> int:
        calls()
        return 42

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert produce() == 42
    assert calls.n == 1
    # One warning: a store that could not be read is not also written on the same call.
    [warning] = [w for w in caught if issubclass(w.category, CacheWarning)]
    assert "Could not connect to the endpoint URL" in str(warning.message)
    assert "Computing without the cache" in str(warning.message)


def test_missing_credentials_are_one_line_and_the_job_goes_on(
    s3: Bucket, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(name)
    options = {"config_kwargs": {"retries": {"max_attempts": 1}}}
    cache = ArtifactCache(s3.url, storage_options=options)
    with pytest.raises(CacheError, match=r"Unable to locate credentials \(NoCredentialsError\)"):
        cache.load("34" * 32)

    @cached(cache=cache)
    def produce() -> str:
        return "done"

    with pytest.warns(CacheWarning, match="credentials"):
        assert produce() == "done"


def test_a_password_in_a_cache_url_is_masked() -> None:
    assert redact_url("ftp://me:hunter2@files.example/cache") == "ftp://me:***@files.example/cache"
    assert redact_url("s3://bucket/cache") == "s3://bucket/cache"
    assert redact_url("/plain/path") == "/plain/path"


def test_the_dummy_credentials_are_written_nowhere(s3: Bucket, tmp_path: Path) -> None:
    @cached(cache=s3.url)
    def produce(n: int) -> np.ndarray:
        return np.ones(n)

    produce(10)
    produce(10)
    secret = s3.server.secret.encode()
    objects = s3.objects()
    assert objects and not any(secret in data for data in objects.values())
    files = list(walk_files(tmp_path))
    assert any(p.name == "ledger.db" for p in files)
    assert not [p for p in files if secret in p.read_bytes()]


def test_cache_commands_work_on_the_bucket_and_show_the_writer(
    s3: Bucket, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _as(monkeypatch, "alice")
    key = ArtifactCache(s3.url).save("56" * 32, np.ones(8), header={"function": "t:f"}).key
    _as(monkeypatch, "bob")
    assert main(["cache", "ls", "--json", "--cache", s3.url]) == 0
    [listed] = json.loads(capsys.readouterr().out)["entries"]
    assert listed["key"] == key and listed["writer"] == f"alice@{socket.gethostname()}"
    assert main(["cache", "verify", "--cache", s3.url]) == 0
    capsys.readouterr()
    s3.fs.pipe_file(_object(s3, key), b"WWCACHE1 not an entry")
    assert main(["cache", "verify", "--json", "--cache", s3.url]) == 1
    [problem] = json.loads(capsys.readouterr().out)["problems"]
    assert (problem["key"], problem["kind"], problem["is_removed"]) == (key, "corrupt", False)
    assert main(["cache", "verify", "--fix", "--json", "--cache", s3.url]) == 0
    [problem] = json.loads(capsys.readouterr().out)["problems"]
    assert problem["is_removed"] and s3.objects() == {}


def test_an_empty_object_is_listed_as_damaged_not_an_error(s3: Bucket) -> None:
    cache = ArtifactCache(s3.url)
    key = "78" * 32
    s3.fs.pipe_file(_object(s3, key), b"")  # S3 refuses any byte range of an empty object
    [entry] = cache.entries()
    assert entry.key == key and entry.function.startswith("? (damaged")
    [problem] = cache.verify(fix=True)
    assert (problem.kind, problem.is_removed) == ("corrupt", True)
    assert cache.entries() == []


def test_gc_on_the_bucket_evicts_entries_and_leftover_uploads(s3: Bucket) -> None:
    cache = ArtifactCache(s3.url)
    cheap = cache.save("9a" * 32, np.zeros(4000), header={"function": "t:cheap",
                                                          "cost": {"energy_j": 1.0}})  # fmt: skip
    dear = cache.save("9b" * 32, np.zeros(4000), header={"function": "t:dear",
                                                         "cost": {"energy_j": 500.0}})  # fmt: skip
    leftover = f"{s3.name}/team-cache/tmp/{'9c' * 32}.0123.part"  # a crashed writer's upload
    s3.fs.pipe_file(leftover, b"half an entry")
    assert [t[0] for t in cache.store.list_temporary()] == [leftover.rsplit("/", 1)[-1]]
    result = cache.gc(max_size_bytes=dear.size_bytes, now=time.time() + 7200)
    assert [e.key for e in result.removed] == [cheap.key] and result.temporary_removed == 1
    assert list(s3.objects()) == [_object(s3, dear.key)]


def test_only_object_stores_are_written_without_folders(s3: Bucket, tmp_path: Path) -> None:
    stores = {url: ArtifactCache(url).store for url in
              (s3.url, "memory://wattwise-tests/folders", f"file://{tmp_path}/c")}  # fmt: skip
    kinds = {url: isinstance(st, FsspecStore) and st.is_object_store for url, st in stores.items()}
    assert kinds == {s3.url: True, "memory://wattwise-tests/folders": False,
                     f"file://{tmp_path}/c": False}  # fmt: skip
    # A folder file system still gets its folders made before the first write.
    ArtifactCache(f"file://{tmp_path}/c").save("ab" * 32, [1], header={"function": "t:f"})
    assert (tmp_path / "c" / "entries" / "ab" / f"{'ab' * 32}.wwc").is_file()


def test_a_damaged_object_that_cannot_be_deleted_is_still_reported_and_skipped(
    s3: Bucket, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = ArtifactCache(s3.url)
    key = cache.save("ba" * 32, np.arange(100), header={"function": "t:f"}).key
    s3.fs.pipe_file(_object(s3, key), _flip(s3.fs.cat_file(_object(s3, key))))

    def refuse(_key: str) -> bool:  # what a role without s3:DeleteObject meets
        msg = "Cannot delete from the cache at ...: Access Denied."
        raise CacheError(msg)

    monkeypatch.setattr(cache.store, "delete", refuse)
    with pytest.warns(CacheWarning, match=r"damaged \(content hash.*could not be removed"):
        assert cache.load(key) is None
