"""Reconcile a SLURM job's ledger energy with SLURM's own accounting (``sacct``).

After a job, :func:`reconcile` runs::

    sacct -P -n -j <job> --format JobID,JobName,NodeList,Elapsed,ConsumedEnergyRaw,AllocTRES,State

parses it (:func:`parse_sacct`), puts SLURM's energy of each step beside the ledger's energy
of the same step (a ledger job ``slurm:<job>.<step>``, see ``docs/explanation/jobs.md``),
and stores the comparison on each of that job's runs as the annotation ``sacct`` (so
``wattwise show JOB`` shows it). ``wattwise job reconcile JOB`` is the command.

The two figures cover different things (:data:`COVERS`): SLURM's ``ConsumedEnergyRaw`` is
the energy of whole nodes (every process on them, other jobs' too on a shared node) read by
the cluster's ``acct_gather_energy`` plugin at each step's start and end; the ledger's is
what the job's elected measurers metered on the devices they own. Most clusters configure
no energy plugin: SLURM then prints an empty field (or 0), and the step is reported as *not
measured by SLURM*, never as 0 J.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import re
import shutil
import subprocess
import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from wattwise.exceptions import InvalidParameterError, RunNotFoundError, WattwiseError
from wattwise.store.jobs import summarize_job

if TYPE_CHECKING:
    from wattwise.store import BaseRunStore, RunRecord

#: The fields :func:`run_sacct` asks for, in this order (what :func:`parse_sacct` reads).
SACCT_FIELDS = (
    "JobID", "JobName", "NodeList", "Elapsed", "ConsumedEnergyRaw", "AllocTRES", "State",
)  # fmt: skip

#: The annotation key on each run of a reconciled job.
ANNOTATION = "sacct"

#: SLURM's "no value" markers for 64-bit counters (``slurm.h``: NO_VAL64, INFINITE64).
_NO_VALUE = {str(0xFFFFFFFFFFFFFFFE), str(0xFFFFFFFFFFFFFFFF)}

#: ``AcctGatherEnergyType`` values that mean SLURM gathers no energy at all.
_NO_PLUGIN = {"", "(null)", "none", "acct_gather_energy/none"}

#: What each figure covers (stored with every reconciliation).
COVERS = {
    "sacct": (
        "whole nodes: SLURM's acct_gather_energy plugin (IPMI, RAPL, GPU, ...) reads each "
        "allocated node's counters at every step's start and end, so a step's figure holds "
        "every process on its nodes (other jobs' too on a shared node; exact only for an "
        "exclusive allocation, sacct(1)); per step, only where the cluster configures an "
        "energy plugin (AcctGatherEnergyType)"
    ),
    "ledger": (
        "the devices the job's elected measurers metered: each CPU package, DRAM and GPU (by "
        "UUID) by exactly one process of the job on its host, over the ranks' own run "
        "times, with wattwise's attribution rules (the documentation's explanation 'Jobs'); "
        "nothing outside those devices (fans, disks, network, power supply losses)"
    ),
}

#: A reference: ``812``, ``812.0``, ``700_3``, ``900+1`` (a heterogeneous job's component),
#: ``slurm:900+1.0``; sacct's ``812.0+1`` (a component of a heterogeneous step) is step 0.
_JOB = re.compile(r"(?:slurm:)?(\d+(?:_\d+|\+\d+)?)(?:\.([A-Za-z0-9_-]+)(?:\+\d+)?)?")
#: A line's JobID: ``812``, ``812.0``, ``700_3.batch``, ``700_[4-9]`` (pending array
#: tasks), ``900+1.0`` (a heterogeneous job's component), ``812.0+1`` (a component of a
#: heterogeneous step of an ordinary job: its step is ``0+1``).
_SACCT_JOB = re.compile(r"(\d+(?:_\d+|_\[[^\]]*\])?(?:\+\d+)?)(?:\.([A-Za-z0-9_-]+(?:\+\d+)?))?")
_ELAPSED = re.compile(r"(?:(\d+)-)?(?:(\d+):)?(\d+):(\d+)(?:\.\d+)?")


class SacctError(WattwiseError):
    """``sacct`` is missing, failed, or printed nothing usable for the job."""


@dataclasses.dataclass(frozen=True)
class SacctStep:
    """One line of ``sacct``: the job's allocation (``step`` None) or one of its steps.

    Attributes:
        job_id: As sacct printed it (``812``, ``812.0``, ``812.batch``, ``700_3.0``,
            ``900+1.0``, ``812.0+1``).
        job: The job part (``812``, ``700_3``, ``900+1``: a heterogeneous job's component).
        step: The step part (``0``, ``batch``, ``extern``, ``0+1``: a component of a
            heterogeneous step), None for the allocation line.
        name: JobName.
        node_list: NodeList (compressed, as SLURM prints it).
        elapsed_s: Elapsed in seconds, None when it does not parse.
        energy_j: ConsumedEnergyRaw in joules; None when SLURM left it empty or wrote its
            "no value" marker (``0`` is kept here; :func:`reconcile` decides what it means).
        energy_raw: ConsumedEnergyRaw as printed.
        alloc_tres: AllocTRES as a mapping (``{"cpu": "2", "mem": "1G", "node": "1"}``).
        state: State (``COMPLETED``, ``FAILED``, ``CANCELLED by 0``...).
    """

    job_id: str
    job: str
    step: str | None
    name: str
    node_list: str
    elapsed_s: int | None
    energy_j: float | None
    energy_raw: str
    alloc_tres: dict[str, str]
    state: str

    def to_dict(self) -> dict[str, Any]:
        """JSON shape."""
        return dataclasses.asdict(self)


def parse_sacct(text: str) -> list[SacctStep]:
    """``sacct -P -n --format`` :data:`SACCT_FIELDS` output, one :class:`SacctStep` a line.

    A ``|`` inside a job name (the only free text among the fields) is kept in the name.

    Raises:
        SacctError: A line does not have the fields in this order.
    """
    steps: list[SacctStep] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        fields = line.split("|")
        if fields and fields[-1] == "" and len(fields) == len(SACCT_FIELDS) + 1:
            fields.pop()  # sacct -p (lower case) ends each line with the delimiter
        extra = len(fields) - len(SACCT_FIELDS)
        if extra < 0:
            msg = (
                f"sacct line {number} has {len(fields)} fields, not {len(SACCT_FIELDS)} "
                f"({line[:80]!r}); give the output of 'sacct -P -n --format "
                f"{','.join(SACCT_FIELDS)}'"
            )
            raise SacctError(msg)
        job_id = fields[0].strip()
        name = "|".join(fields[1 : 2 + extra])
        node_list, elapsed, energy, tres, state = fields[2 + extra :]
        match = _SACCT_JOB.fullmatch(job_id)
        if match is None:
            msg = (
                f"sacct line {number} starts with {job_id!r}, not a job id (812, 812.0, "
                f"700_3.batch); give the output of 'sacct -P -n --format "
                f"{','.join(SACCT_FIELDS)}'"
            )
            raise SacctError(msg)
        steps.append(
            SacctStep(
                job_id=job_id, job=match.group(1), step=match.group(2), name=name,
                node_list=node_list.strip(), elapsed_s=_elapsed_s(elapsed.strip()),
                energy_j=_energy_j(energy.strip()), energy_raw=energy.strip(),
                alloc_tres=_tres(tres.strip()), state=state.strip(),
            )
        )  # fmt: skip
    return steps


def _elapsed_s(text: str) -> int | None:
    """``[days-]hours:minutes:seconds`` (sacct(1)) in seconds; also ``minutes:seconds``."""
    match = _ELAPSED.fullmatch(text)
    if match is None:
        return None
    days, hours, minutes, seconds = (int(g) if g else 0 for g in match.groups())
    return ((days * 24 + hours) * 60 + minutes) * 60 + seconds


def _energy_j(text: str) -> float | None:
    if not text or text in _NO_VALUE or not re.fullmatch(r"\d+(\.\d+)?", text):
        return None
    return float(text)


def _tres(text: str) -> dict[str, str]:
    pairs = (item.split("=", 1) for item in text.split(",") if "=" in item)
    return {key.strip(): value.strip() for key, value in pairs}


def parse_job_ref(ref: str) -> tuple[str, str | None]:
    """``(job, step)`` of a SLURM job reference: ``812`` -> ``("812", None)``,
    ``slurm:812.0`` -> ``("812", "0")``, ``700_3.batch`` -> ``("700_3", "batch")``,
    ``900+1.0`` -> ``("900+1", "0")`` (component 1 of heterogeneous job 900); sacct's
    ``812.0+1`` (component 1 of a heterogeneous step) -> ``("812", "0")``, the step the
    ledger holds as one job.

    Raises:
        InvalidParameterError: ``ref`` is not one of those shapes.
    """
    match = _JOB.fullmatch(ref.strip())
    if match is None:
        msg = (
            f"{ref!r} is not a SLURM job: give its id as sacct prints it (812, 812.0, "
            "700_3 for an array task, 900+1 for a heterogeneous job's component) or the "
            "ledger's job id (slurm:812.0)"
        )
        raise InvalidParameterError(msg)
    return match.group(1), match.group(2)


def run_sacct(
    job: str,
    *,
    sacct: str = "sacct",
    timeout_s: float = 60.0,
    env: Mapping[str, str] | None = None,
) -> str:
    """The output of ``sacct -P -n -j JOB --format`` :data:`SACCT_FIELDS`.

    Raises:
        SacctError: sacct is not installed, fails, or does not answer in ``timeout_s``.
    """
    program = shutil.which(sacct)
    if program is None:
        msg = (
            f"{sacct!r} not found on PATH: reconciling with SLURM needs its accounting client; "
            "run this on a node of the cluster, or save the output of 'sacct -P -n -j "
            f"{job} --format {','.join(SACCT_FIELDS)}' there and pass it with --sacct-file"
        )
        raise SacctError(msg)
    conf = (os.environ if env is None else env).get("SLURM_CONF", "").strip()
    if conf and not os.path.isfile(conf):
        # sacct itself would retry for a minute before saying so.
        msg = (
            f"SLURM_CONF={conf} is not a file: sacct cannot find the cluster's configuration; "
            "point SLURM_CONF at the cluster's slurm.conf, or unset it"
        )
        raise SacctError(msg)
    argv = [program, "-P", "-n", "-j", job, "--format", ",".join(SACCT_FIELDS)]
    try:
        done = subprocess.run(
            argv, capture_output=True, text=True, timeout=timeout_s, check=False,
            env=dict(env) if env is not None else None, stdin=subprocess.DEVNULL,
        )  # fmt: skip
    except subprocess.TimeoutExpired as err:
        msg = (
            f"sacct -j {job} did not answer within {timeout_s:.0f} s: is slurmdbd reachable? "
            "Try again, or pass its saved output with --sacct-file"
        )
        raise SacctError(msg) from err
    except OSError as err:
        msg = f"sacct -j {job} could not start ({err.strerror or err}): check {program}"
        raise SacctError(msg) from err
    if done.returncode != 0:
        # The last line is sacct's conclusion ("fatal: ...", "accounting storage is disabled").
        said = [x.strip() for x in done.stderr.splitlines() if x.strip()]
        last = said[-1] if said else "no message"
        msg = (
            f"sacct -j {job} failed (exit {done.returncode}): {last[:300]}; SLURM's "
            "accounting (AccountingStorageType, slurmdbd) must be configured and reachable"
        )
        raise SacctError(msg)
    return done.stdout


def energy_plugin(
    *, scontrol: str = "scontrol", timeout_s: float = 15.0, env: Mapping[str, str] | None = None
) -> str | None:
    """The cluster's ``AcctGatherEnergyType`` from ``scontrol show config``; None when it
    cannot be read (no scontrol, no answer)."""
    program = shutil.which(scontrol)
    if program is None:
        return None
    try:
        done = subprocess.run(
            [program, "show", "config"], capture_output=True, text=True, timeout=timeout_s,
            check=False, env=dict(env) if env is not None else None, stdin=subprocess.DEVNULL,
        )  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return None
    if done.returncode != 0:
        return None
    match = re.search(r"^AcctGatherEnergyType\s*=\s*(\S*)\s*$", done.stdout, re.MULTILINE)
    return match.group(1) if match else None


@dataclasses.dataclass(frozen=True)
class StepReconciliation:
    """One ledger job (one SLURM step) beside SLURM's figure for that step.

    Attributes:
        ledger_job_id: The ledger's job id (``slurm:812.0``).
        step: The SLURM step as sacct names it (``812.0``).
        run_ids: The ledger runs of that job.
        ledger_energy_j: The job's energy in the ledger (its runs not nested in another
            run of the job: each device was metered by one of them).
        sacct_energy_j: SLURM's ConsumedEnergyRaw for the step; None when SLURM did not
            measure it (see ``note``).
        difference_j: ``sacct_energy_j - ledger_energy_j``, None without SLURM's figure.
        note: Why SLURM's figure is missing, when it is.
        sacct_lines: The JobIDs of sacct's lines compared (the step's own, or one per
            component of a heterogeneous step: ``812.0+0``, ``812.0+1``, whose energies
            are added).
    """

    ledger_job_id: str
    step: str
    run_ids: tuple[str, ...]
    ledger_energy_j: float
    sacct_energy_j: float | None
    difference_j: float | None
    note: str | None
    sacct_lines: tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True)
class Reconciliation:
    """A SLURM job's ledger energy beside ``sacct``'s, step by step and in total.

    Attributes:
        job: SLURM's job (``812``, ``700_3``).
        steps: One entry per ledger job of this SLURM job (the steps wattwise measured).
        sacct_steps: Every line sacct printed for the job (allocation, batch, extern...).
        energy_plugin: The cluster's AcctGatherEnergyType, None when not read.
        sacct_energy_j: SLURM's energy of the measured steps; None unless SLURM measured
            every one of them.
        ledger_energy_j: The ledger's energy of those steps.
        difference_j: ``sacct_energy_j - ledger_energy_j``, None without SLURM's figure.
        note: Why SLURM's figure is missing, when it is.
        checked_at: When (Unix seconds).
    """

    job: str
    steps: tuple[StepReconciliation, ...]
    sacct_steps: tuple[SacctStep, ...]
    energy_plugin: str | None
    sacct_energy_j: float | None
    ledger_energy_j: float
    difference_j: float | None
    note: str | None
    checked_at: float
    covers: dict[str, str] = dataclasses.field(default_factory=lambda: dict(COVERS))

    def annotation(self, step: StepReconciliation) -> dict[str, Any]:
        """What is stored as ``record["sacct"]`` on the runs of ``step``'s ledger job."""
        return {
            "sacct_energy_j": step.sacct_energy_j,
            "ledger_energy_j": step.ledger_energy_j,
            "difference_j": step.difference_j,
            "measured_by_slurm": step.sacct_energy_j is not None,
            "note": step.note,
            "covers": dict(self.covers),
            "job": self.job,
            "step": step.step,
            "energy_plugin": self.energy_plugin,
            "steps": [s.to_dict() for s in self.sacct_steps],
            "checked_at": _iso(self.checked_at),
        }

    def to_dict(self) -> dict[str, Any]:
        """JSON shape (``wattwise job reconcile --json``)."""
        return {
            "job": self.job,
            "sacct_energy_j": self.sacct_energy_j,
            "ledger_energy_j": self.ledger_energy_j,
            "difference_j": self.difference_j,
            "measured_by_slurm": self.sacct_energy_j is not None,
            "note": self.note,
            "energy_plugin": self.energy_plugin,
            "covers": dict(self.covers),
            "steps": [dataclasses.asdict(s) for s in self.steps],
            "sacct_steps": [s.to_dict() for s in self.sacct_steps],
            "checked_at": _iso(self.checked_at),
        }


