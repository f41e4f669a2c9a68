"""A real, throwaway PostgreSQL server for the service tests.

`start_pg_server()` runs `initdb` and `pg_ctl` from the Debian packages (/usr/lib/postgresql/*/bin)
in a fresh temporary directory, on a free loopback port, with the socket directory inside that
temporary directory too, so it touches nothing of a system cluster. The server is tuned for
tests (fsync off, trust authentication on 127.0.0.1 only) and `PgServer.stop()` throws it away.

PostgreSQL refuses to run as root; when the tests run as root (CI) every server command runs as
the `postgres` system user through `runuser -u postgres --`, and the temporary directory is
handed to that user.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

PG_ROOT = Path("/usr/lib/postgresql")
PG_GLOB = f"{PG_ROOT}/*/bin"
SERVICE_USER = "postgres"
DATABASE = "raas_test"


def find_bindir() -> Path | None:
    """The newest PostgreSQL server bin directory that has initdb and pg_ctl, or None."""
    candidates = []
    for path in PG_ROOT.glob("*/bin"):
        if (path / "initdb").is_file() and (path / "pg_ctl").is_file():
            version = path.parent.name
            candidates.append((int(version) if version.isdigit() else 0, path))
    if not candidates:
        return None
    return max(candidates)[1]


def unavailable_reason() -> str | None:
    """Why a throwaway server cannot be started here, or None when it can."""
    if find_bindir() is None:
        return f"no initdb/pg_ctl under {PG_GLOB} (apt-get install postgresql)"
    if os.geteuid() == 0:
        try:
            pwd.getpwnam(SERVICE_USER)
        except KeyError:
            return f"running as root and there is no {SERVICE_USER!r} user to run the server as"
        if shutil.which("runuser") is None:
            return "running as root and runuser is missing"
    return None


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class PgServer:
    bindir: Path
    root: Path
    port: int
    as_root: bool

    @property
    def datadir(self) -> Path:
        return self.root / "data"

    @property
    def sockdir(self) -> Path:
        return self.root / "sock"

    @property
    def logfile(self) -> Path:
        return self.root / "server.log"

    def url(self, database: str = DATABASE, driver: str = "postgresql+psycopg") -> str:
        """SQLAlchemy URL of `database` on this server (psycopg 3 by default)."""
        return f"{driver}://{SERVICE_USER}@127.0.0.1:{self.port}/{database}"

    def run(self, tool: str, *args: str, timeout: float = 60.0) -> str:
        """Run a PostgreSQL tool from this server's bin directory as the server's user."""
        argv = [str(self.bindir / tool), *args]
        if self.as_root:
            argv = ["runuser", "-u", SERVICE_USER, "--", *argv]
        done = subprocess.run(
            argv, capture_output=True, text=True, timeout=timeout, check=False, cwd=self.root
        )
        if done.returncode != 0:
            log = self.logfile.read_text() if self.logfile.exists() else ""
            raise RuntimeError(
                f"{tool} failed ({done.returncode}): {done.stderr.strip()}\n"
                f"{done.stdout.strip()}\n{log[-2000:]}"
            )
        return done.stdout

    def psql(self, sql: str, database: str = "postgres") -> str:
        return self.run(
            "psql",
            "-h",
            "127.0.0.1",
            "-p",
            str(self.port),
            "-U",
            SERVICE_USER,
            "-d",
            database,
            "-v",
            "ON_ERROR_STOP=1",
            "-Atc",
            sql,
        )

    def create_database(self, name: str) -> str:
        """Create an empty database and return its SQLAlchemy URL."""
        self.psql(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def stop(self) -> None:
        with contextlib.suppress(RuntimeError, subprocess.TimeoutExpired):
            self.run("pg_ctl", "stop", "-D", str(self.datadir), "-m", "immediate", "-w")
        shutil.rmtree(self.root, ignore_errors=True)


def start_pg_server(attempts: int = 3, *, durable: bool = False) -> PgServer:
    """initdb + pg_ctl start in a new temporary directory; the caller must `stop()` it.
    `durable` (the service benchmark) keeps PostgreSQL's defaults that make a commit wait for
    its WAL flush (fsync, synchronous_commit, full_page_writes on) and allows 120
    connections; the tests' server turns them off for speed."""
    bindir = find_bindir()
    if bindir is None:
        raise RuntimeError(f"no PostgreSQL server binaries under {PG_GLOB}")
    as_root = os.geteuid() == 0
    # As root the server runs as `postgres`, which must reach the directory: a TMPDIR under
    # /root would not do, so take /tmp (world-traversable) then.
    base = "/tmp" if as_root and Path("/tmp").is_dir() else None
    root = Path(tempfile.mkdtemp(prefix="raas-pg-", dir=base))
    (root / "sock").mkdir()
    if as_root:
        user = pwd.getpwnam(SERVICE_USER)
        for path in (root, root / "sock"):
            os.chown(path, user.pw_uid, user.pw_gid)
    server = PgServer(bindir=bindir, root=root, port=0, as_root=as_root)
    try:
        server.run(
            "initdb",
            "-D",
            str(server.datadir),
            "-U",
            SERVICE_USER,
            "-A",
            "trust",
            "-E",
            "UTF8",
            "--locale=C",
            "--no-sync",
            timeout=120,
        )
        last: RuntimeError | None = None
        for _ in range(attempts):  # a free port can be taken between probing and binding
            server.port = free_port()
            options = " ".join(
                [
                    f"-p {server.port}",
                    "-c listen_addresses=127.0.0.1",
                    f"-k {server.sockdir}",
                    *(
                        ["-c max_connections=150"]
                        if durable
                        else [
                            "-c fsync=off",
                            "-c synchronous_commit=off",
                            "-c full_page_writes=off",
                            "-c max_connections=150",  # two service processes + notify
                        ]
                    ),
                    "-c TimeZone=UTC",
                ]
            )
            try:
                server.run(
                    "pg_ctl",
                    "start",
                    "-D",
                    str(server.datadir),
                    "-l",
                    str(server.logfile),
                    "-o",
                    options,
                    "-w",
                    "-t",
                    "60",
                    timeout=90,
                )
            except RuntimeError as exc:
                last = exc
                continue
            server.create_database(DATABASE)
            return server
        raise RuntimeError(f"PostgreSQL did not start: {last}")
    except BaseException:
        server.stop()
        raise
