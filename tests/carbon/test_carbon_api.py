from __future__ import annotations

import os
import subprocess
import sys

import wattwise.carbon


def test_all_is_sorted_and_complete() -> None:
    public = {
        name
        for name, value in vars(wattwise.carbon).items()
        if not name.startswith("_") and name != "annotations" and not isinstance(value, type(os))
    }
    assert wattwise.carbon.__all__ == sorted(wattwise.carbon.__all__)
    assert set(wattwise.carbon.__all__) == public


def test_import_parses_no_data() -> None:
    code = (
        "import wattwise.carbon, wattwise.data as d, wattwise.carbon._tables as t\n"
        "assert d.read_csv.cache_info().currsize == 0, 'csv parsed at import'\n"
        "assert d.read_json.cache_info().currsize == 0, 'json parsed at import'\n"
        "assert t.em_2024.cache_info().currsize == 0\n"
        "import sys\n"
        "assert 'difflib' not in sys.modules\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
