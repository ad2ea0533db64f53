"""A throwaway PostgreSQL cluster on loopback, for the remote tests and benchmarks (and for trying
remotes out): initdb into a temporary directory, start it with pg_ctl, stop and delete it after.

Runs the server binaries as the current user, or — when running as root, which PostgreSQL refuses —
as the `postgres` system user through runuser. The superuser gets a password (so tests exercise
password authentication over TCP, the way a team server is used).
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import MvcdbError

USER = "mvcdb"


def _pg_bin(name: str) -> str:
    """The path of a PostgreSQL server binary (PATH first, then Debian's versioned directories)."""
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), reverse=True)
    if candidates:
        return candidates[0]
    raise MvcdbError(f"PostgreSQL's {name} was not found (apt-get install postgresql)")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _server_options(port: int, sockets: Path) -> str:
    """Loopback only, our own socket directory, durability off (a throwaway test server)."""
    return (
        f"-p {port} -k {sockets} -c listen_addresses=127.0.0.1 -c fsync=off"
        " -c synchronous_commit=off -c full_page_writes=off -c max_connections=60"
        " -c shared_buffers=128MB"
    )


@dataclass
class LocalCluster:
    """A running throwaway cluster; url() gives a postgresql:// URL with the password inside."""

    root: Path
    port: int
    password: str
    run_as: list[str] = field(default_factory=list)

    @property
    def datadir(self) -> Path:
        return self.root / "data"

    def url(self, dbname: str = "postgres", *, with_password: bool = True) -> str:
        auth = f"{USER}:{self.password}" if with_password else USER
        return f"postgresql://{auth}@127.0.0.1:{self.port}/{dbname}"

    def stop(self) -> None:
        """Stop the server (fast shutdown) and delete its files."""
        subprocess.run(
            [*self.run_as, _pg_bin("pg_ctl"), "-D", str(self.datadir), "-m", "immediate", "-w", "stop"],
            capture_output=True,
            check=False,
        )
        shutil.rmtree(self.root, ignore_errors=True)


def start_cluster(password: str = "s3cret-pw") -> LocalCluster:
    """initdb + pg_ctl start on 127.0.0.1 (a free port); raise MvcdbError if it cannot start."""
    root = Path(tempfile.mkdtemp(prefix="mvcdb-pg-"))
    run_as: list[str] = []
    if os.geteuid() == 0:
        run_as = ["runuser", "-u", "postgres", "--"]
        shutil.chown(root, "postgres")
    os.chmod(root, 0o700)
    pwfile = root / "pw"
    pwfile.write_text(password + "\n")
    if run_as:
        shutil.chown(pwfile, "postgres")
    cluster = LocalCluster(root=root, port=_free_port(), password=password, run_as=run_as)
    init = subprocess.run(
        [
            *run_as,
            _pg_bin("initdb"),
            "-D",
            str(cluster.datadir),
            "-U",
            USER,
            f"--pwfile={pwfile}",
            "--auth-host=scram-sha-256",
            "--auth-local=trust",
            "-E",
            "UTF8",
            "--no-sync",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    if init.returncode != 0:
        shutil.rmtree(root, ignore_errors=True)
        raise MvcdbError(f"initdb failed: {init.stderr.strip().splitlines()[-1:]}")
    for _attempt in range(3):
        start = subprocess.run(
            [
                *run_as,
                _pg_bin("pg_ctl"),
                "-D",
                str(cluster.datadir),
                "-o",
                _server_options(cluster.port, root),
                "-l",
                str(root / "log"),
                "-w",
                "-t",
                "30",
                "start",
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        if start.returncode == 0:
            return cluster
        time.sleep(0.2)
        cluster.port = _free_port()  # the port may have been taken between probing and binding
    log = (root / "log").read_text(errors="replace") if (root / "log").exists() else start.stderr
    shutil.rmtree(root, ignore_errors=True)
    raise MvcdbError(f"PostgreSQL did not start: {log.strip().splitlines()[-1:] if log else '?'}")