def _iso(when: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(when))


def ledger_energy_j(job_id: str, runs: Sequence[RunRecord]) -> float:
    """A job's energy in the ledger, as ``wattwise show JOB`` gives it
    (:func:`wattwise.store.jobs.summarize_job`): the sum over its runs that are not nested
    in another run of the job (a nested run's energy is inside its parent's; the election
    made each device metered by one run). 0 for no runs."""
    return summarize_job(job_id, runs).energy_j if runs else 0.0


def _ledger_jobs(store: BaseRunStore, job: str, step: str | None) -> dict[str, str]:
    """``{ledger job id: sacct step id}`` of the SLURM job ``job`` (one step if given).

    A heterogeneous job's leader id (``900``) takes in every component's steps
    (``slurm:900+0.batch``, ``slurm:900+1.0``); ``900+1`` is that component's alone.
    """
    if step is not None:
        wanted = f"slurm:{job}.{step}"
        return {wanted: f"{job}.{step}"} if store.count_runs(job_id=wanted) else {}
    prefixes = (f"slurm:{job}.", f"slurm:{job}+") if job.isdigit() else (f"slurm:{job}.",)
    found: dict[str, str] = {}
    for row in store.aggregate("job", top_level=False):
        if row.group is not None and row.group.startswith(prefixes):
            found[row.group] = row.group.removeprefix("slurm:")
    return dict(sorted(found.items()))


