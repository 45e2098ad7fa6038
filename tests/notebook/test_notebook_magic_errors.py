"""A bad option of the magics is one usage line in their own spelling (``--pue 1.2``, not the
Python API's ``pue=1.2``), and the cell does not run; the cell's own errors pass unchanged.

The magics are called on a real IPython shell in this process (no kernel: fast)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from wattwise.store import RunStatus, open_store

IPython = pytest.importorskip("IPython", reason="the dev extra installs IPython")

from IPython.core.error import UsageError  # noqa: E402
from IPython.core.interactiveshell import InteractiveShell  # noqa: E402


@pytest.fixture
def shell(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """An IPython shell with ``%load_ext wattwise`` done; its folder under the test's."""
    monkeypatch.setenv("IPYTHONDIR", str(tmp_path / "ipython"))
    ip = InteractiveShell.instance()
    ip.run_line_magic("load_ext", "wattwise")
    yield ip
    ip.run_line_magic("unload_ext", "wattwise")
    InteractiveShell.clear_instance()


def _usage_line(call: Any) -> str:
    with pytest.raises(UsageError) as caught:
        call()
    said = str(caught.value)
    assert said.startswith("wattwise: ") and "\n" not in said
    return said


def test_a_bad_pue_is_said_as_the_option_and_the_cell_does_not_run(shell: Any) -> None:
    said = _usage_line(lambda: shell.run_cell_magic("wattwise", "--pue 0.5", "ran = True"))
    assert said.startswith("wattwise: --pue 0.5 is not valid: ")
    assert said.endswith("pass e.g. --pue 1.2.") and "pue=" not in said
    assert "ran" not in shell.user_ns
    said = _usage_line(lambda: shell.run_line_magic("wattwise", "start span --pue nan"))
    assert said.startswith("wattwise: --pue nan is not valid: ") and "pue=" not in said
    said = _usage_line(lambda: shell.run_line_magic("wattwise", "stop"))
    assert "no run was started with %wattwise start" in said  # the bad start made none
    assert open_store().list_runs() == []


def test_a_meter_this_machine_lacks_names_the_meters_option(
    shell: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WATTWISE_RAPL_ROOT", str(tmp_path / "no-powercap"))
    said = _usage_line(
        lambda: shell.run_cell_magic("wattwise", "--meters cpu-rapl", "ran = True")
    )
    assert said.startswith("wattwise: Cannot use the cpu-rapl meter: ")
    assert "pass --meters cpu-model to estimate CPU energy" in said and "meters=[" not in said
    assert "ran" not in shell.user_ns


def test_the_cells_own_wattwise_error_is_no_usage_error(shell: Any) -> None:
    """An error of the library raised by the cell's code is the cell's: it goes on as it
    is, and the cell's run ends failed."""
    from wattwise.exceptions import RegionError

    cell = "from wattwise.exceptions import RegionError\nraise RegionError('pue=2 mine')"
    with pytest.raises(RegionError, match=r"^pue=2 mine$"):
        shell.run_cell_magic("wattwise", "cell-fails --quiet", cell)
    (run,) = open_store().list_runs()
    assert run.name == "cell-fails" and run.status is RunStatus.FAILED
    assert run.record["error"] == "RegionError: pue=2 mine"
