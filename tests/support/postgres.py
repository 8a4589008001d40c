"""A throwaway PostgreSQL server from Debian's package, for the store's PostgreSQL test lane.

:class:`PostgresServer` runs ``initdb`` and ``pg_ctl`` from ``/usr/lib/postgresql/<v>/bin`` on a
fresh data folder, listening on 127.0.0.1 and a free port with its unix socket in the same
folder and trust authentication (loopback only, thrown away at the end). PostgreSQL refuses to
run as root, so under root the server runs as the ``postgres`` system user (``runuser``), in a
folder that user owns. Durability is off (``fsync=off``): the data does not outlive the run.

If the binaries are missing the caller fails the test with :data:`MISSING_SERVER`, which says
how to install them; the PostgreSQL lane never skips.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import subprocess
import tempfile
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from deploy.kafka.launcher import free_port

__all__ = ["MISSING_SERVER", "PostgresServer", "PostgresUnavailable", "find_bin_dir", "free_port"]

MISSING_SERVER: Final = (
    "PostgreSQL server binaries not found (/usr/lib/postgresql/*/bin/initdb): "
    "run `bash deploy/system-deps.sh` (as root) to install Debian's postgresql package"
)
_SERVICE_USER: Final = "postgres"
_START_TIMEOUT_S: Final = 60
_SUPERUSER: Final = "postgres"


class PostgresUnavailable(RuntimeError):
    """The test server could not be found or started; the message says why and what to do."""


def find_bin_dir() -> Path | None:
    """The newest ``/usr/lib/postgresql/<version>/bin`` that has ``initdb``, if any."""
    candidates = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/initdb"),
        key=lambda p: int(p.parent.parent.name) if p.parent.parent.name.isdigit() else 0,
    )
    return candidates[-1].parent if candidates else None


@dataclass
class PostgresServer:
    """One PostgreSQL server process for a test run: ``start()``, databases, ``stop()``."""

    bin_dir: Path
    port: int = field(default_factory=free_port)
    root: Path = field(init=False)
    _as_service_user: list[str] = field(init=False, default_factory=list)
    _started: bool = field(init=False, default=False)

    def __post_init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="hub-pg-"))
        if os.geteuid() == 0:
            try:
                user = pwd.getpwnam(_SERVICE_USER)
            except KeyError as exc:
                msg = f"running as root but there is no {_SERVICE_USER!r} user: {MISSING_SERVER}"
                raise PostgresUnavailable(msg) from exc
            os.chown(self.root, user.pw_uid, user.pw_gid)
            self._as_service_user = ["runuser", "-u", _SERVICE_USER, "--"]

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    @property
    def log_file(self) -> Path:
        return self.root / "server.log"

    def url(self, database: str = "postgres") -> str:
        """The SQLAlchemy URL of ``database`` on this server (asyncpg, no password)."""
        return f"postgresql+asyncpg://{_SUPERUSER}@127.0.0.1:{self.port}/{database}"

    def start(self) -> None:
        """Create the cluster and start the server; raise with the server log if it fails."""
        self._run(
            str(self.bin_dir / "initdb"),
            "-D",
            str(self.data_dir),
            "-U",
            _SUPERUSER,
            "--auth=trust",
            "--encoding=UTF8",
            "--locale=C",
            "--no-sync",
        )
        options = " ".join(
            [
                "-h 127.0.0.1",
                f"-p {self.port}",
                f"-k {self.root}",
                "-c fsync=off",
                "-c synchronous_commit=off",
                "-c full_page_writes=off",
                "-c max_connections=100",
            ]
        )
        self._run(
            str(self.bin_dir / "pg_ctl"),
            "-D",
            str(self.data_dir),
            "-l",
            str(self.log_file),
            "-o",
            options,
            "-w",
            "-t",
            str(_START_TIMEOUT_S),
            "start",
        )
        self._started = True

    def stop(self) -> None:
        """Stop the server (fast shutdown) and remove its folder; safe to call twice."""
        try:
            if self._started:
                self._run(
                    str(self.bin_dir / "pg_ctl"), "-D", str(self.data_dir), "-m", "fast", "stop"
                )
                self._started = False
        finally:
            shutil.rmtree(self.root, ignore_errors=True)

    def create_database(self, prefix: str = "hub_test") -> str:
        """Create a fresh, randomly named database and return its name."""
        name = f"{prefix}_{uuid.uuid4().hex[:12]}"
        self._psql(f'CREATE DATABASE "{name}"')
        return name

    def drop_database(self, name: str) -> None:
        """Drop ``name``, disconnecting anyone still connected (PostgreSQL 13+)."""
        self._psql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def _psql(self, sql: str) -> None:
        subprocess.run(
            [
                str(self.bin_dir / "psql"),
                "-X",
                "-q",
                "-v",
                "ON_ERROR_STOP=1",
                "-h",
                "127.0.0.1",
                "-p",
                str(self.port),
                "-U",
                _SUPERUSER,
                "-d",
                "postgres",
                "-c",
                sql,
            ],
            check=True,
            capture_output=True,
            timeout=60,
        )

    def _run(self, *argv: str) -> None:
        try:
            subprocess.run(
                [*self._as_service_user, *argv],
                check=True,
                capture_output=True,
                text=True,
                timeout=_START_TIMEOUT_S + 30,
                cwd=self.root,
            )
        except subprocess.CalledProcessError as exc:
            log = ""
            with contextlib.suppress(OSError):  # no log yet when initdb itself failed
                log = self.log_file.read_text(errors="replace")[-4000:]
            msg = (
                f"{Path(argv[0]).name} failed with exit code {exc.returncode}\n"
                f"stdout: {exc.stdout}\nstderr: {exc.stderr}\nserver log (tail):\n{log}"
            )
            raise PostgresUnavailable(msg) from exc