def _in_job(row: SacctStep, job: str) -> bool:
    """Whether sacct's line ``row`` belongs to ``job`` (a leader's id takes in every
    component of its heterogeneous job)."""
    return row.job == job or (job.isdigit() and row.job.startswith(f"{job}+"))


def _step_rows(by_step: Mapping[str, SacctStep], sacct_step: str) -> list[SacctStep]:
    """sacct's lines for one step: its own line, else the lines of its heterogeneous
    components (``812.0+0``, ``812.0+1``: one ``srun a : b``, one ledger job)."""
    row = by_step.get(sacct_step)
    if row is not None:
        return [row]
    prefix = f"{sacct_step}+"
    return [r for key, r in sorted(by_step.items()) if key.startswith(prefix)]


def _named_ledger_job(store: BaseRunStore, ref: str) -> tuple[str, str] | None:
    """``(job, step)`` of the SLURM step a ledger job of another name ran as (a
    ``WATTWISE_JOB_ID`` set inside SLURM), from its runs' SLURM facts; None if there is no
    such job, or it did not run under SLURM."""
    try:
        if not store.count_runs(job_id=ref):
            return None
        runs = store.list_runs(job_id=ref, limit=100)
    except WattwiseError:
        return None
    for run in runs:
        job = run.record.get("job")
        facts = job.get("slurm") if isinstance(job, dict) else None
        slurm_id = facts.get("job_id") if isinstance(facts, dict) else None
        if isinstance(slurm_id, str):
            with contextlib.suppress(InvalidParameterError):
                found, step = parse_job_ref(slurm_id)
                if step is not None:
                    return found, step
    return None


