"""``@wattwise.cached``: memoise a function by content, and book the energy reuse saves.

On a miss the function runs and its energy is measured: inside a run (a ``track`` block),
as the difference of two snapshots of that run taken around the call; elsewhere, by a
short run of kind ``cache-fill`` around the call (nested in the ``wattwise run`` command
when there is one, so nothing is counted twice). The entry keeps that cost and the
producing run's id. On a hit the value is read back (verified) and one row goes into the
ledger's ``reuse`` table: the energy the entry cost, now avoided.
"""

from __future__ import annotations

import functools
import inspect
import logging
import os
import time
import types
import warnings
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, Generic, TypeVar, overload

from wattwise import __version__
from wattwise.cache._booking import Keep, book, replay_kept
from wattwise.cache._cache import (
    ArtifactCache,
    EntryInfo,
    UnsafeEntryError,
    UnsafeLocationError,
)
from wattwise.cache._key import KeyParts, key_parts, source_digest
from wattwise.exceptions import CacheError, CacheWarning, InvalidParameterError, WattwiseError

if TYPE_CHECKING:
    from pathlib import Path

    from wattwise.tracking import Run

logger = logging.getLogger("wattwise")

R = TypeVar("R")


def _method_of(infos: dict[str, Any]) -> tuple[str, dict[str, str]]:
    """``measured`` (counters, sampled power) or ``estimated`` (a model), and per meter."""
    methods = {name: str(getattr(info, "method", "unknown")) for name, info in infos.items()}
    kinds = set(methods.values())
    if kinds and kinds <= {"counter", "sampled"}:
        return "measured", methods
    if "model" in kinds:
        return "estimated", methods
    return "+".join(sorted(kinds)) or "unknown", methods


class CachedFunction(Generic[R]):
    """A function whose results are cached by content (made by :func:`cached`).

    Attributes:
        version: The user's version, part of the key.
        ignore: Parameters left out of the key.
        allow_pickle: Whether results without a safe format may be pickled.
    """

    def __init__(
        self,
        fn: Callable[..., R],
        *,
        version: str | int | None = None,
        ignore: Iterable[str] = (),
        allow_pickle: bool = False,
        cache: ArtifactCache | str | os.PathLike[str] | None = None,
    ) -> None:
        self.__wrapped__ = fn
        functools.update_wrapper(self, fn)
        self.version = None if version is None else str(version)
        self.ignore = tuple(ignore)
        self.allow_pickle = bool(allow_pickle)
        self._cache_arg = cache
        self._signature = inspect.signature(fn)
        unknown = set(self.ignore) - set(self._signature.parameters)
        if unknown:
            msg = (
                f"The 'ignore' parameter of cached() names {sorted(unknown)}, which are not "
                f"parameters of {fn.__qualname__}{self._signature}."
            )
            raise InvalidParameterError(msg)
        self._source: str | None = None

    def __get__(self, instance: Any, owner: Any = None) -> Any:
        if instance is None:
            return self
        return types.MethodType(self, instance)

    @property
    def cache(self) -> ArtifactCache:
        """The cache in use (resolved at each call when none was given)."""
        if isinstance(self._cache_arg, ArtifactCache):
            return self._cache_arg
        return ArtifactCache(self._cache_arg)

    def key_parts(self, *args: Any, **kwargs: Any) -> KeyParts:
        """What the key of this call is made of."""
        if self._source is None:
            self._source = source_digest(self.__wrapped__)
        return key_parts(
            self.__wrapped__, args, kwargs, version=self.version, ignore=self.ignore,
            allow_pickle=self.allow_pickle, source=self._source, signature=self._signature,
        )  # fmt: skip

    def cache_key(self, *args: Any, **kwargs: Any) -> str:
        """The cache key (64 hex) of this call."""
        return self.key_parts(*args, **kwargs).key()

    def __call__(self, *args: Any, **kwargs: Any) -> R:
        """Return the cached result, or compute, measure and store it."""
        parts = self.key_parts(*args, **kwargs)
        key = parts.key()
        cache = self.cache
        if self.allow_pickle and not cache.is_private:
            msg = (
                f"{parts.function} has allow_pickle=True but the cache {cache.location} is "
                "shared; pickles are written and read only in a private local cache. Drop "
                "allow_pickle, or unset WATTWISE_CACHE to use the local cache."
            )
            raise CacheError(msg)
        unreachable = False
        try:
            hit = cache.load(key, allow_pickle=self.allow_pickle)
        except UnsafeLocationError as err:  # maybe planted (or foreign): never unpickled
            warnings.warn(f"{err} Computing without the cache.", CacheWarning, stacklevel=2)
            hit = None
        except UnsafeEntryError:
            raise
        except CacheError as err:  # the store cannot be read: do not wait on it twice
            warnings.warn(f"{err} Computing without the cache.", CacheWarning, stacklevel=2)
            hit, unreachable = None, True
        if hit is not None:
            _record_hit(cache, hit.info)
            value: R = hit.value
            return value
        value, cost = _measured(parts.function, lambda: self.__wrapped__(*args, **kwargs))
        if unreachable:
            return value
        header = {
            "function": parts.function,
            "version": self.version,
            "created_at": time.time(),
            "wattwise_version": __version__,
            "key_parts": parts.to_dict(),
            "cost": cost,
        }
        try:
            cache.save(key, value, header=header, allow_pickle=self.allow_pickle)
        except CacheError as err:  # no safe format (UnsupportedValueError), or store error
            warnings.warn(f"{err} The result was returned uncached.", CacheWarning, stacklevel=2)
        return value


