"""The single-host example inventory on a fresh Debian 12 host, end to end: converge,
sign in over HTTPS in Chromium, onboard a council, a second run with nothing to do, a dry
run, a stranded Redis put right, upgrade, refusing an older release, backup and restore.

The tests run in order and share one host; each says what it proves."""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.deploy.conftest import Releases
from tests.deploy.deployment import (
    PLATFORM_DOMAIN,
    REDIS_CLI,
    Deployment,
    Played,
    invitation_url,
)
from tests.deploy.machines import SUBNET, Lab, Machine

UNITS = [
    "nginx",
    "postgresql",
    "redis-server",
    "nftables",
    "fail2ban",
    "patchwork-web.socket",
    "patchwork-web",
    "patchwork-worker",
    "patchwork-beat",
    "patchwork-backup.timer",
]


@dataclass
class SingleHost:
    deployment: Deployment
    host: Machine
    releases: Releases
    first_run: Played
    facts: dict[str, str] = field(default_factory=dict)

    def site(self, *extra: str, wheel: Path | None = None) -> Played:
        return self.deployment.playbook(
            "site.yml", wheel or self.releases.current, self.releases.wheelhouse, *extra
        )

    def active_release(self) -> str:
        return self.deployment.lab.ssh(self.host, "readlink -f /opt/patchwork/venv").stdout.strip()


@pytest.fixture(scope="module")
def single(the_lab: Lab, releases: Releases, work: Path) -> Iterator[SingleHost]:
    host = the_lab.boot("patchwork1", f"{SUBNET}.10")
    the_lab.wait_for_ssh(host)
    deployment = Deployment(the_lab, work / "single-host", "single-host", {"patchwork1": host})
    first = deployment.playbook("site.yml", releases.current, releases.wheelhouse)
    yield SingleHost(deployment, host, releases, first)
    the_lab.halt(host)  # its two cores go to the split deployment's four hosts


def test_site_converges_on_a_fresh_host(single: SingleHost) -> None:
    """site.yml builds the host from nothing; every service it manages is running."""
    assert single.first_run.returncode == 0, single.first_run.tail()
    assert single.first_run.recap["patchwork1"]["failed"] == 0
    states = single.deployment.lab.ssh(
        single.host, "systemctl is-active " + " ".join(UNITS), check=False
    ).stdout.split()
    assert dict(zip(UNITS, states, strict=True)) == dict.fromkeys(UNITS, "active")


def test_redis_requires_its_password(single: SingleHost) -> None:
    """The configuration written is the one running (defect 3): no password, no answer;
    and Redis speaks only TLS, even on loopback."""
    lab = single.deployment.lab
    unauthenticated = lab.ssh(single.host, f"{REDIS_CLI} -h 127.0.0.1 ping", check=False)
    assert "NOAUTH" in unauthenticated.stdout + unauthenticated.stderr
    plain = lab.ssh(single.host, "timeout 10 redis-cli -h 127.0.0.1 ping", check=False)
    assert plain.returncode != 0
    assert "NOAUTH" not in plain.stdout + plain.stderr


def test_it_is_ready_and_serves_pages_through_nginx(single: SingleHost) -> None:
    """/readyz renders a real page (the sign-in page, through templates and static files);
    the sign-in page and its stylesheet come through nginx with each header once."""
    deployment = single.deployment
    status, _, body = deployment.https(single.host, PLATFORM_DOMAIN, "/readyz")
    assert status == 200, body
    ready = json.loads(body)
    assert ready["checks"]["pages"]["status"] == "ok", ready

    status, headers, body = deployment.https(single.host, PLATFORM_DOMAIN, "/sign-in/")
    assert status == 200, body[-2000:]
    for header in (
        "strict-transport-security",
        "content-security-policy",
        "x-frame-options",
        "cross-origin-opener-policy",
        "referrer-policy",
        "x-content-type-options",
    ):
        assert len(headers.get(header, [])) == 1, (header, headers.get(header))
    stylesheet = re.search(r'href="(/static/govuk/govuk-frontend\.min\.[0-9a-f]+\.css)"', body)
    assert stylesheet, "the sign-in page links no hashed GOV.UK stylesheet"
    status, headers, css = deployment.https(single.host, PLATFORM_DOMAIN, stylesheet[1])
    assert status == 200
    assert ".govuk-" in css


