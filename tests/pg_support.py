"""A throwaway PostgreSQL cluster for the tests: ``initdb`` + ``pg_ctl`` in a temporary folder.

The cluster listens on a Unix socket in its own folder only (no TCP port, so parallel test
runs never collide), runs as an unprivileged user (``postgres`` if the system has one,
else ``nobody``) when the tests run as root, and is stopped at the end by ``pg_ctl stop``
on its own data folder; if that fails, by a signal to the pid in its own
``postmaster.pid`` (:func:`daemon_support.stop_pid`). Nothing else is ever stopped.

Where the server binaries or psycopg are missing, :func:`require_cluster` skips with a
reason that says so and how to fix it (``make test`` installs the Debian ``postgresql``
package when it can). Set ``WATTWISE_REQUIRE_POSTGRES=1`` to make that a failure instead.

Also usable outside pytest (benchmarks, by hand)::

    with PostgresCluster.start() as cluster:
        url = cluster.create_database()
"""

from __future__ import annotations

import contextlib
import os
import pwd
import re
import secrets
import shutil
import signal
import subprocess
import tempfile
import urllib.parse
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from daemon_support import stop_pid

ADMIN = "wattwise_admin"
_SEARCH = ("/usr/lib/postgresql", "/usr/local/pgsql/bin", "/opt/homebrew/opt/postgresql/bin")


class PostgresUnavailableError(RuntimeError):
    """PostgreSQL cannot be used here, and why (the tests skip with this reason)."""


def find_bindir() -> Path:
    """The folder holding ``initdb``, ``pg_ctl`` and ``postgres`` (the newest version).

    Looks at ``WATTWISE_PG_BINDIR``, ``pg_config --bindir``, Debian's
    ``/usr/lib/postgresql/<ver>/bin`` and ``PATH``.

    Raises:
        PostgresUnavailableError: No folder has all three.
    """
    candidates: list[Path] = []
    if os.environ.get("WATTWISE_PG_BINDIR"):
        candidates.append(Path(os.environ["WATTWISE_PG_BINDIR"]))
    pg_config = shutil.which("pg_config")
    if pg_config:
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            out = subprocess.run(
                [pg_config, "--bindir"], capture_output=True, text=True, timeout=10, check=True
            ).stdout.strip()
            candidates.append(Path(out))
    debian = Path(_SEARCH[0])
    if debian.is_dir():
        versions = [p for p in debian.iterdir() if re.fullmatch(r"\d+(\.\d+)?", p.name)]
        for version in sorted(versions, key=lambda p: float(p.name), reverse=True):
            candidates.append(version / "bin")
    candidates.extend(Path(p) for p in _SEARCH[1:])
    initdb = shutil.which("initdb")
    if initdb:
        candidates.append(Path(initdb).resolve().parent)
    for folder in candidates:
        if all((folder / tool).is_file() for tool in ("initdb", "pg_ctl", "postgres")):
            return folder
    msg = (
        "PostgreSQL server binaries (initdb, pg_ctl, postgres) not found: the PostgreSQL ledger "
        "tests are SKIPPED. Install them (Debian: apt-get install postgresql; `make test` "
        "does it as root) or set WATTWISE_PG_BINDIR to their folder."
    )
    raise PostgresUnavailableError(msg)


