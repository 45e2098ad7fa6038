"""The recorded environment is the job's (safety contract item 9).

A real second interpreter (``python -m venv --without-pip`` with one planted
``*.dist-info``) runs the job under ``wattwise run``; the record must list that
interpreter's version and distributions, not wattwise's, and ``reproduce`` must compare
against it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest
from repro_support import git, init_repo

from wattwise.repro import capture, prepare, resolve_interpreter
from wattwise.store import SQLiteRunStore


def _executable(path: Path, text: str) -> Path:
    path.write_text(text)
    path.chmod(0o755)
    return path


@pytest.fixture(scope="module")
def venv2(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A second environment with no pip and one fake distribution, ``fakepkg 1.2.3``."""
    root = tmp_path_factory.mktemp("venv2") / "env"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(root)], check=True,
                   timeout=120)  # fmt: skip
    purelib = sysconfig.get_path("purelib", vars={"base": "", "platbase": ""})
    site = root / Path(purelib).relative_to("/")
    dist = site / "fakepkg-1.2.3.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: fakepkg\nVersion: 1.2.3\n")
    return root


def test_python_on_path_shebangs_and_wrappers_are_resolved(tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    python = bin_dir / "python3.11"
    python.symlink_to(sys.executable)
    env = {"PATH": f"{bin_dir}{os.pathsep}/usr/bin{os.pathsep}/bin"}
    found = resolve_interpreter(["python3.11", "-m", "mod"], tmp_path, env)
    assert found == {"kind": "python", "executable": str(python), "how": "python3.11 on PATH"}
    via_env = _executable(tmp_path / "a.py", "#!/usr/bin/env -S python3.11 -u\nprint(1)\n")
    assert resolve_interpreter(["./a.py"], tmp_path, env)["executable"] == str(python)
    direct = _executable(tmp_path / "b.py", f"#!{python}\nprint(1)\n")
    assert resolve_interpreter([str(direct)], tmp_path, env)["executable"] == str(python)
    trampoline = _executable(
        tmp_path / "tool",
        f"#!/bin/sh\n'''exec' \"{python}\" \"$0\" \"$@\"\n' '''\nimport sys\n",
    )
    assert resolve_interpreter([str(trampoline)], tmp_path, env)["kind"] == "python"
    wrapped = resolve_interpreter(["env", "A=1", "nice", "-n", "5", "./a.py"], tmp_path, env)
    assert wrapped["executable"] == str(python) and wrapped["how"] == f"shebang of {via_env}"
    shell = _executable(tmp_path / "c.sh", "#!/bin/sh\necho hi\n")
    assert resolve_interpreter(["./c.sh"], tmp_path, env)["kind"] == "other"
    assert resolve_interpreter(["uv", "run", "python"], tmp_path, env)["kind"] == "unknown"
    missing = resolve_interpreter(["no-such-program"], tmp_path, env)
    assert missing["kind"] == "unknown" and "not found" in missing["reason"]
    assert direct.is_file() and shell.is_file()


def test_a_non_python_command_records_no_package_list(tmp_path: Path) -> None:
    env = capture(tmp_path, ["sh", "-c", "true"], command=True).record["environment"]
    assert "packages" not in env and "python" not in env
    assert env["interpreter"]["kind"] == "other"
    assert "no Python version or package list" in env["interpreter"]["note"]
    assert env["wattwise_python"]["executable"] == sys.executable


def test_in_process_runs_record_this_interpreter(tmp_path: Path) -> None:
    env = capture(tmp_path, list(sys.argv)).record["environment"]
    assert env["interpreter"]["how"] == "this process"
    assert env["executable"] == sys.executable and "pytest" in env["packages"]


def _version_of(python: Path) -> str:
    out = subprocess.run(
        [str(python), "-c", "import platform; print(platform.python_version())"],
        capture_output=True, text=True, check=True, timeout=60,
    )  # fmt: skip
    return out.stdout.strip()


def test_wattwise_run_records_the_jobs_interpreter_and_reproduce_compares_with_it(
    venv2: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = init_repo(Path.cwd(), monkeypatch)
    _executable(repo / "job.py", "#!/usr/bin/env python\nimport sys\nprint(sys.prefix)\n")
    git(repo, "add", "job.py")
    git(repo, "commit", "-q", "-m", "job")
    env = {**os.environ, "PATH": f"{venv2 / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}"}
    env.pop("VIRTUAL_ENV", None)
    ledger = Path(".wattwise/ledger.db")
    ids = []
    for argv in (["python", "job.py"], ["./job.py"]):
        ran = subprocess.run(
            [sys.executable, "-m", "wattwise", "run", "-q", "--", *argv], capture_output=True,
            text=True, timeout=180, env=env, check=False,
        )  # fmt: skip
        assert ran.returncode == 0, ran.stderr
        assert str(venv2) in ran.stdout  # the job really ran on the second interpreter
        store = SQLiteRunStore(ledger)
        ids.append(store.list_runs(limit=1)[0].id)
        store.close()
    store = SQLiteRunStore(ledger)
    for run_id in ids:
        recorded = store.get_run(run_id).record["environment"]
        assert recorded["packages"] == {"fakepkg": "1.2.3"}  # not wattwise's (pytest...)
        assert recorded["python"] == _version_of(venv2 / "bin" / "python")
        assert recorded["executable"] == str(venv2 / "bin" / "python")
        assert recorded["interpreter"]["kind"] == "python"
        assert recorded["wattwise_python"]["executable"] == sys.executable
    # The job's environment changes: reproduce (with the same PATH) sees that drift only.
    dist = next((venv2 / "lib").glob("*/site-packages/fakepkg-1.2.3.dist-info"))
    moved = dist.with_name("fakepkg-1.2.4.dist-info")
    dist.rename(moved)
    try:
        monkeypatch.setenv("PATH", env["PATH"])
        plan = prepare(ids[1], store=store)
    finally:
        moved.rename(dist)
        store.close()
    assert [(d.name, d.recorded, d.current) for d in plan.drift] == [("fakepkg", "1.2.3", "1.2.4")]
    assert plan.python == (recorded["python"], recorded["python"])


def test_reproduce_says_when_the_jobs_interpreter_is_gone(
    venv2: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = init_repo(Path.cwd(), monkeypatch)
    _executable(repo / "job.py", f"#!{venv2}/bin/python\nprint('ran')\n")
    git(repo, "add", "job.py")
    git(repo, "commit", "-q", "-m", "job")
    ran = subprocess.run(
        [sys.executable, "-m", "wattwise", "run", "-q", "--", "./job.py"], capture_output=True,
        text=True, timeout=180, check=False,
    )  # fmt: skip
    assert ran.returncode == 0, ran.stderr
    store = SQLiteRunStore(Path(".wattwise/ledger.db"))
    run_id = store.list_runs(limit=1)[0].id
    assert store.get_run(run_id).record["environment"]["packages"] == {"fakepkg": "1.2.3"}
    # The script now names an interpreter that does not exist.
    (repo / "job.py").write_text("#!/nonexistent/bin/python\nprint('ran')\n")
    plan = prepare(run_id, store=store)
    store.close()
    assert plan.python[1] == "not found"
    assert [(d.name, d.current) for d in plan.drift] == [("fakepkg", None)]
