"""A deployment as an operator makes one: an example inventory copied and filled in, a vault
encrypted, the release built, and the playbooks run from ansible/ exactly as
ansible/README.md says, against hosts from tests/deploy/machines.py."""

from __future__ import annotations

import base64
import json
import os
import re
import secrets
import shlex
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import yaml

from tests.certificates import wildcard_certificate
from tests.deploy.machines import Lab, Machine

REPOSITORY = Path(__file__).resolve().parents[2]
ANSIBLE = REPOSITORY / "ansible"
VENV_BIN = Path(sys.executable).parent
PLATFORM_DOMAIN = "patchwork.test"
# The deployment's internal CA as the app hosts hold it, and as the PostgreSQL and Redis
# hosts do (roles/internal_ca); redis-cli speaks TLS only with it.
APP_CA = "/etc/patchwork/internal-ca.crt"
SERVER_CA = "/etc/ssl/patchwork/ca.crt"
REDIS_CLI = f"redis-cli --tls --cacert {SERVER_CA}"
RECAP = re.compile(
    r"^(?P<host>\S+)\s+:\s+ok=(?P<ok>\d+)\s+changed=(?P<changed>\d+)\s+unreachable=(?P<unreachable>\d+)"
    r"\s+failed=(?P<failed>\d+)",
    re.MULTILINE,
)


@dataclass
class Played:
    """What one ansible-playbook run did: its exit code, output and each host's recap."""

    returncode: int
    output: str
    seconds: float

    @property
    def recap(self) -> dict[str, dict[str, int]]:
        return {
            m["host"]: {k: int(m[k]) for k in ("ok", "changed", "unreachable", "failed")}
            for m in RECAP.finditer(self.output)
        }

    def changed_tasks(self) -> list[str]:
        """The names of the tasks that reported a change (for a failing changed=0 check)."""
        names, current = [], ""
        for line in self.output.splitlines():
            if line.startswith(("TASK [", "RUNNING HANDLER [")):
                current = line
            elif line.startswith("changed:"):
                names.append(f"{current} {line}")
        return names

    def tail(self, lines: int = 80) -> str:
        return "\n".join(self.output.splitlines()[-lines:])


