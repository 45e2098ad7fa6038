"""Messages on the command line speak its language and need no clone of the repository."""

from __future__ import annotations

from pathlib import Path

import pytest

from wattwise.cli import main
from wattwise.cli._format import cli_spelling


def test_a_meter_error_names_the_cli_option_not_the_python_argument(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("WATTWISE_RAPL_ROOT", str(tmp_path / "no-powercap"))
    code = main(["run", "-q", "--meters", "cpu-rapl", "--", "true"])
    err = capfd.readouterr().err
    assert code == 1
    assert err.startswith("wattwise: error: Cannot use the cpu-rapl meter: ")
    assert err.count("\n") == 1
    assert "pass --meters cpu-model to estimate CPU energy" in err
    assert "meters=[" not in err and "docs/" not in err


def test_cli_spelling_rewrites_only_the_meters_argument() -> None:
    assert cli_spelling("or pass meters=['cpu-model'] to estimate") == (
        "or pass --meters cpu-model to estimate"
    )
    assert cli_spelling('meters=["gpu-nvml", "cpu-rapl"]') == "--meters gpu-nvml,cpu-rapl"
    for kept in ("meters=[] measures nothing", "parameters=['x']", "no option here"):
        assert cli_spelling(kept) == kept
