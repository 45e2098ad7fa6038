"""Pickle only from a cache no one else can write (safety contract, item 7).

Every planted entry here is a well-formed cache entry whose pickle, once loaded, creates a
marker file: the marker must never appear where the check refuses, and must appear in the
one control test where only the current user could have written the same entry.
"""

from __future__ import annotations

import fractions
import grp
import os
import pwd
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
from cache_support import Calls, entry_path, memory_url, pickle_entry, plant_pickle

from wattwise.cache import (
    ArtifactCache,
    CachedFunction,
    UnsafeLocationError,
    UnsafePickleError,
    cached,
    default_location,
)
from wattwise.cache._serialize import decode
from wattwise.cache._trust import location_problem
from wattwise.exceptions import CacheWarning

IS_ROOT = os.geteuid() == 0
needs_root = pytest.mark.skipif(
    not IS_ROOT,
    reason="NOT TESTED HERE: planting an entry as another user (setuid to nobody) and "
    "chgrp need root; CI runs the suite as root, run it as root to cover this",
)

# A child that drops to ``nobody`` and writes stdin into NAME inside the folder open as FD
# (reached through the descriptor: pytest's temporary folders are private to root).
PLANT = r"""
import os, sys
fd, name, uid, gid = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
data = sys.stdin.buffer.read()
os.setgroups([])
os.setgid(gid)
os.setuid(uid)
assert os.getuid() == uid and os.geteuid() == uid
out = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644, dir_fd=fd)
os.write(out, data)
os.close(out)
"""


def nobody() -> pwd.struct_passwd:
    return pwd.getpwnam("nobody")


def plant_as_nobody(folder: Path, name: str, data: bytes) -> None:
    who = nobody()
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        subprocess.run(
            [sys.executable, "-c", PLANT, str(fd), name, str(who.pw_uid), str(who.pw_gid)],
            input=data, pass_fds=(fd,), check=True, timeout=60,
        )  # fmt: skip
    finally:
        os.close(fd)


@pytest.fixture(autouse=True)
def private_project(tmp_path: Path, isolated_project: Path) -> Path:
    """Only the current user can write the project's folders (whatever the umask)."""
    for folder in [tmp_path, *(p for p in isolated_project.rglob("*") if p.is_dir()),
                   isolated_project]:  # fmt: skip
        folder.chmod(folder.stat().st_mode & ~0o022)
    return isolated_project


def fraction_producer(calls: Calls) -> CachedFunction[fractions.Fraction]:
    @cached(allow_pickle=True)
    def produce(n: int) -> fractions.Fraction:  # no safe format: stored as a pickle
        calls()
        return fractions.Fraction(n, 3)

    return produce


def refused(match: str) -> pytest.WarningsRecorder:
    return pytest.warns(CacheWarning, match=r"Refusing to unpickle cache entry .*" + match)


def test_a_clean_private_cache_loads_pickle_even_one_planted_by_its_owner(tmp_path: Path) -> None:
    # control: the same planted entry the other tests refuse IS loaded when only the
    # current user could have written it, so what refuses them is the ownership check
    calls = Calls()
    produce = fraction_producer(calls)
    assert produce(1) == produce(1) == fractions.Fraction(1, 3)
    assert calls.n == 1
    marker = tmp_path / "loaded"
    plant_pickle(produce.cache, produce.cache_key(2), marker)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        produce(2)
    assert marker.exists() and calls.n == 1
    entry = entry_path(produce.cache, produce.cache_key(1))
    assert location_problem(default_location(), entry) is None


@needs_root
def test_a_pickle_planted_by_another_user_in_a_world_writable_cache_never_runs(
    tmp_path: Path,
) -> None:
    marker = tmp_path / "pwned"
    calls = Calls()
    produce = fraction_producer(calls)
    key = produce.cache_key(1)
    path = entry_path(produce.cache, key)
    path.parent.mkdir(parents=True)
    root = default_location()
    for folder in (root, root / "entries", path.parent):
        folder.chmod(0o777)
    plant_as_nobody(path.parent, path.name, pickle_entry(key, marker))
    assert path.stat().st_uid == nobody().pw_uid  # really another user's file

    with refused(rf"{root} is writable by others \(mode 0777, owner root .*chmod -R go-w {root}"):
        assert produce(1) == fractions.Fraction(1, 3)
    assert calls.n == 1 and not marker.exists()
    # still refused while the folder stays writable, even now that the entry is ours
    with refused("writable by others"):
        produce(1)
    assert calls.n == 2
    # the fix the message gives works
    subprocess.run(["chmod", "-R", "go-w", str(root)], check=True, timeout=60)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert produce(1) == fractions.Fraction(1, 3)
    assert calls.n == 2 and not marker.exists()


