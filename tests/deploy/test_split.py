"""The split example inventory on four fresh Debian 12 hosts: a database host, a Redis host
and two application hosts, each running nginx, gunicorn and a Celery worker. A council
onboarded on one is served by both, and a lookup is answered whichever host takes it: the
proof that a deployment grows past one machine."""

from __future__ import annotations

import json
import secrets
import shlex
import subprocess
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.deploy.conftest import Releases
from tests.deploy.deployment import (
    APP_CA,
    PLATFORM_DOMAIN,
    REDIS_CLI,
    Deployment,
    Played,
    invitation_url,
)
from tests.deploy.machines import SUBNET, Lab, Machine

HOSTS = {"web1": 11, "web2": 12, "db1": 31, "redis1": 32}
COUNCIL = "E10000097"
NHS_NUMBER = "9434765919"

# Run on web1 with `sudo patchwork shell -c`: a practitioner (invitation accepted with a
# code from their device) and an API token for them, through the product's own services,
# in a council onboarded with the CLI a moment before.
SETUP = textwrap.dedent(
    f"""
    from django_otp.oath import totp
    from django_tenants.utils import schema_context
    from accounts.models import User
    from accounts.selectors import invitation_by_token
    from accounts.services import invitation_accept, invitation_device, user_invite
    from core.api.auth import api_token_issue
    from core.services import organisation_create, practitioner_profile_set
    from tenants.models import Council

    council = Council.objects.get(code="{COUNCIL}")
    with schema_context(council.schema_name):
        user, token = user_invite(
            email="sam.worker@splitshire.example", full_name="Sam Worker",
            role=User.Role.PRACTITIONER,
        )
        invitation = invitation_by_token(token)
        device = invitation_device(invitation=invitation)
        invitation_accept(
            invitation=invitation, password="a long deployment-test passphrase",
            code=f"{{totp(device.bin_key):06d}}",
        )
        organisation = organisation_create(
            name="Splitshire Children's Services", agency_type="social_care"
        )
        practitioner_profile_set(
            user=User.objects.get(pk=user.pk), organisation=organisation,
            job_title="Social worker",
        )
        print("TOKEN", api_token_issue(user=User.objects.get(pk=user.pk)).token)
    """
)


@dataclass
class Split:
    deployment: Deployment
    hosts: dict[str, Machine]
    first_run: Played
    releases: Releases


@pytest.fixture(scope="module")
def split(the_lab: Lab, releases: Releases, work: Path) -> Iterator[Split]:
    hosts = {name: the_lab.boot(name, f"{SUBNET}.{last}") for name, last in HOSTS.items()}
    for machine in hosts.values():
        the_lab.wait_for_ssh(machine)
    deployment = Deployment(
        the_lab,
        work / "split",
        "split",
        hosts,
        # The example's database host has 32 GiB; these containers share this machine.
        group_vars={
            "database": {
                "postgresql_shared_buffers": "256MB",
                "postgresql_effective_cache_size": "1GB",
                "postgresql_maintenance_work_mem": "128MB",
            }
        },
    )
    first = deployment.playbook("site.yml", releases.current, releases.wheelhouse)
    yield Split(deployment, hosts, first, releases)
    the_lab.halt(*hosts.values())


def test_site_converges_on_four_hosts(split: Split) -> None:
    assert split.first_run.returncode == 0, split.first_run.tail()
    assert set(split.first_run.recap) == set(HOSTS)
    assert all(recap["failed"] == 0 for recap in split.first_run.recap.values())


@pytest.mark.parametrize(
    ("host", "units"),
    [
        ("web1", ["nginx", "patchwork-web", "patchwork-worker", "patchwork-beat"]),
        ("web2", ["nginx", "patchwork-web", "patchwork-worker"]),
        ("db1", ["postgresql"]),
        ("redis1", ["redis-server"]),
    ],
)
def test_each_host_runs_its_part(split: Split, host: str, units: list[str]) -> None:
    lab = split.deployment.lab
    states = lab.ssh(split.hosts[host], "systemctl is-active " + " ".join(units), check=False)
    assert states.stdout.split() == ["active"] * len(units), states.stdout
    # Patchwork runs only where its part is: no app on the database or Redis host, one
    # scheduler. (Every container has every package: it is one root filesystem.)
    others = {"patchwork-web", "patchwork-worker", "patchwork-beat"} - set(units)
    idle = lab.ssh(
        split.hosts[host], "systemctl is-active " + " ".join(sorted(others)), check=False
    )
    assert "active" not in idle.stdout.split(), (host, idle.stdout)


