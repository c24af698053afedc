"""Servers the chaos cases take down: a PostgreSQL cluster of the suite's own (restarted with
`pg_ctlcluster`, so the machine's shared server is never touched) and a small tmpfs to fill."""

from __future__ import annotations

import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg

from recon_dagster.testing.deployment import free_port


def _version() -> str:
    return sorted(p.name for p in Path("/etc/postgresql").iterdir())[-1]


def can_make_clusters() -> str | None:
    """Why this machine cannot host a private cluster, or None."""
    if shutil.which("pg_createcluster") is None or not Path("/etc/postgresql").is_dir():
        return "pg_createcluster (Debian's postgresql-common) is not installed"
    if subprocess.run(["id", "-u"], capture_output=True, text=True).stdout.strip() != "0":
        return "creating a PostgreSQL cluster needs root"
    return None


class PrivatePostgres:
    """A cluster of this suite's own on a free port, trust auth, dropped at the end."""

    def __init__(self) -> None:
        self.version = _version()
        self.name = f"chaos_{uuid.uuid4().hex[:8]}"
        self.port = free_port()
        self.restarts = 0

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _ctl(self, action: str) -> None:
        subprocess.run(
            ["pg_ctlcluster", "--skip-systemctl-redirect", self.version, self.name, action],
            check=True,
            capture_output=True,
            timeout=120,
        )

    def create(self) -> PrivatePostgres:
        subprocess.run(
            [
                "pg_createcluster",
                self.version,
                self.name,
                "-p",
                str(self.port),
                "--",
                "--auth=trust",
            ],
            check=True,
            capture_output=True,
            timeout=120,
        )
        self._ctl("start")
        self.wait_up()
        return self

    def wait_up(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                psycopg.connect(self.url, connect_timeout=2).close()
                return
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)

    def restart(self) -> None:
        """`pg_ctlcluster <v> <name> restart`: every connection is cut, the server comes back."""
        self._ctl("restart")
        self.restarts += 1

    def drop(self) -> None:
        subprocess.run(
            ["pg_dropcluster", "--stop", self.version, self.name],
            capture_output=True,
            timeout=120,
        )

    def dump(self) -> bytes:
        """Every row of every database, as SQL text (for the secrets scan)."""
        return subprocess.run(
            ["pg_dumpall", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres"],
            check=True,
            capture_output=True,
            timeout=300,
        ).stdout


def new_database(url: str) -> str:
    """A new database on the server of `url`, and its URL."""
    name = f"chaos_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return url.rsplit("/", 1)[0] + f"/{name}"


@contextmanager
def tmpfs(path: Path, size: str) -> Iterator[Path]:
    """A tmpfs of `size` (e.g. `8m`) mounted at `path`, unmounted afterwards."""
    path.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
        check=True,
        capture_output=True,
    )
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True)
