"""Debian booted with systemd as its PID 1 in a systemd-nspawn container (root only).

systemd is not PID 1 on the test machines; this boots a real Debian (bookworm, trixie) in a
container, as /work/shared/spec/systemd-containers.md describes. The root file system is built
once with debootstrap and cached as a tarball (`root_tarball`), keyed by the release and a hash
of the package lists; a missing cache is rebuilt. Each `booted` container runs on a fresh copy
of it, in its own cgroup (both hierarchies), with the unified cgroup hierarchy inside, in a
private mount namespace with a tmpfs on /run/systemd/nspawn, and (by default) with its own
network namespace holding only `lo`. Commands run inside with `nsenter` (`Container.run`).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import secrets
import shlex
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

CACHE_DIR = Path(os.environ.get("CHATMAIL_CONTAINER_CACHE", "/var/cache/chatmail-services-tests"))
BASE_PACKAGES = ("systemd", "systemd-sysv", "dbus")
# bump when the way a root is built changes (invalidates every cached tarball)
FORMAT = 1
CLEAN_ENV = {
    "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
    "LANG": "C.UTF-8",
    "LC_ALL": "C.UTF-8",
    "DEBIAN_FRONTEND": "noninteractive",
    "HOME": "/root",
}
CGROUP_ROOTS = (Path("/sys/fs/cgroup/systemd"), Path("/sys/fs/cgroup/unified"))
DEFAULT_MIRROR = "http://deb.debian.org/debian"
# a cached root unused for this long is removed when another one is built
UNUSED_DAYS = 14


@dataclass(frozen=True)
class RootSpec:
    """What a cached root holds: `include` installed, `download` fetched for later installs.

    The downloaded packages (and their dependencies) stay in apt's archive cache with current
    package lists, so that `apt-get install` inside the container works without network.
    """

    release: str = "bookworm"
    include: tuple[str, ...] = BASE_PACKAGES
    download: tuple[str, ...] = ()

    def key(self, mirrors: tuple[str, str | None]) -> str:
        text = json.dumps([FORMAT, self.release, sorted(self.include), sorted(self.download)])
        text += json.dumps(mirrors)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def run(argv: Sequence[str], *, timeout: float = 600, **kwargs) -> subprocess.CompletedProcess:
    """Run with a clean environment; never raises on a non-zero exit."""
    env = {**CLEAN_ENV, **kwargs.pop("env", {})}
    kwargs.setdefault("cwd", "/")
    return subprocess.run(
        list(argv), env=env, capture_output=True, text=True, timeout=timeout, check=False, **kwargs
    )


def _checked(argv: Sequence[str], **kwargs) -> subprocess.CompletedProcess:
    result = run(argv, **kwargs)
    if result.returncode != 0:
        raise RuntimeError(f"{shlex.join(argv)} failed:\n{result.stdout[-3000:]}{result.stderr}")
    return result


def _source_entries(text: str) -> Iterator[tuple[str, str]]:
    """(URI, suite) pairs of an apt sources file, one-line or deb822 format."""
    for line in text.splitlines():
        words = re.sub(r"\[[^]]*\]", "", line.split("#", 1)[0]).split()
        if len(words) >= 3 and words[0] == "deb":
            yield words[1], words[2]
    for stanza in re.split(r"\n\s*\n", text):
        fields = dict(re.findall(r"^(\w[\w-]*):\s*(.*)$", stanza, re.M))
        if "deb" in fields.get("Types", "").split():
            for uri in fields.get("URIs", "").split():
                for suite in fields.get("Suites", "").split():
                    yield uri, suite


def host_mirrors(etc_apt: Path = Path("/etc/apt")) -> tuple[str, str | None]:
    """The Debian mirror and the security mirror this machine's apt uses."""
    files = [etc_apt / "sources.list", *sorted((etc_apt / "sources.list.d").glob("*"))]
    mirror = security = None
    for path in files:
        if not path.is_file() or path.suffix not in ("", ".list", ".sources"):
            continue
        for uri, suite in _source_entries(path.read_text()):
            if suite.endswith("-security") and security is None:
                security = uri.rstrip("/")
            elif re.fullmatch(r"[a-z]+(-updates)?", suite) and mirror is None and "debian" in uri:
                mirror = uri.rstrip("/")
    return mirror or DEFAULT_MIRROR, security