def test_an_operator_signs_in_over_https_in_chromium(single: SingleHost) -> None:
    """The operator invited with the CLI sets up their account and signs in through nginx."""
    email = "operator@patchwork.test"
    invited = single.deployment.cli(
        single.host, "create_operator", "--email", email, "--name", "Ola Operator"
    )
    password = secrets.token_urlsafe(16)
    seen = single.deployment.browser(
        single.host,
        [
            {
                "name": "operator",
                "invitation": invitation_url(invited.stdout),
                "password": password,
                "email": email,
                "sign_in": True,
                "base": f"https://{PLATFORM_DOMAIN}",
            }
        ],
    )["operator"]
    assert seen["setup_heading"] == "Set up your account"
    assert seen["done_heading"] == "Your account is ready"
    signed_in = seen["sign_in"]
    assert signed_in["url"].startswith(f"https://{PLATFORM_DOMAIN}/"), signed_in
    assert "sign-in" not in signed_in["url"], signed_in
    assert signed_in["stylesheet_loaded"], signed_in
    assert seen["server_errors"] == []


def test_a_council_onboarded_with_the_cli_takes_its_administrator(single: SingleHost) -> None:
    """`patchwork onboard_council` on the host; its administrator's invitation works in
    Chromium on the council's own subdomain."""
    onboarded = single.deployment.cli(
        single.host,
        "onboard_council",
        "--name",
        "Testshire",
        "--code",
        "E10000099",
        "--admin-email",
        "admin@testshire.example",
        "--admin-name",
        "Ada Admin",
    )
    url = invitation_url(onboarded.stdout)
    assert url.startswith(f"https://testshire.{PLATFORM_DOMAIN}/invitation/"), url
    seen = single.deployment.browser(
        single.host,
        [{"name": "admin", "invitation": url, "password": secrets.token_urlsafe(16)}],
    )["admin"]
    assert seen["done_heading"] == "Your account is ready"
    assert seen["server_errors"] == []
    councils = single.deployment.cli(single.host, "councils").stdout
    assert "E10000099" in councils


def test_a_second_run_changes_nothing(single: SingleHost) -> None:
    """Run again with nothing to do: changed=0 on every host (defect 6)."""
    again = single.site()
    assert again.returncode == 0, again.tail()
    assert again.recap["patchwork1"]["changed"] == 0, again.changed_tasks()


def test_a_dry_run_with_check_and_diff_runs(single: SingleHost) -> None:
    """`--check --diff` lets an operator see a change before making it (defect 5): here,
    a newer release than the one running, which it reports and does not install."""
    before = single.active_release()
    dry = single.site("--check", "--diff", wheel=single.releases.newer)
    assert dry.returncode == 0, dry.tail()
    assert dry.recap["patchwork1"]["failed"] == 0
    assert dry.recap["patchwork1"]["changed"] > 0, dry.tail()
    assert single.active_release() == before
    installed = single.deployment.lab.ssh(single.host, "ls /opt/patchwork/releases/").stdout
    assert single.releases.newer.stem not in installed, installed


