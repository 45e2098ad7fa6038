"""The documentation site's configuration and its docstring extension (mkdocs.yml).

`make test` builds the site with ``mkdocs build --strict``; these tests say sooner, and in
plain words, what would fail it or make it less than promised: a page left out of the nav,
a public module without its API page, a plugin or font that would reach the network. The
Griffe extension is tested on real source read by Griffe, as the site build reads it.
"""

from __future__ import annotations

import importlib.util
import re
import sys
import textwrap
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
NO_DOCS_EXTRA = "the docs extra is not installed: pip install -e '.[docs]'"

#: The public modules the API reference covers (issue 14's list, the errors, the callbacks).
PUBLIC_MODULES = (
    "wattwise",
    "wattwise.tracking",
    "wattwise.store",
    "wattwise.store.jobs",
    "wattwise.meters",
    "wattwise.carbon",
    "wattwise.tuning",
    "wattwise.cache",
    "wattwise.notebook",
    "wattwise.report",
    "wattwise.testing",
    "wattwise.integrations",
    "wattwise.optuna",
    "wattwise.prometheus",
    "wattwise.ray_tune",
    "wattwise.slurm",
    "wattwise.exceptions",
)


def _config() -> dict[str, Any]:
    yaml = pytest.importorskip("yaml", reason=NO_DOCS_EXTRA)
    config: dict[str, Any] = yaml.safe_load((ROOT / "mkdocs.yml").read_text(encoding="utf-8"))
    return config


def _nav_pages(nav: Any) -> list[str]:
    if isinstance(nav, str):
        return [nav]
    if isinstance(nav, list):
        return [page for item in nav for page in _nav_pages(item)]
    if isinstance(nav, dict):
        return [page for value in nav.values() for page in _nav_pages(value)]
    return []


def _extension() -> ModuleType:
    pytest.importorskip("griffe", reason=NO_DOCS_EXTRA)
    path = ROOT / "scripts" / "griffe_docstrings.py"
    spec = importlib.util.spec_from_file_location("griffe_docstrings_under_test", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_every_page_is_in_the_nav_once() -> None:
    pages = _nav_pages(_config()["nav"])
    on_disk = sorted(str(p.relative_to(DOCS)) for p in DOCS.rglob("*.md"))
    missing = [page for page in on_disk if page not in pages]
    assert not missing, f"add these pages to the nav of mkdocs.yml: {missing}"
    assert sorted(pages) == on_disk, "the nav names a page twice or one that does not exist"


def test_every_public_module_has_its_reference_page() -> None:
    pages = set(_nav_pages(_config()["nav"]))
    documented: dict[str, str] = {}
    for page in sorted((DOCS / "reference").glob("*.md")):
        for module in re.findall(r"^::: ([\w.]+)$", page.read_text(encoding="utf-8"), re.M):
            documented[module] = str(page.relative_to(DOCS))
    assert set(documented) == set(PUBLIC_MODULES)
    assert {documented[m] for m in PUBLIC_MODULES} <= pages
    index = (DOCS / "reference" / "index.md").read_text(encoding="utf-8")
    for module in PUBLIC_MODULES:
        assert f"[`{module}`]" in index, f"{module} is missing from reference/index.md"


def test_the_build_is_strict_and_needs_no_network() -> None:
    config = _config()
    assert config["strict"] is True
    # Material's default font comes from Google Fonts, in the reader's browser
    assert config["theme"]["name"] == "material"
    assert config["theme"]["font"] is False
    plugins = [p if isinstance(p, str) else next(iter(p)) for p in config["plugins"]]
    assert plugins == ["search", "mkdocstrings"], "a new plugin: check that it never fetches"
    # a page left out of the nav fails the build, as a broken link does
    assert config["validation"]["nav"]["omitted_files"] == "warn"
    assert config["validation"]["links"]["not_found"] == "warn"
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    build = re.search(r"^docs-build:.*\n\t(.+)$", makefile, re.M)
    assert build is not None
    assert "--strict" in build[1]
    assert "--quiet" not in build[1], "--quiet hides the warnings --strict counts"
    # make test builds the site: its `checks` job runs lint, then docs-build
    test = re.search(r"^test:.*\n((?:\t.*\n)+)", makefile, re.M)
    checks = re.search(r"^checks:.*\n((?:\t.*\n)+)", makefile, re.M)
    assert test is not None and re.search(r"\bchecks\b", test[1])
    assert checks is not None and re.search(r"\bdocs-build\b", checks[1])


# -- the Griffe extension, on a package Griffe reads from source --------------------------


def _load(tmp_path: Path, files: dict[str, str]) -> Any:
    extension = _extension()
    import griffe

    for name, text in files.items():
        path = tmp_path / "pkg" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text), encoding="utf-8")
    return griffe.load(
        "pkg",
        search_paths=[tmp_path],
        extensions=griffe.load_extensions(extension.WattwiseDocstrings),
    )