def _measured(function: str, call: Callable[[], R]) -> tuple[R, dict[str, Any]]:
    """Run ``call`` and measure its energy: enclosing run's snapshots, or a cache-fill run."""
    from wattwise.tracking import Run, RunState, active_run

    run = active_run()  # a wattwise-run parent cannot be snapshotted from here: fill a run
    if isinstance(run, Run) and run.state is RunState.RUNNING:
        how = "difference of two snapshots of the enclosing run around the call (its whole "
        return _around(run, call, how + "process tree)")
    name = "cache-fill:" + function.rsplit(":", 1)[-1].rsplit(".", 1)[-1]
    with Run(name, kind="cache-fill", tags=["cache-fill"], emit_warnings=False) as fill:
        # The run's environment capture is not the function's cost: let it end first.
        fill.wait_for_environment()
        how = "difference of two snapshots, around the call, of a run of kind cache-fill "
        return _around(fill, call, how + "made for it")


def _around(run: Run, call: Callable[[], R], how: str) -> tuple[R, dict[str, Any]]:
    """Call ``call`` between two snapshots of ``run``; the difference is its cost."""
    before = run.snapshot()
    t0 = time.perf_counter()
    value = call()
    duration = time.perf_counter() - t0
    after = run.snapshot()
    label, meters = _method_of(run.meter_infos)
    return value, {
        "energy_j": max(0.0, after["energy_j"] - before["energy_j"]),
        "energy_band_j": max(0.0, after["energy_band_j"] - before["energy_band_j"]),
        "co2e_g": max(0.0, after["co2e_g"] - before["co2e_g"]),
        "duration_s": duration,
        "method": label,
        "meters": meters,
        "how": how,
        "producer_run_id": run.id,
        "region": run.location.zone,
        "intensity_g_per_kwh": run.intensity.g_per_kwh,
        "pue": run.pue.value,
    }


