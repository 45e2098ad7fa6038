"""Helpers for the cache tests: counting calls, planting entries."""

from __future__ import annotations

import pickle
import uuid
from pathlib import Path
from typing import Any

from wattwise.cache import ArtifactCache, _container


class Calls:
    """Counts how often a function body really ran."""

    def __init__(self) -> None:
        self.n = 0

    def __call__(self) -> None:
        self.n += 1


def memory_url() -> str:
    return f"memory://wattwise-tests/{uuid.uuid4().hex}"


class Booby:
    """Unpickling this creates ``marker``: proof that a pickle was loaded."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (Path.touch, (self.marker,))


def pickle_entry(key: str, marker: Path) -> bytes:
    """A well-formed entry (valid digest, right key) whose value is a malicious pickle."""
    payload = pickle.dumps(Booby(marker))
    header = {"key": key, "function": "evil:payload", "value": {"spec": {"t": "pickle", "m": 0}},
              "cost": {"energy_j": 1.0}}  # fmt: skip
    return _container.pack(header, [("pickle", payload)])


def plant_pickle(cache: ArtifactCache, key: str, marker: Path) -> None:
    """Write :func:`pickle_entry` into ``cache`` as the current user."""
    cache.store.write(key, pickle_entry(key, marker))


def entry_path(cache: ArtifactCache, key: str) -> Path:
    root = Path(cache.location)
    return root / "entries" / key[:2] / f"{key}.wwc"
