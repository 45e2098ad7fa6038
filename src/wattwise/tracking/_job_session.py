"""A run's part in its job: which devices it measures, who measures the others, its ranks.

:func:`start_job` is called once the run's sampler has read its meters. It detects the job
(:func:`~wattwise.tracking._job.detect_job`), maps each meter domain to a job-wide device
key (``cpu:<host>``, ``dram:<host>``, ``gpu:<UUID>``) and holds one host-local election per
device (:mod:`~wattwise.tracking._election`). It then fixes the sampler's share of each
domain:

* a device this run won: the whole device for the job (1.0; idle included: a GPU waiting
  on a straggler belongs to the job), except the CPU package and DRAM of a node SLURM
  gives the job only part of (allocated CPUs < the node's CPUs): that fraction;
* a device another run of the job measures: 0 here (recorded as measured by that run);
* a GPU that is not this rank's (another rank's ``LOCAL_RANK``): 0, not elected.

:meth:`JobSession.tick` runs after each sample: a loser tries the lock again and takes
over a device whose measurer has died, counting from the next interval (so a joule is
never counted twice; the energy between the dead measurer's last flush and the takeover
is not counted by anyone). A node wrapper (``wattwise run -- torchrun ...``) also finds
its ranks among its descendants and shares the node's energy between them by CPU time.

Never harm the job: if anything here fails, the run measures as a standalone run (the
usual process-tree attribution) and says so once.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import psutil

from wattwise.meters import component_of
from wattwise.tracking._election import Ballot, lock_path, runtime_dir
from wattwise.tracking._job import JobIdentity, detect_job, device_key, rank_gpus

if TYPE_CHECKING:
    from wattwise.tracking._sampler import Sampler

WHOLE = (
    "job: the measurer counts each device it measures whole for the job, idle included "
    "(one measurer per device per host, elected host-locally)"
)
SLURM_PART = (
    "job: the measurer counts the GPUs it measures whole, and {cpus} of this node's {node} "
    "CPUs' share ({share:.4f}) of the CPU package and DRAM energy: SLURM allocated the job "
    "only part of the node (SLURM_CPUS_ON_NODE)"
)
LOST = "job: measured by run {run} of the same job (0 J here)"
OTHER_RANK = "job: another rank's GPU (LOCAL_RANK); not counted by this run"
STANDALONE = (
    "job election failed ({why}); this run is measured as a standalone run "
    "(process-tree attribution), so the job may count its devices more than once"
)

#: Environment variables of a rank, read from a wrapper's descendants.
_RANK_VARS = ("RANK", "LOCAL_RANK", "WORLD_SIZE", "GROUP_RANK", "TORCHELASTIC_RUN_ID",
              "MASTER_ADDR", "MASTER_PORT", "TORCHELASTIC_RESTART_COUNT")  # fmt: skip


def _gpu_uuids(sampler: Sampler) -> dict[int, str | None]:
    """NVML index -> UUID of every GPU domain the sampler reads (None when unknown)."""
    uuids: dict[int, str | None] = {}
    for info in sampler.infos.values():
        devices = info.details.get("devices") if isinstance(info.details, dict) else None
        for dev in devices if isinstance(devices, list) else []:
            if not isinstance(dev, dict):
                continue
            key, uuid = dev.get("key"), dev.get("uuid")
            if isinstance(key, str) and key.startswith("gpu:") and key[4:].isdigit():
                uuids[int(key[4:])] = uuid if isinstance(uuid, str) and uuid else None
    for key in sampler.last_reading:
        comp, _, index = key.partition(":")
        if comp == "gpu" and index.isdigit():
            uuids.setdefault(int(index), None)
    return uuids


def _cpu_fraction(identity: JobIdentity) -> tuple[float, str]:
    """Share of the host's CPU package and DRAM that is the job's, and the rule's text."""
    allocation = (identity.slurm or {}).get("allocation") or {}
    cpus = allocation.get("cpus_on_node") if isinstance(allocation, dict) else None
    node = psutil.cpu_count(logical=True) or os.cpu_count() or 0
    if isinstance(cpus, int) and not isinstance(cpus, bool) and 0 < cpus < node:
        share = cpus / node
        return share, SLURM_PART.format(cpus=cpus, node=node, share=share)
    return 1.0, WHOLE


def read_rank_environ(pid: int) -> dict[str, str] | None:
    """The rank variables a process started with (``/proc/PID/environ``), or None when
    it has none, is another user's or is gone."""
    try:
        with open(f"/proc/{pid}/environ", "rb") as handle:
            raw = handle.read()
    except OSError:
        return None
    found: dict[str, str] = {}
    for item in raw.split(b"\0"):
        name, eq, value = item.partition(b"=")
        if eq and name.decode(errors="replace") in _RANK_VARS:
            found[name.decode()] = value.decode(errors="replace")
    return found if "RANK" in found else None