def _record_hit(cache: ArtifactCache, info: EntryInfo) -> None:
    """Book the energy a hit avoided in the ledger of the current run (or project).

    The row is written by the booking thread (:mod:`wattwise.cache._booking`): a ledger
    that hangs or is locked never holds the hit up, and a hit it does not take in time is
    kept in the spool and booked later. After a booking lands, the hits other processes kept
    for the same ledger are booked too (``replay_kept``).
    """
    from wattwise.store import BaseRunStore, ReuseEvent, get_store, open_store
    from wattwise.tracking import ParentRun, Run, RunState, active_run

    cost = info.cost
    energy = max(0.0, float(cost.get("energy_j") or 0.0))
    run = active_run()
    store: BaseRunStore | None = None  # the run's, else opened (and closed) on the thread
    parent: ParentRun | None = None
    try:
        if isinstance(run, Run) and run.state is RunState.RUNNING:
            from wattwise.carbon import operational_co2e_g

            co2e = operational_co2e_g(energy, run.intensity, run.pue)
            basis = (
                f"this run's grid intensity ({run.intensity.g_per_kwh:g} gCO2e/kWh, "
                f"{run.location.zone}) and PUE {run.pue.value:g}"
            )
            consumer: str | None = run.id
            store = run.store
        else:
            co2e = float(cost.get("co2e_g") or 0.0)
            basis = (
                f"the producer's grid intensity ({cost.get('intensity_g_per_kwh')} gCO2e/kWh, "
                f"{cost.get('region')}) and PUE {cost.get('pue')}"
            )
            parent = run if isinstance(run, ParentRun) else None  # the wattwise-run command's
            consumer = parent.id if parent is not None else None
        event = ReuseEvent(
            at=time.time(), cache_key=info.key, function=info.function,
            producer_run_id=cost.get("producer_run_id"), consumer_run_id=consumer,
            energy_avoided_j=energy, co2e_avoided_g=co2e,
            duration_avoided_s=float(cost.get("duration_s") or 0.0),
            method=f"{cost.get('method', 'unknown')}; {cost.get('how', '')}".strip("; "),
            basis=basis, cache_url=cache.location,
        )  # fmt: skip
    except WattwiseError as err:  # the hit is still good; only its booking failed
        logger.warning("wattwise: could not record a cache hit in the ledger: %s", err)
        return
    start: str | None = None  # the project's ledger is the one of the folder we are in now
    if store is None and parent is None:
        try:
            start = os.getcwd()
        except OSError:  # the working directory is gone: open_store says so, on the thread
            start = None

    def open_ledger() -> BaseRunStore:
        return parent.open_store() if parent is not None else open_store(None, start=start)

    def write() -> None:
        if store is not None:
            store.add_reuse(event)
            return
        opened = open_ledger()
        try:
            opened.add_reuse(event)
        finally:
            opened.close()

    def ledger() -> Path:
        """Where the ledger is (its spool folder beside it), without opening it."""
        if store is not None:
            return store.path
        url = parent.store_url if parent is not None else None
        found = get_store(url, start=start, defer=True)
        try:
            return found.path
        finally:
            found.close()

    def replay() -> None:
        """The hits other processes kept for this ledger, booked now that it answers."""
        if store is not None:
            replay_kept(store.path, lambda: store, close=False)
        else:
            replay_kept(ledger(), open_ledger, close=True)

    book(write, what=f"a hit of {info.function}", keep=Keep(event, ledger), after=replay)


@overload
def cached(fn: Callable[..., R], /) -> CachedFunction[R]: ...


@overload
def cached(
    fn: Callable[..., R],
    /,
    *,
    version: str | int | None = ...,
    ignore: Iterable[str] = ...,
    allow_pickle: bool = ...,
    cache: ArtifactCache | str | os.PathLike[str] | None = ...,
) -> CachedFunction[R]: ...


@overload
def cached(
    fn: None = None,
    /,
    *,
    version: str | int | None = ...,
    ignore: Iterable[str] = ...,
    allow_pickle: bool = ...,
    cache: ArtifactCache | str | os.PathLike[str] | None = ...,
) -> Callable[[Callable[..., R]], CachedFunction[R]]: ...


def cached(
    fn: Callable[..., R] | None = None,
    /,
    *,
    version: str | int | None = None,
    ignore: Iterable[str] = (),
    allow_pickle: bool = False,
    cache: ArtifactCache | str | os.PathLike[str] | None = None,
) -> CachedFunction[R] | Callable[[Callable[..., R]], CachedFunction[R]]:
    """Cache a function's results by content, with the energy they cost on the books.

    Use as ``@wattwise.cached``, ``@wattwise.cached(version=2)`` or
    ``wattwise.cached(fn, version=2)``.

    Args:
        fn: The function.
        version: Your version of the function; change it when something outside its
            source (a helper, a data file it reads by name, a library) changes its result.
        ignore: Parameters that do not change the result (``verbose``, ``n_jobs``).
        allow_pickle: Pickle results that have no safe format. Only for a private local
            cache; pickles are never written to or read from a shared one.
        cache: An :class:`ArtifactCache`, a folder or an fsspec URL (default:
            ``WATTWISE_CACHE``, else ``.wattwise/cache``).

    Returns:
        A :class:`CachedFunction` (``.cache_key(*args)``, ``.key_parts(*args)``,
        ``.cache``, ``.__wrapped__``).

    Raises:
        InvalidParameterError: ``ignore`` names unknown parameters (at decoration), or an
            argument cannot be hashed by content (at call).
        CacheError: ``allow_pickle`` with a shared cache, or a pickled entry where pickle
            must not be loaded (at call). A pickled entry in the private cache that someone
            other than you or root could have written is not an error: it is reported
            (``CacheWarning``), never unpickled, and the function runs.
    """

    def decorate(function: Callable[..., R]) -> CachedFunction[R]:
        return CachedFunction(
            function, version=version, ignore=ignore, allow_pickle=allow_pickle, cache=cache
        )

    return decorate if fn is None else decorate(fn)