def test_sphinx_roles_become_optional_links_to_the_public_name(tmp_path: Path) -> None:
    pkg = _load(
        tmp_path,
        {
            "__init__.py": '''
                """See :func:`track`, :class:`~pkg._run.Run` and :data:`LIMIT`."""
                from pkg._run import Run, track
                LIMIT = 3
            ''',
            "_run.py": '''
                class Run:
                    """Ends with :meth:`Run.finish`; :mod:`os` is elsewhere."""
                def track():
                    """Start a run."""
            ''',
        },
    )
    text = pkg.docstring.value
    assert ":func:" not in text
    assert ":class:" not in text
    assert '<autoref identifier="pkg._run.track" optional><code>track</code></autoref>' in text
    # ~ shows the last part only; the identifier stays whole
    assert '<autoref identifier="pkg._run.Run" optional><code>Run</code></autoref>' in text
    assert '<autoref identifier="pkg.LIMIT" optional><code>LIMIT</code></autoref>' in text
    run_doc = pkg["_run"]["Run"].docstring.value
    assert 'identifier="pkg._run.Run.finish"' in run_doc
    assert '<autoref identifier="os" optional><code>os</code></autoref>' in run_doc


def test_grouped_arguments_become_one_entry_each(tmp_path: Path) -> None:
    pkg = _load(
        tmp_path,
        {
            "__init__.py": '''
                def run(sacct: str, scontrol: str, env: dict[str, str]) -> None:
                    """Run the two programs.

                    Args:
                        sacct, scontrol: The programs to run,
                            found on PATH.
                        env: Their environment.

                    Returns:
                        Nothing.
                    """
            ''',
        },
    )
    import griffe

    sections = pkg["run"].docstring.parse(griffe.Parser.google, warn_unknown_params=True)
    params = next(s for s in sections if s.kind is griffe.DocstringSectionKind.parameters)
    described = {p.name: p.description for p in params.value}
    assert described == {
        "sacct": "The programs to run,\nfound on PATH.",
        "scontrol": "The programs to run,\nfound on PATH.",
        "env": "Their environment.",
    }
    assert any(s.kind is griffe.DocstringSectionKind.returns for s in sections)


def test_literal_markers_and_comment_docstrings(tmp_path: Path) -> None:
    pkg = _load(
        tmp_path,
        {
            "__init__.py": '''
                """Quick start::

                    import pkg
                """
                #: Shortest prefix accepted,
                #: in characters.
                MIN_PREFIX = 4
                UNDOCUMENTED = 5
                SAID = 6
                """Documented the ordinary way."""
            ''',
        },
    )
    assert pkg.docstring.value.startswith("Quick start:\n")
    assert "::" not in pkg.docstring.value
    assert pkg["MIN_PREFIX"].docstring.value == "Shortest prefix accepted,\nin characters."
    assert pkg["UNDOCUMENTED"].docstring is None
    assert pkg["SAID"].docstring.value == "Documented the ordinary way."


def test_the_sections_the_site_takes_from_the_readme_exist() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    included = [
        (page, name)
        for page in sorted(DOCS.rglob("*.md"))
        for name in re.findall(r'^--8<-- "README\.md:([\w-]+)"$', page.read_text("utf-8"), re.M)
    ]
    assert included, "get-started.md shows README.md's quick start"
    for page, name in included:
        start = readme.find(f"<!-- --8<-- [start:{name}] -->")
        end = readme.find(f"<!-- --8<-- [end:{name}] -->")
        assert 0 <= start < end, f"{page.name} includes README.md section {name!r}: no markers"
        # the site checks every link; README.md's are relative to the clone's root
        assert "](docs/" not in readme[start:end], f"README.md section {name!r} links docs/"
