"""A run's settings, its first record, and the capture of its environment.

The settings are read once at start (a broken config file falls back to the environment
and the defaults, with one warning). The first record holds what is known at once
(command, location, intensity, PUE, meters); code, packages and hardware are captured on a
background thread so the work starts without waiting, and go in at the next write.

The runs of one study share that capture within a process: the study's driver (or the
first trial of the study in a worker process) captures; every later trial of the study in
the same process, with the same working directory and command line, copies what it found
into its own record (the diff artifact is stored under each run all the same; the
allow-listed variables and the seeds are read for each run) and says so in
``record["environment_from"]``. Their objective was loaded when the study (or the
worker) started, so that capture describes the code they run; a capture per trial cost
more than an empty trial itself (git subprocesses, the package list, the hardware).
"""

from __future__ import annotations

import dataclasses
import logging
import os
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from wattwise import __version__
from wattwise._config import Settings, load_settings
from wattwise.exceptions import ConfigError, WattwiseError
from wattwise.store import SCHEMA_VERSION
from wattwise.tracking._measuring import MeasuringMixin
from wattwise.tracking._sampler import ATTRIBUTION, meter_record
from wattwise.tracking._state import copy_json
from wattwise.tracking._writer import LedgerWriter

if TYPE_CHECKING:
    from wattwise.environment import Capture

logger = logging.getLogger("wattwise")

#: How long the capture waits for the ledger to take an artifact (the git diff).
ARTIFACT_WAIT_S = 3.0
#: Studies whose capture this process keeps for their trials (the latest ones).
SHARED_STUDIES = 4
#: How long a trial waits for its study's capture under way before making its own.
SHARED_WAIT_S = 60.0


@dataclasses.dataclass
class SharedCapture:
    """One study's environment capture in this process, shared by its trials.

    Attributes:
        run_id: The run that captured (the study's driver, or the study's first trial here).
        done: Set once the capture has ended (``found`` is None when it failed).
        found: What :func:`wattwise.environment.capture` found.
        hardware: :func:`wattwise.meters.describe_hardware` of this machine.
        captured_at: When the capture ended (epoch seconds).
    """

    run_id: str
    done: threading.Event = dataclasses.field(default_factory=threading.Event)
    found: Capture | None = None
    hardware: dict[str, Any] | None = None
    captured_at: float = 0.0

    def source(self) -> dict[str, Any]:
        """What a run that copies this capture records as ``environment_from``."""
        return {
            "run_id": self.run_id,
            "captured_at": self.captured_at,
            "shared": "the environment captured once for this study in this process",
        }

    def ready(self) -> bool:
        """The capture has ended with a result."""
        return self.done.is_set() and self.found is not None and self.hardware is not None


_shared: dict[tuple[Any, ...], SharedCapture] = {}
_shared_lock = threading.Lock()


def claim_shared(key: tuple[Any, ...], run_id: str) -> tuple[SharedCapture, bool]:
    """The study's shared capture, and whether ``run_id`` must make it (the first to ask).

    A capture that failed is claimed again by the next run that asks.
    """
    with _shared_lock:
        entry = _shared.get(key)
        if entry is not None and not (entry.done.is_set() and entry.found is None):
            return entry, False
        entry = _shared[key] = SharedCapture(run_id)
        while len(_shared) > SHARED_STUDIES:  # the oldest study's trials are over
            del _shared[next(iter(_shared))]
        return entry, True


@dataclasses.dataclass(frozen=True)
class HandedCapture:
    """A study's capture as its driver hands it to a local worker process (picklable).

    Attributes:
        study_id: The study.
        where: The rest of the capture's key, the process left out: working directory,
            command line, diff settings (a trial whose own differ captures its own).
        run_id: The run that captured (the driver).
        found: What the capture found.
        hardware: This machine's hardware.
        captured_at: When the capture ended (epoch seconds).
    """

    study_id: str
    where: tuple[Any, ...]
    run_id: str
    found: Capture
    hardware: dict[str, Any]
    captured_at: float


def hand_off_study_capture(study_id: str, *, wait_s: float = 0.0) -> HandedCapture | None:
    """The capture made in this process for study ``study_id`` (by its driver), for
    worker processes on this machine; None when there is none (or it failed).

    Args:
        study_id: The study's id (its driver run's).
        wait_s: How long to wait for a capture under way (workers start meanwhile).
    """
    pid = os.getpid()
    with _shared_lock:
        entries = [(k, e) for k, e in _shared.items() if k[0] == study_id and k[1] == pid]
    for key, entry in entries:
        entry.done.wait(wait_s)
        if entry.ready() and entry.found is not None and entry.hardware is not None:
            return HandedCapture(study_id, key[2:], entry.run_id, entry.found,
                                 entry.hardware, entry.captured_at)  # fmt: skip
    return None