def test_redis_and_postgresql_take_only_the_app_hosts(split: Split) -> None:
    """Redis asks for its password; PostgreSQL and Redis are closed to the Redis and
    database hosts (the firewall lets only app hosts in)."""
    lab = split.deployment.lab
    redis = split.hosts["redis1"]
    asked = lab.ssh(
        split.hosts["web2"],
        f"timeout 5 bash -c 'echo PING >/dev/tcp/{redis.address}/6379' && echo open",
        check=False,
    )
    assert "open" in asked.stdout, asked.stderr
    without_password = lab.ssh(redis, f"{REDIS_CLI} -h {redis.address} ping", check=False)
    assert "NOAUTH" in without_password.stdout + without_password.stderr
    refused = lab.ssh(
        split.hosts["db1"],
        f"timeout 5 bash -c 'echo > /dev/tcp/{redis.address}/6379' && echo open",
        check=False,
    )
    assert "open" not in refused.stdout


def another_ca(lab: Lab, machine: Machine) -> str:
    """A CA of the test's own, made on `machine`: it signed nothing of the deployment's."""
    lab.ssh(
        machine,
        "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1"
        " -subj '/CN=Another CA' -keyout /root/another-ca.key -out /root/another-ca.crt",
    )
    return "/root/another-ca.crt"


def psql_on(split: Split, machine: str, conninfo: str, sql: str) -> subprocess.CompletedProcess:
    """psql on an app host as the app's role (its password from the vault), with `conninfo`."""
    command = shlex.join(
        ["psql", "--no-psqlrc", "--tuples-only", "--no-align", "--command", sql, conninfo]
    )
    password = split.deployment.database_password
    return split.deployment.lab.ssh(
        split.hosts[machine], f"PGPASSWORD={password} PGCONNECT_TIMEOUT=10 {command}", check=False
    )


def test_the_app_hosts_reach_postgresql_over_tls_they_verify(split: Split) -> None:
    """The app connects with sslmode=verify-full against the internal CA, and its
    connections from both app hosts are encrypted (pg_stat_ssl); db1's certificate chains
    to that CA and names db1 and its address; another CA, another name or no TLS is refused."""
    lab, db1 = split.deployment.lab, split.hosts["db1"]
    env = lab.ssh(split.hosts["web1"], "cat /etc/patchwork/patchwork.env").stdout
    (database_url,) = [line for line in env.splitlines() if line.startswith("DATABASE_URL=")]
    assert f"sslmode=verify-full&sslrootcert={APP_CA}" in database_url

    # The app's own connections (kept a minute) from a request to each app host.
    for name in ("web1", "web2"):
        status, _, body = split.deployment.https(split.hosts[name], PLATFORM_DOMAIN, "/readyz")
        assert status == 200, (name, body)
    sessions = lab.ssh(
        db1,
        "runuser -u postgres -- psql --no-psqlrc --tuples-only --no-align --field-separator ' '"
        ' --command "SELECT host(a.client_addr), s.ssl, s.version FROM pg_stat_activity a'
        " JOIN pg_stat_ssl s USING (pid) WHERE a.usename = 'patchwork'\"",
    ).stdout.splitlines()
    seen = {tuple(line.split()) for line in sessions if line.strip()}
    app_addresses = {split.hosts["web1"].address, split.hosts["web2"].address}
    assert {row[0] for row in seen} >= app_addresses, seen
    assert all(row[1] == "t" and row[2] in {"TLSv1.2", "TLSv1.3"} for row in seen), seen

    # port: Debian's psql would otherwise take the port of a cluster on the app host.
    base = f"dbname=patchwork user=patchwork hostaddr={db1.address} port=5432"
    ssl_in_use = "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()"
    for host in ("db1", db1.address):
        conninfo = f"{base} host={host} sslmode=verify-full sslrootcert={APP_CA}"
        verified = psql_on(split, "web2", conninfo, ssl_in_use)
        assert verified.stdout.strip() == "t", (host, verified.stderr)

    other = another_ca(lab, split.hosts["web2"])
    untrusted = psql_on(
        split, "web2", f"{base} host=db1 sslmode=verify-full sslrootcert={other}", ssl_in_use
    )
    assert untrusted.returncode != 0
    assert "certificate verify failed" in untrusted.stderr, untrusted.stderr
    misnamed = psql_on(
        split, "web2", f"{base} host=redis1 sslmode=verify-full sslrootcert={APP_CA}", ssl_in_use
    )
    assert misnamed.returncode != 0
    assert "does not match host name" in misnamed.stderr, misnamed.stderr
    plain = psql_on(split, "web2", f"{base} host=db1 sslmode=disable", ssl_in_use)
    assert plain.returncode != 0
    assert "no encryption" in plain.stderr, plain.stderr