#: sacct states of a step that has not ended (``squeue(1)`` JOB STATE CODES).
_NOT_ENDED = ("PENDING", "RUNNING", "REQUEUED", "RESIZING", "SUSPENDED", "COMPLETING",
              "CONFIGURING", "STAGE_OUT", "SIGNALING")  # fmt: skip


def _check_ended(
    ledger_job: str, step: str, runs: Sequence[RunRecord], rows: Sequence[SacctStep]
) -> None:
    """Refuse a comparison while the step runs: both figures would still grow."""
    running = [r for r in runs if str(r.status) == "running"]
    states = [row.state.split()[0] for row in rows if row.state]
    state = next((x for x in states if x in _NOT_ENDED), "")
    if running or state in _NOT_ENDED:
        why = (
            f"sacct says {state}" if state in _NOT_ENDED
            else f"{len(running)} of its run(s) are still running in the ledger"
        )  # fmt: skip
        msg = (
            f"SLURM step {step} ({ledger_job}) has not ended ({why}): both figures would still "
            "grow; reconcile after the job ends"
        )
        raise SacctError(msg)


def _why_not_measured(
    rows: Sequence[SacctStep], plugin: str | None, plugin_read: bool
) -> str | None:
    """None when SLURM's figure for ``rows`` (one step's lines: one, or one per
    heterogeneous component) is a measurement, else why it is not."""
    if not rows:
        return "sacct has no line for this step"
    for row in rows:
        why = _why_row_not_measured(row, plugin, plugin_read)
        if why is not None:
            return why if len(rows) == 1 else f"{row.job_id}: {why}"
    return None