def adopt_study_capture(handed: HandedCapture) -> bool:
    """In a worker process on the driver's machine: let the study's trials here copy the
    driver's capture rather than make their own (see the module doc).

    Only when this process runs the interpreter the capture describes (its packages); a
    capture this process already made for the study is kept.

    Returns:
        Whether it was taken (False: this process runs another interpreter, or has a
        capture of its own for the study, made or under way).
    """
    environment = handed.found.record.get("environment") or {}
    if environment.get("executable") != sys.executable:
        return False
    key = (handed.study_id, os.getpid(), *handed.where)
    with _shared_lock:
        entry = _shared.get(key)
        if entry is not None and not (entry.done.is_set() and entry.found is None):
            return False  # this process's own, made or under way
        entry = _shared[key] = SharedCapture(handed.run_id)
        entry.found, entry.hardware = handed.found, copy_json(handed.hardware)
        entry.captured_at = handed.captured_at
        entry.done.set()
        while len(_shared) > SHARED_STUDIES:
            del _shared[next(iter(_shared))]
    return True


def peek_shared(key: tuple[Any, ...]) -> SharedCapture | None:
    """The study's shared capture if it has ended with a result, else None."""
    with _shared_lock:
        entry = _shared.get(key)
    return entry if entry is not None and entry.ready() else None