class RankWatcher:
    """The ranks below a node wrapper and their CPU seconds (the share of the node's
    energy each is given).

    A process is a rank when it started with ``RANK`` in its environment (torchrun sets it
    for each worker; a process without it is read again at each scan, as it may not have
    exec'd yet); its children inherit it and count for it. A rank's CPU seconds are
    its live processes' own and reaped children's, kept at their maximum once it ends.
    """

    def __init__(self, own_rank: str | None) -> None:
        self._own = own_rank
        self._seen: dict[tuple[int, float], dict[str, str] | None] = {}
        self.ranks: dict[int, dict[str, Any]] = {}
        self.facts: dict[str, str] = {}

    def scan(self, processes: Sequence[psutil.Process]) -> None:
        """Look at the wrapper's live processes (the run's process tree)."""
        now_cpu: dict[int, float] = {}
        first_pid: dict[int, tuple[float, int]] = {}
        seen, self._seen = self._seen, {}  # only live processes stay (data loaders come and go)
        for proc in processes:
            try:
                key = (proc.pid, proc.create_time())
                # A process without rank variables is read again: seen between fork and
                # exec, it still has its parent's environment (torchrun's, no RANK).
                env = seen.get(key) or read_rank_environ(proc.pid)
                self._seen[key] = env
                if env is None or env.get("RANK") == self._own:
                    continue
                rank = int(env["RANK"])
                t = proc.cpu_times()
            except (psutil.Error, ValueError):
                continue
            now_cpu[rank] = now_cpu.get(rank, 0.0) + (
                t.user + t.system + t.children_user + t.children_system
            )
            if rank not in first_pid or key[1] < first_pid[rank][0]:
                first_pid[rank] = (key[1], proc.pid)
            entry = self.ranks.setdefault(rank, {"rank": rank, "cpu_s": 0.0})
            for name, field in (("LOCAL_RANK", "local_rank"), ("WORLD_SIZE", "world_size"),
                                ("GROUP_RANK", "node_rank")):  # fmt: skip
                value = env.get(name, "")
                if value.lstrip("-").isdigit():
                    entry[field] = int(value)
            for name in ("TORCHELASTIC_RUN_ID", "MASTER_ADDR", "MASTER_PORT",
                         "TORCHELASTIC_RESTART_COUNT"):  # fmt: skip
                if name in env:
                    self.facts[name] = env[name]
        for rank, cpu in now_cpu.items():
            entry = self.ranks[rank]
            entry["cpu_s"] = max(entry["cpu_s"], cpu)
            entry.setdefault("pid", first_pid[rank][1])

    def record(self, node_energy_j: float) -> list[dict[str, Any]]:
        """One entry per rank: its CPU seconds, share and share of the node's energy."""
        total = sum(r["cpu_s"] for r in self.ranks.values())
        out = []
        for rank in sorted(self.ranks):
            entry = dict(self.ranks[rank])
            share = entry["cpu_s"] / total if total > 0 else 1.0 / len(self.ranks)
            entry["cpu_s"] = round(entry["cpu_s"], 3)
            entry["share"] = share
            entry["energy_j"] = share * node_energy_j
            out.append(entry)
        return out