def test_redis_takes_only_tls_verified_against_the_internal_ca(split: Split) -> None:
    """From an app host: plain text to Redis is refused; TLS checked against the app's CA
    file gets NOAUTH without the password and PONG with it; a client trusting another CA
    fails the handshake; the certificate names redis1, not db1."""
    lab, web2 = split.deployment.lab, split.hosts["web2"]
    redis = split.hosts["redis1"]
    env = lab.ssh(split.hosts["web1"], "cat /etc/patchwork/patchwork.env").stdout
    assert f'REDIS_URL="rediss://:{split.deployment.redis_password}@{redis.address}:6379/0"' in env
    assert f'REDIS_CA_FILE="{APP_CA}"' in env

    plain = lab.ssh(web2, f"timeout 10 redis-cli -h {redis.address} ping", check=False)
    assert plain.returncode != 0
    assert "NOAUTH" not in plain.stdout + plain.stderr
    assert "PONG" not in plain.stdout + plain.stderr
    tls = f"timeout 10 redis-cli --tls -h {redis.address}"
    no_password = lab.ssh(web2, f"{tls} --cacert {APP_CA} ping", check=False)
    assert "NOAUTH" in no_password.stdout + no_password.stderr
    password = split.deployment.redis_password
    answered = lab.ssh(web2, f"REDISCLI_AUTH={password} {tls} --cacert {APP_CA} ping")
    assert answered.stdout.strip() == "PONG"

    other = another_ca(lab, web2)
    untrusted = lab.ssh(web2, f"REDISCLI_AUTH={password} {tls} --cacert {other} ping", check=False)
    assert "PONG" not in untrusted.stdout
    assert "certificate verify failed" in untrusted.stdout + untrusted.stderr, untrusted

    def handshake(name: str) -> subprocess.CompletedProcess:
        return lab.ssh(
            web2,
            f"openssl s_client -connect {redis.address}:6379 -CAfile {APP_CA}"
            f" -verify_hostname {name} -verify_return_error -brief </dev/null",
            check=False,
        )

    assert handshake("redis1").returncode == 0, handshake("redis1").stderr
    assert handshake("db1").returncode != 0


