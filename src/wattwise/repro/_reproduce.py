"""``wattwise reproduce``: re-run a recorded command where and as it ran.

Steps: :func:`prepare` reads the original run and refuses what cannot be reproduced
(not a command, not in git, commit missing, diff missing or damaged); :func:`checkout`
makes a fresh ``git worktree`` at the recorded commit and applies the recorded diff
(refusing if it does not apply), and removes it afterwards; :func:`execute` runs the
command there, in the recorded directory, under a new run linked to the original, and
compares the final metrics.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from wattwise.environment import (
    DIFF_ARTIFACT,
    REDACTED,
    RESTORED_ON_REPRODUCE,
    canonical_name,
    job_environment,
    packages,
)
from wattwise.exceptions import ReproducibilityError
from wattwise.repro._compare import Comparison, Tolerances, compare_metrics, final_metrics

if TYPE_CHECKING:
    from wattwise.store import BaseRunStore, RunRecord

_GIT_TIMEOUT_S = 120.0


@dataclasses.dataclass(frozen=True)
class PackageDrift:
    """A distribution whose version differs from the record (None: not installed)."""

    name: str
    recorded: str | None
    current: str | None

    def to_dict(self) -> dict[str, Any]:
        """JSON shape."""
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class ReproducePlan:
    """Everything needed to re-run a recorded command.

    Attributes:
        run: The original run.
        repo: The git repository that holds the recorded commit.
        commit: The recorded commit.
        diff: The recorded uncommitted diff (``git diff HEAD --binary``), or None if clean.
        relative_cwd: The recorded working directory, relative to the repository root.
        argv: The recorded command.
        env: Recorded variables set again for the re-run (``PYTHONHASHSEED`` ...).
        drift: Distributions whose version differs between the record and the
            interpreter the re-run will use (the job's, found as for the original run).
        python: ``(recorded, current)`` Python versions of the job's interpreter.
        untracked: Untracked files at record time (not captured, so absent from the re-run).
    """

    run: RunRecord
    repo: Path
    commit: str
    diff: bytes | None
    relative_cwd: Path
    argv: list[str]
    env: dict[str, str]
    drift: tuple[PackageDrift, ...]
    python: tuple[str | None, str]
    untracked: tuple[str, ...]


@dataclasses.dataclass(frozen=True)
class ReproduceResult:
    """The outcome of a reproduction. Energy in J.

    Attributes:
        original_id: The original run.
        new_id: The run made by the reproduction (linked by ``record["reproduces"]``).
        exit_code: The re-run command's exit code.
        original_exit_code: The original command's exit code.
        comparison: Final metrics compared, or None without ``check``.
        original_energy_j: Energy of the original run, J.
        new_energy_j: Energy of the reproduction, J.
    """

    original_id: str
    new_id: str
    exit_code: int
    original_exit_code: int | None
    comparison: Comparison | None
    original_energy_j: float
    new_energy_j: float

    @property
    def is_reproduced(self) -> bool:
        """Same exit code and, when compared, every final metric within tolerance."""
        same_exit = self.exit_code == (self.original_exit_code or 0)
        return same_exit and (self.comparison is None or self.comparison.is_reproduced)

    def to_dict(self) -> dict[str, Any]:
        """JSON shape."""
        return {
            "original_id": self.original_id,
            "new_id": self.new_id,
            "exit_code": self.exit_code,
            "original_exit_code": self.original_exit_code,
            "is_reproduced": self.is_reproduced,
            "comparison": None if self.comparison is None else self.comparison.to_dict(),
            "original_energy_j": self.original_energy_j,
            "new_energy_j": self.new_energy_j,
        }


def _git(repo: Path, *args: str) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(
            ["git", "-C", str(repo), *args], capture_output=True, text=True,
            timeout=_GIT_TIMEOUT_S, check=False,
            env={**os.environ, "LC_ALL": "C", "GIT_TERMINAL_PROMPT": "0"},
        )  # fmt: skip
    except (OSError, subprocess.SubprocessError) as err:
        msg = f"Cannot run git in {repo}: {err}. Install git and check that it is on PATH."
        raise ReproducibilityError(msg) from err


def _has_commit(repo: Path, commit: str) -> bool:
    if not repo.is_dir():
        return False
    return _git(repo, "cat-file", "-e", f"{commit}^{{commit}}").returncode == 0


def _find_repo(recorded_root: str | None, commit: str, ref: str) -> Path:
    candidates: list[Path] = []
    if recorded_root:
        candidates.append(Path(recorded_root))
    here = _git(Path.cwd(), "rev-parse", "--show-toplevel")
    if here.returncode == 0 and here.stdout.strip():
        candidates.append(Path(here.stdout.strip()))
    for repo in candidates:
        if _has_commit(repo, commit):
            return repo
    where = " or ".join(str(c) for c in candidates) or "the current directory"
    msg = (
        f"Commit {commit[:12]} recorded by run {ref!r} is not in the repository at {where}. "
        "Fetch it (git fetch --all) or run 'wattwise reproduce' from a clone that has it."
    )
    raise ReproducibilityError(msg)


def package_drift(
    recorded: Mapping[str, str], current: Mapping[str, str] | None = None
) -> tuple[PackageDrift, ...]:
    """Distributions whose version differs, or that are missing now (added ones are not listed)."""
    now = {canonical_name(k): v for k, v in (packages() if current is None else current).items()}
    out = []
    for name, version in sorted(recorded.items(), key=lambda kv: canonical_name(kv[0])):
        found = now.get(canonical_name(name))
        if found != version:
            out.append(PackageDrift(name, version, found))
    return tuple(out)


def prepare(ref: str, *, store: BaseRunStore) -> ReproducePlan:
    """Check that run ``ref`` can be reproduced and gather what that needs.

    Raises:
        RunNotFoundError: No such run.
        ReproducibilityError: The run was not a ``wattwise run`` command, was not in a git
            repository, its commit is missing, or its diff is missing or damaged.
    """
    import platform

    run = store.get_run(ref)
    short = run.id[:8]
    command = run.record.get("command") or {}
    if not command.get("is_command"):
        msg = (
            f"Run {short!r} was not started by 'wattwise run' (it is a {run.kind} run), so "
            "there is no command to re-run. Only command runs can be reproduced: record one "
            "with 'wattwise run -- python train.py'."
        )
        raise ReproducibilityError(msg)
    code = run.record.get("code")
    if code is None:
        msg = (
            f"Run {short!r} has no code record (it ended before its environment was "
            "captured), so its commit is unknown. Run the command again with 'wattwise run'."
        )
        raise ReproducibilityError(msg)
    if not code.get("available"):
        msg = (
            f"Run {short!r} did not run inside a git repository ({code.get('reason')}), so "
            "its code version is unknown. Put the project under git, commit, and record the "
            "run again with 'wattwise run'."
        )
        raise ReproducibilityError(msg)
    commit = str(code["commit"])
    repo = _find_repo(code.get("root"), commit, short)
    diff = _recorded_diff(run, code, store)
    relative = Path(".")
    cwd, root = command.get("cwd"), code.get("root")
    if cwd and root:
        with contextlib.suppress(ValueError, OSError):
            relative = Path(os.path.relpath(Path(cwd).resolve(), Path(root).resolve()))
        if relative.parts and relative.parts[0] == "..":
            relative = Path(".")
    argv = [str(a) for a in command.get("argv") or []]
    hidden = [a for a in argv if REDACTED in a]
    if hidden:
        msg = (
            f"Run {short!r} had secret values in its command line ({', '.join(hidden[:3])}), "
            "replaced by *** before they were stored, so the command cannot be re-run as it "
            "was. Pass secrets through environment variables or files, and record the run "
            "again."
        )
        raise ReproducibilityError(msg)
    env_record = run.record.get("environment") or {}
    variables = env_record.get("variables") or {}
    env = {k: str(v) for k, v in variables.items() if k in RESTORED_ON_REPRODUCE}
    current_python, current_packages = _rerun_environment(
        env_record, argv, repo / relative, Path(str(command.get("cwd") or repo))
    )
    return ReproducePlan(
        run=run, repo=repo, commit=commit, diff=diff, relative_cwd=relative,
        argv=argv, env=env,
        drift=package_drift(env_record.get("packages") or {}, current_packages),
        python=(env_record.get("python"), current_python or platform.python_version()),
        untracked=tuple(code.get("untracked") or ()),
    )  # fmt: skip


def _rerun_environment(
    recorded: Mapping[str, Any], argv: list[str], where: Path, recorded_cwd: Path
) -> tuple[str | None, dict[str, str]]:
    """Python version and packages of the interpreter the re-run will use.

    Runs recorded before the job's interpreter was (no ``interpreter`` key) ran on
    wattwise's own: this process's packages are compared, as before. A job that was not
    Python has no packages to compare.
    """
    interpreter = recorded.get("interpreter")
    if not isinstance(interpreter, Mapping):
        return None, packages()
    if interpreter.get("kind") != "python" or "packages" not in recorded:
        return None, {k: str(v) for k, v in (recorded.get("packages") or {}).items()}
    if interpreter.get("how") == "this process":
        return None, packages()
    cwd = where if where.is_dir() else recorded_cwd
    if not cwd.is_dir():
        cwd = Path.cwd()
    now = job_environment(argv, cwd, command=True)
    if "packages" not in now:  # the re-run's interpreter cannot be asked: nothing matches
        return "not found", {}
    return str(now.get("python")), dict(now["packages"])


def _recorded_diff(run: RunRecord, code: Mapping[str, Any], store: BaseRunStore) -> bytes | None:
    short = run.id[:8]
    info = code.get("diff")
    if code.get("dirty") is None and info:
        msg = (
            f"Whether run {short!r} had uncommitted changes is unknown ({info.get('reason')}), "
            "so its code cannot be rebuilt. Commit or stash the changes (or keep large data "
            "files out of git), and record the run again."
        )
        raise ReproducibilityError(msg)
    if not code.get("dirty") or not info:
        return None
    binary = [str(b.get("path")) for b in info.get("binary") or ()]
    if info.get("binary_count") or binary:
        msg = (
            f"Run {short!r} had uncommitted changes to binary file(s) "
            f"({', '.join(binary[:3]) or 'unnamed'}) whose content is never stored (only size "
            "and sha256), so its code cannot be rebuilt. Commit them, or keep data and "
            "checkpoints out of git, and record the run again."
        )
        raise ReproducibilityError(msg)
    if info.get("redactions"):
        msg = (
            f"Run {short!r} had {info['redactions']} secret value(s) in its uncommitted "
            "changes, replaced by *** before the diff was stored, so its code cannot be "
            "rebuilt exactly. Keep secrets out of tracked files (environment variables), "
            "commit, and record the run again."
        )
        raise ReproducibilityError(msg)
    if not info.get("stored"):
        msg = (
            f"Run {short!r} had uncommitted changes whose diff was not stored "
            f"({info.get('reason', 'unknown reason')}), so its code cannot be rebuilt. Commit "
            "the changes and record the run again."
        )
        raise ReproducibilityError(msg)
    content = store.get_artifact(run.id, str(info.get("artifact") or DIFF_ARTIFACT))
    if content is None or hashlib.sha256(content).hexdigest() != info.get("sha256"):
        msg = (
            f"The diff of run {short!r} is missing from the ledger at {store.path} or does not "
            "match its recorded sha256, so its code cannot be rebuilt. Use the ledger the run "
            "was recorded in (--store)."
        )
        raise ReproducibilityError(msg)
    return content


@contextlib.contextmanager
def checkout(plan: ReproducePlan) -> Iterator[Path]:
    """A fresh worktree at the recorded commit with the recorded diff applied; removed after.

    Raises:
        ReproducibilityError: The worktree cannot be made or the diff does not apply.
    """
    scratch = Path(tempfile.mkdtemp(prefix="wattwise-reproduce-"))
    tree = scratch / "tree"
    made = _git(plan.repo, "worktree", "add", "--detach", "--quiet", str(tree), plan.commit)
    if made.returncode != 0:
        shutil.rmtree(scratch, ignore_errors=True)
        first = (made.stderr.strip().splitlines() or ["unknown error"])[0]
        msg = (
            f"Cannot make a worktree of {plan.repo} at {plan.commit[:12]}: {first}. Check "
            "that the repository is writable and 'git worktree add' works there."
        )
        raise ReproducibilityError(msg)
    try:
        if plan.diff:
            patch = scratch / "recorded.diff"
            patch.write_bytes(plan.diff)
            options = ("--binary", "--whitespace=nowarn", str(patch))
            checked = _git(tree, "apply", "--check", *options)
            if checked.returncode != 0:
                first = (checked.stderr.strip().splitlines() or ["unknown error"])[0]
                msg = (
                    f"The recorded diff of run {plan.run.id[:8]!r} does not apply on commit "
                    f"{plan.commit[:12]} ({first}). The commit or the diff in the ledger was "
                    "changed; reproduce from the original repository and ledger."
                )
                raise ReproducibilityError(msg)
            applied = _git(tree, "apply", *options)
            if applied.returncode != 0:  # pragma: no cover - --check passed just before
                msg = f"git apply failed in {tree}: {applied.stderr.strip()}."
                raise ReproducibilityError(msg)
        yield tree
    finally:
        removed = _git(plan.repo, "worktree", "remove", "--force", str(tree))
        if removed.returncode != 0:
            shutil.rmtree(tree, ignore_errors=True)
            _git(plan.repo, "worktree", "prune")
        shutil.rmtree(scratch, ignore_errors=True)


@contextlib.contextmanager
def _within(cwd: Path, env: Mapping[str, str]) -> Iterator[None]:
    """Change the working directory and set variables for the duration (not thread-safe)."""
    old_cwd = Path.cwd()
    old_env = {k: os.environ.get(k) for k in env}
    os.chdir(cwd)
    os.environ.update(env)
    try:
        yield
    finally:
        os.chdir(old_cwd)
        for key, value in old_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def recorded_region(run: RunRecord) -> str | None:
    """The region a reproduction of ``run`` is measured in, or None to resolve it afresh.

    A region the original run was given (``--region``, ``WATTWISE_REGION``, the
    configuration, ``WATTWISE_CLOUD``) is kept, in its cloud form when it was a cloud
    region, so the reproduction uses the same grid intensity and PUE. A location that was
    only guessed (time zone) or unknown (world average) is resolved again on this
    machine, with its warning, rather than passed on as if it had been given.
    """
    location = run.record.get("location") or {}
    if location.get("how") not in ("explicit", "env", "config", "cloud"):
        return None
    provider, cloud_region = location.get("cloud_provider"), location.get("cloud_region")
    if provider and cloud_region:
        return f"{provider}:{cloud_region}"
    zone = location.get("zone") or run.region
    return str(zone) if zone else None


def execute(
    plan: ReproducePlan,
    *,
    store: BaseRunStore,
    tolerances: Tolerances | None = None,
    on_warning: Callable[[str], None] | None = None,
    region: str | None = None,
) -> ReproduceResult:
    """Re-run the planned command in a fresh worktree and, with ``tolerances``, compare.

    The process's working directory and the restored variables are changed while the
    command runs and put back afterwards. The new run keeps the original run's region
    (see :func:`recorded_region`) unless ``region`` overrides it.

    Args:
        plan: From :func:`prepare`.
        store: The ledger the original run is in; the new run is recorded there.
        tolerances: Compare final metrics with these (None: no comparison).
        on_warning: Called with location or meter warnings of the new run.
        region: The new run's region (any form ``--region`` takes); default: the
            original run's.

    Raises:
        ReproducibilityError: The worktree cannot be made or the diff does not apply.
    """
    from wattwise.tracking import run_command

    original = plan.run
    chosen = region if region and region.strip() else recorded_region(original)
    with checkout(plan) as tree:
        workdir = tree / plan.relative_cwd
        if not workdir.is_dir():
            workdir = tree
        with _within(workdir, plan.env):
            code, result = run_command(
                plan.argv, name=original.name, store=store, reproduces=original.id,
                tags=[*original.tags, "reproduction"], emit_warnings=on_warning is None,
                on_warning=on_warning, region=chosen,
            )  # fmt: skip
    comparison = None
    if tolerances is not None:
        comparison = compare_metrics(
            final_metrics(store.metrics(original.id)),
            final_metrics(store.metrics(result.id)),
            tolerances,
        )
    outcome = ReproduceResult(
        original_id=original.id, new_id=result.id, exit_code=code,
        original_exit_code=original.exit_code, comparison=comparison,
        original_energy_j=original.energy_j, new_energy_j=result.energy_j,
    )  # fmt: skip
    store.annotate_run(result.id, "reproduction", outcome.to_dict())
    return outcome


def reproduce(
    ref: str,
    *,
    store: BaseRunStore | str | None = None,
    check: bool = False,
    tolerance: str | list[str] | None = None,
    region: str | None = None,
) -> ReproduceResult:
    """Re-run run ``ref``'s command at its commit and diff; optionally compare metrics.

    Args:
        ref: Run id or unique prefix.
        store: The ledger (default: the project's).
        check: Compare the final metrics of both runs.
        tolerance: ``0.01`` (absolute), ``5%`` (relative) or ``acc=0.01`` (per metric),
            or a list of them; default exact (up to float rounding).
        region: The new run's region; default: the original run's (see
            :func:`recorded_region`).

    Raises:
        ReproducibilityError: See :func:`prepare` and :func:`checkout`.
    """
    from wattwise.store import BaseRunStore, open_store

    tolerances = Tolerances.parse(tolerance) if check else None
    ledger = store if isinstance(store, BaseRunStore) else open_store(store)
    try:
        plan = prepare(ref, store=ledger)
        return execute(plan, store=ledger, tolerances=tolerances, region=region)
    finally:
        if ledger is not store:
            ledger.close()
