"""Which job a run belongs to, on which host, as which rank, and its device keys.

A *job* is a group of runs (the ranks of a torchrun/DDP job, the tasks of a SLURM step, a
Ray job, or any processes the user gives one ``WATTWISE_JOB_ID``). :func:`detect_job` reads
the identity from the environment (and, for ``wattwise run -- torchrun ...``, from
torchrun's own arguments), in this order:

1. ``WATTWISE_JOB_ID`` (``source``: ``user``, or ``WATTWISE_JOB_SOURCE`` when a
   ``wattwise run`` node wrapper passed its job down to its ranks);
2. SLURM: ``slurm:<job>.<step>`` (:func:`~wattwise.tracking._slurm.slurm_job_id`). It comes
   before torchrun because every process of the step sees it, wrapper and ranks alike,
   and because ``sacct`` reconciles per SLURM job;
3. torchrun, inside a rank: ``torchrun:<TORCHELASTIC_RUN_ID>@<MASTER_ADDR>:<MASTER_PORT>``.
   torchrun's default run id is the word ``none``; the master address and port (a free
   port rank 0's agent picks for each rendezvous) make the id unique per job run;
4. torchrun, for the node wrapper ``wattwise run -- torchrun ...``:
   ``torchrun:<--rdzv-id>@<--rdzv-endpoint>`` (ranks do not see the endpoint, so the
   wrapper passes its id to them in ``WATTWISE_JOB_ID``). With the default ``--rdzv-id``
   (``none``) two jobs that reuse one endpoint share an id: give each job its own
   ``--rdzv-id`` (``$SLURM_JOB_ID``, a uuid). ``--standalone`` and a rendezvous-less
   single node get ``torchrun:local@<host>:<pid>``, unique to the wrapper;
5. Ray: ``ray:<job id>``, only when ``ray`` is already imported and initialised (never
   imported here).

The host is ``WATTWISE_HOST_ID`` when set (containers, or several "hosts" on one machine in
tests), else the host name; it is also the run's ``host`` column.
"""

from __future__ import annotations

import dataclasses
import os
import re
import socket
import sys
from collections.abc import Mapping, Sequence
from typing import Any

from wattwise.tracking._slurm import slurm_facts

HOST_ENV = "WATTWISE_HOST_ID"
JOB_ENV = "WATTWISE_JOB_ID"
JOB_SOURCE_ENV = "WATTWISE_JOB_SOURCE"

#: torchrun options that take no value (all others do, as ``--opt value`` or ``--opt=value``).
_TORCHRUN_FLAGS = frozenset({
    "--standalone", "--no-python", "--no_python", "--run-path", "--run_path", "-m",
    "--module", "--virtual-local-rank", "--virtual_local_rank",
})  # fmt: skip
#: The torchrun options read, under both spellings, by their canonical name.
_TORCHRUN_OPTIONS = {
    "--rdzv-id": "rdzv_id", "--rdzv_id": "rdzv_id",
    "--rdzv-endpoint": "rdzv_endpoint", "--rdzv_endpoint": "rdzv_endpoint",
    "--rdzv-backend": "rdzv_backend", "--rdzv_backend": "rdzv_backend",
    "--nnodes": "nnodes",
    "--nproc-per-node": "nproc_per_node", "--nproc_per_node": "nproc_per_node",
    "--node-rank": "node_rank", "--node_rank": "node_rank",
    "--master-addr": "master_addr", "--master_addr": "master_addr",
    "--master-port": "master_port", "--master_port": "master_port",
}  # fmt: skip
_TORCHRUN_MODULES = ("torch.distributed.run", "torch.distributed.launch")
_INT = re.compile(r"^-?\d+$")


@dataclasses.dataclass(frozen=True)
class JobIdentity:
    """Who a run is within its job.

    Attributes:
        id: The job's id (``slurm:812.0``, ``torchrun:abc@10.0.0.1:29500``, ...).
        source: Where it came from: ``user``, ``slurm``, ``torchrun``, ``ray``.
        host: This host's id (``WATTWISE_HOST_ID`` or the host name).
        rank: Global rank (``RANK``, else ``SLURM_PROCID``), or None.
        local_rank: Rank on this host (``LOCAL_RANK``, else ``SLURM_LOCALID``), or None.
        world_size: Ranks in the job (``WORLD_SIZE``, else ``SLURM_NTASKS``; for a torchrun
            wrapper ``--nnodes`` × ``--nproc-per-node``), or None.
        node_rank: This host's index (``GROUP_RANK``, ``--node-rank``, else
            ``SLURM_NODEID``), or None.
        node_wrapper: True for ``wattwise run -- torchrun ...``: the run of a whole node,
            whose ranks are its descendants.
        torchrun: torchrun's arguments read from the command (wrapper), else None.
        slurm: SLURM's facts (:func:`~wattwise.tracking._slurm.slurm_facts`), else None.
    """

    id: str
    source: str
    host: str
    rank: int | None = None
    local_rank: int | None = None
    world_size: int | None = None
    node_rank: int | None = None
    node_wrapper: bool = False
    torchrun: dict[str, Any] | None = None
    slurm: dict[str, Any] | None = None

    def child_environ(self) -> dict[str, str]:
        """What a node wrapper passes to its command so that ranks join this job."""
        return {JOB_ENV: self.id, JOB_SOURCE_ENV: self.source, HOST_ENV: self.host}


