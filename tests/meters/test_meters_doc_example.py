"""The worked example of docs/explanation/meters.md ("Write a meter") runs as written:
its code is taken from the page and put through the meter contract suite on a fake hwmon
tree, then registered and selected."""

from __future__ import annotations

import re
import types
from pathlib import Path
from typing import Any

import pytest

from wattwise.exceptions import MeterUnavailableError
from wattwise.meters import BaseMeter, register_meter, select_meters, unregister_meter
from wattwise.testing.meter_contract import MeterContract

DOC = Path(__file__).parents[2] / "docs" / "explanation" / "meters.md"


def _example() -> Any:
    text = DOC.read_text(encoding="utf-8")
    match = re.search(r"<!-- example: gpu-hwmon -->\n```python\n(.*?)```", text, re.S)
    assert match, "the worked example is missing from meters.md"
    module = types.ModuleType("meters_doc_example")
    exec(compile(match.group(1), str(DOC), "exec"), module.__dict__)
    return module.HwmonGpuMeter


HwmonGpuMeter = _example()


def _device(root: Path, n: int, name: str = "xe", energy_uj: int = 1_000) -> Path:
    folder = root / f"hwmon{n}"
    folder.mkdir(parents=True)
    (folder / "name").write_text(name + "\n")
    (folder / "energy1_input").write_text(f"{energy_uj}\n")
    return folder


class TestDocExampleContract(MeterContract):
    watts = 90.0

    @pytest.fixture(autouse=True)
    def _tree(self, tmp_path: Path) -> None:
        self.tmp = tmp_path
        self.t = 0.0
        self.devices: list[tuple[Path, int | None]] = []

    def _tree_meter(self, name: str, restart_at: int | None = None) -> BaseMeter:
        root = self.tmp / name
        _device(root, 0, name="coretemp")  # another driver's hwmon: ignored
        self.devices.append((_device(root, 1), restart_at))
        self.devices.append((_device(root, 2), restart_at))
        return HwmonGpuMeter(root)  # type: ignore[no-any-return]

    def make_meter(self) -> BaseMeter:
        return self._tree_meter(f"hw{len(self.devices)}")

    def advance(self, seconds: float) -> None:
        self.t += seconds
        for folder, restart_at in self.devices:
            t = self.t - restart_at if restart_at is not None and self.t >= restart_at else self.t
            (folder / "energy1_input").write_text(f"{1_000 + int(self.watts * t * 1e6)}\n")

    def make_unavailable(self) -> BaseMeter:
        return HwmonGpuMeter(self.tmp / "empty")  # type: ignore[no-any-return]

    def make_broken(self) -> BaseMeter:
        root = self.tmp / "broken"
        (_device(root, 0) / "energy1_input").write_text("not a number\n")
        return HwmonGpuMeter(root)  # type: ignore[no-any-return]

    def make_wrapping(self) -> BaseMeter:
        return self._tree_meter("restart", restart_at=5)


def test_the_example_registers_and_a_missing_device_is_one_clear_error() -> None:
    if any(
        (d / "name").is_file() and (d / "name").read_text().strip() == "xe"
        for d in Path("/sys/class/hwmon").glob("hwmon*")
    ):  # pragma: no cover - a machine with an Intel xe GPU
        pytest.skip("this machine has an xe GPU")
    register_meter(HwmonGpuMeter)
    try:
        with pytest.raises(MeterUnavailableError) as err:
            select_meters(["gpu-hwmon"])
        assert str(err.value).startswith(
            "Cannot use the gpu-hwmon meter: no hwmon device named 'xe' with an energy counter"
        )
        assert "Load the GPU driver, or pass another driver name." in str(err.value)
    finally:
        unregister_meter("gpu-hwmon")