@needs_root
def test_an_entry_owned_by_another_user_is_refused_and_verify_removes_it(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    calls = Calls()
    produce = fraction_producer(calls)
    key = produce.cache_key(4)
    path = entry_path(produce.cache, key)
    path.parent.mkdir(parents=True)
    path.parent.chmod(0o777)
    plant_as_nobody(path.parent, path.name, pickle_entry(key, marker))
    path.parent.chmod(0o755)  # every folder is private again; the file stays nobody's

    with pytest.raises(UnsafeLocationError, match=r"owned by nobody \(uid 65534\)") as err:
        produce.cache.load(key, allow_pickle=True)
    assert "\n" not in str(err.value) and "wattwise cache verify --fix" in str(err.value)
    problems = produce.cache.verify()
    assert [(p.key, p.kind) for p in problems] == [(key, "unsafe")]
    assert "owned by nobody" in problems[0].detail and not marker.exists()
    assert produce.cache.verify(fix=True)[0].is_removed and not path.exists()
    assert produce(4) == fractions.Fraction(4, 3) and calls.n == 1 and not marker.exists()


@needs_root
def test_a_cache_folder_owned_by_another_user_is_refused(tmp_path: Path) -> None:
    theirs = tmp_path / "theirs"
    cache = ArtifactCache(theirs, is_private=True)
    cache.save("9" * 64, fractions.Fraction(1, 9), header={}, allow_pickle=True)
    os.chown(theirs, nobody().pw_uid, nobody().pw_gid)  # mode 0755, yet nobody may swap entries
    with pytest.raises(UnsafeLocationError, match=rf"{theirs} is owned by nobody .*chown -R root"):
        cache.load("9" * 64, allow_pickle=True)


@needs_root
def test_a_folder_writable_by_a_shared_group_is_refused(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    produce = fraction_producer(Calls())
    key = produce.cache_key(5)
    path = entry_path(produce.cache, key)
    path.parent.mkdir(parents=True)
    plant_pickle(produce.cache, key, marker)
    os.chown(path.parent, 0, nobody().pw_gid)  # a group the current user is not alone in
    path.parent.chmod(0o775)
    with refused(rf"{path.parent} is writable by group \S+ \(gid {nobody().pw_gid}\)"):
        produce(5)
    assert not marker.exists()


@needs_root
def test_a_folder_writable_by_your_own_private_group_is_accepted(tmp_path: Path) -> None:
    # umask 002 setups: group-writable is fine when the group's only member is you
    members = {p.pw_name for p in pwd.getpwall() if p.pw_gid == 0} | set(grp.getgrgid(0).gr_mem)
    if members != {"root"}:
        pytest.skip(f"NOT TESTED HERE: group root has members {sorted(members)}, not root alone")
    mine = ArtifactCache(tmp_path / "upg", is_private=True)
    mine.save("8" * 64, fractions.Fraction(1, 8), header={}, allow_pickle=True)
    os.chown(tmp_path / "upg", 0, 0)
    (tmp_path / "upg").chmod(0o775)
    hit = mine.load("8" * 64, allow_pickle=True)
    assert hit is not None and hit.value == fractions.Fraction(1, 8)


def test_a_cache_root_that_links_to_a_world_writable_folder_is_refused(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    link = Path(".wattwise/cache")
    link.symlink_to(shared)
    marker = tmp_path / "pwned"
    calls = Calls()
    produce = fraction_producer(calls)
    assert produce.cache.is_private  # the default location, through the link
    key = produce.cache_key(3)
    plant_pickle(produce.cache, key, marker)
    with refused(rf"{shared} is writable by others \(mode 0777"):
        assert produce(3) == fractions.Fraction(3, 3)
    assert calls.n == 1 and not marker.exists()
    assert [p.kind for p in produce.cache.verify()] == ["unsafe"] and not marker.exists()


def test_an_entry_that_links_outside_the_cache_is_refused(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    calls = Calls()
    produce = fraction_producer(calls)
    key = produce.cache_key(6)
    elsewhere = tmp_path / "elsewhere.wwc"
    elsewhere.write_bytes(pickle_entry(key, marker))
    path = entry_path(produce.cache, key)
    path.parent.mkdir(parents=True)
    path.symlink_to(elsewhere)
    with refused(rf"{path} leads to {elsewhere}, outside the cache folder"):
        produce(6)
    assert calls.n == 1 and not marker.exists()


def test_a_sticky_folder_above_the_cache_is_accepted_but_not_as_the_cache(tmp_path: Path) -> None:
    sticky = tmp_path / "tmp"
    sticky.mkdir()
    sticky.chmod(0o1777)  # like /tmp: others may create, but not rename or remove ours
    mine = sticky / "mine"
    mine.mkdir(mode=0o755)
    fine = ArtifactCache(mine / "cache", is_private=True)
    fine.save("a" * 64, fractions.Fraction(1, 7), header={}, allow_pickle=True)
    hit = fine.load("a" * 64, allow_pickle=True)
    assert hit is not None and hit.value == fractions.Fraction(1, 7)

    marker = tmp_path / "pwned"
    bad = ArtifactCache(sticky, is_private=True)  # inside the cache, sticky is not enough
    plant_pickle(bad, "b" * 64, marker)
    with pytest.raises(UnsafeLocationError, match=rf"{sticky} is writable by others \(mode 1777"):
        bad.load("b" * 64, allow_pickle=True)
    assert not marker.exists()


def test_safe_formats_still_load_from_a_writable_folder(tmp_path: Path) -> None:
    # only pickle runs the writer's code: arrays, JSON values, bytes load from anywhere
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o777)
    shared.chmod(0o777)
    cache = ArtifactCache(shared, is_private=True)
    cache.save("c" * 64, {"loss": 0.25, "raw": b"\x00"}, header={}, allow_pickle=True)
    hit = cache.load("c" * 64, allow_pickle=True)
    assert hit is not None and hit.value == {"loss": 0.25, "raw": b"\x00"}


def test_private_fsspec_caches_memory_is_trusted_file_urls_are_checked(tmp_path: Path) -> None:
    memory = ArtifactCache(memory_url(), is_private=True)
    memory.save("d" * 64, fractions.Fraction(2, 5), header={}, allow_pickle=True)
    hit = memory.load("d" * 64, allow_pickle=True)
    assert hit is not None and hit.value == fractions.Fraction(2, 5)

    shared = tmp_path / "nfs"
    shared.mkdir()
    shared.chmod(0o777)
    marker = tmp_path / "pwned"
    url = ArtifactCache(f"file://{shared}", is_private=True)
    plant_pickle(url, "e" * 64, marker)
    with pytest.raises(UnsafeLocationError, match=rf"{shared} is writable by others"):
        url.load("e" * 64, allow_pickle=True)
    assert not marker.exists()


def test_decoding_never_unpickles_unless_the_caller_allowed_it(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    from wattwise.cache import _container

    header, members = _container.unpack(pickle_entry("f" * 64, marker), "f" * 64)
    with pytest.raises(UnsafePickleError, match="did not allow pickle"):
        decode(header["value"]["spec"], members)
    assert not marker.exists()
    decode(header["value"]["spec"], members, allow_pickle=True)
    assert marker.exists()  # the same bytes do run code once allowed: the guard matters


def test_a_fifo_planted_at_an_entry_path_does_not_block_the_call() -> None:
    import threading

    calls = Calls()

    @cached
    def produce(n: int) -> int:
        calls()
        return n

    path = entry_path(produce.cache, produce.cache_key(8))
    path.parent.mkdir(parents=True)
    os.mkfifo(path)
    results: list[int] = []
    worker = threading.Thread(target=lambda: results.append(produce(8)), daemon=True)
    worker.start()
    worker.join(timeout=20)
    if worker.is_alive():  # blocked opening the FIFO: unblock it, then fail
        os.close(os.open(path, os.O_WRONLY | os.O_NONBLOCK))
        worker.join(timeout=20)
        pytest.fail("reading a FIFO planted at an entry's path blocked the cached call")
    assert results == [8] and calls.n == 1
    assert path.is_file()  # the FIFO was replaced by a real entry, which now hits
    assert produce(8) == 8 and calls.n == 1


def test_cache_verify_lists_a_pickle_someone_else_could_have_written(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from wattwise.cli import main

    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    Path(".wattwise/cache").symlink_to(shared)
    marker = tmp_path / "pwned"
    plant_pickle(ArtifactCache(), "7" * 64, marker)
    assert main(["cache", "verify"]) == 1
    captured = capsys.readouterr()
    said = captured.out + captured.err
    assert "7777777777777777" in said and "unsafe" in said
    assert f"{shared} is writable by others (mode 0777" in said
    main(["cache", "verify", "--fix"])
    capsys.readouterr()
    assert main(["cache", "verify"]) == 0
    assert ArtifactCache().entries() == [] and not marker.exists()
