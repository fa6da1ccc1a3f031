"""Fresh Debian 12 hosts for the deployment test: systemd-nspawn containers booted from one
debootstrap root filesystem, on a private network of their own.

Each container is a copy of the root filesystem (an overlay: the shared, read-only lower
layer and a layer of its own) booted with systemd as PID 1, in a network namespace of its
own. A veth pair joins it to a bridge in the controller's namespace, also made here, where
Ansible, ssh and the browser run: nothing here has a route anywhere else, so the hosts
reach only each other and the controller, as a council's private network would.

The roles' packages are installed into the root filesystem through chroot beforehand (a
policy-rc.d stops them starting there), because the containers cannot reach a mirror.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

SUITE = "bookworm"
MIRROR = "http://deb.debian.org/debian"
# What the roles install (base, postgresql with pgbackrest, redis, app, nginx), what
# Ansible needs on a host (python3-apt for the apt module, sudo to become users) and what
# booting needs.
PACKAGES = [
    "acl",
    "ca-certificates",
    "chrony",
    "dbus",
    "fail2ban",
    "nftables",
    "nginx",
    "openssh-server",
    "openssl",
    "pgbackrest",
    "postgresql",
    "postgresql-client",
    "python3",
    "python3-apt",
    "python3-systemd",
    "python3-venv",
    "redis-server",
    "ssl-cert",
    "sudo",
    "systemd",
    "systemd-sysv",
    "unattended-upgrades",
]
SUBNET = "10.20.0"
CONTROLLER_ADDRESS = f"{SUBNET}.1"


def sh(*args: str | Path, timeout: float = 900, **kwargs: object) -> subprocess.CompletedProcess:
    """Run a command, failing loudly with its output."""
    done = subprocess.run(
        [str(a) for a in args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        **kwargs,  # type: ignore[arg-type]
    )
    if done.returncode != 0:
        raise RuntimeError(
            f"{' '.join(map(str, args))} exited {done.returncode}\n"
            f"{done.stdout[-4000:]}\n{done.stderr[-4000:]}"
        )
    return done


def root_filesystem(cache: Path) -> Path:
    """A Debian 12 root filesystem with the roles' packages installed, built once per package
    list and kept in `cache` (about a minute from the Debian archive)."""
    key = hashlib.sha256(" ".join([SUITE, MIRROR, *PACKAGES]).encode()).hexdigest()[:12]
    root = cache / f"{SUITE}-{key}"
    if (root / ".complete").exists():
        return root
    if root.exists():
        sh("rm", "-rf", "--one-file-system", root)
    cache.mkdir(parents=True, exist_ok=True)
    sh(
        "debootstrap",
        "--variant=minbase",
        "--include=systemd,systemd-sysv,dbus",
        SUITE,
        root,
        MIRROR,
    )
    policy = root / "usr/sbin/policy-rc.d"
    policy.write_text("#!/bin/sh\n# Nothing starts while the packages are installed.\nexit 101\n")
    policy.chmod(0o755)
    shutil.copy("/etc/resolv.conf", root / "etc/resolv.conf")
    sh("mount", "-t", "proc", "proc", root / "proc")
    try:
        env = {"DEBIAN_FRONTEND": "noninteractive", "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}
        sh("chroot", root, "apt-get", "update", "-qq", env=env)
        sh(
            "chroot",
            root,
            "apt-get",
            "install",
            "-y",
            "-qq",
            "--no-install-recommends",
            *PACKAGES,
            env=env,
        )
        sh("chroot", root, "apt-get", "clean", env=env)
    finally:
        sh("umount", root / "proc")
    policy.unlink()
    (root / "etc/resolv.conf").write_text("")
    (root / ".complete").touch()
    return root


def wheelhouse(root: Path, wheel: Path, target: Path) -> Path:
    """The release's dependencies as wheels for the hosts' own Python, made with the
    operators' script inside the Debian 12 root filesystem."""
    script = Path(__file__).resolve().parents[2] / "ansible" / "wheelhouse.sh"
    sh(script, root, wheel, target, timeout=1200)
    return target


@dataclass
class Machine:
    """One booted container: its name, address and the nspawn process running it."""

    name: str
    address: str
    namespace: str
    directory: Path
    process: subprocess.Popen | None = None
    console: Path | None = None

    @property
    def root(self) -> Path:
        return self.directory / "merged"


