"""The tuning package's names: ``wattwise.tuning`` and the function ``wattwise.tune``, and the
spellings code written before the rename used (``wattwise.tune`` as a package), each in a fresh
interpreter because imports change ``sys.modules`` for the rest of a process."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest


def run_python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-W", "error::DeprecationWarning:__main__", "-c", textwrap.dedent(code)],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


def test_new_spelling_imports_no_legacy_module_and_warns_nothing() -> None:
    proc = run_python("""
        import inspect, sys, warnings
        warnings.simplefilter("error")
        import wattwise
        from wattwise import tune
        from wattwise.tuning import Trial, TuneResult, pareto_front
        import wattwise.tuning._tuner
        assert inspect.isfunction(wattwise.tune) and tune is wattwise.tuning.tune
        assert "wattwise.tune" not in sys.modules
        print("ok")
    """)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "ok"


@pytest.mark.parametrize(
    "legacy",
    [
        "from wattwise.tune import Trial, TuneResult, Budget, pareto_front",
        "import wattwise.tune as package; Trial = package.Trial",
        "import wattwise.tune._trial; Trial = wattwise.tune._trial.Trial",
        "from wattwise.tune._trial import Trial",
    ],
)
def test_old_package_spellings_still_import_the_same_objects_with_a_warning(legacy: str) -> None:
    proc = run_python(f"""
        import warnings
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            {legacy}
        import wattwise, wattwise.tuning, wattwise.tuning._trial
        assert Trial is wattwise.tuning.Trial is wattwise.tuning._trial.Trial
        messages = [str(w.message) for w in caught if issubclass(w.category, DeprecationWarning)]
        assert any("wattwise.tuning" in m for m in messages), messages
        # after the old import, wattwise.tune still runs the search
        from wattwise.testing import FakeMeter
        options = {{"meters": [FakeMeter({{"gpu:0": 10.0}})], "interval_s": 0.2,
                    "emit_warnings": False}}
        result = wattwise.tune(lambda t: t.suggest_float("x", 0, 1), n_trials=1,
                               run_options=options)
        assert isinstance(result, wattwise.tuning.TuneResult) and len(result.trials) == 1
        print("ok")
    """)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "ok"
