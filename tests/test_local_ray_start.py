"""tests/ray_support.py: a failed start of the local Ray cluster is ended and tried once more.

A stand-in for the ``ray`` module whose first ``init`` starts a real process (as ``ray.init``
starts its GCS and raylet) and then fails as a raylet slow to register does.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest

from ray_support import LOCAL_CLUSTER, start_local_ray

TIMED_OUT = "The current node timed out during startup."
SLEEPER = [sys.executable, "-c", "import time; time.sleep(600)"]


class FlakyRay:
    """``init`` starts a process, then fails its first ``failures`` times."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.inits: list[dict[str, Any]] = []
        self.started: list[subprocess.Popen[bytes]] = []
        self.shutdowns = 0

    def init(self, **kwargs: Any) -> None:
        self.inits.append(kwargs)
        self.started.append(subprocess.Popen(SLEEPER))
        if len(self.inits) <= self.failures:
            raise RuntimeError(TIMED_OUT)

    def shutdown(self) -> None:
        self.shutdowns += 1


@pytest.fixture
def unrelated() -> Iterator[subprocess.Popen[bytes]]:
    """A process this test started before the cluster's start: not the start's to end."""
    proc = subprocess.Popen(SLEEPER)
    yield proc
    proc.kill()
    proc.wait(timeout=60)


def _end(ray: FlakyRay) -> None:
    for proc in ray.started:
        proc.kill()
        proc.wait(timeout=60)


def test_a_failed_start_is_shut_down_and_tried_once_more(
    unrelated: subprocess.Popen[bytes],
) -> None:
    ray = FlakyRay(failures=1)
    try:
        start_local_ray(ray, num_cpus=1)
        assert ray.inits == [{**LOCAL_CLUSTER, "num_cpus": 1}] * 2
        assert ray.shutdowns == 1
        first, second = ray.started
        assert first.poll() is not None  # ended (by PID) before the second try
        assert second.poll() is None  # the cluster that started is left running
        assert unrelated.poll() is None  # started before: not the failed start's
    finally:
        _end(ray)


def test_a_second_failure_is_raised() -> None:
    ray = FlakyRay(failures=2)
    try:
        with pytest.raises(RuntimeError, match=TIMED_OUT) as err:
            start_local_ray(ray)
        assert isinstance(err.value.__context__, RuntimeError)  # the first failure
        assert len(ray.inits) == 2
    finally:
        _end(ray)


def test_a_start_that_works_is_tried_once() -> None:
    ray = FlakyRay(failures=0)
    try:
        start_local_ray(ray)
        assert ray.inits == [LOCAL_CLUSTER] and ray.shutdowns == 0
    finally:
        _end(ray)
