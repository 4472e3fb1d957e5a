"""Real PostgreSQL and Redis servers on free loopback ports in temporary directories.

For tests and benchmarks of the shared outbox (PostgreSQL) and the shared LLM cooldowns (Redis): the
Debian packages' binaries (``postgresql`` 15 in ``/usr/lib/postgresql/15/bin``, ``redis-server``),
never a system service. Each server lives in its own temporary directory (data, sockets, log) and is
stopped, and the directory removed, when the block ends.

``initdb`` and ``postgres`` refuse to run as root. Run as root (CI, the development machines), the
server runs as the ``postgres`` user the Debian package creates (``runuser``), in a directory that
user owns; as anyone else, as that user. The superuser is ``postgres`` with a password, and loopback
TCP connections must give it (``scram-sha-256``), so the URLs carry a password as a deployment's do.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from local_services.harness import free_port

PG_BIN = Path("/usr/lib/postgresql/15/bin")  # Debian's postgresql 15
PG_PASSWORD = "outbox-test-secret"  # a test server's; the tests check it never shows in an error
_PG_USER = "postgres"


@dataclass
class PostgresServer:
    port: int
    data_dir: Path
    process_user: str | None  # the OS user the server runs as (None: this process's)
    password: str = PG_PASSWORD

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{_PG_USER}:{self.password}@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        """A fresh database (a test's own); returns its URL."""
        import psycopg

        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def pg_ctl(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return _run_as(self.process_user, [str(PG_BIN / "pg_ctl"), "-D", str(self.data_dir), *args], check)

    def stop(self, mode: str = "fast") -> None:
        """``immediate``: like a crash (no checkpoint), for tests of an outage."""
        self.pg_ctl("-m", mode, "-w", "stop", check=False)

    def start(self) -> None:
        """(Re)start on the same port and data directory."""
        options = (
            f"-p {self.port} -k {self.data_dir.parent} -c listen_addresses=127.0.0.1 "
            "-c fsync=off -c full_page_writes=off -c max_connections=200"
        )
        self.pg_ctl("-o", options, "-l", str(self.data_dir.parent / "server.log"), "-w", "-t", "60", "start")


def _run_as(user: str | None, argv: list[str], check: bool = True) -> subprocess.CompletedProcess[str]:
    if user is not None:
        argv = ["runuser", "-u", user, "--", *argv]
    result = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)
    if check and result.returncode != 0:
        output = f"{result.stdout}\n{result.stderr}"
        raise RuntimeError(f"{' '.join(argv)} failed ({result.returncode}):\n{output}")
    return result


def postgres_available() -> bool:
    return (PG_BIN / "initdb").is_file() and (os.geteuid() != 0 or shutil.which("runuser") is not None)


@contextlib.contextmanager
def postgres_server() -> Iterator[PostgresServer]:
    """initdb into a temporary directory, start on a free loopback port; stop and remove at the end."""
    user = _PG_USER if os.geteuid() == 0 else None
    tmp = Path(tempfile.mkdtemp(prefix="sales-agent-pg-"))
    try:
        if user is not None:
            entry = pwd.getpwnam(user)
            os.chown(tmp, entry.pw_uid, entry.pw_gid)
        pwfile = tmp / "pwfile"
        pwfile.write_text(PG_PASSWORD + "\n")
        if user is not None:
            os.chown(pwfile, pwd.getpwnam(user).pw_uid, -1)
        data = tmp / "data"
        _run_as(
            user,
            [
                str(PG_BIN / "initdb"), "-D", str(data), "-U", _PG_USER, "--pwfile", str(pwfile),
                "--auth-local=trust", "--auth-host=scram-sha-256", "-E", "UTF8", "--no-sync",
            ],
        )  # fmt: skip
        server = PostgresServer(port=free_port(), data_dir=data, process_user=user)
        server.start()
        try:
            yield server
        finally:
            server.stop("immediate")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


@dataclass
class RedisServer:
    port: int
    process: subprocess.Popen[bytes]
    workdir: Path

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def kill(self) -> None:
        """SIGKILL: Redis is gone mid-run."""
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)


@contextlib.contextmanager
def redis_server() -> Iterator[RedisServer]:
    """``redis-server`` on a free loopback port, no persistence, in a temporary directory."""
    binary = shutil.which("redis-server") or "/usr/bin/redis-server"
    with tempfile.TemporaryDirectory(prefix="sales-agent-redis-") as tmp:
        port = free_port()
        process = subprocess.Popen(
            [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", tmp, "--logfile", str(Path(tmp) / "redis.log")],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        server = RedisServer(port, process, Path(tmp))
        try:
            _wait_for_port(port, process, Path(tmp) / "redis.log")
            yield server
        finally:
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    server.kill()


def _wait_for_port(port: int, process: subprocess.Popen[bytes], log: Path, timeout_s: float = 20.0) -> None:
    import socket

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"redis-server exited with {process.returncode}: {_tail(log)}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return
        time.sleep(0.05)
    raise TimeoutError(f"redis-server did not listen on {port} within {timeout_s} s: {_tail(log)}")


def _tail(path: Path) -> str:
    return path.read_text(errors="replace")[-2000:] if path.exists() else ""
