"""What ``wattwise run`` leaves unloaded, and that cutting it lost nothing.

The fixed cost of ``wattwise run`` is mostly imports and scans it does not need: the other
verbs' modules, the footprint and in-memory ledger code, the full entry-point scan when no
distribution declares a meter plug-in. These tests check the behaviour (what is imported,
what is still found), never a time.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

from wattwise.cli._main import COMMANDS, build_parser
from wattwise.meters import ENTRY_POINT_GROUP
from wattwise.store import open_store

#: Runs ``wattwise`` in this interpreter, then prints the wattwise modules it loaded.
_MAIN_THEN_MODULES = """
import json, sys
from wattwise.cli import main
code = main(sys.argv[1:])
print(json.dumps({"code": code, "modules": sorted(m for m in sys.modules
                                                 if m.startswith("wattwise"))}))
"""

#: Lists the registered meters, and whether the full entry-point scan was imported.
_ENTRIES = """
import json, sys
from wattwise.meters import meter_entries
entries = {e.name: e.error for e in meter_entries()}
print(json.dumps({"entries": entries, "metadata": "importlib.metadata" in sys.modules}))
"""

_PLUGIN = """
from wattwise.meters import BaseMeter

class AcmeNpuMeter(BaseMeter):
    name = "npu-acme"
    method = "counter"
    covers = ("npu",)
    preference = 30
"""


def _python(code: str, *args: str, pythonpath: Path | None = None) -> dict[str, object]:
    env = dict(os.environ)
    if pythonpath is not None:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, (str(pythonpath), env.get("PYTHONPATH"))))
    out = subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, env=env,
        timeout=120, check=False,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    result: dict[str, object] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def test_run_imports_only_its_own_verb_and_no_footprint_or_memory_ledger() -> None:
    out = _python(_MAIN_THEN_MODULES, "run", "-q", "--", sys.executable, "-c", "pass")
    assert out["code"] == 0
    modules = set(out["modules"])  # type: ignore[arg-type]
    assert "wattwise.cli.commands.run" in modules
    others = {f"wattwise.cli.commands.{verb}" for verb in COMMANDS if verb != "run"}
    assert not modules & others
    assert "wattwise.store._footprint" not in modules
    assert "wattwise.store._memory" not in modules
    # ... and the run was measured and kept as before.
    store = open_store(readonly=True)
    try:
        runs = store.list_runs()
    finally:
        store.close()
    assert len(runs) == 1
    assert runs[0].status.value == "finished"
    assert runs[0].energy_j > 0


def test_options_before_the_verb_keep_the_one_verb_parser() -> None:
    out = _python(
        _MAIN_THEN_MODULES, "--debug", "--store", ".wattwise/other.db", "run", "-q", "--",
        sys.executable, "-c", "pass",
    )  # fmt: skip
    assert out["code"] == 0
    assert "wattwise.cli.commands.show" not in out["modules"]  # type: ignore[operator]
    store = open_store(".wattwise/other.db", readonly=True)
    try:
        assert len(store.list_runs()) == 1
    finally:
        store.close()


def test_help_before_a_verb_still_lists_every_verb() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "wattwise", "--help", "run"], capture_output=True, text=True,
        timeout=120, check=False,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    for verb in COMMANDS:
        assert verb in out.stdout


def test_an_abbreviated_store_option_is_parsed_as_before() -> None:
    # argparse takes "--sto" for "--store": "show" is its value and "runs" the verb.
    out = subprocess.run(
        [sys.executable, "-m", "wattwise", "--sto", "show", "runs"], capture_output=True,
        text=True, timeout=120, check=False,
    )  # fmt: skip
    assert "invalid choice" not in out.stderr
    assert "Traceback" not in out.stderr


def test_one_verb_parser_reads_arguments_as_the_full_one() -> None:
    for verb in COMMANDS:
        helps = []
        for only in (verb, None):
            parser = build_parser(only=only)
            verb_parser = parser._subparsers._group_actions[0].choices[verb]  # type: ignore[union-attr]
            helps.append(verb_parser.format_help())
        assert helps[0] == helps[1], verb


def _write_dist(site: Path) -> None:
    (site / "acme_wattwise.py").write_text(textwrap.dedent(_PLUGIN))
    dist = site / "acme_wattwise-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: acme-wattwise\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text(
        f"[{ENTRY_POINT_GROUP}]\nnpu-acme = acme_wattwise:AcmeNpuMeter\n"
    )


def test_without_a_declared_plugin_the_full_entry_point_scan_is_skipped() -> None:
    out = _python(_ENTRIES)
    assert out["metadata"] is False
    assert "cpu-model" in out["entries"]  # type: ignore[operator]


def test_a_plugin_in_a_dist_info_folder_is_still_found(tmp_path: Path) -> None:
    site = tmp_path / "site"
    site.mkdir()
    _write_dist(site)
    out = _python(_ENTRIES, pythonpath=site)
    assert out["entries"]["npu-acme"] == ""  # type: ignore[index]


def test_a_plugin_in_a_zip_on_the_path_is_still_found(tmp_path: Path) -> None:
    site = tmp_path / "site"
    site.mkdir()
    _write_dist(site)
    archive = tmp_path / "acme.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for path in site.rglob("*"):
            if path.is_file():
                zf.write(path, path.relative_to(site).as_posix())
    out = _python(_ENTRIES, pythonpath=archive)
    assert out["entries"]["npu-acme"] == ""  # type: ignore[index]
    assert out["metadata"] is True