def _unprivileged_user() -> pwd.struct_passwd | None:
    """Who runs the server: None (ourselves) unless we are root, who may not run it."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        with contextlib.suppress(KeyError):
            return pwd.getpwnam(name)
    msg = (
        "Running as root with neither a 'postgres' nor a 'nobody' user to run the server: "
        "the PostgreSQL ledger tests are SKIPPED. Create one (useradd --system postgres)."
    )
    raise PostgresUnavailableError(msg)


class PostgresCluster:
    """One running throwaway cluster. Use :meth:`start`; stop with :meth:`stop`."""

    def __init__(self, root: Path, bindir: Path, user: pwd.struct_passwd | None) -> None:
        self.root = root
        self.bindir = bindir
        self.user = user
        self.data = root / "data"
        self.socket_dir = root / "sock"
        self.log = root / "server.log"
        self.password = secrets.token_urlsafe(16)
        self.port = 5432  # only names the socket file; no TCP listener
        self.running = False

    # -- lifecycle ------------------------------------------------------------

    @classmethod
    def start(cls) -> PostgresCluster:
        """initdb a new cluster in a fresh temporary folder and start it (about 2 s).

        Raises:
            PostgresUnavailableError: The binaries are missing (the caller skips).
            RuntimeError: They are there but the cluster did not start (the log is quoted).
        """
        bindir = find_bindir()
        user = _unprivileged_user()
        # Short path: a Unix socket path is limited to ~107 bytes.
        root = Path(tempfile.mkdtemp(prefix="ww-pg-", dir="/tmp"))
        cluster = cls(root, bindir, user)
        try:
            cluster._init_and_start()
        except BaseException:
            cluster.stop()
            raise
        return cluster

    def _run(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        kwargs: dict[str, Any] = {}
        env = {**os.environ, "LC_ALL": "C", "HOME": str(self.root)}
        for var in [v for v in env if v.startswith("PG")]:
            del env[var]
        if self.user is not None:
            kwargs = {"user": self.user.pw_uid, "group": self.user.pw_gid, "extra_groups": []}
        return subprocess.run(
            [str(self.bindir / args[0]), *args[1:]], capture_output=True, text=True,
            env=env, cwd=self.root, timeout=timeout, check=False, **kwargs,
        )  # fmt: skip

    def _init_and_start(self) -> None:
        self.socket_dir.mkdir()
        pwfile = self.root / "pwfile"
        pwfile.write_text(self.password + "\n")
        if self.user is not None:
            for path in (self.root, self.socket_dir, pwfile):
                os.chown(path, self.user.pw_uid, self.user.pw_gid)
        os.chmod(pwfile, 0o600)
        done = self._run(
            "initdb", "-D", str(self.data), "-U", ADMIN, f"--pwfile={pwfile}",
            "--auth-local=scram-sha-256", "--auth-host=scram-sha-256", "-E", "UTF8",
            "--no-locale", "--no-sync",
        )  # fmt: skip
        pwfile.unlink()
        if done.returncode != 0:
            msg = f"initdb failed ({done.returncode}): {done.stderr.strip() or done.stdout}"
            raise RuntimeError(msg)
        settings = {
            "listen_addresses": "''",
            "unix_socket_directories": f"'{self.socket_dir}'",
            "port": str(self.port),
            "max_connections": "200",
            "shared_buffers": "32MB",
            # A throwaway cluster: durability buys nothing here and costs the tests time.
            "fsync": "off",
            "synchronous_commit": "off",
            "full_page_writes": "off",
        }
        with open(self.data / "postgresql.conf", "a", encoding="utf-8") as conf:
            conf.write("\n# wattwise tests\n")
            conf.writelines(f"{key} = {value}\n" for key, value in settings.items())
        done = self._run(
            "pg_ctl", "start", "-w", "-t", "60", "-D", str(self.data), "-l", str(self.log)
        )
        if done.returncode != 0:
            log = self.log.read_text(errors="replace")[-2000:] if self.log.exists() else ""
            msg = f"pg_ctl start failed ({done.returncode}): {done.stderr.strip()}\n{log}"
            raise RuntimeError(msg)
        self.running = True

    def server_pid(self) -> int | None:
        """The postmaster's pid, from this cluster's own ``postmaster.pid``."""
        try:
            return int((self.data / "postmaster.pid").read_text().split("\n", 1)[0])
        except (OSError, ValueError):
            return None

    def stop_server(self) -> None:
        """Stop the server (fast shutdown); the data folder stays, :meth:`restart` works."""
        if not self.running:
            return
        pid = self.server_pid()
        done = self._run("pg_ctl", "stop", "-w", "-t", "30", "-m", "fast", "-D", str(self.data))
        if done.returncode != 0 and pid is not None:
            # Our own postmaster (its pid from our own data folder): immediate shutdown.
            pidfile = self.data / "postmaster.pid"
            stop_pid(pid, signal.SIGQUIT, lambda: not pidfile.exists(), timeout=30)
        self.running = False

    def restart(self) -> None:
        """Start the server again on the same data folder."""
        done = self._run(
            "pg_ctl", "start", "-w", "-t", "60", "-D", str(self.data), "-l", str(self.log)
        )
        if done.returncode != 0:
            msg = f"pg_ctl start failed ({done.returncode}): {done.stderr.strip()}"
            raise RuntimeError(msg)
        self.running = True

    def stop(self) -> None:
        """Stop the server and remove the folder."""
        try:
            self.stop_server()
        finally:
            shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> PostgresCluster:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    # -- databases and roles ----------------------------------------------------

    def url(
        self, database: str = "postgres", *, user: str = ADMIN, password: str | None = None
    ) -> str:
        """A ``postgresql://`` URL for ``database`` over this cluster's socket."""
        secret = self.password if password is None and user == ADMIN else password
        auth = urllib.parse.quote(user, safe="")
        if secret is not None:
            auth += ":" + urllib.parse.quote(secret, safe="")
        host = urllib.parse.quote(str(self.socket_dir), safe="")
        return f"postgresql://{auth}@/{database}?host={host}&port={self.port}"

    def admin(self, database: str = "postgres") -> Any:
        """An autocommit psycopg connection as the cluster's superuser."""
        import psycopg

        return psycopg.connect(
            host=str(self.socket_dir), port=self.port, user=ADMIN, password=self.password,
            dbname=database, autocommit=True,
        )  # fmt: skip

    def create_database(self, name: str | None = None) -> str:
        """A new empty database; returns its URL (with the superuser's password)."""
        name = name or f"ww_{uuid.uuid4().hex[:12]}"
        with self.admin() as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def drop_database(self, name: str) -> None:
        """Drop a database, closing its connections."""
        with self.admin() as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def create_role(self, name: str, password: str, *grants: str, database: str) -> str:
        """A login role; ``grants`` are SQL statements run in ``database`` (``{role}``
        stands for the role's name). Returns the role's URL for ``database``."""
        with self.admin() as conn:
            conn.execute(f"CREATE ROLE \"{name}\" LOGIN PASSWORD '{password}'")
        with self.admin(database) as conn:
            for grant in grants:
                conn.execute(grant.format(role=f'"{name}"'))
        return self.url(database, user=name, password=password)


