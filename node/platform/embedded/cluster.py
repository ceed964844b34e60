"""The embedded default database: a private PostgreSQL cluster in the data dir, reachable only by Unix socket."""
from __future__ import annotations

import asyncio
import fcntl
import logging
import os
import pwd
import shutil
import signal
from pathlib import Path
from typing import Sequence
from urllib.parse import quote

import asyncpg

from .binaries import Binaries, default_bindirs, find_binaries
from .process import EmbeddedPostgresError, Runner, exec_command
from .runas import choose_runner, chown_tree, describe_path

log = logging.getLogger(__name__)

PORT = 5432  # only names the socket file: the cluster listens on no TCP port
ROLE = "reef"
DATABASE = "reef"
SOCKET_NAME = f".s.PGSQL.{PORT}"
MAX_SOCKET_PATH = 107  # sockaddr_un.sun_path is 108 bytes, NUL included
START_TIMEOUT = 300  # crash recovery of a large cluster can take minutes
STOP_TIMEOUT = 60
LOCK_TIMEOUT = 600


# -- processes -----------------------------------------------------------------------------------


def _proc_alive(pid: int) -> bool:
    if pid <= 0:  # kill(0 or -1, ...) would reach whole process groups, never one process
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat") as fh:
            state = fh.read().rpartition(")")[2].split()[0]
    except (OSError, IndexError):
        return True
    if state == "Z":  # exited; our own child when reef runs as PID 1 in a container
        try:
            os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            pass
        return False
    return True


def _is_postgres_in(pid: int, data_real: str, unknown: bool = True) -> bool:
    """Whether pid is a live PostgreSQL process of the cluster in data_real (postgres chdirs to its data dir).

    unknown is the answer when we may not look (another user's process, no /proc)."""
    if pid <= 0:
        return False
    if not os.path.isdir("/proc"):
        return unknown and _proc_alive(pid)
    try:
        comm = Path(f"/proc/{pid}/comm").read_text().strip()
        cwd = os.readlink(f"/proc/{pid}/cwd")
    except (FileNotFoundError, ProcessLookupError):
        return False
    except PermissionError:
        return unknown and _proc_alive(pid)
    return comm in ("postgres", "postmaster") and cwd == data_real and _proc_alive(pid)


async def _wait_gone(pid: int, timeout: float) -> bool:
    # The process is not our child (pg_ctl started it), so there is nothing to wait on but its pid.
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while _proc_alive(pid):
        if loop.time() > deadline:
            return False
        await asyncio.sleep(0.05)
    return True


