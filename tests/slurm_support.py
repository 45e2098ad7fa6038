"""A throwaway single-node SLURM for the tests: munged, slurmctld and slurmd on localhost.

Everything lives in one temporary folder: MUNGE's own key and socket, a minimal
``slurm.conf`` (no cgroups: ``proctrack/linuxproc``, ``task/none``; the node is this host
with the CPU count and memory ``slurmd -C`` reports), the state and spool folders and the
logs. Clients reach it through ``SLURM_CONF`` (:attr:`SlurmCluster.env`); the system's own
``/etc/slurm`` and MUNGE are never touched.

Accounting (``sacct``): where Debian's ``slurmdbd`` and ``mariadb-server`` are installed,
a throwaway MariaDB (``mariadb-install-db`` into the folder, ``mariadbd`` on a free port of
127.0.0.1) and ``slurmdbd`` are started too; otherwise the cluster runs with
``AccountingStorageType=accounting_storage/none`` and :attr:`SlurmCluster.accounting` is
False (``sacct`` then fails, as on a cluster without accounting).

Every daemon runs in the foreground in a new session started here
(:func:`daemon_support.spawn`); :meth:`SlurmCluster.stop` signals those process groups only
(:func:`daemon_support.stop_group`: SIGTERM, then SIGKILL after a grace period), and cancels
only the jobs this cluster was given. Nothing else is ever stopped.

Where SLURM or MUNGE is missing, or we are not root (``slurmd`` launches jobs as their
user), :func:`cluster_or_skip` skips with a reason that says so and how to fix it (``make
test`` installs Debian's ``slurm-wlm``, ``munge``, ``slurmdbd`` and ``mariadb-server`` as
root). Set ``WATTWISE_REQUIRE_SLURM=1`` to make that a failure instead.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from daemon_support import free_port, spawn, stop_group, wait_until

DAEMONS = ("munged", "slurmctld", "slurmd")
CLIENTS = ("sbatch", "srun", "squeue", "sinfo", "scontrol", "scancel", "sacct")
ACCOUNTING = ("slurmdbd", "mariadbd", "mariadb-install-db", "mariadb-admin")
SBIN = ("/usr/sbin", "/usr/local/sbin", "/sbin")
CLUSTER = "wwtest"
PARTITION = "wwtest"
#: How long a client command may take before the cluster is declared broken.
CLIENT_TIMEOUT_S = 15.0


class SlurmUnavailableError(RuntimeError):
    """SLURM cannot be used here, and why (the tests skip with this reason)."""


def _which(name: str) -> str | None:
    path = os.pathsep.join([os.environ.get("PATH", ""), *SBIN])
    return shutil.which(name, path=path)


def find_tools() -> dict[str, str]:
    """Paths of the daemons and clients, and of the accounting tools that are installed.

    Raises:
        SlurmUnavailableError: A daemon or client is missing, or we are not root.
    """
    tools = {name: _which(name) for name in (*DAEMONS, *CLIENTS, *ACCOUNTING)}
    missing = [name for name in (*DAEMONS, *CLIENTS) if tools[name] is None]
    if missing:
        msg = (
            f"SLURM/MUNGE programs not found ({', '.join(missing)}): the SLURM tests are "
            "SKIPPED. Install them (Debian: apt-get install slurm-wlm munge; `make test` does "
            "it as root)."
        )
        raise SlurmUnavailableError(msg)
    if os.geteuid() != 0:
        msg = (
            "Not running as root: slurmd must be root to launch jobs, so the SLURM tests are "
            "SKIPPED. Run them as root (CI does)."
        )
        raise SlurmUnavailableError(msg)
    return {name: path for name, path in tools.items() if path is not None}


class SlurmCluster:
    """One running throwaway cluster. Use :meth:`start`; stop with :meth:`stop`."""

    def __init__(self, root: Path, tools: dict[str, str]) -> None:
        self.root = root
        self.tools = tools
        self.conf = root / "slurm.conf"
        self.logs = root / "log"
        self.munge_socket = root / "munge" / "sock"
        self.accounting = all(name in tools for name in ACCOUNTING)
        self.node = ""
        self.cpus = 0
        self.memory_mb = 0
        self._procs: dict[str, subprocess.Popen[bytes]] = {}
        self._jobs: list[int] = []

    # -- lifecycle ----------------------------------------------------------------------

    @classmethod
    def start(cls, *, accounting: bool = True) -> SlurmCluster:
        """Start MUNGE, (accounting,) slurmctld and slurmd; returns once the node is idle.

        Raises:
            SlurmUnavailableError: The programs are missing or we are not root (skip).
            RuntimeError: They are there but the cluster did not come up (logs quoted).
        """
        tools = find_tools()
        # Short path: Unix socket paths are limited to ~107 bytes.
        root = Path(tempfile.mkdtemp(prefix="ww-slurm-", dir="/tmp"))
        os.chmod(root, 0o755)
        cluster = cls(root, tools)
        cluster.accounting = cluster.accounting and accounting
        try:
            cluster._start()
        except BaseException:
            cluster.stop()
            raise
        return cluster

    @property
    def env(self) -> dict[str, str]:
        """The environment for clients of this cluster (this process's, with SLURM_CONF)."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("SLURM")}
        env["SLURM_CONF"] = str(self.conf)
        return env

    def _spawn(self, name: str, argv: list[str]) -> None:
        self._procs[name] = spawn(argv, log=self.logs / f"{name}.out", cwd=self.root,
                                  env=self.env)  # fmt: skip

    def _log_tail(self, name: str, chars: int = 1500) -> str:
        texts = []
        for path in (self.logs / f"{name}.out", self.logs / f"{name}.log"):
            with contextlib.suppress(OSError):
                texts.append(path.read_text(errors="replace")[-chars:])
        return "\n".join(texts)

    def _wait_for(self, what: str, name: str, ready: Callable[[], bool], timeout: float) -> None:
        """Poll ``ready()`` until true; fail with the daemon's log if it died or timed out."""
        wait_until(what, ready, timeout, proc=self._procs.get(name),
                   log=lambda: self._log_tail(name))  # fmt: skip

    def _start(self) -> None:
        self.logs.mkdir()
        for sub in ("state", "spool", "munge"):
            (self.root / sub).mkdir()
        self._start_munge()
        node_line = self._node_line()
        if self.accounting:
            db_port, dbd_port = self._start_mariadb(), free_port()
            self._start_slurmdbd(db_port, dbd_port)
        self._write_slurm_conf(node_line, dbd_port if self.accounting else None)
        if self.accounting:
            self._spawn("slurmdbd", [self.tools["slurmdbd"], "-D"])
            self._wait_for(
                "slurmdbd started", "slurmdbd",
                lambda: "started" in self._log_tail("slurmdbd", 4000), 30,
            )  # fmt: skip
        self._spawn("slurmctld", [self.tools["slurmctld"], "-D", "-i"])
        self._spawn("slurmd", [self.tools["slurmd"], "-D"])
        self._wait_for("the node became idle", "slurmctld", self._node_idle, 60)
        if self.accounting:
            # The controller registers the cluster with slurmdbd when it starts; sacct
            # answers once that is done.
            self._wait_for("sacct answered", "slurmdbd", self._sacct_answers, 60)

    def _start_munge(self) -> None:
        key = self.root / "munge" / "key"
        key.write_bytes(secrets.token_bytes(1024))
        os.chmod(key, 0o600)
        folder = self.root / "munge"
        self._spawn("munged", [
            self.tools["munged"], "--foreground", "--force", f"--key-file={key}",
            f"--socket={self.munge_socket}", f"--pid-file={folder / 'pid'}",
            f"--log-file={self.logs / 'munged.log'}", f"--seed-file={folder / 'seed'}",
        ])  # fmt: skip
        self._wait_for("MUNGE's socket appeared", "munged", self.munge_socket.exists, 15)

    def _node_line(self) -> str:
        """``NodeName=... CPUs=... RealMemory=...`` of this host, as ``slurmd -C`` sees it."""
        done = subprocess.run(
            [self.tools["slurmd"], "-C"], capture_output=True, text=True, timeout=30,
            check=False, env=self.env,
        )  # fmt: skip
        line = next((x for x in done.stdout.splitlines() if x.startswith("NodeName=")), None)
        if done.returncode != 0 or line is None:
            msg = f"slurmd -C failed ({done.returncode}): {done.stderr.strip()}"
            raise RuntimeError(msg)
        fields = dict(item.split("=", 1) for item in line.split() if "=" in item)
        self.node = fields["NodeName"]
        self.cpus = int(fields["CPUs"])
        self.memory_mb = int(fields["RealMemory"])
        keep = ("NodeName", "CPUs", "Boards", "SocketsPerBoard", "CoresPerSocket",
                "ThreadsPerCore", "RealMemory")  # fmt: skip
        return " ".join(f"{k}={fields[k]}" for k in keep if k in fields)

    def _start_mariadb(self) -> int:
        data = self.root / "db"
        done = subprocess.run(
            [self.tools["mariadb-install-db"], "--no-defaults", f"--datadir={data}",
             "--auth-root-authentication-method=normal", "--skip-test-db", "--user=root"],
            capture_output=True, text=True, timeout=120, check=False, cwd=self.root,
        )  # fmt: skip
        if done.returncode != 0:
            msg = f"mariadb-install-db failed ({done.returncode}): {done.stderr[-1500:]}"
            raise RuntimeError(msg)
        port = free_port()
        self._spawn("mariadbd", [
            self.tools["mariadbd"], "--no-defaults", f"--datadir={data}", "--user=root",
            "--bind-address=127.0.0.1", f"--port={port}", f"--socket={self.root / 'db.sock'}",
            f"--pid-file={self.root / 'db.pid'}", f"--log-error={self.logs / 'mariadbd.log'}",
            "--skip-name-resolve", "--innodb-buffer-pool-size=64M",
            "--innodb-lock-wait-timeout=900", "--innodb-flush-log-at-trx-commit=0",
        ])  # fmt: skip

        def answers() -> bool:
            return subprocess.run(
                [self.tools["mariadb-admin"], "--no-defaults", "-h127.0.0.1", f"-P{port}",
                 "-uroot", "ping"], capture_output=True, timeout=10, check=False,
            ).returncode == 0  # fmt: skip

        self._wait_for("MariaDB answered", "mariadbd", answers, 30)
        return port

    def _start_slurmdbd(self, db_port: int, dbd_port: int) -> None:
        conf = self.root / "slurmdbd.conf"  # slurmdbd reads it beside $SLURM_CONF
        conf.write_text(
            "AuthType=auth/munge\n"
            f"AuthInfo=socket={self.munge_socket}\n"
            "DbdHost=localhost\nDbdAddr=127.0.0.1\n"
            f"DbdPort={dbd_port}\n"
            "SlurmUser=root\n"
            f"PidFile={self.root / 'slurmdbd.pid'}\n"
            f"LogFile={self.logs / 'slurmdbd.log'}\n"
            "StorageType=accounting_storage/mysql\n"
            f"StorageHost=127.0.0.1\nStoragePort={db_port}\nStorageUser=root\n"
            "StorageLoc=slurm_acct\n"
        )
        os.chmod(conf, 0o600)

    def _write_slurm_conf(self, node_line: str, dbd_port: int | None) -> None:
        accounting = (
            "AccountingStorageType=accounting_storage/slurmdbd\n"
            f"AccountingStorageHost=127.0.0.1\nAccountingStoragePort={dbd_port}\n"
            f"AccountingStoragePass={self.munge_socket}\n"
            if dbd_port is not None
            else "AccountingStorageType=accounting_storage/none\n"
        )
        (self.root / "plugstack.conf").write_text("")
        self.conf.write_text(
            f"ClusterName={CLUSTER}\n"
            f"SlurmctldHost={self.node}(127.0.0.1)\n"
            f"SlurmctldPort={free_port()}\nSlurmdPort={free_port()}\n"
            "SlurmUser=root\nSlurmdUser=root\n"
            f"AuthType=auth/munge\nAuthInfo=socket={self.munge_socket}\nCredType=cred/munge\n"
            f"StateSaveLocation={self.root / 'state'}\nSlurmdSpoolDir={self.root / 'spool'}\n"
            f"SlurmctldPidFile={self.root / 'slurmctld.pid'}\n"
            f"SlurmdPidFile={self.root / 'slurmd.pid'}\n"
            f"SlurmctldLogFile={self.logs / 'slurmctld.log'}\n"
            f"SlurmdLogFile={self.logs / 'slurmd.log'}\n"
            f"PlugStackConfig={self.root / 'plugstack.conf'}\n"
            "ProctrackType=proctrack/linuxproc\nTaskPlugin=task/none\n"
            "SwitchType=switch/none\nMpiDefault=none\nMailProg=/bin/true\n"
            "SchedulerType=sched/builtin\n"
            "SelectType=select/cons_tres\nSelectTypeParameters=CR_CPU_Memory\n"
            "ReturnToService=2\nJobAcctGatherType=jobacct_gather/none\n"
            "JobCompType=jobcomp/none\n"
            f"{accounting}"
            f"{node_line} NodeAddr=127.0.0.1 State=UNKNOWN\n"
            f"PartitionName={PARTITION} Nodes=ALL Default=YES MaxTime=INFINITE State=UP\n"
        )

    def _node_idle(self) -> bool:
        try:
            done = self.client("sinfo", "-h", "-n", self.node, "-o", "%T", check=False)
        except subprocess.TimeoutExpired:  # the controller is still starting
            return False
        return done.returncode == 0 and done.stdout.strip() == "idle"

    def _sacct_answers(self) -> bool:
        try:
            done = self.client("sacct", "-n", "-X", "-j", "1", check=False)
        except subprocess.TimeoutExpired:
            return False
        return done.returncode == 0

    def stop(self) -> None:
        """Cancel this cluster's jobs, stop its daemons (their process groups), remove
        the folder."""
        try:
            ctld = self._procs.get("slurmctld")
            if self._jobs and ctld is not None and ctld.poll() is None:
                with contextlib.suppress(subprocess.SubprocessError, OSError):
                    self.client("scancel", *map(str, self._jobs), check=False, timeout=5)
            for name in ("slurmd", "slurmctld", "slurmdbd", "mariadbd", "munged"):
                proc = self._procs.get(name)
                if proc is not None:
                    stop_group(proc)
        finally:
            shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> SlurmCluster:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    # -- clients ------------------------------------------------------------------------

    def client(
        self, name: str, *args: str, check: bool = True, timeout: float = CLIENT_TIMEOUT_S,
        env: dict[str, str] | None = None, cwd: str | os.PathLike[str] | None = None,
    ) -> subprocess.CompletedProcess[str]:  # fmt: skip
        """Run a SLURM client against this cluster (``SLURM_CONF`` set)."""
        done = subprocess.run(
            [self.tools[name], *args], capture_output=True, text=True, timeout=timeout,
            check=False, env={**self.env, **(env or {})}, cwd=cwd,
        )  # fmt: skip
        if check and done.returncode != 0:
            msg = f"{name} {' '.join(args)} failed ({done.returncode}): {done.stderr.strip()}"
            raise RuntimeError(msg)
        return done

    def sbatch(self, script: Path, *args: str, env: dict[str, str] | None = None) -> int:
        """Submit ``script`` (working folder: its own); returns SLURM's job id."""
        done = self.client(
            "sbatch", "--parsable", f"--chdir={script.parent}", *args, str(script),
            env=env, cwd=script.parent,
        )  # fmt: skip
        job = int(done.stdout.strip().split(";")[0])
        self._jobs.append(job)
        return job

    def wait(self, job: int, timeout: float) -> str:
        """Wait until ``job`` has left the queue; returns its final state (``COMPLETED``...).

        Raises:
            TimeoutError: Still queued or running after ``timeout`` seconds.
        """
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            done = self.client("scontrol", "-o", "show", "job", str(job), check=False)
            match = re.search(r"\bJobState=(\S+)", done.stdout)
            state = match.group(1) if match else None
            if state is not None and state not in {"PENDING", "RUNNING", "CONFIGURING",
                                                   "COMPLETING", "SUSPENDED"}:  # fmt: skip
                return state
            time.sleep(0.1)
        msg = f"SLURM job {job} still queued or running after {timeout:.0f} s"
        raise TimeoutError(msg)

    def wait_gone(self, job: int, timeout: float) -> None:
        """Wait until no task of ``job`` (an array's too) is queued or running.

        Raises:
            TimeoutError: Still there after ``timeout`` seconds.
        """
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            done = self.client("squeue", "-h", "-j", str(job), check=False)
            if done.returncode == 0 and not done.stdout.strip():
                return
            time.sleep(0.1)
        msg = f"SLURM job {job} still queued or running after {timeout:.0f} s"
        raise TimeoutError(msg)

    def sacct_rows(self, job: int, fmt: str, timeout: float = 20) -> list[str]:
        """``sacct -P -n -j JOB --format FMT`` lines, polled until the job's steps ended
        in the accounting (slurmdbd gets them from the controller a moment later)."""
        deadline = time.monotonic() + timeout
        lines: list[str] = []
        while time.monotonic() < deadline:
            done = self.client("sacct", "-P", "-n", "-j", str(job), "--format", fmt)
            lines = [x for x in done.stdout.splitlines() if x.strip()]
            states = self.client("sacct", "-P", "-n", "-j", str(job), "--format", "State")
            if lines and "RUNNING" not in states.stdout and "PENDING" not in states.stdout:
                return lines
            time.sleep(0.2)
        return lines


@contextlib.contextmanager
def cluster_or_skip(*, accounting: bool = True) -> Iterator[SlurmCluster]:
    """A running cluster for a fixture; skips (or fails if required) where there is none."""
    import pytest

    try:
        cluster = SlurmCluster.start(accounting=accounting)
    except SlurmUnavailableError as why:
        if os.environ.get("WATTWISE_REQUIRE_SLURM") == "1":
            pytest.fail(f"WATTWISE_REQUIRE_SLURM=1 but {why}")
        pytest.skip(str(why))
    try:
        yield cluster
    finally:
        cluster.stop()


class FakeRapl:
    """A powercap tree with one package counter that a thread of the test advances at
    ``power_w`` (point ``WATTWISE_RAPL_ROOT`` at :attr:`root`), logging every write so that
    the counter's increase between two moments is known."""

    def __init__(self, root: Path, power_w: float, step_s: float = 0.02) -> None:
        self.root = root
        self.power_w = power_w
        self.step_s = step_s
        zone = root / "intel-rapl:0"
        zone.mkdir(parents=True)
        (zone / "name").write_text("package-0\n")
        (zone / "max_energy_range_uj").write_text("262143328850\n")
        self._file = zone / "energy_uj"
        self._value_uj = 5_000_000_000
        self.log: list[tuple[float, float, int]] = []  # (time before, time after, value)
        self._stop = threading.Event()
        self._write()
        self._thread = threading.Thread(target=self._loop, name="fake-rapl", daemon=True)

    def _write(self) -> None:
        before = time.time()
        tmp = self._file.with_suffix(".tmp")
        tmp.write_text(f"{self._value_uj}\n")
        os.replace(tmp, self._file)  # atomic: a reader sees the old or the new value
        self.log.append((before, time.time(), self._value_uj))

    def _loop(self) -> None:
        last = time.monotonic()
        while not self._stop.wait(self.step_s):
            now = time.monotonic()
            self._value_uj += int(self.power_w * (now - last) * 1e6)
            last = now
            self._write()

    def __enter__(self) -> FakeRapl:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def most_increase_j(self, start: float, end: float) -> float:
        """The most any reader can have seen the counter rise from ``start`` to ``end``:
        the last value written before ``end`` less the last written wholly before
        ``start``."""
        high = max((v for before, _, v in self.log if before <= end), default=0)
        low = max((v for _, after, v in self.log if after <= start), default=self.log[0][2])
        return (high - low) / 1e6
