"""A run's settings, its first record, and the capture of its environment.

The settings are read once at start (a broken config file falls back to the environment
and the defaults, with one warning). The first record holds what is known at once
(command, location, intensity, PUE, meters); code, packages and hardware are captured on a
background thread so the work starts without waiting, and go in at the next write.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from wattwise import __version__
from wattwise._config import Settings, load_settings
from wattwise.exceptions import ConfigError, WattwiseError
from wattwise.store import SCHEMA_VERSION
from wattwise.tracking._measuring import MeasuringMixin
from wattwise.tracking._sampler import ATTRIBUTION, meter_record
from wattwise.tracking._writer import LedgerWriter

logger = logging.getLogger("wattwise")

#: How long the capture waits for the ledger to take an artifact (the git diff).
ARTIFACT_WAIT_S = 3.0


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

    def _capture_environment_safely(self) -> None:
        try:
            self._capture_environment()
        except Exception as err:  # the user's work must go on whatever happens here
            logger.warning("wattwise: could not capture the environment: %s", err)

    def _capture_environment(self) -> None:
        from wattwise import meters
        from wattwise.environment import capture, last_seeds

        found = capture(
            self._cwd, self._record["command"]["argv"],
            diff=self.settings.diff if self._diff is None else self._diff,
            diff_max_bytes=self.settings.diff_max_bytes, command=self.command is not None,
        )  # fmt: skip
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
        hardware = meters.describe_hardware()
        seeds = last_seeds()
        with self._lock:
            self._record.update(found.record)
            self._record["hardware"] = hardware
            if unstored:
                self._record.setdefault("notes", []).extend(unstored)
            if seeds is not None and "seeds" not in self._record:
                self._record["seeds"] = seeds
                self._record["determinism_flags"] = seeds["determinism_flags"]
            handoff.flush(self._payload())


def _put_artifact(run_id: str, name: str, content: bytes) -> Callable[[LedgerWriter], str]:
    """The writer-thread call that stores one artifact of the run."""

    def put(writer: LedgerWriter) -> str:
        return writer.store.put_artifact(run_id, name, content)

    return put