def _tail(path: Path, lines: int = 15) -> str:
    try:
        with open(path, "rb") as fh:
            fh.seek(max(0, fh.seek(0, os.SEEK_END) - 8192))
            return "\n".join(fh.read().decode(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


# -- the cluster ---------------------------------------------------------------------------------


class EmbeddedPostgres:
    """A private cluster: <directory>/data (PGDATA), <directory>/log, the socket in <directory>."""

    def __init__(self, directory: Path, run_as: str | None = None, *, bindirs: Sequence[Path] | None = None) -> None:
        self.directory = Path(os.path.abspath(directory))
        self.data = self.directory / "data"
        self.log_dir = self.directory / "log"
        self.run_as = run_as or None
        self._bindirs = None if bindirs is None else [("given", Path(p)) for p in bindirs]
        self._users_fd: int | None = None  # shared flock held while this object uses the cluster
        self.mode: str | None = None  # how the server was started by us, for logs and tests

    @property
    def dsn(self) -> str:
        return f"postgresql://{ROLE}@/{DATABASE}?host={quote(str(self.directory), safe='/')}&port={PORT}"

    def server_pid(self) -> int | None:
        """The pid of a live postmaster for this cluster, from postmaster.pid, or None."""
        info = self._pidfile()
        if not info:
            return None
        try:
            pid = int(info[0])
        except ValueError:
            return None
        return pid if _is_postgres_in(pid, os.path.realpath(self.data)) else None

    def _pidfile(self) -> list[str]:
        try:
            return (self.data / "postmaster.pid").read_text().splitlines()
        except FileNotFoundError:
            return []
        except PermissionError as exc:
            raise EmbeddedPostgresError(
                f"Cannot read {exc.filename}: it belongs to another user. Run reef as the owner of "
                f"{self.directory}, or as root."
            ) from None

    def _ready(self) -> bool:
        info = self._pidfile()
        return len(info) >= 8 and info[7].strip() == "ready" and self.server_pid() is not None

    async def start(self) -> str:
        """Start (creating it on first use) or join the cluster; returns an asyncpg DSN over the socket."""
        if self._users_fd is not None:
            return self.dsn
        sock = os.fsencode(os.path.join(self.directory, SOCKET_NAME))
        if len(sock) > MAX_SOCKET_PATH:
            room = MAX_SOCKET_PATH - len(f"/postgres/{SOCKET_NAME}")
            raise EmbeddedPostgresError(
                f"The embedded database's socket path {os.fsdecode(sock)} is {len(sock)} bytes long, but Unix "
                f"sockets allow at most {MAX_SOCKET_PATH}. Set [node] data_dir to a shorter path (at most {room} "
                "bytes, e.g. /var/lib/reef), or set [database] url."
            )
        self.directory.mkdir(parents=True, exist_ok=True)
        euid = os.geteuid()
        if euid != 0 and os.stat(self.directory).st_uid != euid:
            raise EmbeddedPostgresError(
                f"{describe_path(str(self.directory))} belongs to another user, and PostgreSQL must run as the owner of "
                f"its files. Run reef as that user, or chown -R {pwd.getpwuid(euid).pw_name} {self.directory}."
            )
        start_fd = await self._lock("start.lock", fcntl.LOCK_EX)
        users_fd = os.open(self.directory / "users.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        started = False
        try:
            # Every process using the cluster holds users.lock shared; getting it exclusively means no one else does.
            sole = _try_flock(users_fd, fcntl.LOCK_EX)
            pid = self.server_pid()
            if pid and sole:
                log.warning("embedded PostgreSQL (pid %d) was left running by a reef process that died; stopping it", pid)
                await self._shutdown(pid)
                pid = None
            if pid:
                await self._wait_ready(pid)
                self.mode = "shared with another reef process"
                log.info("embedded PostgreSQL in %s already runs for another reef process; sharing it", self.directory)
            else:
                await self._clean_after_crash()
                binaries, runner = await self._prepare()
                await self._start_server(binaries, runner)
                started = True
            await self._ensure_database()
            fcntl.flock(users_fd, fcntl.LOCK_SH | fcntl.LOCK_NB)  # never blocks: we hold start.lock
        except BaseException:
            if started and _try_flock(users_fd, fcntl.LOCK_EX) and (pid := self.server_pid()):
                await self._shutdown(pid)
            os.close(users_fd)
            raise
        finally:
            os.close(start_fd)
        self._users_fd = users_fd
        return self.dsn

    async def stop(self) -> None:
        """Leave the cluster; the last process using it shuts it down (fast shutdown, like pg_ctl stop -m fast)."""
        if self._users_fd is None:
            return
        users_fd, self._users_fd = self._users_fd, None
        try:
            start_fd = await self._lock("start.lock", fcntl.LOCK_EX)
            try:
                if _try_flock(users_fd, fcntl.LOCK_EX):
                    pid = self.server_pid()
                    if pid:
                        await self._shutdown(pid)
                else:
                    log.info("embedded PostgreSQL in %s is still used by another reef process; leaving it running",
                             self.directory)
            finally:
                os.close(start_fd)
        finally:
            os.close(users_fd)

    # -- steps ----------------------------------------------------------------------------------

    async def _lock(self, name: str, op: int) -> int:
        fd = os.open(self.directory / name, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + LOCK_TIMEOUT
        while not _try_flock(fd, op):
            if loop.time() > deadline:
                os.close(fd)
                raise EmbeddedPostgresError(
                    f"Another reef process has been starting or stopping the embedded database in {self.directory} "
                    f"for {LOCK_TIMEOUT} s; stop it, or check {self.log_dir}."
                )
            await asyncio.sleep(0.1)
        return fd

    async def _shutdown(self, pid: int) -> None:
        steps = ((signal.SIGINT, STOP_TIMEOUT, "fast"), (signal.SIGQUIT, 15, "immediate"), (signal.SIGKILL, 15, "kill"))
        for sig, wait, how in steps:
            log.info("stopping embedded PostgreSQL (pid %d, %s shutdown)", pid, how)
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                return
            if await _wait_gone(pid, wait):
                log.info("embedded PostgreSQL stopped")
                return
            log.warning("embedded PostgreSQL (pid %d) did not stop after a %s shutdown", pid, how)
        raise EmbeddedPostgresError(f"Could not stop PostgreSQL (pid {pid}) in {self.data}; see {self.log_dir}.")

    async def _wait_ready(self, pid: int) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + START_TIMEOUT
        while not self._ready():
            if not _proc_alive(pid) or loop.time() > deadline:
                raise EmbeddedPostgresError(
                    f"The embedded PostgreSQL started by another reef process (pid {pid}) did not become ready; "
                    f"see {self.log_dir}."
                )
            await asyncio.sleep(0.1)

    async def _clean_after_crash(self) -> None:
        """No postmaster runs for this cluster: kill its leftover backends and drop a stale postmaster.pid."""
        data_real = os.path.realpath(self.data)
        if os.path.isdir("/proc") and os.path.isdir(data_real):
            strays = [int(p) for p in os.listdir("/proc") if p.isdigit() and _is_postgres_in(int(p), data_real, unknown=False)]
            for pid in strays:
                log.warning("killing a leftover PostgreSQL process (pid %d) of the crashed embedded cluster", pid)
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            for pid in strays:
                await _wait_gone(pid, 15)
        # PostgreSQL refuses to start while the pid in a lock file is alive, even if it is now an unrelated
        # process (pid reuse after a reboot) or the unreaped zombie of the killed postmaster.
        for lock in (self.data / "postmaster.pid", self.directory / f"{SOCKET_NAME}.lock"):
            if lock.exists():
                log.warning("removing stale %s left by a PostgreSQL that is not running any more", lock)
                lock.unlink(missing_ok=True)

    async def _prepare(self) -> tuple[Binaries, Runner]:
        """Find binaries, choose who runs the server, create the cluster on first start, write reef.conf."""
        version_file = self.data / "PG_VERSION"
        want = int(version_file.read_text().strip()) if version_file.exists() else None
        binaries = await find_binaries(self._bindirs if self._bindirs is not None else await default_bindirs(), want)
        self.log_dir.mkdir(mode=0o700, exist_ok=True)
        runner = await choose_runner(self.directory, self.run_as, binaries)
        self.mode = runner.mode
        if os.geteuid() == 0:
            changed = await asyncio.to_thread(chown_tree, self.directory, runner.uid, runner.gid)
            if changed:
                log.info("gave %d files in %s to uid %d for %s", changed, self.directory, runner.uid, runner.mode)
        os.chmod(self.directory, 0o700)
        os.chmod(self.log_dir, 0o700)
        if not version_file.exists():
            await self._initdb(binaries, runner)
        conf = self.data / "reef.conf"
        conf.write_text(_reef_conf(self.directory, self.log_dir))
        if os.geteuid() == 0:
            os.chown(conf, runner.uid, runner.gid)
        return binaries, runner

    async def _initdb(self, binaries: Binaries, runner: Runner) -> None:
        if self.data.exists():
            raise EmbeddedPostgresError(
                f"{self.data} exists but holds no PostgreSQL cluster (no PG_VERSION). Move it away and start again."
            )
        scratch = self.directory / "data.init"
        if scratch.exists():  # an earlier initdb was interrupted
            shutil.rmtree(scratch)
        log.info("creating the embedded PostgreSQL %d cluster in %s (binaries from %s, %s)",
                 binaries.major, self.data, binaries.source, binaries.bindir)
        rc, out = await exec_command(
            [binaries.exe("initdb"), "-D", scratch, "-U", ROLE, "-E", "UTF8", "--locale=C",
             "--auth-local=trust", "--auth-host=reject"],
            runner, cwd=self.directory, timeout=300,
        )
        if rc != 0:
            raise EmbeddedPostgresError(f"initdb failed (exit {rc}) for {scratch}:\n{out.strip()[-2000:]}")
        with open(scratch / "postgresql.conf", "a") as fh:
            fh.write("\n# reef's settings (socket only, logs), rewritten on every start\ninclude = 'reef.conf'\n")
        os.rename(scratch, self.data)  # data/ exists only once initdb has finished

    async def _start_server(self, binaries: Binaries, runner: Runner) -> None:
        startup_log = self.log_dir / "startup.log"
        log.info("starting embedded PostgreSQL %d in %s as %s", binaries.major, self.data, runner.mode)
        rc, out = await exec_command(
            [binaries.exe("pg_ctl"), "start", "-D", self.data, "-l", startup_log, "-w", "-t", str(START_TIMEOUT), "-s"],
            runner, cwd=self.directory, new_session=True, timeout=START_TIMEOUT + 30,
        )
        if rc != 0:
            # Errors before the logging collector starts land in startup.log, later ones in postgresql-*.log.
            logs = [startup_log, *self.log_dir.glob("postgresql-*.log")]
            server_log = max((p for p in logs if p.exists()), key=lambda p: p.stat().st_mtime, default=startup_log)
            raise EmbeddedPostgresError(
                f"PostgreSQL did not start in {self.data} (pg_ctl exit {rc}): {out.strip()}\n"
                f"Last lines of {server_log}:\n{_tail(server_log)}\nMore in {self.log_dir}."
            )
        log.info("embedded PostgreSQL ready (pid %s), socket in %s", self.server_pid(), self.directory)

    async def _ensure_database(self) -> None:
        conn = await asyncpg.connect(host=str(self.directory), port=PORT, user=ROLE, database="postgres", timeout=30)
        try:
            if not await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", DATABASE):
                await conn.execute(f'CREATE DATABASE "{DATABASE}"')
                log.info("created database %r in the embedded cluster", DATABASE)
        finally:
            await conn.close()


def _try_flock(fd: int, op: int) -> bool:
    try:
        fcntl.flock(fd, op | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False


def _reef_conf(directory: Path, log_dir: Path) -> str:
    def q(value: object) -> str:
        return "'" + str(value).replace("'", "''") + "'"

    return "\n".join([
        "# Written by reef on every start. Put your own settings in postgresql.conf.",
        "listen_addresses = ''  # no TCP: only the Unix socket below",
        f"port = {PORT}",
        f"unix_socket_directories = {q(directory)}",
        "unix_socket_permissions = 0700",
        "logging_collector = on",
        f"log_directory = {q(log_dir)}",
        "log_filename = 'postgresql-%a.log'  # one file per weekday, overwritten a week later",
        "log_truncate_on_rotation = on",
        "log_rotation_age = 1d",
        "log_rotation_size = 100MB",
        "",
    ])