def _why_row_not_measured(row: SacctStep, plugin: str | None, plugin_read: bool) -> str | None:
    """None when SLURM's figure for ``row`` is a measurement, else why it is not."""
    if row.energy_j is None:
        return (
            "not measured by SLURM: sacct's ConsumedEnergyRaw is empty (the cluster has no "
            "energy plugin, AcctGatherEnergyType)"
        )
    if plugin_read and (plugin or "").lower() in _NO_PLUGIN:
        return (
            f"not measured by SLURM: AcctGatherEnergyType is {plugin or 'unset'}, so sacct's "
            f"{row.energy_raw} J is no measurement"
        )
    if row.energy_j == 0 and not plugin_read:
        return (
            "not measured by SLURM: sacct printed 0 J, which is what SLURM prints without an "
            "energy plugin (the cluster's AcctGatherEnergyType could not be checked)"
        )
    return None


def reconcile(
    store: BaseRunStore,
    ref: str,
    *,
    sacct_output: str | None = None,
    sacct: str = "sacct",
    scontrol: str = "scontrol",
    env: Mapping[str, str] | None = None,
    plugin: str | None = None,
    annotate: bool = True,
    now: float | None = None,
) -> Reconciliation:
    """Compare the ledger's energy of SLURM job ``ref`` with ``sacct``'s; store the result.

    Args:
        store: The ledger (writable when ``annotate``).
        ref: ``812`` (every step the ledger has; for a heterogeneous job, every step of
            every component), ``812.0`` / ``slurm:812.0`` (one step), ``700_3`` (an array
            task), ``900+1`` (a heterogeneous job's component), ``900+1.0`` (one of its
            steps), or the id of a ledger job that ran as one SLURM step under another
            name (``WATTWISE_JOB_ID``; its runs' SLURM facts say which).
        sacct_output: sacct's output for the job, already saved (``--sacct-file``); None
            runs ``sacct`` (and ``scontrol show config`` for the energy plugin).
        sacct, scontrol: The programs to run.
        env: Their environment (default: this process's).
        plugin: With ``sacct_output``: the cluster's ``AcctGatherEnergyType`` if known
            (None: unknown, and a 0 J step is then taken as not measured).
        annotate: Store the result as the ``sacct`` annotation of each run of each step.
        now: The check's time (default: now).

    Raises:
        InvalidParameterError: ``ref`` is not a SLURM job reference.
        RunNotFoundError: The ledger has no run of that job.
        SacctError: sacct is missing or failed, or knows nothing of the job.
    """
    try:
        job, step = parse_job_ref(ref)
    except InvalidParameterError:
        named = _named_ledger_job(store, ref)
        if named is None:
            raise
        job, step = named
        ledger_jobs = {ref: f"{job}.{step}"}
    else:
        ledger_jobs = _ledger_jobs(store, job, step)
    if not ledger_jobs:
        shown = f"slurm:{job}.{step}" if step is not None else f"slurm:{job}.*"
        msg = (
            f"No run of SLURM job {job if step is None else f'{job}.{step}'} ({shown}) in the "
            f"ledger {store.url}: reconcile in the project whose ledger the job wrote to "
            "(--store), and check the id with 'wattwise runs'"
        )
        raise RunNotFoundError(msg)
    if sacct_output is None:
        # sacct -j takes plain ids; a component's lines come with its leader's.
        text = run_sacct(job.split("+")[0], sacct=sacct, env=env)
        plugin = energy_plugin(scontrol=scontrol, env=env)
        plugin_read = plugin is not None
    else:
        text, plugin_read = sacct_output, plugin is not None
    rows = [r for r in parse_sacct(text) if _in_job(r, job)]
    if not rows:
        msg = (
            f"sacct printed nothing for SLURM job {job}: it is unknown to this cluster's "
            "accounting (another cluster? use sacct -M) or too old for its retention"
        )
        raise SacctError(msg)
    by_step = {r.job_id: r for r in rows}
    steps: list[StepReconciliation] = []
    for ledger_job, sacct_step in ledger_jobs.items():
        runs = store.list_runs(job_id=ledger_job)
        step_rows = _step_rows(by_step, sacct_step)
        _check_ended(ledger_job, sacct_step, runs, step_rows)
        ours = ledger_energy_j(ledger_job, runs)
        note = _why_not_measured(step_rows, plugin, plugin_read)
        theirs = sum(r.energy_j or 0.0 for r in step_rows) if note is None else None
        steps.append(
            StepReconciliation(
                ledger_job_id=ledger_job, step=sacct_step, run_ids=tuple(r.id for r in runs),
                ledger_energy_j=ours, sacct_energy_j=theirs,
                difference_j=None if theirs is None else theirs - ours, note=note,
                sacct_lines=tuple(r.job_id for r in step_rows),
            )
        )  # fmt: skip
    ledger_total = sum(s.ledger_energy_j for s in steps)
    measured = all(s.sacct_energy_j is not None for s in steps)
    sacct_total = sum(s.sacct_energy_j or 0.0 for s in steps) if measured else None
    notes = sorted({s.note for s in steps if s.note})
    result = Reconciliation(
        job=job, steps=tuple(steps), sacct_steps=tuple(rows), energy_plugin=plugin,
        sacct_energy_j=sacct_total, ledger_energy_j=ledger_total,
        difference_j=None if sacct_total is None else sacct_total - ledger_total,
        note="; ".join(notes) if notes else None,
        checked_at=time.time() if now is None else now,
    )  # fmt: skip
    if annotate:
        for entry in steps:
            value = result.annotation(entry)
            for run_id in entry.run_ids:
                store.annotate_run(run_id, ANNOTATION, value)
    return result


__all__ = [
    "ANNOTATION",
    "COVERS",
    "SACCT_FIELDS",
    "Reconciliation",
    "SacctError",
    "SacctStep",
    "StepReconciliation",
    "energy_plugin",
    "ledger_energy_j",
    "parse_job_ref",
    "parse_sacct",
    "reconcile",
    "run_sacct",
]