def database_name(url: str) -> str:
    """The database a ``postgresql://`` URL names."""
    return urllib.parse.urlsplit(url).path.lstrip("/")


def require_psycopg() -> None:
    """Skip-worthy unless psycopg 3 is importable."""
    try:
        import psycopg  # noqa: F401
    except ImportError as err:
        msg = (
            f"psycopg 3 is not installed ({err}): the PostgreSQL ledger tests are SKIPPED. "
            "Install it: pip install -e '.[postgres]' (make test installs '.[dev,all]')."
        )
        raise PostgresUnavailableError(msg) from err


@contextlib.contextmanager
def cluster_or_skip() -> Iterator[PostgresCluster]:
    """A running cluster for a fixture; skips (or fails if required) where there is none."""
    import pytest

    try:
        require_psycopg()
        cluster = PostgresCluster.start()
    except PostgresUnavailableError as why:
        if os.environ.get("WATTWISE_REQUIRE_POSTGRES") == "1":
            pytest.fail(f"WATTWISE_REQUIRE_POSTGRES=1 but {why}")
        pytest.skip(str(why))
    try:
        yield cluster
    finally:
        cluster.stop()


def _fixtures() -> tuple[Any, Any]:
    import pytest

    @pytest.fixture(scope="session")
    def pg_cluster() -> Iterator[PostgresCluster]:
        """A throwaway PostgreSQL cluster for the whole session (skips where there is none)."""
        with cluster_or_skip() as cluster:
            yield cluster

    @pytest.fixture
    def pg_url(pg_cluster: PostgresCluster) -> Iterator[str]:
        """The URL of a new empty database in the session's cluster, dropped afterwards."""
        url = pg_cluster.create_database()
        yield url
        pg_cluster.drop_database(database_name(url))

    return pg_cluster, pg_url


pg_cluster, pg_url = _fixtures()