class JobSession:
    """One run's part in its job (made by :func:`start_job`; the run calls :meth:`tick`
    after each sample, :meth:`record` for ``record["job"]`` and :meth:`close` at the end).

    Args:
        identity: The job and this run's place in it.
        run_id: This run's id.
        sampler: The run's sampler (its meters have been read once).
        environ: The environment (``CUDA_VISIBLE_DEVICES``, the lock folder).
    """

    def __init__(
        self, identity: JobIdentity, run_id: str, sampler: Sampler,
        environ: Mapping[str, str],
    ) -> None:  # fmt: skip
        self.identity = identity
        self.run_id = run_id
        self._sampler = sampler
        self._cpu_share, self.attribution = _cpu_fraction(identity)
        uuids = _gpu_uuids(sampler)
        mine = set(rank_gpus(identity, environ, uuids))
        #: Meter domain -> job-wide device key, for the domains this run may measure.
        self.devices: dict[str, str] = {}
        #: Meter domains that are another rank's GPU (never counted here).
        self.other_gpus: list[str] = []
        for key in sorted(sampler.last_reading):
            comp, _, index = key.partition(":")
            if comp == "gpu" and not (index.isdigit() and int(index) in mine):
                self.other_gpus.append(key)
                continue
            self.devices[key] = device_key(key, identity.host, uuids)
        folder = runtime_dir(environ)
        #: One ballot per device key (several packages of a host share ``cpu:<host>``).
        self.ballots: dict[str, Ballot] = {}
        try:
            for device in sorted(set(self.devices.values())):
                ballot = Ballot(lock_path(folder, identity.id, identity.host, device), run_id)
                self.ballots[device] = ballot
                ballot.retry()
        except BaseException:
            self.close()
            raise
        self.holders: dict[str, str | None] = {d: b.holder() for d, b in self.ballots.items()}
        self.takeovers: list[dict[str, Any]] = []
        self._watcher = RankWatcher(environ.get("RANK")) if identity.node_wrapper else None
        self._apply()

    def _share(self, key: str) -> float:
        return self._cpu_share if component_of(key) in ("cpu", "dram") else 1.0

    def _apply(self) -> None:
        """Set the sampler's share of each domain from who holds its device now."""
        sampler = self._sampler
        for key in self.other_gpus:
            sampler.fixed_shares[key] = 0.0
            sampler.gpu_modes[key] = OTHER_RANK
        for key, device in self.devices.items():
            won = self.ballots[device].won
            sampler.fixed_shares[key] = self._share(key) if won else 0.0
            comp = component_of(key)
            text = self.attribution if won else LOST.format(run=self.holders.get(device))
            if comp == "gpu":
                sampler.gpu_modes[key] = text
            sampler.attribution[comp] = text

    def tick(self) -> bool:
        """After a sample: retry lost elections (a takeover counts from the next
        interval), refresh who measures what, look for ranks. True when something worth an
        early flush changed (a takeover, a new measurer, a new rank).
        """
        changed = False
        for device, ballot in self.ballots.items():
            if ballot.won:
                continue
            before = self.holders.get(device)
            try:
                won = ballot.retry()
            except OSError:  # the lock folder went away: stay a loser, try again next time
                won = False
            if won:
                self.takeovers.append({"device": device, "from_run": before, "at": time.time()})
                self.holders[device] = self.run_id
                changed = True
            else:
                now = ballot.holder()
                if now is not None and now != before:
                    self.holders[device] = now
                    changed = True
        if changed:
            self._apply()
        if self._watcher is not None:
            before_ranks = len(self._watcher.ranks)
            self._watcher.scan(self._sampler.tree.processes())
            changed = changed or len(self._watcher.ranks) != before_ranks
        return changed

    @property
    def measures(self) -> list[str]:
        """The device keys this run measures now."""
        return sorted(d for d, b in self.ballots.items() if b.won)

    def record(self) -> dict[str, Any]:
        """``record["job"]``: identity, what this run measures, who measures the rest."""
        ident = self.identity
        out: dict[str, Any] = {
            "id": ident.id, "source": ident.source, "host": ident.host, "rank": ident.rank,
            "local_rank": ident.local_rank, "world_size": ident.world_size,
            "node_rank": ident.node_rank,
            "role": "node" if ident.node_wrapper else ("rank" if ident.rank is not None
                                                       else "process"),
            "measures": self.measures,
            "measured_by": dict(sorted(self.holders.items())),
            "attribution": self.attribution,
            "shares": {self.devices[k]: self._sampler.fixed_shares.get(k, 0.0)
                       for k in sorted(self.devices)},
            "election": "host-local lock per (job, host, device); a loser retries each "
                        "sample and takes over from a measurer that has died",
        }  # fmt: skip
        if self.other_gpus:
            out["other_ranks_gpus"] = list(self.other_gpus)
        if self.takeovers:
            out["takeovers"] = list(self.takeovers)
        if ident.torchrun is not None:
            out["torchrun"] = dict(ident.torchrun)
        if ident.slurm is not None:
            out["slurm"] = ident.slurm
        watcher = self._watcher
        if watcher is not None and watcher.ranks:
            node_j = sum(self._sampler.energy.values())
            out["ranks"] = watcher.record(node_j)
            if "TORCHELASTIC_RUN_ID" in watcher.facts:
                out["torchelastic"] = dict(watcher.facts)
            sizes = {r.get("world_size") for r in out["ranks"]} - {None}
            if out["world_size"] is None and len(sizes) == 1:
                out["world_size"] = sizes.pop()
        return out

    def close(self) -> None:
        """Give up every lock (the run has ended)."""
        for ballot in self.ballots.values():
            ballot.release()


def standalone_record(identity: JobIdentity, why: str) -> dict[str, Any]:
    """``record["job"]`` of a run whose election failed: its identity, measuring nothing
    for the job (it measured as a standalone run)."""
    return {
        "id": identity.id, "source": identity.source, "host": identity.host,
        "rank": identity.rank, "local_rank": identity.local_rank,
        "world_size": identity.world_size, "node_rank": identity.node_rank,
        "measures": [], "measured_by": {}, "attribution": STANDALONE.format(why=why),
        "standalone": True,
    }  # fmt: skip


def start_job(
    run_id: str, sampler: Sampler, *, command: Sequence[str] | None,
    warn: Callable[[str, str], None], environ: Mapping[str, str] | None = None,
) -> tuple[JobSession | None, dict[str, Any] | None]:  # fmt: skip
    """Join the job this process belongs to, if any.

    Returns:
        ``(session, record)``: the session (None outside a job or when the election
        failed) and ``record["job"]`` (None outside a job). Never raises: a failure is
        said once through ``warn`` and the run measures as a standalone run.
    """
    env = os.environ if environ is None else environ
    try:
        identity = detect_job(env, command)
    except Exception as err:  # never harm the job: measure it as a plain run
        warn("job", f"could not tell which job this run belongs to ({type(err).__name__}: "
             f"{err}); it is recorded as a standalone run")  # fmt: skip
        return None, None
    if identity is None:
        return None, None
    try:
        session = JobSession(identity, run_id, sampler, env)
        return session, session.record()
    except Exception as err:
        sampler.fixed_shares.clear()
        why = f"{type(err).__name__}: {err}"
        warn("job", STANDALONE.format(why=why))
        return None, standalone_record(identity, why)
