"""Settings: every bad file, variable or argument is one clear error naming where and what."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from wattwise._config import MIN_INTERVAL_S, Settings, SettingsError, check_positive, load_settings
from wattwise.exceptions import ConfigError, InvalidParameterError

CONFIG = Path(".wattwise") / "config.toml"


def _error(root: Path, **kwargs: object) -> str:
    with pytest.raises(SettingsError) as caught:
        load_settings(root, environ=kwargs.pop("environ", {}), **kwargs)  # type: ignore[arg-type]
    err = caught.value
    assert isinstance(err, ConfigError) and isinstance(err, InvalidParameterError)
    text = str(err)
    assert "\n" not in text
    return text


@pytest.mark.parametrize(
    ("content", "needles"),
    [
        # Python's True is an int (== 1): a bool where a number is wanted must not read as 1.
        ("pue = true\n", ["pue = true is not valid", "finite number >= 1.0", "pue = 1.2"]),
        ("interval_s = true\n", ["interval_s = true is not valid"]),
        ("interval_s = 0.001\n", ["interval_s = 0.001 is not valid", f">= {MIN_INTERVAL_S:g}"]),
        ("interval_s = nan\n", ["interval_s = nan is not valid"]),
        ("interval_s = -1\n", ["interval_s = -1 is not valid"]),
        ("pue = 0.5\n", ["pue = 0.5 is not valid", "The Green Grid"]),
        ("pue = nan\n", ["pue = nan is not valid"]),
        ("pue = inf\n", ["pue = inf is not valid"]),
        ('pue = "1.2"\n', ["pue = '1.2' is not valid"]),
        ("intensity_g_per_kwh = 0\n", ["intensity_g_per_kwh = 0 is not valid"]),
        ("intensity_g_per_kwh = false\n", ["intensity_g_per_kwh = false is not valid"]),
        ('intensity_scope = "market"\n', ["'lifecycle' or 'direct'"]),
        ("region = 33\n", ["region = 33 is not valid"]),
        ('region = ""\n', ["region = '' is not valid"]),
        ('meters = ","\n', ["meters = ',' is not valid", "none empty"]),
        ('meters = ["", "cpu-rapl"]\n', ["meters = ['', 'cpu-rapl'] is not valid"]),
        ("meters = []\n", ["meters = [] is not valid"]),
        ("meters = [1]\n", ["meters = [1] is not valid"]),
        ('diff = "no"\n', ["diff = 'no' is not valid", "true or false"]),
        ("diff = 0\n", ["diff = 0 is not valid"]),
        ("diff_max_bytes = 1.5\n", ["diff_max_bytes = 1.5 is not valid", "whole number"]),
        ("diff_max_bytes = true\n", ["diff_max_bytes = true is not valid"]),
        ("diff_max_bytes = -1\n", ["diff_max_bytes = -1 is not valid"]),
        ("interval_s = 10\nflush_s = 2\n", ["flush_s = 2 s", "shorter than interval_s = 10 s"]),
        ("bogus = 1\n", ["unknown setting 'bogus'", "known settings: diff, diff_max_bytes"]),
        ("[bogus]\nx = 1\n", ["unknown setting 'bogus'"]),
        ("pue = \n", ["is not valid TOML", "Fix the TOML syntax"]),
    ],
)
def test_bad_config_toml_is_one_line_naming_file_and_key(
    isolated_project: Path, content: str, needles: list[str]
) -> None:
    (isolated_project / CONFIG).write_text(content, encoding="utf-8")
    text = _error(isolated_project)
    assert str(isolated_project / CONFIG) in text
    for needle in needles:
        assert needle in text


@pytest.mark.parametrize(
    ("content", "needles"),
    [
        ('[tool]\nwattwise = "FR"\n', ["tool.wattwise = 'FR' is not valid", "must be a table"]),
        ("tool = 3\n", ["tool = 3 is not valid", "[tool] must be a table"]),
        ("[tool.wattwise]\npue = true\n", ["pue = true is not valid"]),
        ("[tool.wattwise]\nregon = 'FR'\n", ["unknown setting 'regon' in [tool.wattwise]"]),
    ],
)
def test_bad_pyproject_is_one_line_naming_file_and_key(
    isolated_project: Path, content: str, needles: list[str]
) -> None:
    (isolated_project / "pyproject.toml").write_text(content, encoding="utf-8")
    text = _error(isolated_project)
    assert str(isolated_project / "pyproject.toml") in text
    for needle in needles:
        assert needle in text


def test_pyproject_without_a_wattwise_table_is_fine(isolated_project: Path) -> None:
    (isolated_project / "pyproject.toml").write_text(
        '[project]\nname = "x"\n[tool.ruff]\nline-length = 99\n', encoding="utf-8"
    )
    assert load_settings(isolated_project, environ={}) == Settings()


def test_non_utf8_config_names_the_byte_and_line(isolated_project: Path) -> None:
    (isolated_project / CONFIG).write_bytes(b"pue = 1.2\n# caf\xe9 au lait\n")
    text = _error(isolated_project)
    assert f"{isolated_project / CONFIG} is not UTF-8 text (byte 0xe9 on line 2)" in text
    assert "save it again as UTF-8" in text


def test_config_that_is_a_directory_is_an_error(isolated_project: Path) -> None:
    (isolated_project / CONFIG).mkdir()
    text = _error(isolated_project)
    assert f"{isolated_project / CONFIG} is a directory" in text


def test_config_that_is_a_fifo_is_an_error_not_a_hang(isolated_project: Path) -> None:
    os.mkfifo(isolated_project / CONFIG)
    text = _error(isolated_project)
    assert f"{isolated_project / CONFIG} is not a regular file" in text


def test_dangling_config_symlink_is_an_error(isolated_project: Path) -> None:
    path = isolated_project / CONFIG
    path.symlink_to(isolated_project / "gone.toml")
    text = _error(isolated_project)
    assert f"Cannot read settings from {path}: No such file or directory" in text


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file whatever its mode")
def test_unreadable_config_is_an_error(isolated_project: Path) -> None:
    path = isolated_project / CONFIG
    path.write_text("pue = 1.2\n", encoding="utf-8")
    path.chmod(0)
    text = _error(isolated_project)
    assert f"Cannot read settings from {path}" in text


@pytest.mark.parametrize(
    ("var", "value", "needles"),
    [
        ("WATTWISE_PUE", "abc", ["$WATTWISE_PUE = 'abc' is not valid for pue", "PUE=1.2"]),
        ("WATTWISE_PUE", "0.5", ["$WATTWISE_PUE = '0.5'"]),
        ("WATTWISE_PUE", "nan", ["$WATTWISE_PUE = 'nan'"]),
        ("WATTWISE_INTERVAL_S", "0.001", ["$WATTWISE_INTERVAL_S = '0.001'"]),
        ("WATTWISE_FLUSH_S", "0.5", ["flush_s = 0.5 s (from $WATTWISE_FLUSH_S)"]),
        ("WATTWISE_METERS", ",", ["$WATTWISE_METERS = ','"]),
        ("WATTWISE_DIFF", "maybe", ["$WATTWISE_DIFF = 'maybe' is not valid for diff", "1 or 0"]),
        ("WATTWISE_DIFF_MAX_BYTES", "1MB", ["$WATTWISE_DIFF_MAX_BYTES = '1MB'"]),
        ("WATTWISE_INTENSITY_SCOPE", "market", ["$WATTWISE_INTENSITY_SCOPE = 'market'"]),
    ],
)
def test_bad_environment_variable_is_one_line_naming_it(
    isolated_project: Path, var: str, value: str, needles: list[str]
) -> None:
    environ = {var: value}
    if var == "WATTWISE_FLUSH_S":
        environ["WATTWISE_INTERVAL_S"] = "2"
    text = _error(isolated_project, environ=environ)
    for needle in needles:
        assert needle in text


@pytest.mark.parametrize(
    ("overrides", "needle"),
    [
        ({"pue": True}, "pue=true is not valid"),
        ({"pue": 0.99}, "pue=0.99 is not valid"),
        ({"interval_s": 0.01}, "interval_s=0.01 is not valid"),
        ({"interval_s": "1"}, "interval_s='1' is not valid"),
        ({"diff": 1}, "diff=1 is not valid"),
        ({"bogus": 1}, "Unknown setting 'bogus'"),
        ({"interval_s": 1.0, "flush_s": 0.5}, "flush_s = 0.5 s (from the arguments)"),
    ],
)
def test_bad_override_is_an_invalid_parameter(
    isolated_project: Path, overrides: dict[str, object], needle: str
) -> None:
    assert needle in _error(isolated_project, **overrides)


def test_sources_in_order_files_then_environment_then_arguments(isolated_project: Path) -> None:
    (isolated_project / "pyproject.toml").write_text(
        "[tool.wattwise]\npue = 1.5\ninterval_s = 2\nregion = 'DE'\n", encoding="utf-8"
    )
    (isolated_project / CONFIG).write_text(
        'pue = 1.3\nmeters = ["cpu-model"]\ndiff = false\ndiff_max_bytes = 2048\n',
        encoding="utf-8",
    )
    settings = load_settings(isolated_project, environ={"WATTWISE_INTENSITY": "56"})
    assert settings == Settings(
        region="DE", pue=1.3, intensity_g_per_kwh=56.0, interval_s=2.0, flush_s=5.0,
        meters=("cpu-model",), diff=False, diff_max_bytes=2048,
    )  # fmt: skip
    assert isinstance(settings.interval_s, float)  # TOML's integer 2 read as seconds
    env = {"WATTWISE_DIFF": "1", "WATTWISE_DIFF_MAX_BYTES": "10", "WATTWISE_PUE": "1.1"}
    settings = load_settings(isolated_project, environ=env, pue=1.05, diff=False)
    assert (settings.pue, settings.diff, settings.diff_max_bytes) == (1.05, False, 10)


@pytest.mark.parametrize(("text", "expected"), [("0", False), ("1", True), ("off", False),
                                                 ("TRUE", True)])  # fmt: skip
def test_diff_from_the_environment(isolated_project: Path, text: str, expected: bool) -> None:
    assert load_settings(isolated_project, environ={"WATTWISE_DIFF": text}).diff is expected


def test_defaults_keep_diff_and_its_cap() -> None:
    assert (Settings().diff, Settings().diff_max_bytes) == (True, 1_000_000)


def test_interval_bound_and_flush_default(isolated_project: Path) -> None:
    at_bound = load_settings(isolated_project, environ={}, interval_s=MIN_INTERVAL_S)
    assert at_bound.interval_s == MIN_INTERVAL_S and at_bound.flush_s == 5.0
    # A long interval raises the flush period with it when flush_s is not given.
    slow = load_settings(isolated_project, environ={"WATTWISE_INTERVAL_S": "30"})
    assert (slow.interval_s, slow.flush_s) == (30.0, 30.0)


def test_check_positive_refuses_bools() -> None:
    assert check_positive("budget_kwh", 2) == 2.0
    for bad in (True, False, 0, -1.0, float("nan"), float("inf"), "abc", None):
        with pytest.raises(InvalidParameterError, match="must be a float in the range"):
            check_positive("budget_kwh", bad)