def test_a_lookup_is_answered_whichever_app_host_takes_it(split: Split) -> None:
    """A council onboarded on web1, a child added through web2's API, and the practitioner's
    search sent to each app host's nginx in turn: both find the child in the one database."""
    deployment = split.deployment
    deployment.cli(
        split.hosts["web1"],
        "onboard_council",
        "--name",
        "Splitshire",
        "--code",
        COUNCIL,
        "--admin-email",
        "admin@splitshire.example",
    )
    made = deployment.cli(split.hosts["web1"], "shell", "-c", SETUP)
    (token,) = [line.split()[1] for line in made.stdout.splitlines() if line.startswith("TOKEN")]

    child = {
        "given_name": "Robin",
        "family_name": "Fairweather",
        "date_of_birth": "2016-04-12",
        "nhs_number": NHS_NUMBER,
    }
    status, headers, body = deployment.https(
        split.hosts["web2"],
        f"splitshire.{PLATFORM_DOMAIN}",
        "/api/v1/people",
        f"Authorization: Bearer {token}",
        body=child,
    )
    assert status == 201, body[-2000:]
    assert headers["location"], headers

    answers = {}
    for name in ("web1", "web2", "web1", "web2"):
        status, _, body = deployment.https(
            split.hosts[name],
            f"splitshire.{PLATFORM_DOMAIN}",
            "/api/v1/search",
            f"Authorization: Bearer {token}",
            body={"nhs_number": NHS_NUMBER},
        )
        assert status == 200, (name, body[-2000:])
        answers[name] = json.loads(body)
    assert answers["web1"] == answers["web2"]
    (found,) = answers["web1"]["results"]
    assert "Fairweather" in json.dumps(found)


def test_an_operator_signs_in_and_the_workers_answer(split: Split) -> None:
    """Over the verified connections: an operator invited on web1 signs in through web2's
    nginx in Chromium, and a task sent from web2 runs on a worker, which fans it out to the
    council onboarded above and returns its count through Celery's result backend."""
    deployment = split.deployment
    email = "operator@patchwork.test"
    invited = deployment.cli(
        split.hosts["web1"], "create_operator", "--email", email, "--name", "Ola Operator"
    )
    seen = deployment.browser(
        split.hosts["web2"],
        [
            {
                "name": "operator",
                "invitation": invitation_url(invited.stdout),
                "password": secrets.token_urlsafe(16),
                "email": email,
                "sign_in": True,
                "base": f"https://{PLATFORM_DOMAIN}",
            }
        ],
    )["operator"]
    assert seen["done_heading"] == "Your account is ready"
    assert "sign-in" not in seen["sign_in"]["url"], seen["sign_in"]
    assert seen["server_errors"] == []

    fanned_out = deployment.cli(
        split.hosts["web2"],
        "shell",
        "-c",
        "from tenants.tasks import for_each_council; print('COUNCILS', for_each_council"
        ".delay('accounts.tasks.sessions_clear_expired').get(timeout=60))",
    )
    (count,) = [line.split()[1] for line in fanned_out.stdout.splitlines() if "COUNCILS" in line]
    assert int(count) >= 1, fanned_out.stdout


def test_both_app_hosts_are_ready(split: Split) -> None:
    for name in ("web1", "web2"):
        status, _, body = split.deployment.https(split.hosts[name], PLATFORM_DOMAIN, "/readyz")
        assert status == 200, (name, body)


def test_a_second_run_keeps_the_ca_and_restarts_nothing(split: Split) -> None:
    """site.yml again on the four hosts: changed=0 everywhere; the CA, the certificates it
    signed (redis1's through db1) and the running PostgreSQL and Redis are the same."""
    lab, db1, redis1 = split.deployment.lab, split.hosts["db1"], split.hosts["redis1"]
    fingerprint = "openssl x509 -noout -fingerprint -sha256 -in"
    started = "systemctl show --property=ExecMainStartTimestamp --value"

    def state() -> list[str]:
        return [
            lab.ssh(db1, f"{fingerprint} /etc/patchwork-ca/ca.crt").stdout,
            lab.ssh(db1, f"{fingerprint} /etc/ssl/patchwork/postgresql.crt").stdout,
            lab.ssh(redis1, f"{fingerprint} /etc/ssl/patchwork/redis.crt").stdout,
            lab.ssh(db1, f"{started} postgresql@15-main").stdout,
            lab.ssh(redis1, f"{started} redis-server").stdout,
        ]

    before = state()
    again = split.deployment.playbook("site.yml", split.releases.current, split.releases.wheelhouse)
    assert again.returncode == 0, again.tail()
    assert {host: recap["changed"] for host, recap in again.recap.items()} == dict.fromkeys(
        HOSTS, 0
    ), again.changed_tasks()
    assert state() == before
