"""Who runs the embedded PostgreSQL's commands: the current user, another user (as root), or a user namespace."""
from __future__ import annotations

import logging
import os
import pwd
import shutil
import stat
from pathlib import Path

from .binaries import Binaries
from .process import EmbeddedPostgresError, Runner, exec_command

log = logging.getLogger(__name__)

SERVER_USER = "postgres"
UNSHARE = "unshare"


# -- choosing who runs the server ----------------------------------------------------------------


def describe_path(path: str) -> str:
    try:
        st = os.stat(path)
    except OSError as exc:
        return f"{path} ({exc.strerror})"
    try:
        owner = pwd.getpwuid(st.st_uid).pw_name
    except KeyError:
        owner = str(st.st_uid)
    return f"{path} (owner {owner}, mode {stat.S_IMODE(st.st_mode):04o})"


def chown_tree(root: Path, uid: int, gid: int) -> int:
    changed = 0
    for dirpath, dirnames, filenames in os.walk(root):
        for name in (*dirnames, *filenames):
            path = os.path.join(dirpath, name)
            st = os.lstat(path)
            if (st.st_uid, st.st_gid) != (uid, gid):
                os.lchown(path, uid, gid)
                changed += 1
    st = os.lstat(root)
    if (st.st_uid, st.st_gid) != (uid, gid):
        os.chown(root, uid, gid)
        changed += 1
    return changed


async def choose_runner(directory: Path, run_as: str | None, binaries: Binaries) -> Runner:
    """As a normal user: ourselves. As root: [database] embedded_user, else a user namespace, else postgres."""
    euid = os.geteuid()
    if euid != 0:
        if run_as and run_as != pwd.getpwuid(euid).pw_name:
            log.warning("[database] embedded_user=%r is ignored: reef does not run as root", run_as)
        return Runner(f"the current user ({pwd.getpwuid(euid).pw_name})", euid, os.getegid())
    if run_as:
        runner, problem = await _user_runner(run_as, directory, binaries)
        if runner is None:
            raise EmbeddedPostgresError(f"[database] embedded_user = {run_as!r} cannot run PostgreSQL: {problem}")
        return runner
    problems: list[str] = []
    runner, problem = await _namespace_runner(directory, binaries)
    if runner is not None:
        return runner
    problems.append(f"user namespace: {problem}")
    runner, problem = await _user_runner(SERVER_USER, directory, binaries)
    if runner is not None:
        return runner
    problems.append(f"user {SERVER_USER}: {problem}")
    raise EmbeddedPostgresError(
        "PostgreSQL refuses to run as root, and reef found no unprivileged way to run it:\n  - "
        + "\n  - ".join(problems)
        + f"\nSet [database] embedded_user to an unprivileged user that can reach {directory} (reef makes it "
        "the owner of that directory), run reef as a normal user, or set [database] url."
    )


async def _user_runner(name: str, directory: Path, binaries: Binaries) -> tuple[Runner | None, str]:
    try:
        pw = pwd.getpwnam(name)
    except KeyError:
        return None, f"there is no user {name!r} (create one, e.g. useradd --system {name})"
    if pw.pw_uid == 0:
        return None, f"{name!r} is root; PostgreSQL needs an unprivileged user"
    runner = Runner(f"user {name}", pw.pw_uid, pw.pw_gid, user=pw.pw_uid, group=pw.pw_gid,
                    groups=tuple(os.getgrouplist(name, pw.pw_gid)))
    # Ask the kernel, as that user, which directory on the way it cannot enter (mode bits, ACLs, mounts).
    parents = [str(p) for p in reversed(directory.parents)]
    exes = [binaries.exe(n) for n in ("initdb", "pg_ctl", "postgres")]
    script = 'for p in "$@"; do [ -x "$p" ] || { printf "%s" "$p"; exit 1; }; done'
    rc, blocked = await exec_command(
        ["/bin/sh", "-c", script, "sh", *parents, *exes], runner, cwd=Path("/"), timeout=30
    )
    if rc == 0:
        return runner, ""
    if blocked in exes:
        return None, (f"it cannot execute {blocked}; install PostgreSQL system-wide (apt-get install postgresql) "
                      "or make those binaries readable by it")
    return None, (
        f"it cannot enter {describe_path(blocked)} on the way to {directory}. Let it through (chmod o+x {blocked}, "
        f"or setfacl -m u:{name}:x {blocked}), or set [node] data_dir to a directory it can reach, e.g. /var/lib/reef"
    )


async def _namespace_runner(directory: Path, binaries: Binaries) -> tuple[Runner | None, str]:
    # Inside a user namespace mapping one unprivileged uid to root, PostgreSQL sees a non-root user that owns
    # the (root-owned) cluster, and can reach it even under /root.
    unshare = shutil.which(UNSHARE)
    if unshare is None:
        return None, "unshare (util-linux) is not installed"
    inner = next((p for p in _unprivileged_users()), None)
    if inner is None:
        return None, "no unprivileged user exists to map to"
    prefix = (unshare, "--user", f"--map-user={inner.pw_uid}", f"--map-group={inner.pw_gid}", "--")
    runner = Runner(f"a user namespace (unshare, as {inner.pw_name})", os.geteuid(), os.getegid(), prefix=prefix)
    # The cluster dir itself is given to root (the mapped user) afterwards; the way to it must be open.
    check = '[ "$(id -u)" != 0 ] && [ -x "$1" ] && [ -x "$2" ]'
    try:
        rc, out = await exec_command(["/bin/sh", "-c", check, "sh", directory.parent, binaries.exe("postgres")],
                                     runner, cwd=Path("/"), timeout=30)
    except OSError as exc:
        return None, f"unshare failed: {exc}"
    if rc != 0:
        return None, f"unshare --user does not work here ({out.strip() or f'exit {rc}'})"
    return runner, ""


def _unprivileged_users() -> list[pwd.struct_passwd]:
    # 65534 (nobody) is also the uid that unmapped owners show as inside a namespace: never map to it.
    preferred = []
    for name in (SERVER_USER, "daemon"):
        try:
            preferred.append(pwd.getpwnam(name))
        except KeyError:
            pass
    return [pw for pw in (*preferred, *pwd.getpwall()) if 0 < pw.pw_uid < 65534]
