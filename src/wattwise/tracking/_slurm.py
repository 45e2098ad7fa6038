"""SLURM facts from a process's environment: the job's identity and its allocation.

Pure functions over a mapping (``os.environ`` or a copy): nothing here runs a program or
reads a file, so they are safe at a rank's start. Every value comes from the variables
``sbatch``, ``salloc`` and ``srun`` set for the processes they start (SLURM's "OUTPUT
ENVIRONMENT VARIABLES" in ``man sbatch`` and ``man srun``); a value that is absent stays
``None`` and a value that does not parse is kept as the text SLURM gave, never guessed.

Identity (:func:`slurm_job_id`): ``slurm:<job>.<step>`` where ``<job>`` is SLURM's own
display form: the job id, or ``<array job id>_<array task id>`` for a task of an array
(what ``sacct -j`` and ``squeue`` print), and ``<step>`` is the step: a number for an
``srun`` step, ``batch`` for the batch script, ``interactive`` for an ``salloc`` shell,
``extern`` for the external step. So ``srun --ntasks 2`` makes one job of two ranks, and
two ``srun`` steps of one batch script are two jobs (``slurm:812.0``, ``slurm:812.1``),
as ``sacct`` counts them.

A heterogeneous job (``sbatch ... : ...``, ``#SBATCH hetjob``) is one job of several
components, each with its own job id (``SLURM_JOB_ID``) beside the leader's
(``SLURM_HET_JOB_ID``); ``sacct`` names its lines ``<leader>+<offset>[.<step>]``
(``900+0.batch``, ``900+1.0``), and so does the identity: ``slurm:900+1.0`` is step 0 of
component 1 of job 900, whatever component 1's own job id (901) is. The component's offset
is the one whose ``SLURM_JOB_ID_HET_GROUP_<n>`` is this process's job id, else
``SLURM_HET_JOB_OFFSET``; the leader (job id = the leader's id) is offset 0. A component
whose offset cannot be known that way keeps its own ``slurm:<job id>.<step>``: never a
guessed offset. A heterogeneous *step* of an ordinary job (``srun a : b`` in one
allocation) is one step of that job (``slurm:812.0``); sacct splits it into ``812.0+0``,
``812.0+1`` and :mod:`wattwise.slurm` adds those up.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

#: SLURM's reserved step ids (``slurm.h``: SLURM_PENDING_STEP, SLURM_EXTERN_CONT,
#: SLURM_BATCH_SCRIPT, SLURM_INTERACTIVE_STEP), as ``sacct`` names those steps.
_SPECIAL_STEPS = {
    0xFFFFFFFD: "pending",
    0xFFFFFFFC: "extern",
    0xFFFFFFFB: "batch",
    0xFFFFFFFA: "interactive",
}

#: A hostlist with more hosts than this is recorded as SLURM gave it, not expanded.
MAX_EXPANDED_HOSTS = 4096

_DIGITS = re.compile(r"\d+")
_CPUS_PER_NODE = re.compile(r"(\d+)(?:\(x(\d+)\))?")


def _first(environ: Mapping[str, str], *names: str) -> str | None:
    """The first of ``names`` set to a non-blank value, stripped."""
    for name in names:
        value = environ.get(name)
        if value is not None and value.strip():
            return value.strip()
    return None


def _number(environ: Mapping[str, str], *names: str) -> int | str | None:
    """An integer variable: the int, the raw text when it is not one, None when unset."""
    value = _first(environ, *names)
    if value is None:
        return None
    return int(value) if _DIGITS.fullmatch(value) else value


def _step(environ: Mapping[str, str]) -> str:
    """The step's name as ``sacct`` prints it after the job id's dot."""
    raw = _first(environ, "SLURM_STEP_ID", "SLURM_STEPID")
    if raw is not None and _DIGITS.fullmatch(raw):
        number = int(raw)
        return _SPECIAL_STEPS.get(number, str(number))
    if raw is not None:
        return re.sub(r"[^A-Za-z0-9_-]", "_", raw)[:32]
    # No step id: the batch script (sbatch sets ENVIRONMENT=BATCH) or an salloc shell.
    return "batch" if environ.get("ENVIRONMENT") == "BATCH" else "interactive"


def het_component(environ: Mapping[str, str]) -> tuple[int, int] | None:
    """``(leader job id, component offset)`` of a heterogeneous job's component; None
    outside one, or when the offset cannot be known (see the module's text).

    ``SLURM_HET_JOB_ID`` is the leader's id in every component (the batch script runs in
    component 0). The offset is ``n`` where ``SLURM_JOB_ID_HET_GROUP_<n>`` equals this
    process's ``SLURM_JOB_ID`` (srun and sbatch list every component's id that way), else
    ``SLURM_HET_JOB_OFFSET`` when it agrees with the ids (0 exactly when this job is the
    leader), else 0 for the leader itself. None too when several components share this
    job id (a heterogeneous step of an ordinary job) or the ids contradict each other.
    """
    job = _first(environ, "SLURM_JOB_ID", "SLURM_JOBID")
    leader = _first(environ, "SLURM_HET_JOB_ID", "SLURM_PACK_JOB_ID")
    if job is None or leader is None or not (_DIGITS.fullmatch(job) and _DIGITS.fullmatch(leader)):
        return None
    job_id, leader_id = int(job), int(leader)
    groups = []
    for name, value in environ.items():
        match = re.fullmatch(r"SLURM_JOB_ID_HET_GROUP_(\d+)", name)
        if match is not None and value.strip().isdigit() and int(value) == job_id:
            groups.append(int(match.group(1)))
    if len(groups) > 1:
        # Several components with this one job id: a heterogeneous step of an ordinary
        # job (srun a : b), which is one step of that job, not a heterogeneous job.
        return None
    if len(groups) == 1:
        offset = groups[0]
        # The leader is component 0 and only it: ids that say otherwise are not trusted.
        return (leader_id, offset) if (offset == 0) == (job_id == leader_id) else None
    raw = _first(environ, "SLURM_HET_JOB_OFFSET", "SLURM_PACK_JOB_OFFSET")
    if raw is not None and _DIGITS.fullmatch(raw):
        offset = int(raw)
        return (leader_id, offset) if (offset == 0) == (job_id == leader_id) else None
    return (leader_id, 0) if job_id == leader_id else None


def _job_part(environ: Mapping[str, str]) -> str | None:
    """``<job id>``, ``<array job id>_<array task id>`` or ``<leader>+<offset>`` (a
    heterogeneous job's component); None outside a valid SLURM job."""
    job = _first(environ, "SLURM_JOB_ID", "SLURM_JOBID")
    if job is None or not _DIGITS.fullmatch(job):
        return None
    component = het_component(environ)
    if component is not None:
        return f"{component[0]}+{component[1]}"
    array_job = _first(environ, "SLURM_ARRAY_JOB_ID")
    array_task = _first(environ, "SLURM_ARRAY_TASK_ID")
    if (
        array_job is not None
        and array_task is not None
        and _DIGITS.fullmatch(array_job)
        and _DIGITS.fullmatch(array_task)
    ):
        return f"{int(array_job)}_{int(array_task)}"
    return str(int(job))


def slurm_job_id(environ: Mapping[str, str]) -> str | None:
    """The job identity of a process SLURM started, or None outside SLURM.

    ``slurm:<job>.<step>``: ``slurm:812.0`` (step 0 of job 812), ``slurm:812.batch`` (its
    batch script), ``slurm:700_3.0`` (step 0 of task 3 of array job 700),
    ``slurm:900+1.0`` (step 0 of component 1 of heterogeneous job 900). None when
    ``SLURM_JOB_ID`` is unset or not a number (a SLURM job id always is).
    """
    job = _job_part(environ)
    if job is None:
        return None
    return f"slurm:{job}.{_step(environ)}"


def expand_hostlist(hostlist: str) -> list[str] | None:
    """SLURM's compressed host list as names: ``gpu[01-03,7],cpu1`` -> 4 + 1 hosts.

    None when it does not parse or names more than :data:`MAX_EXPANDED_HOSTS` hosts (the
    caller keeps the compressed text). Handles one bracket group per name, with ranges
    and zero padding, which is what SLURM prints for ``SLURM_JOB_NODELIST``.
    """
    hosts: list[str] = []
    parts = re.findall(r"[^,\[]+(?:\[[^\]]*\])?[^,\[]*", hostlist)
    if ",".join(parts) != hostlist:
        return None
    for part in parts:
        match = re.fullmatch(r"([^\[\]]*)\[([^\]]*)\]([^\[\]]*)", part)
        if match is None:
            if "[" in part or "]" in part:
                return None
            hosts.append(part)
            continue
        prefix, ranges, suffix = match.groups()
        for item in ranges.split(","):
            bounds = re.fullmatch(r"(\d+)(?:-(\d+))?", item)
            if bounds is None:
                return None
            low, high = bounds.group(1), bounds.group(2) or bounds.group(1)
            if int(high) < int(low) or int(high) - int(low) + len(hosts) >= MAX_EXPANDED_HOSTS:
                return None
            width = len(low)
            hosts.extend(f"{prefix}{n:0{width}d}{suffix}" for n in range(int(low), int(high) + 1))
    if not hosts or len(hosts) > MAX_EXPANDED_HOSTS:
        return None
    return hosts


def expand_cpus_per_node(value: str) -> list[int] | None:
    """``SLURM_JOB_CPUS_PER_NODE`` (``"4(x2),2"``) as one count per node (``[4, 4, 2]``).

    None when it does not parse or would list more than :data:`MAX_EXPANDED_HOSTS` nodes.
    """
    counts: list[int] = []
    for item in value.split(","):
        match = _CPUS_PER_NODE.fullmatch(item.strip())
        if match is None:
            return None
        repeat = int(match.group(2) or 1)
        if repeat + len(counts) > MAX_EXPANDED_HOSTS:
            return None
        counts.extend([int(match.group(1))] * repeat)
    return counts


def slurm_facts(environ: Mapping[str, str]) -> dict[str, Any] | None:
    """What SLURM told this process about its job, or None outside SLURM.

    Keys (each None when SLURM did not set it; integers as int, anything else as the text
    SLURM gave): ``job_id`` (the identity, as :func:`slurm_job_id`), ``slurm_job_id``
    (SLURM's numeric id of this job, array task or heterogeneous component), ``step``,
    ``array_job_id``, ``array_task_id``, ``het_job_id`` and ``het_job_offset`` (the
    leader's id and this component's offset, as :func:`het_component` finds them),
    ``job_name``, ``cluster``, ``partition``, ``account``, ``qos``,
    ``node_list`` (compressed, as SLURM gave it), ``nodes`` (expanded, or None when too
    long or unparseable), ``nnodes``, ``step_node_list``, ``node`` (this task's node name),
    ``ntasks``, ``procid`` (global rank), ``localid`` (rank on this node), ``nodeid``
    (this node's index in the allocation), ``submit_host``, and ``allocation``:
    ``cpus_on_node``, ``cpus_per_node`` (as given) and ``cpus_per_node_list`` (one count
    per node), ``cpus_per_task``, ``gpus``, ``gpus_on_node``, ``gpus_per_node``,
    ``gpus_per_task``, ``job_gpus`` (GPU indices on this node), ``mem_per_node_mb``,
    ``mem_per_cpu_mb``, ``mem_per_gpu_mb`` (SLURM's megabytes, which are MiB).
    """
    job_id = slurm_job_id(environ)
    if job_id is None:
        return None
    component = het_component(environ)
    node_list = _first(environ, "SLURM_JOB_NODELIST", "SLURM_NODELIST")
    cpus_per_node = _first(environ, "SLURM_JOB_CPUS_PER_NODE")
    allocation: dict[str, Any] = {
        "cpus_on_node": _number(environ, "SLURM_CPUS_ON_NODE"),
        "cpus_per_node": cpus_per_node,
        "cpus_per_node_list": (
            expand_cpus_per_node(cpus_per_node) if cpus_per_node is not None else None
        ),
        "cpus_per_task": _number(environ, "SLURM_CPUS_PER_TASK"),
        "gpus": _number(environ, "SLURM_GPUS"),
        "gpus_on_node": _number(environ, "SLURM_GPUS_ON_NODE"),
        "gpus_per_node": _first(environ, "SLURM_GPUS_PER_NODE"),
        "gpus_per_task": _first(environ, "SLURM_GPUS_PER_TASK"),
        "job_gpus": _first(environ, "SLURM_STEP_GPUS", "SLURM_JOB_GPUS"),
        "mem_per_node_mb": _number(environ, "SLURM_MEM_PER_NODE"),
        "mem_per_cpu_mb": _number(environ, "SLURM_MEM_PER_CPU"),
        "mem_per_gpu_mb": _number(environ, "SLURM_MEM_PER_GPU"),
    }
    return {
        "job_id": job_id,
        "slurm_job_id": _number(environ, "SLURM_JOB_ID", "SLURM_JOBID"),
        "step": _step(environ),
        "array_job_id": _number(environ, "SLURM_ARRAY_JOB_ID"),
        "array_task_id": _number(environ, "SLURM_ARRAY_TASK_ID"),
        "het_job_id": (
            component[0] if component is not None else _number(environ, "SLURM_HET_JOB_ID")
        ),
        "het_job_offset": component[1] if component is not None else None,
        "job_name": _first(environ, "SLURM_JOB_NAME"),
        "cluster": _first(environ, "SLURM_CLUSTER_NAME"),
        "partition": _first(environ, "SLURM_JOB_PARTITION"),
        "account": _first(environ, "SLURM_JOB_ACCOUNT"),
        "qos": _first(environ, "SLURM_JOB_QOS"),
        "node_list": node_list,
        "nodes": expand_hostlist(node_list) if node_list is not None else None,
        "nnodes": _number(environ, "SLURM_JOB_NUM_NODES", "SLURM_NNODES"),
        "step_node_list": _first(environ, "SLURM_STEP_NODELIST"),
        "node": _first(environ, "SLURMD_NODENAME"),
        "ntasks": _number(environ, "SLURM_STEP_NUM_TASKS", "SLURM_NTASKS", "SLURM_NPROCS"),
        "procid": _number(environ, "SLURM_PROCID"),
        "localid": _number(environ, "SLURM_LOCALID"),
        "nodeid": _number(environ, "SLURM_NODEID"),
        "submit_host": _first(environ, "SLURM_SUBMIT_HOST"),
        "allocation": allocation,
    }