def sources_list(release: str, mirrors: tuple[str, str | None]) -> str:
    mirror, security = mirrors
    lines = [f"deb {mirror} {release} main", f"deb {mirror} {release}-updates main"]
    if security:
        lines.append(f"deb {security} {release}-security main")
    return "\n".join(lines) + "\n"


def _chroot(root: Path, command: str, timeout: float = 1200) -> None:
    """A shell command in the root (own mount namespace with /proc; the host's DNS)."""
    script = f"mount -t proc proc {root}/proc && exec chroot {root} sh -c {shlex.quote(command)}"
    _checked(
        ["unshare", "--mount", "--propagation", "private", "sh", "-c", script], timeout=timeout
    )


def build_root(spec: RootSpec, dest: Path, mirrors: tuple[str, str | None]) -> None:
    """debootstrap a minbase root with spec.include, then download spec.download into it."""
    include = ",".join(sorted({*BASE_PACKAGES, *spec.include}))
    debootstrap = ["debootstrap", "--variant=minbase", f"--include={include}"]
    _checked([*debootstrap, spec.release, str(dest), mirrors[0]], timeout=1800)
    (dest / "etc/apt/sources.list").write_text(sources_list(spec.release, mirrors))
    (dest / "etc/hostname").write_text(f"{spec.release}-test\n")
    shutil.copy("/etc/resolv.conf", dest / "etc/resolv.conf")
    # downloads stay in /var/cache/apt/archives for offline installs later
    _chroot(dest, "apt-get update -qq && apt-get -y -qq upgrade")
    if spec.download:
        packages = " ".join(shlex.quote(p) for p in sorted(spec.download))
        _chroot(dest, f"apt-get install -y -qq --download-only {packages}")
    (dest / "etc/resolv.conf").unlink()
    # every container gets its own machine id at boot (an empty file: not a first boot)
    (dest / "etc/machine-id").write_text("")


