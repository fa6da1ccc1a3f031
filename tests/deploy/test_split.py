"""The split example inventory on four fresh Debian 12 hosts: a database host, a Redis host
and two application hosts, each running nginx, gunicorn and a Celery worker. A council
onboarded on one is served by both, and a lookup is answered whichever host takes it: the
proof that a deployment grows past one machine."""

from __future__ import annotations

import json
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.deploy.conftest import Releases
from tests.deploy.deployment import PLATFORM_DOMAIN, Deployment, Played
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
    yield Split(deployment, hosts, first)
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
    without_password = lab.ssh(redis, f"redis-cli -h {redis.address} ping", check=False)
    assert "NOAUTH" in without_password.stdout + without_password.stderr
    refused = lab.ssh(
        split.hosts["db1"],
        f"timeout 5 bash -c 'echo > /dev/tcp/{redis.address}/6379' && echo open",
        check=False,
    )
    assert "open" not in refused.stdout


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


def test_both_app_hosts_are_ready(split: Split) -> None:
    for name in ("web1", "web2"):
        status, _, body = split.deployment.https(split.hosts[name], PLATFORM_DOMAIN, "/readyz")
        assert status == 200, (name, body)
