"""Build, install and purge the Debian package for the package test (root on Debian 12).

Everything runs with a clean environment (the developer's PATH may put another Python, e.g.
pyenv's, before /usr/bin, and pybuild must use Debian's). The build happens in a temporary
copy of the repository, never in the shared work tree.
"""

from __future__ import annotations

import contextlib
import fcntl
import grp
import json
import os
import pwd
import shlex
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

from harness import REPO
from harness.container import run

PACKAGE = "chatmail-services"
LOCK_PATH = Path("/run/lock/chatmail-services-package-test.lock")


@contextlib.contextmanager
def exclusive(timeout: float = 900) -> Iterator[None]:
    """One package test per machine at a time (they install the same package)."""
    LOCK_PATH.parent.mkdir(parents=True, exist_ok=True)
    with LOCK_PATH.open("w") as fh:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{LOCK_PATH} held for {timeout} s") from None
                time.sleep(1)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


# what a copy without git leaves out (the .gitignore entries and VCS/CI metadata)
_NOT_SOURCE = (".git", ".ci", ".venv", "__pycache__", ".hypothesis", ".pytest_cache")
_NOT_SOURCE_GLOBS = (".ruff_cache", "*.egg-info", "build", "state", ".pybuild")


def _listed_by_git() -> list[str] | None:
    """Tracked and untracked, not ignored, files of the work tree; None without git."""
    try:
        out = subprocess.run(
            ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            cwd=REPO,
            capture_output=True,
            check=True,
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        return None
    return [name for name in out.decode().split("\0") if name]


def copy_repo(dest: Path) -> Path:
    """Copy the work tree's source files (what git would commit) to dest."""
    names = _listed_by_git()
    if names is None:  # e.g. CI on an exported tree
        shutil.copytree(REPO, dest, ignore=shutil.ignore_patterns(*_NOT_SOURCE, *_NOT_SOURCE_GLOBS))
        shutil.rmtree(dest / "debian" / PACKAGE, ignore_errors=True)
        return dest
    for name in names:
        path = REPO / name
        # skip deleted files, VCS and CI metadata, and anything that is not a regular file
        if name.startswith((".git/", ".ci/")) or not path.is_file():
            continue
        (dest / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, dest / name)
    return dest


def build(source: Path) -> tuple[Path, list[Path], str]:
    """Build the source package (for lintian), then `dpkg-buildpackage -us -uc -b`.

    Returns the .deb, the files for lintian (.dsc and .changes) and the build log.
    """
    result = run(["dpkg-source", "-b", source.name], cwd=source.parent)
    assert result.returncode == 0, result.stdout + result.stderr
    dsc = sorted(source.parent.glob(f"{PACKAGE}_*.dsc"))
    result = run(["dpkg-buildpackage", "-us", "-uc", "-b"], cwd=source)
    log = result.stdout + result.stderr
    if result.returncode != 0:
        raise AssertionError(f"dpkg-buildpackage failed:\n{log[-6000:]}")
    debs = sorted(source.parent.glob(f"{PACKAGE}_*_all.deb"))
    changes = sorted(source.parent.glob(f"{PACKAGE}_*.changes"))
    assert len(debs) == 1 and len(changes) == 1 and len(dsc) == 1, log[-3000:]
    return debs[0], [*dsc, *changes], log


def dpkg(*args: str) -> subprocess.CompletedProcess[str]:
    """dpkg, waiting while another package manager holds the lock."""
    deadline = time.monotonic() + 300
    while True:
        result = run(["dpkg", *args])
        locked = "lock" in result.stderr and "dpkg" in result.stderr
        if result.returncode == 0 or not locked or time.monotonic() > deadline:
            return result
        time.sleep(2)


def status() -> str:
    """dpkg's status of the package ("install ok installed", "deinstall ok config-files", "")."""
    result = run(["dpkg-query", "-W", "-f=${Status}", PACKAGE])
    return result.stdout.strip() if result.returncode == 0 else ""


def listed_files() -> set[str]:
    return set(run(["dpkg", "-L", PACKAGE]).stdout.split("\n")) - {""}


def user_exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


def read_unit(path: Path) -> dict[str, dict[str, list[str]]]:
    """A unit file as {section: {key: [values in order]}}."""
    sections: dict[str, dict[str, list[str]]] = {}
    current: dict[str, list[str]] = {}
    for line in path.read_text().replace("\\\n", " ").splitlines():
        line = line.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("["):
            current = sections.setdefault(line.strip("[]"), {})
        else:
            key, _, value = line.partition("=")
            current.setdefault(key.strip(), []).append(value.strip())
    return sections


def last(unit: dict[str, dict[str, list[str]]], section: str, key: str, default: str = "") -> str:
    values = unit.get(section, {}).get(key) or [default]
    return values[-1]


def exec_start(unit: dict[str, dict[str, list[str]]]) -> list[str]:
    """The unit's ExecStart as argv (special prefixes such as "-" or "+" dropped)."""
    return shlex.split(last(unit, "Service", "ExecStart").lstrip("-@:+!"))


def as_unit_user(unit: dict[str, dict[str, list[str]]]) -> list[str]:
    """setpriv prefix that runs a command as the unit's User= and Group=, as systemd would."""
    user = last(unit, "Service", "User", "root")
    group = last(unit, "Service", "Group", user)
    return ["setpriv", f"--reuid={user}", f"--regid={group}", "--init-groups", "--"]


def _paths(unit: dict[str, dict[str, list[str]]], key: str) -> list[str]:
    """A path-list setting (an empty assignment resets it; a leading "-" means optional)."""
    paths: list[str] = []
    for value in unit.get("Service", {}).get(key, []):
        paths = [] if not value else paths + [p.lstrip("-+") for p in value.split()]
    return paths


def _yes(unit: dict[str, dict[str, list[str]]], key: str) -> bool:
    return last(unit, "Service", key).lower() in ("yes", "true", "1", "on", "strict")


# mount points ProtectSystem=strict makes read-only here (the API file systems stay)
_SYSTEM_MOUNTS = r"/|/usr*|/etc*|/var*|/boot*|/opt*|/srv*|/run*|/home*|/root*|/tmp*"


_SECCOMP = r"""
import errno, os, socket, sys
import seccomp
from seccomp import ALLOW, ERRNO, EQ, MASKED_EQ, NE, Arg
allowed, flags, argv = set(sys.argv[1].split(",")), sys.argv[2].split(","), sys.argv[3:]
f = seccomp.SyscallFilter(ERRNO(errno.EPERM))
special = ({"mmap", "mprotect", "pkey_mprotect", "shmat"} if "mdwe" in flags else set()) | (
    {"socket"} if "unix" in flags else set())
for name in sorted(allowed - special):
    try:
        f.add_rule(ALLOW, name)
    except Exception:
        pass  # not a system call on this architecture
W, X, SHM_EXEC = 0x2, 0x4, 0o100000
if "mdwe" in flags:  # MemoryDenyWriteExecute=yes, as systemd words it
    f.add_rule(ALLOW, "mmap", Arg(2, MASKED_EQ, X, 0))
    f.add_rule(ALLOW, "mmap", Arg(2, MASKED_EQ, W, 0))
    for name in ("mprotect", "pkey_mprotect"):
        f.add_rule(ALLOW, name, Arg(2, MASKED_EQ, X, 0))
    f.add_rule(ALLOW, "shmat", Arg(2, MASKED_EQ, SHM_EXEC, 0))
if "unix" in flags:  # RestrictAddressFamilies=AF_UNIX
    f.add_rule(ALLOW, "socket", Arg(0, EQ, socket.AF_UNIX))
    f.add_rule(ERRNO(errno.EAFNOSUPPORT), "socket", Arg(0, NE, socket.AF_UNIX))
f.load()
os.execvp(argv[0], argv)
"""


def _syscall_group(name: str, cache: dict[str, set[str]] = {}) -> set[str]:  # noqa: B006
    """The system calls of a systemd group such as @system-service, nested groups resolved."""
    if not name.startswith("@"):
        return {name}
    if name not in cache:
        out = run(["systemd-analyze", "syscall-filter", name]).stdout.splitlines()[1:]
        names = [line.strip() for line in out if line.strip() and line.strip()[0] != "#"]
        cache[name] = set().union(*(_syscall_group(n) for n in names)) if names else set()
    return cache[name]


def seccomp_prefix(unit: dict[str, dict[str, list[str]]]) -> list[str]:
    """Prefix that loads the unit's system call sandbox (python3-seccomp), then execs.

    Emulates an allow-list SystemCallFilter= (with later "~" lines removing from it) answered
    with EPERM, MemoryDenyWriteExecute=yes and RestrictAddressFamilies=AF_UNIX, the way systemd
    builds them. Needs no_new_privs (set before). Empty if the unit sets none of them.
    """
    values = unit.get("Service", {}).get("SystemCallFilter", [])
    if not values or values[0].startswith("~"):
        return []
    allowed: set[str] = set()
    for value in values:
        names = set().union(*(_syscall_group(n) for n in value.lstrip("~").split()))
        allowed = allowed - names if value.startswith("~") else allowed | names
    flags = ["none"]
    if _yes(unit, "MemoryDenyWriteExecute"):
        flags.append("mdwe")
    if last(unit, "Service", "RestrictAddressFamilies") == "AF_UNIX":
        flags.append("unix")
    return ["/usr/bin/python3", "-I", "-c", _SECCOMP, ",".join(sorted(allowed)), ",".join(flags)]


def sandboxed(unit: dict[str, dict[str, list[str]]]) -> list[str]:
    """Prefix that runs a command inside an emulation of the unit's sandbox.

    systemd is not PID 1 here, so this applies, as root in new mount and network namespaces,
    what the unit asks for and util-linux can do: ProtectSystem=strict (every system mount
    read-only) with ReadWritePaths= and ReadOnlyPaths=, PrivateTmp=, ProtectHome=,
    PrivateNetwork= (no interface up), then User=/Group=, NoNewPrivileges=, an empty
    CapabilityBoundingSet= and UMask=, and last the system call filter with
    MemoryDenyWriteExecute= and RestrictAddressFamilies= (`seccomp_prefix`). Not emulated: the
    kernel and /proc protections, PrivateUsers=. The process keeps its pid (socket activation
    checks it).
    """
    script = ["set -e", "mount --make-rprivate /"]
    if last(unit, "Service", "ProtectSystem") == "strict":
        script.append(
            'for m in $(cut -d" " -f5 /proc/self/mountinfo | sort -u); do case "$m" in '
            f'{_SYSTEM_MOUNTS}) mount -o remount,bind,ro "$m";; esac; done'
        )
    for path in _paths(unit, "ReadWritePaths"):
        script.append(f"mount --bind {path} {path}; mount -o remount,bind,rw {path}")
    for path in _paths(unit, "ReadOnlyPaths"):
        script.append(f"mount --bind {path} {path}; mount -o remount,bind,ro {path}")
    if _yes(unit, "PrivateTmp"):
        script += [f"mount -t tmpfs -o mode=1777 tmpfs {d}" for d in ("/tmp", "/var/tmp")]
    if _yes(unit, "ProtectHome"):
        script.append(
            "for d in /home /root /run/user; do "
            '[ -d "$d" ] && mount -t tmpfs -o ro,mode=0755 tmpfs "$d"; done; true'
        )
    script.append(f"umask {last(unit, 'Service', 'UMask', '0022')}")
    privileges = as_unit_user(unit)[:-1]
    if _yes(unit, "NoNewPrivileges"):
        privileges.append("--no-new-privs")
    if "CapabilityBoundingSet" in unit.get("Service", {}) and not last(
        unit, "Service", "CapabilityBoundingSet"
    ):
        privileges += ["--bounding-set=-all", "--inh-caps=-all"]
    script.append("exec " + shlex.join([*privileges, "--", *seccomp_prefix(unit)]) + ' "$@"')
    namespaces = ["--mount"] + (["--net"] if _yes(unit, "PrivateNetwork") else [])
    return ["unshare", *namespaces, "--", "sh", "-c", "\n".join(script), "sandbox"]


def exposure(unit_path: Path) -> float:
    """The overall exposure `systemd-analyze security --offline=true` gives the unit."""
    result = run(["systemd-analyze", "security", "--offline=true", str(unit_path)])
    for line in result.stdout.splitlines():
        if "Overall exposure level" in line:
            return float(line.split(":", 1)[1].split()[0])
    raise AssertionError(f"no exposure level for {unit_path}:\n{result.stdout}{result.stderr}")


def wait_for_socket(path: Path, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.socket(socket.AF_UNIX) as sock:
            sock.connect(str(path))
            return
        time.sleep(0.05)
    raise AssertionError(f"nothing listens on {path}")


def dict_exchange(path: Path, lines: list[str], timeout: float = 15) -> list[str]:
    """Send Dovecot dict protocol lines (hello first); one reply line per lookup or commit."""
    wanted = sum(1 for line in lines if line.startswith(("L", "C")))  # lookups and commits
    with socket.socket(socket.AF_UNIX) as sock:
        sock.settimeout(timeout)
        sock.connect(str(path))
        sock.sendall("".join(line + "\n" for line in lines).encode())
        buf = b""
        while buf.count(b"\n") < wanted:
            chunk = sock.recv(65536)
            if not chunk:
                break
            buf += chunk
    return buf.decode().split("\n")[:wanted]


def json_value(reply: str) -> dict:
    assert reply.startswith("O"), reply
    return json.loads(reply[1:])


def stop(proc: subprocess.Popen) -> str:
    """Terminate a started service and return what it logged."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
    out = proc.stdout.read() if proc.stdout else ""
    return out or ""


def mode_owner(path: Path) -> tuple[int, str, str]:
    st = os.stat(path)
    return st.st_mode & 0o7777, pwd.getpwuid(st.st_uid).pw_name, grp.getgrgid(st.st_gid).gr_name