def root_tarball(spec: RootSpec, cache_dir: Path = CACHE_DIR) -> Path:
    """The cached root for spec (built now if missing): a zstd tarball."""
    mirrors = host_mirrors()
    cache_dir.mkdir(parents=True, exist_ok=True)
    tarball = cache_dir / f"{spec.release}-{spec.key(mirrors)}.tar.zst"
    with (cache_dir / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if tarball.is_file():
            os.utime(tarball)  # in use: see below
            return tarball
        with tempfile.TemporaryDirectory(dir=cache_dir, prefix=".build-") as work:
            root = Path(work) / "root"
            build_root(spec, root, mirrors)
            partial = Path(work) / tarball.name
            tar = ["tar", "--zstd", "--numeric-owner", "--xattrs", "-cf", str(partial)]
            _checked([*tar, "-C", str(root), "."], timeout=1200)
            partial.rename(tarball)
        # roots no run has used for a while (their package lists changed) are garbage
        for old in cache_dir.glob("*.tar.zst"):
            if old != tarball and time.time() - old.stat().st_mtime > UNUSED_DAYS * 86400:
                old.unlink()
    return tarball


def unpack(tarball: Path, dest: Path) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    _checked(
        ["tar", "--zstd", "--numeric-owner", "--xattrs", "-xpf", str(tarball), "-C", str(dest)]
    )
    return dest


def _children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        with contextlib.suppress(OSError):
            found += [int(p) for p in (task / "children").read_text().split()]
    return found


def _container_init(nspawn_pid: int) -> int | None:
    """The container's PID 1: the first descendant of nspawn in another pid namespace."""
    host_ns = os.readlink("/proc/self/ns/pid")
    queue = _children(nspawn_pid)
    while queue:
        pid = queue.pop(0)
        with contextlib.suppress(OSError):
            if os.readlink(f"/proc/{pid}/ns/pid") != host_ns:
                return pid
            queue += _children(pid)
    return None


@dataclass
class Container:
    name: str
    root: Path
    log: Path
    proc: subprocess.Popen | None = None
    pid1: int = 0
    boot_seconds: float = 0.0
    cgroups: list[Path] = field(default_factory=list)

    def path(self, inside: str) -> Path:
        """A path inside the running container, as seen from the host."""
        return Path(f"/proc/{self.pid1}/root") / inside.lstrip("/")

    def run(
        self, argv: Sequence[str] | str, *, timeout: float = 300, input: str | None = None
    ) -> subprocess.CompletedProcess:
        """A command inside (a string runs with sh -c); never raises on a non-zero exit."""
        if isinstance(argv, str):
            argv = ["sh", "-c", argv]
        return run(["nsenter", "-t", str(self.pid1), "-a", *argv], timeout=timeout, input=input)

    def check(self, argv: Sequence[str] | str, **kwargs) -> str:
        """run(), asserting exit status 0; returns stdout."""
        result = self.run(argv, **kwargs)
        assert result.returncode == 0, (
            f"{argv}: {result.returncode}\n{result.stdout}{result.stderr}"
        )
        return result.stdout

    def copy_in(self, src: Path, dest: str) -> Path:
        target = self.path(dest)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(src, target)
        return target

    def state(self) -> str:
        """`systemctl is-system-running` inside."""
        return self.run(["systemctl", "is-system-running"]).stdout.strip()

    def boot(self, *, private_network: bool = True, timeout: float = 120) -> None:
        for base in CGROUP_ROOTS:
            (base / self.name).mkdir()
            self.cgroups.append(base / self.name)
        Path("/run/systemd/nspawn").mkdir(parents=True, exist_ok=True)
        nspawn = ["systemd-nspawn", "--quiet", "--register=no", "--keep-unit"]
        nspawn += ["--console=pipe", "-M", self.name, "-D", str(self.root), "-b"]
        if private_network:
            nspawn.append("--private-network")
        enter = "".join(f"echo $$ > {c}/cgroup.procs && " for c in self.cgroups)
        inner = f"mount -t tmpfs tmpfs /run/systemd/nspawn && exec {shlex.join(nspawn)}"
        outer = enter + "exec unshare --mount --propagation private sh -c " + shlex.quote(inner)
        start = time.monotonic()
        self.proc = subprocess.Popen(
            ["sh", "-c", outer],
            env={**CLEAN_ENV, "SYSTEMD_NSPAWN_UNIFIED_HIERARCHY": "1"},
            stdin=subprocess.DEVNULL,
            stdout=self.log.open("w"),
            stderr=subprocess.STDOUT,
        )
        deadline = start + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"nspawn exited {self.proc.returncode}:\n{self.log.read_text()}")
            if not self.pid1:
                self.pid1 = _container_init(self.proc.pid) or 0
            if self.pid1:
                wait = self.run(["systemctl", "is-system-running", "--wait"], timeout=timeout)
                if wait.stdout.strip() in ("running", "degraded"):
                    self.boot_seconds = time.monotonic() - start
                    return
            time.sleep(0.1)
        raise RuntimeError(f"{self.name} did not boot in {timeout} s:\n{self.log.read_text()}")

    def stop(self, timeout: float = 30) -> None:
        """Halt (SIGTERM to nspawn), kill PID 1 if that hangs, then remove the cgroups."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(OSError):
                    os.kill(self.pid1, 9)
                self.proc.kill()
                self.proc.wait(30)
        for base in self.cgroups:
            for _ in range(100):
                dirs = sorted(
                    (p for p in base.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)
                )
                with contextlib.suppress(OSError):
                    for d in [*dirs, base]:
                        d.rmdir()
                if not base.exists():
                    break
                time.sleep(0.1)
        self.cgroups = [c for c in self.cgroups if c.exists()]


@contextlib.contextmanager
def booted(
    tarball: Path, workdir: Path, *, private_network: bool = True, name: str | None = None
) -> Iterator[Container]:
    """A container booted from a fresh copy of tarball in workdir; halted and removed after."""
    name = name or f"chatmail-test-{secrets.token_hex(3)}"
    root = unpack(tarball, workdir / "root")
    container = Container(name, root, workdir / "console.log")
    try:
        container.boot(private_network=private_network)
        yield container
    finally:
        container.stop()
        shutil.rmtree(root, ignore_errors=True)