class Deployment:
    """One inventory (a copy of an example's) and the hosts it names."""

    def __init__(
        self,
        lab: Lab,
        work: Path,
        example: str,
        machines: dict[str, Machine],
        group_vars: dict[str, dict[str, object]] | None = None,
    ) -> None:
        self.lab = lab
        self.work = work
        self.machines = machines
        self.inventory = work / "inventories" / example
        self.vault_password_file = work / "vault-password"
        shutil.copytree(ANSIBLE / "inventories" / example, self.inventory, dirs_exist_ok=True)
        self._write_hosts()
        self._write_settings(group_vars or {})
        self._write_vault()

    # -- the operator's steps before the first run (ansible/README.md) ------------------

    def _write_hosts(self) -> None:
        hosts_file = self.inventory / "hosts.yml"
        inventory = yaml.safe_load(hosts_file.read_text())

        def visit(group: dict) -> None:
            for name, host in (group.get("hosts") or {}).items():
                if host and "ansible_host" in host:
                    machine = self.machines[name]
                    host["ansible_host"] = machine.address
                    if host.get("private_address") != "127.0.0.1":
                        host["private_address"] = machine.address
            for child in (group.get("children") or {}).values():
                visit(child)

        visit(inventory["all"])
        hosts_file.write_text(yaml.safe_dump(inventory, sort_keys=False))

    def _write_settings(self, group_vars: dict[str, dict[str, object]]) -> None:
        pem, self._tls_key = wildcard_certificate(PLATFORM_DOMAIN)
        files = self.inventory / "files"
        files.mkdir(exist_ok=True)
        (files / "patchwork.crt").write_text(pem)
        main = self.inventory / "group_vars" / "all" / "main.yml"
        settings = yaml.safe_load(main.read_text())
        settings.update(
            {
                "platform_domain": PLATFORM_DOMAIN,
                "app_email_host": "localhost",
                "app_email_host_user": "",
                "app_default_from_email": f"Patchwork <noreply@{PLATFORM_DOMAIN}>",
                "nginx_tls_certificate_pem": (
                    "{{ lookup('ansible.builtin.file', inventory_dir ~ '/files/patchwork.crt') }}"
                ),
                # The containers have no route to a Debian mirror: their packages were
                # installed into the root filesystem beforehand.
                "patchwork_apt_update": False,
            }
        )
        settings.update(group_vars.pop("all", {}))
        main.write_text(yaml.safe_dump(settings, sort_keys=False))
        for group, values in group_vars.items():
            path = self.inventory / "group_vars" / group / "main.yml"
            path.parent.mkdir(parents=True, exist_ok=True)
            current = yaml.safe_load(path.read_text()) if path.exists() else {}
            path.write_text(yaml.safe_dump({**(current or {}), **values}, sort_keys=False))

    def _write_vault(self) -> None:
        """vault.yml from vault.yml.example with every secret made as its comments say,
        then encrypted with ansible-vault."""
        self.database_password = secrets.token_hex(32)
        self.redis_password = secrets.token_hex(32)
        vault = {
            "vault_secret_key": secrets.token_urlsafe(64),
            "vault_database_password": self.database_password,
            "vault_redis_password": self.redis_password,
            "vault_key_encryption_key": base64.b64encode(secrets.token_bytes(32)).decode(),
            "vault_email_host_password": secrets.token_hex(16),
            "vault_metrics_token": secrets.token_hex(32),
            "vault_pgbackrest_cipher_pass": secrets.token_urlsafe(48),
            "vault_tls_private_key": self._tls_key,
        }
        example = yaml.safe_load((self.inventory / "group_vars/all/vault.yml.example").read_text())
        assert set(example) == set(vault), "vault.yml.example names other secrets"
        path = self.inventory / "group_vars/all/vault.yml"
        path.write_text(yaml.safe_dump(vault, sort_keys=False))
        self.vault_password_file.write_text(secrets.token_urlsafe(24) + "\n")
        self.vault_password_file.chmod(0o600)
        done = self._ansible(
            "ansible-vault", "encrypt", path, "--vault-password-file", self.vault_password_file
        )
        assert done.returncode == 0, done.stdout + done.stderr

    # -- running things ------------------------------------------------------------------

    def _environment(self) -> dict[str, str]:
        return {
            **os.environ,
            "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}",
            "ANSIBLE_CONFIG": str(ANSIBLE / "ansible.cfg"),
            "ANSIBLE_NOCOLOR": "1",
            "ANSIBLE_FORCE_COLOR": "0",
            "ANSIBLE_HOST_KEY_CHECKING": "False",
            "ANSIBLE_REMOTE_USER": "root",
            "ANSIBLE_PRIVATE_KEY_FILE": str(self.lab.ssh_key),
            "ANSIBLE_SSH_ARGS": "-o UserKnownHostsFile=/dev/null -o ControlMaster=auto "
            "-o ControlPersist=120s -o LogLevel=ERROR",
            "ANSIBLE_CONTROL_PATH_DIR": str(self.work / "cp"),
            "ANSIBLE_LOCAL_TEMP": str(self.work / "tmp"),
        }

    def _ansible(self, *args: str | Path, timeout: float = 1800) -> subprocess.CompletedProcess:
        return subprocess.run(
            self.lab.in_controller(*args),
            cwd=ANSIBLE,
            env=self._environment(),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def playbook(self, playbook: str, wheel: Path, wheelhouse: Path, *extra: str) -> Played:
        """`ansible-playbook -i <inventory> <playbook> -e patchwork_wheel=… -e app_wheelhouse=…`
        from ansible/, as the README gives it (the vault password from a file, not a prompt)."""
        started = time.monotonic()
        done = self._ansible(
            VENV_BIN / "ansible-playbook",
            "-i",
            self.inventory / "hosts.yml",
            playbook,
            "-e",
            f"patchwork_wheel={wheel}",
            "-e",
            f"app_wheelhouse={wheelhouse}",
            "--vault-password-file",
            self.vault_password_file,
            *extra,
        )
        played = Played(done.returncode, done.stdout + done.stderr, time.monotonic() - started)
        (self.work / "logs").mkdir(exist_ok=True)
        log = self.work / "logs" / f"{len(list((self.work / 'logs').iterdir())):02d}-{playbook}.log"
        log.write_text(played.output)
        print(f"  {playbook} {' '.join(extra)}: {played.seconds:.0f}s, {played.recap}")
        return played

    def cli(self, machine: Machine, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        """`sudo patchwork <command>` on an app host, as docs/operations.md gives it."""
        command = shlex.join(["sudo", "patchwork", *args])
        return self.lab.ssh(machine, command, check=check)

    def https(
        self, machine: Machine, host: str, path: str, *headers: str, body: object = None
    ) -> tuple[int, dict[str, list[str]], str]:
        """A request through a host's nginx over HTTPS, as a browser or API client makes
        it: a GET, or a POST of `body` as JSON."""
        sent = ["--json", json.dumps(body)] if body is not None else []
        done = subprocess.run(
            self.lab.in_controller(
                "curl",
                "--silent",
                "--insecure",
                "--max-time",
                "30",
                "--resolve",
                f"{host}:443:{machine.address}",
                "--dump-header",
                "-",
                *[item for header in headers for item in ("--header", header)],
                *sent,
                f"https://{host}{path}",
            ),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        head, _, body = done.stdout.replace("\r\n", "\n").partition("\n\n")
        lines = head.splitlines()
        if not lines:
            return 0, {}, done.stderr
        status = int(lines[0].split()[1])
        found: dict[str, list[str]] = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            found.setdefault(name.strip().lower(), []).append(value.strip())
        return status, found, body

    def browser(self, machine: Machine, flows: list[dict]) -> dict:
        """Run tests/deploy/browser_flow.py in the controller's namespace against a host."""
        arguments = {
            "address": machine.address,
            "hosts": [PLATFORM_DOMAIN, f"*.{PLATFORM_DOMAIN}"],
            "flows": flows,
        }
        done = subprocess.run(
            self.lab.in_controller(
                sys.executable, REPOSITORY / "tests/deploy/browser_flow.py", json.dumps(arguments)
            ),
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
            cwd=REPOSITORY,
            env={**os.environ, "PYTHONPATH": str(REPOSITORY)},
        )
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-5000:]
        return json.loads(done.stdout.strip().splitlines()[-1])


def invitation_url(output: str) -> str:
    (url,) = re.findall(r"invitation:\s+(https://\S+)", output)
    return url