def test_services_left_on_old_settings_are_put_right(single: SingleHost) -> None:
    """Redis running without the password its file sets (as a failed handler left it:
    defect 3), PostgreSQL with a setting waiting for a restart and Patchwork's services
    started before the active release was linked are restarted by the next run, not
    reported ok."""
    lab = single.deployment.lab
    password = single.deployment.redis_password
    lab.ssh(
        single.host,
        f"REDISCLI_AUTH={password} {REDIS_CLI} -h 127.0.0.1 CONFIG SET requirepass ''",
    )
    assert "PONG" in lab.ssh(single.host, f"{REDIS_CLI} -h 127.0.0.1 ping").stdout
    psql = "runuser -u postgres -- psql --no-psqlrc --tuples-only --no-align --command"
    lab.ssh(single.host, f"{psql} 'ALTER SYSTEM SET max_connections = 201'")
    lab.ssh(single.host, f"{psql} 'SELECT pg_reload_conf()'")
    pending = f"{psql} 'SELECT count(*) FROM pg_settings WHERE pending_restart'"
    assert lab.ssh(single.host, pending).stdout.strip() == "1"
    # The release linked after the services last started: as if their restart never ran.
    lab.ssh(single.host, "sleep 1; touch --no-dereference /opt/patchwork/venv")
    started = "systemctl show --property=ExecMainStartTimestamp --value patchwork-worker"
    worker_before = lab.ssh(single.host, started).stdout.strip()

    fixed = single.site()
    assert fixed.returncode == 0, fixed.tail()
    unauthenticated = lab.ssh(single.host, f"{REDIS_CLI} -h 127.0.0.1 ping", check=False)
    assert "NOAUTH" in unauthenticated.stdout + unauthenticated.stderr
    assert lab.ssh(single.host, pending).stdout.strip() == "0"
    assert lab.ssh(single.host, f"{psql} 'SHOW max_connections'").stdout.strip() == "201"
    assert lab.ssh(single.host, started).stdout.strip() != worker_before
    restarted = [t for t in fixed.changed_tasks() if "still running an older release" in t]
    assert any("patchwork-web" in t for t in restarted), fixed.changed_tasks()
    lab.ssh(single.host, f"{psql} 'ALTER SYSTEM RESET max_connections'")
    lab.ssh(single.host, "systemctl restart postgresql")


def test_upgrade_puts_a_newer_build_live(single: SingleHost) -> None:
    """upgrade.yml installs the newer build beside the running one and switches to it."""
    before = single.active_release()
    upgraded = single.deployment.playbook(
        "upgrade.yml", single.releases.newer, single.releases.wheelhouse
    )
    assert upgraded.returncode == 0, upgraded.tail()
    after = single.active_release()
    assert after != before
    newer_version = single.releases.newer.name.split("-")[1]
    assert f"patchwork-{newer_version}-" in after, after
    single.facts["upgraded_to"] = after
    status, _, body = single.deployment.https(single.host, PLATFORM_DOMAIN, "/readyz")
    assert status == 200, body


def test_site_refuses_to_roll_back_to_an_older_release(single: SingleHost) -> None:
    """Re-running the first deploy's command after the upgrade stops before changing
    anything, saying why (defect 4); the newer release stays active."""
    refused = single.site()
    assert refused.returncode != 0
    assert "an older release: nothing was changed" in refused.output, refused.tail()
    assert single.active_release() == single.facts["upgraded_to"]


def test_backup_and_restore(single: SingleHost) -> None:
    """The nightly backup's unit makes an archive; a council onboarded afterwards is gone
    from the platform once the archive is restored as docs/operations.md says."""
    lab, deployment = single.deployment.lab, single.deployment
    lab.ssh(single.host, "systemctl start patchwork-backup.service")
    archives = lab.ssh(single.host, "ls /var/backups/patchwork/").stdout.split()
    assert len(archives) == 1, archives
    archive = f"/var/backups/patchwork/{archives[0]}"
    checked = deployment.cli(single.host, "restore", archive, check=False)
    assert "is sound" in checked.stdout, checked.stdout + checked.stderr

    deployment.cli(
        single.host,
        "onboard_council",
        "--name",
        "Laterton",
        "--code",
        "E10000098",
        "--admin-email",
        "admin@laterton.example",
    )
    assert "E10000098" in deployment.cli(single.host, "councils").stdout

    lab.ssh(
        single.host,
        "systemctl stop patchwork-web.socket patchwork-web patchwork-worker patchwork-beat",
    )
    restored = deployment.cli(single.host, "restore", archive, "--confirm")
    lab.ssh(
        single.host,
        "systemctl start patchwork-web.socket patchwork-web patchwork-worker patchwork-beat",
    )
    assert restored.stdout.startswith("Restored 3 schemas"), restored.stdout
    # Laterton's schema, made after the backup, is kept and named; its platform rows go.
    assert "not in the archive, left alone:" in restored.stdout, restored.stdout
    councils = deployment.cli(single.host, "councils").stdout
    assert "E10000099" in councils
    assert "E10000098" not in councils