def job_child_environ(record: Mapping[str, Any]) -> dict[str, str]:
    """What ``wattwise run`` passes to its command so that the runs below it (a rank's own
    ``wattwise.track()``) join its job: ``WATTWISE_JOB_ID``, ``WATTWISE_JOB_SOURCE`` and
    ``WATTWISE_HOST_ID`` from the run's ``record["job"]``; empty outside a job."""
    job = record.get("job")
    if not isinstance(job, Mapping) or not isinstance(job.get("id"), str):
        return {}
    return {JOB_ENV: job["id"], JOB_SOURCE_ENV: str(job.get("source") or "user"),
            HOST_ENV: str(job.get("host") or host_id())}  # fmt: skip


def host_id(environ: Mapping[str, str] | None = None) -> str:
    """``WATTWISE_HOST_ID`` when set and not blank, else this machine's host name."""
    env = os.environ if environ is None else environ
    value = env.get(HOST_ENV, "").strip()
    return value or socket.gethostname()


def _int(value: object) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and _INT.match(value.strip()):
        return int(value.strip())
    return None


def _env_int(environ: Mapping[str, str], *names: str) -> int | None:
    for name in names:
        found = _int(environ.get(name, ""))
        if found is not None:
            return found
    return None


def torchrun_args(command: Sequence[str] | None) -> dict[str, str] | None:
    """torchrun's options from a command line, or None when it is not a torchrun command.

    Recognises ``torchrun ...`` and ``python -m torch.distributed.run|launch ...``; reads the
    options before the training script (``--opt value`` and ``--opt=value``, both
    spellings) and returns those named in ``_TORCHRUN_OPTIONS`` by canonical name, plus
    ``standalone`` (``"1"``) when ``--standalone`` was given.
    """
    if not command:
        return None
    argv = list(command)
    start: int | None = None
    if os.path.basename(argv[0]) == "torchrun":
        start = 1
    else:
        for i in range(len(argv) - 1):
            if argv[i] == "-m" and argv[i + 1] in _TORCHRUN_MODULES:
                start = i + 2
                break
            if not argv[i].startswith("-") and i > 0:
                break  # a script before any "-m torch.distributed.run"
    if start is None:
        return None
    found: dict[str, str] = {}
    i = start
    while i < len(argv):
        arg = argv[i]
        if arg == "--" or not arg.startswith("-"):
            break
        name, eq, value = arg.partition("=")
        if name == "--standalone":
            found["standalone"] = "1"
        if name in _TORCHRUN_FLAGS:
            i += 1
            if name in ("-m", "--module"):
                break  # what follows is the module to run
            continue
        if not eq:
            if i + 1 >= len(argv):
                break
            value = argv[i + 1]
            i += 1
        if name in _TORCHRUN_OPTIONS:
            found[_TORCHRUN_OPTIONS[name]] = value
        i += 1
    return found


def _torchrun_wrapper_id(args: Mapping[str, str], host: str) -> str:
    rdzv_id = args.get("rdzv_id", "").strip() or "none"
    endpoint = args.get("rdzv_endpoint", "").strip()
    if not endpoint and args.get("rdzv_backend", "static") == "static" and args.get("master_addr"):
        endpoint = f"{args['master_addr']}:{args.get('master_port', '29500')}"
    if args.get("standalone") or not endpoint:
        return f"torchrun:local@{host}:{os.getpid()}"
    return f"torchrun:{rdzv_id}@{endpoint}"


def _ray_job_id() -> str | None:
    """The Ray job this process runs in, when ``ray`` is already imported and initialised."""
    ray = sys.modules.get("ray")
    if ray is None:
        return None
    try:
        if not ray.is_initialized():
            return None
        job = ray.get_runtime_context().get_job_id()
    except Exception:  # a half-imported or mocked ray is not a job
        return None
    return f"ray:{job}" if isinstance(job, str) and job else None


