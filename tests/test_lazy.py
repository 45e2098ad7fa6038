"""``wattwise._lazy``: the one PEP 562 loader the packages' ``__init__`` files share."""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from wattwise._lazy import lazy_attributes

PACKAGES = (
    "wattwise",
    "wattwise.environment",
    "wattwise.repro",
    "wattwise.report",
    "wattwise.store",
    "wattwise.tuning",
)


def _fresh(code: str) -> Any:
    """Run ``code`` in a fresh interpreter (imports change sys.modules for good); it prints
    one JSON value."""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_relative_and_renamed_names_load_once_into_the_namespace() -> None:
    namespace: dict[str, Any] = {}
    table = {"dumps": "json", "JSONError": ("json.decoder", "JSONDecodeError"),
             "JSONDecoder": ".decoder"}  # fmt: skip
    getattr_, dir_ = lazy_attributes("json", table, namespace)
    assert getattr_("dumps") is json.dumps
    assert getattr_("JSONError") is json.JSONDecodeError
    assert getattr_("JSONDecoder") is json.JSONDecoder  # ".decoder" of the package "json"
    assert namespace == {"dumps": json.dumps, "JSONError": json.JSONDecodeError,
                         "JSONDecoder": json.JSONDecoder}  # fmt: skip
    namespace["extra"] = 1
    assert dir_() == ["JSONDecoder", "JSONError", "dumps", "extra"]


def test_an_unknown_name_is_an_attribute_error_as_for_any_module() -> None:
    getattr_, _ = lazy_attributes("wattwise.demo", {"x": "json"}, {})
    with pytest.raises(AttributeError, match=r"^module 'wattwise.demo' has no attribute 'y'$"):
        getattr_("y")


@pytest.mark.parametrize("package", PACKAGES)
def test_every_package_table_resolves_and_lists_its_names(package: str) -> None:
    names = _fresh(
        "import importlib, json\n"
        f"pkg = importlib.import_module({package!r})\n"
        "table = vars(pkg)['_LAZY']\n"
        "assert set(pkg.__all__) <= set(dir(pkg)), set(pkg.__all__) - set(dir(pkg))\n"
        "assert set(table) <= set(dir(pkg))\n"
        "for name, spec in table.items():\n"
        "    module, attribute = (spec, name) if isinstance(spec, str) else spec\n"
        "    there = getattr(importlib.import_module(module, pkg.__name__), attribute)\n"
        "    assert getattr(pkg, name) is there, name\n"
        "    assert vars(pkg)[name] is there, name\n"
        "try:\n"
        "    pkg.no_such_name\n"
        "except AttributeError as err:\n"
        "    message = str(err)\n"
        "print(json.dumps([sorted(table), message]))\n"
    )
    table, message = names
    assert table  # each package has lazy names
    assert message == f"module {package!r} has no attribute 'no_such_name'"
    assert not hasattr(importlib.import_module(package), "no_such_name")


def test_import_wattwise_loads_only_itself_and_the_loader() -> None:
    loaded = _fresh(
        "import sys, json\n"
        "before = set(sys.modules)\n"
        "import wattwise\n"
        "print(json.dumps(sorted(set(sys.modules) - before)))\n"
    )
    assert [m for m in loaded if m.startswith("wattwise")] == ["wattwise", "wattwise._lazy"]
    assert "importlib" not in loaded  # only when a name is first used
    heavy = {"numpy", "torch", "optuna", "psycopg", "sqlite3", "ray", "pandas"}
    assert not heavy & set(loaded)


def test_the_loader_imports_nothing_from_wattwise() -> None:
    """A ground-layer module: every package may use it, it may use none of them."""
    import wattwise._lazy as module

    assert module.__file__ is not None
    code = Path(module.__file__).read_text(encoding="utf-8").split('"""', 2)[2]
    assert "import" in code
    assert "wattwise" not in code