@dataclass
class Lab:
    """The controller's network namespace, its bridge and the containers on it."""

    base: Path
    work: Path
    prefix: str = "pwdt"
    machines: dict[str, Machine] = field(default_factory=dict)

    @property
    def controller(self) -> str:
        return f"{self.prefix}-ctl"

    @property
    def ssh_key(self) -> Path:
        return self.work / "id_ed25519"

    def start(self) -> None:
        self.work.mkdir(parents=True, exist_ok=True)
        sh("ip", "netns", "add", self.controller)
        ns = ("ip", "-n", self.controller)
        sh(*ns, "link", "set", "lo", "up")
        sh(*ns, "link", "add", "br0", "type", "bridge")
        sh(*ns, "addr", "add", f"{CONTROLLER_ADDRESS}/24", "dev", "br0")
        sh(*ns, "link", "set", "br0", "up")
        key = self.ssh_key
        if not key.exists():
            sh(
                "ssh-keygen",
                "-q",
                "-t",
                "ed25519",
                "-N",
                "",
                "-C",
                "deploy-test",
                "-f",
                self.ssh_key,
            )

    def boot(self, name: str, address: str) -> Machine:
        """Boot a fresh copy of the root filesystem as `name` at `address`."""
        directory = self.work / "machines" / name
        if directory.exists():
            sh("rm", "-rf", "--one-file-system", directory)
        for part in ("upper", "work", "merged"):
            (directory / part).mkdir(parents=True)
        machine = Machine(name, address, f"{self.prefix}-{name}", directory)
        sh(
            "mount",
            "-t",
            "overlay",
            "overlay",
            "-o",
            f"lowerdir={self.base},upperdir={directory / 'upper'},workdir={directory / 'work'}",
            machine.root,
        )
        ssh_dir = machine.root / "root/.ssh"
        ssh_dir.mkdir(mode=0o700, exist_ok=True)
        (ssh_dir / "authorized_keys").write_text(Path(f"{self.ssh_key}.pub").read_text())
        (machine.root / "etc/hostname").write_text(f"{name}\n")
        (machine.root / "etc/hosts").write_text(f"127.0.0.1 localhost\n127.0.1.1 {name}\n")

        sh("ip", "netns", "add", machine.namespace)
        host_side = f"v{name}"[:15]
        sh(
            "ip",
            "-n",
            self.controller,
            "link",
            "add",
            host_side,
            "type",
            "veth",
            "peer",
            "name",
            "eth0",
            "netns",
            machine.namespace,
        )
        sh("ip", "-n", self.controller, "link", "set", host_side, "master", "br0", "up")
        inside = ("ip", "-n", machine.namespace)
        sh(*inside, "addr", "add", f"{address}/24", "dev", "eth0")
        sh(*inside, "link", "set", "eth0", "up")
        sh(*inside, "link", "set", "lo", "up")

        machine.console = directory / "console.log"
        groups = cgroups(machine.namespace)
        with machine.console.open("w") as console:
            machine.process = subprocess.Popen(
                [
                    "systemd-nspawn",
                    "--boot",
                    f"--directory={machine.root}",
                    f"--machine={name}",
                    # PID 1 here is not systemd: nothing to register with, no unit to make.
                    "--register=no",
                    "--keep-unit",
                    f"--network-namespace-path=/run/netns/{machine.namespace}",
                    # nftables needs it; the rest of nspawn's defaults stay.
                    "--capability=CAP_NET_ADMIN",
                    "--console=read-only",
                ],
                stdin=subprocess.DEVNULL,
                stdout=console,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=lambda: cgroups_enter(groups),
            )
        self.machines[name] = machine
        return machine

    def wait_for_ssh(self, machine: Machine, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while True:
            done = self.ssh(machine, "systemctl is-system-running --wait", check=False)
            if done.returncode == 0 or done.stdout.strip() in {"degraded", "running"}:
                return
            if machine.process is not None and machine.process.poll() is not None:
                raise RuntimeError(f"{machine.name} stopped booting:\n{self.console(machine)}")
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"{machine.name} did not answer ssh in {timeout:.0f}s: {done.stderr}\n"
                    f"{self.console(machine)}"
                )
            time.sleep(1)

    def console(self, machine: Machine) -> str:
        return machine.console.read_text()[-3000:] if machine.console else ""

    def in_controller(self, *args: str | Path) -> list[str]:
        """A command line run in the controller's network namespace."""
        return ["ip", "netns", "exec", self.controller, *map(str, args)]

    def ssh_options(self) -> list[str]:
        return [
            "-i",
            str(self.ssh_key),
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            "UserKnownHostsFile=/dev/null",
            "-o",
            "LogLevel=ERROR",
            "-o",
            "BatchMode=yes",
            "-o",
            "ConnectTimeout=5",
        ]

    def ssh(
        self, machine: Machine, command: str, *, check: bool = True, timeout: float = 600
    ) -> subprocess.CompletedProcess:
        """Run a shell command on a container as root, over ssh from the controller."""
        done = subprocess.run(
            self.in_controller("ssh", *self.ssh_options(), f"root@{machine.address}", command),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if check and done.returncode != 0:
            raise RuntimeError(
                f"{machine.name}: {command!r} exited {done.returncode}\n"
                f"{done.stdout[-4000:]}\n{done.stderr[-4000:]}"
            )
        return done

    def halt(self, *machines: Machine) -> None:
        """Shut containers down (nspawn turns SIGTERM into an orderly shutdown) and remove
        their namespaces and overlays."""
        for machine in machines:
            if machine.process is not None and machine.process.poll() is None:
                machine.process.send_signal(signal.SIGTERM)
        for machine in machines:
            if machine.process is not None:
                try:
                    machine.process.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(machine.process.pid, signal.SIGKILL)
                    machine.process.wait(timeout=10)
            subprocess.run(["ip", "netns", "delete", machine.namespace], check=False)
            unmount_all([machine.directory])
            cgroups_remove(machine.namespace)
            self.machines.pop(machine.name, None)

    def stop(self) -> None:
        self.halt(*self.machines.values())
        cleanup(self.prefix)


# With --keep-unit, nspawn runs the container in the control group it was started in, and
# the container's systemd manages everything below it. Containers started from one process
# would share one group and undo each other's units (a reload failing with 219/CGROUP), so
# each gets a group of its own in every hierarchy systemd uses.
def _group_parents() -> list[Path]:
    """This process's control group in each hierarchy systemd uses: the name=systemd and
    unified hierarchies on a hybrid (cgroup v1) machine, the one tree on cgroup v2."""
    own = {"systemd": "/", "unified": "/"}
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        if controllers == "name=systemd":
            own["systemd"] = path
        elif controllers == "":
            own["unified"] = path
    root = Path("/sys/fs/cgroup")
    if (root / "systemd" / "cgroup.procs").exists():
        parents = [root / "systemd" / own["systemd"].lstrip("/")]
        if (root / "unified" / "cgroup.procs").exists():
            parents.append(root / "unified" / own["unified"].lstrip("/"))
        return parents
    return [root / own["unified"].lstrip("/")]


def cgroups(name: str) -> list[Path]:
    """A new control group called `name` beside nothing else, in each hierarchy."""
    made = []
    for parent in _group_parents():
        (parent / name).mkdir(exist_ok=True)
        made.append(parent / name)
    return made


def cgroups_enter(groups: list[Path]) -> None:
    """In the child, before exec: move into the container's own groups."""
    for group in groups:
        (group / "cgroup.procs").write_text(str(os.getpid()))


def cgroups_remove(name: str) -> None:
    """Remove a stopped container's groups, the ones its systemd made below them first."""
    for parent in _group_parents():
        top = parent / name
        if not top.is_dir():
            continue
        below = sorted((d for d in top.rglob("*") if d.is_dir()), key=lambda d: -len(d.parts))
        for directory in [*below, top]:
            with contextlib.suppress(OSError):
                directory.rmdir()


def _mounts_under(directory: str) -> list[str]:
    mounts = Path("/proc/self/mounts").read_text().splitlines()
    points = [line.split()[1] for line in mounts]
    return sorted((p for p in points if p.startswith(directory)), reverse=True)


def cleanup(prefix: str, work: Path | None = None) -> None:
    """Remove what an earlier run with this prefix left: its namespaces and overlays."""
    listing = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=False)
    for line in listing.stdout.splitlines():
        name = line.split()[0] if line.split() else ""
        if name.startswith(f"{prefix}-"):
            pids = subprocess.run(
                ["ip", "netns", "pids", name], capture_output=True, text=True, check=False
            ).stdout.split()
            for pid in pids:
                with contextlib.suppress(ProcessLookupError, ValueError):
                    os.kill(int(pid), signal.SIGKILL)
            subprocess.run(["ip", "netns", "delete", name], check=False)
    if work is not None:
        for point in _mounts_under(str(work)):
            subprocess.run(["umount", "--lazy", point], check=False)


def unmount_all(directories: Sequence[Path]) -> None:
    for directory in directories:
        for point in _mounts_under(str(directory)):
            subprocess.run(["umount", "--lazy", point], check=False)


@contextlib.contextmanager
def lab(base: Path, work: Path, prefix: str = "pwdt") -> Iterator[Lab]:
    """A controller namespace and bridge; every container stopped and removed afterwards."""
    the_lab = Lab(base=base, work=work, prefix=prefix)
    cleanup(prefix, work)
    the_lab.start()
    try:
        yield the_lab
    finally:
        the_lab.stop()
        unmount_all([work / "machines"])