class CaptureMixin(MeasuringMixin):
    """Settings, the initial record and the environment capture of a run."""

    def wait_for_environment(self) -> None:
        """Block until the background capture of code, packages and hardware has ended."""
        thread = self._env_thread
        if thread is not None:
            thread.join()

    def _load_settings(self, root: Path) -> Settings:
        """The settings; a broken config file or variable falls back to the defaults."""
        explicit: dict[str, Any] = {"interval_s": self._interval_s, "flush_s": self._flush_s,
                                    "pue": self._pue_arg, "meters": self._meter_names}  # fmt: skip
        try:
            return load_settings(root, **explicit)
        except ConfigError as err:
            if self.strict:
                raise
            nowhere = root / ".wattwise" / "no-such-folder"
            try:
                settings = load_settings(nowhere, **explicit)
                what = "the environment and arguments only"
            except ConfigError:
                settings = load_settings(nowhere, environ={}, **explicit)
                what = "the defaults and arguments only"
            self._warn_once("config", f"{err} This run uses {what}.")
            return settings

    def _command_record(self) -> dict[str, Any]:
        """What ran: the command (``wattwise run``) or this process's command line; in a
        Jupyter kernel, the notebook (its path, or ``notebook (unknown path)`` and why)."""
        from wattwise.environment import notebook, redact_argv  # secrets never reach it

        argv = self.command if self.command is not None else list(sys.argv)
        found = notebook() if self.command is None else None
        record: dict[str, Any] = {"argv": redact_argv(argv), "cwd": str(Path.cwd()),
                                  "is_command": self.command is not None}  # fmt: skip
        if found is not None:
            found["kernel_argv"] = redact_argv(found["kernel_argv"])
            record["argv"] = [found["path"] or found["name"]]
            record["notebook"] = found
        return record

    def _initial_record(self) -> dict[str, Any]:
        infos = meter_record(self._live_sampler().infos)
        return {
            "schema_version": SCHEMA_VERSION,
            "tool": {"name": "wattwise", "version": __version__},
            "command": self._command_record(),
            "location": self.location.to_dict(),
            "intensity": self.intensity.to_dict(),
            "pue": {"value": self.pue.value, "source": self.pue.source,
                    "applies_to": self.pue.applies_to},
            "meters": infos,
            "fallbacks": self._fallbacks,
            "attribution": ATTRIBUTION,
            "idle_included": True,
            "sampler": {
                "interval_s": self.settings.interval_s,
                "flush_s": self.settings.flush_s,
                "samples": 0,
                "cpu_s": 0.0,
            },
            "warnings": list(self.warnings),
            "market_based_instruments_applied": False,
            "role": self.role,
            **({"attribution_note": note} if (note := self.run_kind.attribution_note) else {}),
        }

    def _start_capture(self) -> None:
        """Start the background capture. A study's driver claims the study's shared capture
        first, before any of its trials can start, so inline trials copy the driver's
        rather than racing it to capture."""
        try:
            argv = list(self._record["command"]["argv"])
            key = self._share_key(argv, self.settings.diff if self._diff is None else self._diff)
            if key is not None and self.role == "study":
                self._capture_claim = claim_shared(key, self.id)
            self._env_thread = threading.Thread(
                target=self._capture_environment_safely, name="wattwise-env", daemon=True
            )
            self._env_thread.start()
        except BaseException:
            self._env_thread = None
            self._release_claim()
            raise

    def _release_claim(self) -> None:
        """A claimed capture that will not be made is given up: its trials capture their own."""
        claim = self._capture_claim
        if claim is not None and claim[1]:
            claim[0].done.set()

    def _capture_environment_safely(self) -> None:
        try:
            self._capture_environment()
        except Exception as err:  # the user's work must go on whatever happens here
            logger.warning("wattwise: could not capture the environment: %s", err)
        finally:
            self._release_claim()  # made or not: trials never wait for it past this point

    def _share_key(self, argv: list[str], diff: bool) -> tuple[Any, ...] | None:
        """Which shared capture this run uses (None: its own): a study's driver and its
        trials in this process, with the same directory, command line and diff settings."""
        roles = {"study": self.id, "trial": self.study_id}
        study = roles.get(self.role)
        if study is None or self.command is not None:
            return None
        return (study, os.getpid(), str(self._cwd), tuple(str(a) for a in argv), diff,
                self.settings.diff_max_bytes)  # fmt: skip

    def _capture_found(self) -> tuple[Capture, dict[str, Any], dict[str, Any] | None]:
        """What the capture found, this machine's hardware and, when they come from the
        study's shared capture, where from (see the module doc)."""
        from wattwise import meters
        from wattwise.environment import capture

        argv = list(self._record["command"]["argv"])
        diff = self.settings.diff if self._diff is None else self._diff
        key = self._share_key(argv, diff)
        shared: SharedCapture | None
        if self._capture_claim is not None:  # the driver's, claimed at its start
            shared, mine = self._capture_claim
        else:
            shared, mine = claim_shared(key, self.id) if key is not None else (None, True)
        if shared is not None and not mine:
            shared.done.wait(SHARED_WAIT_S)  # a capture ends within git's time limits
            if shared.ready() and shared.found is not None and shared.hardware is not None:
                return shared.found, copy_json(shared.hardware), shared.source()
        try:
            found = capture(self._cwd, argv, diff=diff,
                            diff_max_bytes=self.settings.diff_max_bytes,
                            command=self.command is not None)  # fmt: skip
            hardware = meters.describe_hardware()
            if shared is not None and mine:
                kept = dataclasses.replace(found, record=copy_json(found.record))
                shared.found, shared.hardware = kept, copy_json(hardware)
                shared.captured_at = time.time()
        finally:
            if shared is not None and mine:
                shared.done.set()
        return found, hardware, None

    def _merge_capture(
        self, found: Capture, hardware: dict[str, Any], source: dict[str, Any] | None
    ) -> None:
        """Put what the capture found into the record (call with ``_lock`` held)."""
        from wattwise.environment import allowed_variables, last_seeds

        seeds = last_seeds()
        self._record.update(copy_json(found.record) if source else found.record)
        self._record["hardware"] = hardware
        if source is not None:
            self._record["environment_from"] = source
            environment = self._record.get("environment")
            if isinstance(environment, dict):  # cheap, and a study may set some per trial
                environment["variables"] = allowed_variables()
        if seeds is not None and "seeds" not in self._record:
            self._record["seeds"] = seeds
            self._record["determinism_flags"] = seeds["determinism_flags"]

    def _take_ready_capture(self) -> bool:
        """At start: the study's shared capture, when it has ended and has no artifact to
        store under this run (a clean work tree), goes into the first record at once: no
        capture thread, no write of its own. False: the capture thread does the work.

        """
        try:
            argv = list(self._record["command"]["argv"])
            diff = self.settings.diff if self._diff is None else self._diff
            key = self._share_key(argv, diff)
            if key is None or self.role == "study":
                return False
            shared = peek_shared(key)
            if shared is None or shared.found is None or shared.hardware is None:
                return False
            if shared.found.artifacts:
                return False
            with self._lock:
                self._merge_capture(shared.found, copy_json(shared.hardware), shared.source())
        except Exception as err:  # the thread captures instead; the work starts all the same
            logger.debug("wattwise: the shared capture could not be taken: %s", err)
            return False
        return True

    def _capture_environment(self) -> None:
        found, hardware, source = self._capture_found()
        handoff = self._live_handoff()
        unstored = []
        for name, content in found.artifacts.items():  # before the record points at them
            job = handoff.call(_put_artifact(self.id, name, content), wait_s=ARTIFACT_WAIT_S)
            if not job.done.is_set():
                unstored.append(f"artifact {name!r} not stored: the ledger did not answer "
                                f"within {ARTIFACT_WAIT_S:g} s")  # fmt: skip
            elif isinstance(job.error, (WattwiseError, OSError)):
                if self.strict:
                    raise job.error
                unstored.append(f"artifact {name!r} not stored: {job.error}")
            elif job.error is not None:
                raise job.error
        with self._lock:
            self._merge_capture(found, hardware, source)
            if unstored:
                self._record.setdefault("notes", []).extend(unstored)
            if source is None:
                handoff.flush(self._payload())
            else:  # ready at once: the next tick's write (or the final one) carries it
                self._flush_soon = True


def _put_artifact(run_id: str, name: str, content: bytes) -> Callable[[LedgerWriter], str]:
    """The writer-thread call that stores one artifact of the run."""

    def put(writer: LedgerWriter) -> str:
        return writer.store.put_artifact(run_id, name, content)

    return put