def detect_job(
    environ: Mapping[str, str] | None = None, command: Sequence[str] | None = None
) -> JobIdentity | None:
    """The job this process belongs to, or None when it is not part of one.

    Args:
        environ: The environment to read (default ``os.environ``).
        command: The command of a ``wattwise run`` (torchrun's arguments are read from it).
    """
    env = os.environ if environ is None else environ
    host = host_id(env)
    slurm = slurm_facts(env)
    targs = torchrun_args(command)
    wrapper = targs is not None
    rank = _env_int(env, "RANK", "SLURM_PROCID")
    local_rank = _env_int(env, "LOCAL_RANK", "SLURM_LOCALID")
    world = _env_int(env, "WORLD_SIZE", "SLURM_NTASKS", "SLURM_NPROCS")
    node_rank = _env_int(env, "GROUP_RANK", "SLURM_NODEID")
    if wrapper:
        assert targs is not None
        rank = local_rank = None  # the wrapper is a node, its ranks are below it
        nnodes = _int(targs.get("nnodes", "1").split(":")[-1])
        nproc = _int(targs.get("nproc_per_node", "1"))
        world = nnodes * nproc if nnodes is not None and nproc is not None else None
        node_rank = _int(targs.get("node_rank", "")) if "node_rank" in targs else node_rank
    user_id = env.get(JOB_ENV, "").strip()
    elastic = env.get("TORCHELASTIC_RUN_ID", "").strip()
    if user_id:
        job_id, source = user_id, env.get(JOB_SOURCE_ENV, "").strip() or "user"
    elif slurm is not None and isinstance(slurm.get("job_id"), str):
        job_id, source = slurm["job_id"], "slurm"
    elif elastic and not wrapper:
        master = f"{env.get('MASTER_ADDR', '').strip()}:{env.get('MASTER_PORT', '').strip()}"
        job_id, source = f"torchrun:{elastic}@{master}", "torchrun"
    elif wrapper:
        assert targs is not None
        job_id, source = _torchrun_wrapper_id(targs, host), "torchrun"
    else:
        ray_id = _ray_job_id()
        if ray_id is None:
            return None
        job_id, source = ray_id, "ray"
    return JobIdentity(
        id=job_id, source=source, host=host, rank=rank, local_rank=local_rank,
        world_size=world, node_rank=node_rank, node_wrapper=wrapper,
        torchrun=dict(targs) if targs is not None else None, slurm=slurm,
    )  # fmt: skip


def visible_gpus(environ: Mapping[str, str], uuids: Mapping[int, str | None]) -> list[int]:
    """NVML indices of the GPUs this process may use, in CUDA's order.

    ``CUDA_VISIBLE_DEVICES`` entries are NVML indices (CUDA numbers them like NVML when
    ``CUDA_DEVICE_ORDER=PCI_BUS_ID``; wattwise assumes so) or UUIDs (``GPU-...``, a
    prefix is enough); entries that match no GPU (MIG instances) are left out. Unset: all.

    Args:
        environ: The environment.
        uuids: NVML index -> UUID (None when unknown) of every GPU the meters see.
    """
    raw = environ.get("CUDA_VISIBLE_DEVICES")
    if raw is None:
        return sorted(uuids)
    found: list[int] = []
    for item in (x.strip() for x in raw.split(",")):
        if not item:
            continue
        index = _int(item)
        if index is not None:
            if index < 0:
                break  # CUDA stops at the first invalid entry
            if index in uuids and index not in found:
                found.append(index)
            continue
        for gpu, uuid in uuids.items():
            if uuid and uuid.startswith(item) and gpu not in found:
                found.append(gpu)
                break
    return found


def rank_gpus(identity: JobIdentity, environ: Mapping[str, str],
              uuids: Mapping[int, str | None]) -> list[int]:  # fmt: skip
    """The GPUs (NVML indices) a run of the job measures: a rank's own GPU (the
    ``LOCAL_RANK``-th visible one, or the only one visible), else every visible GPU."""
    visible = visible_gpus(environ, uuids)
    if identity.node_wrapper or identity.local_rank is None or len(visible) <= 1:
        return visible
    if 0 <= identity.local_rank < len(visible):
        return [visible[identity.local_rank]]
    return []


def device_key(meter_key: str, host: str, uuids: Mapping[int, str | None]) -> str:
    """The job-wide key of a meter's domain: ``cpu:<host>``, ``dram:<host>`` (every package
    of a host together), ``gpu:<UUID>`` (``gpu:<host>/<index>`` without a UUID), else
    ``<component>:<host>/<index>``."""
    comp, _, index = meter_key.partition(":")
    if comp in ("cpu", "dram"):
        return f"{comp}:{host}"
    number = _int(index)
    if comp == "gpu" and number is not None and uuids.get(number):
        return f"gpu:{uuids[number]}"
    return f"{comp}:{host}/{index}"
