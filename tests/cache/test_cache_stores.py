from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from cache_support import Calls, memory_url

from wattwise.cache import ArtifactCache, FsspecStore, LocalStore, cached

PRODUCER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    import numpy as np
    import wattwise

    go, me = Path(sys.argv[1]), sys.argv[2]
    partner = sys.argv[3] if len(sys.argv) > 3 else None

    @wattwise.cached
    def slow(n):
        Path(f"computed-{me}").touch()
        if partner is not None:  # a race on purpose: both computing before either stores
            deadline = time.monotonic() + 120
            while not Path(f"computed-{partner}").exists():
                if time.monotonic() > deadline:
                    sys.exit(f"{partner} never started computing: no race to test")
                time.sleep(0.002)
        return np.arange(n, dtype=np.int64)

    Path(f"ready-{me}").touch()
    while not go.exists():
        time.sleep(0.002)
    print(int(slow(200_000).sum()))
    """
)


def _spawn(me: str, partner: str, env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "producer.py", "go", me, partner], stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip


def _cache_env(
    tmp_path: Path, kind: str, request: pytest.FixtureRequest
) -> tuple[dict[str, str], ArtifactCache]:
    # s3: a bucket on the moto server of tests/cache/conftest.py, reached through the
    # AWS_* variables that fixture puts in this environment (so: before copying it)
    url = request.getfixturevalue("s3").url if kind == "s3" else f"file://{tmp_path}/c"
    env = {**os.environ, "WATTWISE_INTERVAL_S": "0.1"}
    if kind in ("fsspec-file", "s3"):
        env["WATTWISE_CACHE"] = url
        return env, ArtifactCache(url)
    return env, ArtifactCache()


@pytest.mark.parametrize("kind", ["local", "fsspec-file", "s3"])
def test_two_processes_racing_on_one_key_leave_one_good_entry(
    tmp_path: Path, kind: str, request: pytest.FixtureRequest
) -> None:
    Path("producer.py").write_text(PRODUCER)
    env, cache = _cache_env(tmp_path, kind, request)
    # Each producer, once it has missed and started computing, waits until the other has
    # too: both miss and both store, however late the machine schedules either of them.
    procs = [_spawn(me, partner, env) for me, partner in (("a", "b"), ("b", "a"))]
    deadline = time.monotonic() + 60
    while not (Path("ready-a").exists() and Path("ready-b").exists()):
        assert time.monotonic() < deadline and all(p.poll() is None for p in procs)
        time.sleep(0.01)
    Path("go").touch()  # both are past imports, waiting: they start together
    outs = [p.communicate(timeout=120) for p in procs]
    for proc, (_, err) in zip(procs, outs, strict=True):
        assert proc.returncode == 0, err
    assert outs[0][0] == outs[1][0] == f"{sum(range(200_000))}\n"
    errors = "".join(err for _, err in outs)  # a CacheWarning in a producer shows here
    assert Path("computed-a").exists() and Path("computed-b").exists(), errors  # a real race
    entries = cache.entries()
    assert len(entries) == 1, errors
    assert cache.verify() == []
    hit = cache.load(entries[0].key)
    assert hit is not None and int(hit.value.sum()) == sum(range(200_000))
    assert cache.store.list_temporary() == []


@pytest.mark.parametrize("kind", ["fsspec-file", "s3"])
def test_a_second_process_reads_what_the_first_wrote(
    tmp_path: Path, kind: str, request: pytest.FixtureRequest
) -> None:
    Path("producer.py").write_text(PRODUCER)
    Path("go").touch()
    env, cache = _cache_env(tmp_path, kind, request)
    first = subprocess.run([sys.executable, "producer.py", "go", "a"], env=env,
                           capture_output=True, text=True, timeout=120)  # fmt: skip
    second = subprocess.run([sys.executable, "producer.py", "go", "b"], env=env,
                            capture_output=True, text=True, timeout=120)  # fmt: skip
    assert first.returncode == 0 and second.returncode == 0, first.stderr + second.stderr
    assert first.stdout == second.stdout
    assert Path("computed-a").exists() and not Path("computed-b").exists()
    assert not cache.is_private and len(cache.entries()) == 1


def test_memory_filesystem_round_trip() -> None:
    cache = ArtifactCache(memory_url())
    assert isinstance(cache.store, FsspecStore)
    calls = Calls()

    @cached(cache=cache)
    def produce(n: int) -> dict[str, np.ndarray]:
        calls()
        return {"x": np.arange(n)}

    produce(5)
    np.testing.assert_array_equal(produce(5)["x"], np.arange(5))
    assert calls.n == 1
    [entry] = cache.entries()
    assert cache.info(entry.key[:6]).key == entry.key
    assert cache.remove(entry.key) and not cache.remove(entry.key)
    assert cache.entries() == []


def test_concurrent_writers_and_readers_never_see_half_an_entry() -> None:
    cache = ArtifactCache()
    assert isinstance(cache.store, LocalStore)
    key = "ab" * 32
    payloads = [np.full(50_000 * (i + 1), i, dtype=np.int32) for i in range(4)]
    stop = threading.Event()
    seen: list[int] = []
    errors: list[BaseException] = []

    def writer(i: int) -> None:
        try:
            while not stop.is_set():
                cache.save(key, payloads[i], header={"function": "t"})
        except BaseException as err:  # pragma: no cover - reported below
            errors.append(err)

    def reader() -> None:
        try:
            while not stop.is_set():
                hit = cache.load(key)
                if hit is not None:
                    value = hit.value
                    assert (value == value[0]).all() and value.size == 50_000 * (value[0] + 1)
                    seen.append(int(value[0]))
        except BaseException as err:  # pragma: no cover - reported below
            errors.append(err)

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(4)]
    threads += [threading.Thread(target=reader) for _ in range(3)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 120  # until readers saw two writers' entries (load slows all)
    time.sleep(0.8)
    while len(set(seen)) < 2 and not errors and time.monotonic() < deadline:
        time.sleep(0.1)
    stop.set()
    for t in threads:
        t.join()
    assert not errors, errors
    assert len(set(seen)) > 1  # readers saw several writers' complete entries
    assert cache.verify() == [] and len(cache.entries()) == 1


def test_importing_the_cache_and_repro_packages_stays_light() -> None:
    code = (
        "import sys, wattwise.cache, wattwise.repro\n"
        "heavy = {'numpy', 'torch', 'fsspec', 'blake3', 'safetensors', 'sqlite3', 'psutil'}\n"
        "print(sorted(heavy & set(sys.modules)))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
