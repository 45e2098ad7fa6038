"""Every ledger fault, for real: the job is unchanged and nothing measured is lost.

For each fault of ``faults.FAULTS`` and both ways in (``wattwise run -- python job.py`` and
``with wattwise.track():`` in a subprocess): the exit code is the job's own, its output is
byte-identical, it started promptly, at most one warning line per kind of fault was shown,
and once the fault is gone ``wattwise doctor --repair`` (the next writer) brings the run
into the ledger with its energy and metrics, and a note saying it was spooled.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from faults import EXIT_CODE, FAULTS, Fault, can_mount, run_job, scratch

MOUNT = can_mount()


@pytest.fixture(scope="module")
def base() -> Iterator[Path]:
    with scratch() as folder:
        yield folder


def _param(fault: Fault) -> object:
    marks = []
    if fault.needs_mount and not MOUNT:
        why = f"{fault.label}: needs root with CAP_SYS_ADMIN to mount (root ignores chmod)"
        marks.append(pytest.mark.skip(reason=why))
    return pytest.param(fault, id=fault.name, marks=marks)


@pytest.mark.parametrize("mode", ["run", "track"])
@pytest.mark.parametrize("fault", [_param(f) for f in FAULTS])
def test_the_job_is_unchanged_and_nothing_measured_is_lost(
    fault: Fault, mode: str, base: Path
) -> None:
    out = run_job(fault, mode, base)
    assert out.returncode == EXIT_CODE, out.stderr
    assert out.stdout_intact, out.stderr
    assert "Traceback" not in out.stderr, out.stderr
    assert 0 <= out.start_delay_s < 10, f"the job started {out.start_delay_s:.1f} s late"
    # One warning line per kind of fault (the job's own process may warn once too, for
    # wattwise.log()), never one per sample.
    distinct = {line.split(":", 2)[-1][:60] for line in out.warnings}
    assert len(out.warnings) == len(set(out.warnings)), out.warnings
    assert len(out.warnings) <= 4 and len(distinct) == len(out.warnings), out.warnings
    if fault.name in ("missing",):
        assert out.warnings == []
    elif fault.name not in ("wal-deleted",):
        assert out.warnings, "a fault must be said once"
    if not fault.recoverable:
        # Neither ledger nor spool: the energy is still in what the job got back.
        assert out.run is None
        assert out.energy_kept, out.stderr
        assert any("spool" in line for line in out.warnings)
        return
    assert out.run is not None, out.repair_output
    assert out.run["energy_j"] > 0
    assert out.run["status"] == ("failed" if mode == "run" else "finished")
    if mode == "run":
        assert out.run["exit_code"] == EXIT_CODE
        assert out.metrics == {"acc"}
    else:
        assert out.metrics == {"acc", "loss"}
    if fault.spooled:
        assert any("spooled to" in note for note in out.run["notes"]), out.run["notes"]
        assert "merged run" in out.repair_output or any(
            "merged by pid" in note for note in out.run["notes"]
        )
