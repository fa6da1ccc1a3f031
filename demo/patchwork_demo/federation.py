"""Two Patchwork deployments talking over real HTTP (`make federation-demo`, and the
two-deployment test): separate databases, separate gunicorn processes on loopback ports,
one council onboarded on each. The operators swap council cards, the councils sign a
data-sharing agreement over federation, and a practitioner in Kent asks who is involved
with a child who moved from Devon.

Everything goes through the `patchwork` command line, as an operator would do it."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import httpx
import psycopg

KENT = {"name": "Kent", "code": "E10000016", "slug": "kent"}
DEVON = {"name": "Devon", "code": "E10000008", "slug": "devon"}
CHILD_NHS = "9434765870"
ASKER_EMAIL = "asha.social@kent.test"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def database_url(base_url: str, name: str) -> str:
    parts = urlsplit(base_url)
    return urlunsplit(parts._replace(path=f"/{name}"))


def _admin(base_url: str) -> psycopg.Connection:
    return psycopg.connect(database_url(base_url, "postgres"), autocommit=True)


def database_drop(base_url: str, name: str) -> None:
    with _admin(base_url) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def database_from_template(base_url: str, name: str, template: str) -> None:
    """A new, empty deployment copied from an already-migrated database: councils' schemas
    dropped and platform tables emptied, the migrated template schema kept."""
    database_drop(base_url, name)
    with _admin(base_url) as conn:
        conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
    with psycopg.connect(database_url(base_url, name), autocommit=True) as conn:
        schemas = conn.execute(
            "SELECT nspname FROM pg_namespace WHERE nspname LIKE 'council\\_%' "
            "AND nspname <> 'council_template'"
        ).fetchall()
        for (schema,) in schemas:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')
        tables = conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public' AND tablename NOT IN "
            "('django_migrations', 'django_content_type', 'auth_permission')"
        ).fetchall()
        if tables:
            names = ", ".join(f'public."{t}"' for (t,) in tables)
            # Append-only tables (the platform's audit log) refuse TRUNCATE by trigger: this
            # is a new deployment's empty copy, not a log being rewritten.
            with conn.transaction():
                for (table,) in tables:
                    conn.execute(f'ALTER TABLE public."{table}" DISABLE TRIGGER USER')
                conn.execute(f"TRUNCATE {names} CASCADE")
                for (table,) in tables:
                    conn.execute(f'ALTER TABLE public."{table}" ENABLE TRIGGER USER')


def database_migrated(base_url: str, name: str, env: dict[str, str]) -> None:
    database_drop(base_url, name)
    with _admin(base_url) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    run(["migrate_platform"], {**env, "DATABASE_URL": database_url(base_url, name)})


def run(args: list[str], env: dict[str, str], *, check: bool = True) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "deploy.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    if check and done.returncode:
        raise RuntimeError(f"patchwork {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")
    return done.stdout


@dataclass
class Deployment:
    """One Patchwork deployment: its database, platform domain and web server."""

    label: str
    database_url: str
    domain: str
    port: int
    base_env: dict[str, str]
    server: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def env(self) -> dict[str, str]:
        return {
            **self.base_env,
            "DATABASE_URL": self.database_url,
            "PLATFORM_DOMAIN": self.domain,
            "SITE_PORT": str(self.port),
            "SITE_SCHEME": "http",
            "FEDERATION_LOOKUP_TIMEOUT_SECONDS": self.base_env.get(
                "FEDERATION_LOOKUP_TIMEOUT_SECONDS", "10"
            ),
        }

    def patchwork(self, *args: str) -> str:
        return run(list(args), self.env)

    def shell(self, code: str) -> str:
        return run(["shell", "-c", code], self.env)

    def start(self, council_slug: str) -> None:
        log = Path(tempfile.gettempdir(), f"patchwork-federation-{self.label}-{self.port}.log")
        self.server = server_start(self.env, self.port, log=log)
        # The first request to each worker loads the council URLs: do that now, not
        # inside the first signed exchange.
        host = f"{council_slug}.{self.domain}:{self.port}"
        for _ in range(4):
            with suppress(httpx.HTTPError):
                httpx.get(
                    f"http://127.0.0.1:{self.port}/.well-known/patchwork/keys",
                    headers={"Host": host},
                    timeout=30,
                )

    def stop(self) -> None:
        if self.server is not None:
            server_stop(self.server)
            self.server = None


def server_start(
    env: dict[str, str], port: int, *, workers: int = 1, log: Path | None = None
) -> subprocess.Popen[bytes]:
    """gunicorn on 127.0.0.1:port; returns once it answers its health check."""
    errors = log.open("ab") if log else subprocess.DEVNULL
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "deploy.wsgi:application",
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            str(workers),
            "--threads",
            "8",
            "--worker-class",
            "gthread",
            "--timeout",
            "60",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=errors,
        start_new_session=True,
    )
    deadline = time.monotonic() + 60
    host = env.get("PLATFORM_DOMAIN", "localhost")
    while time.monotonic() < deadline:
        with suppress(httpx.HTTPError):
            if (
                httpx.get(
                    f"http://127.0.0.1:{port}/healthz", headers={"Host": host}, timeout=1
                ).status_code
                == 200
            ):
                return process
        if process.poll() is not None:
            raise RuntimeError(f"The web server on port {port} stopped at start")
        time.sleep(0.2)
    server_stop(process)
    raise RuntimeError(f"The web server on port {port} did not start")


def server_stop(process: subprocess.Popen[bytes]) -> None:
    with suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        with suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)


def _seed(code: str, *, asker: bool) -> str:
    """Python run in `patchwork shell` on one deployment: a child (the same NHS number on
    both sides) with a team member; on the asking side, the practitioner who asks."""
    role = "Social worker" if asker else "School nurse"
    organisation = "Kent Children's Services" if asker else "Tiverton High School"
    email = ASKER_EMAIL if asker else "dev.nurse@devon.test"
    return f"""import json
from datetime import date
from django_tenants.utils import schema_context
from accounts.models import User
from core.models import InvolvementRole
from core.services import (
    involvement_add, organisation_create, person_create, practitioner_profile_set,
)
from tenants.selectors import council_by_code
council = council_by_code({code!r})
with schema_context(council.schema_name):
    org = organisation_create(name={organisation!r}, agency_type="school", phone="01884 000000")
    user = User.objects.create_user({email!r}, full_name="Demo Practitioner", role="practitioner")
    practitioner = practitioner_profile_set(
        user=user, organisation=org, job_title={role!r}, work_phone="01884 123456"
    )
    role = InvolvementRole.objects.get_or_create(name={role!r})[0]
    child = person_create(actor=None, given_name="Amelia", family_name="Brook-Hughes",
        date_of_birth=date(2015, 4, 9), nhs_number={CHILD_NHS!r})
    involvement_add(actor=user, person=child, practitioner=practitioner, role=role)
    print(json.dumps({{"person": child.pk}}))
"""


@contextmanager
def deployments(
    base_url: str, *, template: str | None, base_env: dict[str, str]
) -> Iterator[tuple[Deployment, Deployment]]:
    """Two deployments with their own databases and servers; everything is removed after."""
    stamp = f"{os.getpid()}_{int(time.time())}"
    names = [f"pw_federation_{label}_{stamp}" for label in ("a", "b")]
    created: list[str] = []
    pair = [
        Deployment(label, database_url(base_url, name), f"{label}.localhost", free_port(), base_env)
        for label, name in zip(("a", "b"), names, strict=True)
    ]
    try:
        if template:
            for name in names:
                database_from_template(base_url, name, template)
                created.append(name)
        else:
            database_migrated(base_url, names[0], base_env)
            created.append(names[0])
            database_from_template(base_url, names[1], names[0])
            created.append(names[1])
        yield pair[0], pair[1]
    finally:
        for deployment in pair:
            deployment.stop()
        for name in created:
            with suppress(psycopg.Error):
                database_drop(base_url, name)


def _command(*args: str) -> str:
    """A line of Python that runs one `patchwork` command inside a `patchwork shell`."""
    return f"call_command(*{list(args)!r})"


def _script(*lines: str) -> str:
    return "\n".join(["from django.core.management import call_command", *lines])


def in_parallel(a: Deployment, code_a: str, b: Deployment, code_b: str) -> tuple[str, str]:
    """Run a shell script on each deployment at the same time (separate processes)."""
    runs = [
        subprocess.Popen(
            [sys.executable, "-m", "deploy.cli", "shell", "-c", code],
            env=d.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for d, code in ((a, code_a), (b, code_b))
    ]
    outputs = []
    for process in runs:
        out, err = process.communicate(timeout=120)
        if process.returncode:
            raise RuntimeError(f"A demo step failed:\n{out}\n{err}")
        outputs.append(out)
    return outputs[0], outputs[1]


def exchange(a: Deployment, b: Deployment, say: Callable[[str], object] = print) -> list[str]:
    """The whole story on two deployments; returns what the Kent practitioner saw."""
    say("Onboarding Kent on deployment A and Devon on deployment B; each exports its card")
    with tempfile.TemporaryDirectory() as folder:
        card_a, card_b = Path(folder, "kent.json"), Path(folder, "devon.json")
        out_a, _ = in_parallel(
            a,
            _script(
                _command(
                    "onboard_council",
                    "--name",
                    KENT["name"],
                    "--code",
                    KENT["code"],
                    "--admin-email",
                    "admin@kent.test",
                ),
                _seed(KENT["code"], asker=True),
                _command("export_council_card", KENT["code"], "--output", str(card_a)),
            ),
            b,
            _script(
                _command(
                    "onboard_council",
                    "--name",
                    DEVON["name"],
                    "--code",
                    DEVON["code"],
                    "--admin-email",
                    "admin@devon.test",
                ),
                _seed(DEVON["code"], asker=False),
                _command("export_council_card", DEVON["code"], "--output", str(card_b)),
            ),
        )
        asking_person = json.loads(out_a.strip().splitlines()[-1])["person"]
        a.start(KENT["slug"])
        b.start(DEVON["slug"])
        say(f"Deployment A serves {a.domain}:{a.port}; deployment B serves {b.domain}:{b.port}")
        say("The operators swap council cards; Kent proposes an agreement to Devon")
        out_a, _ = in_parallel(
            a,
            _script(
                _command("add_peer", str(card_b)),
                _command(
                    "agreement",
                    "propose",
                    KENT["code"],
                    "--partner",
                    f"council:{DEVON['code']}",
                    "--purpose",
                    "safeguarding",
                    "--role",
                    "School nurse",
                    "--demographic",
                ),
            ),
            b,
            _script(_command("add_peer", str(card_a))),
        )
    agreement_id = out_a.strip().splitlines()[-1]
    say(f"Kent signs agreement {agreement_id} and sends it to Devon over HTTP")
    a.patchwork("agreement", "sign", KENT["code"], "--id", agreement_id)
    say("Devon countersigns; the countersignature goes back to Kent over HTTP")
    say(b.patchwork("agreement", "sign", DEVON["code"], "--id", agreement_id).strip())
    say("A Kent social worker asks: who is involved with this child in other councils?")
    seen = (
        a.patchwork(
            "check_other_councils",
            KENT["code"],
            "--as",
            ASKER_EMAIL,
            "--person",
            str(asking_person),
        )
        .strip()
        .splitlines()
    )
    for line in seen:
        say(f"  {line}")
    return seen


# --- The signed directory of councils (decision 0014): no card exchange -------------------


def onboard_apart(a: Deployment, b: Deployment, folder: Path) -> int:
    """Kent onboarded on A and Devon on B, seeded as in `exchange`, each council's card
    written to `folder` (kent.json, devon.json) for the governance body to read its keys
    from; no operator adds the other's card. Returns the Kent child's id."""
    out_a, _ = in_parallel(
        a,
        _script(
            _command(
                "onboard_council", "--name", KENT["name"], "--code", KENT["code"],
                "--admin-email", "admin@kent.test",
            ),
            _seed(KENT["code"], asker=True),
            _command("export_council_card", KENT["code"], "--output", str(folder / "kent.json")),
        ),
        b,
        _script(
            _command(
                "onboard_council", "--name", DEVON["name"], "--code", DEVON["code"],
                "--admin-email", "admin@devon.test",
            ),
            _seed(DEVON["code"], asker=False),
            _command("export_council_card", DEVON["code"], "--output", str(folder / "devon.json")),
        ),
    )  # fmt: skip
    return int(json.loads(out_a.strip().splitlines()[-1])["person"])


def directory_member(card_file: Path, status: str = "active") -> dict[str, object]:
    """A members-file entry for `patchwork directory_sign`, from a council's card."""
    card = json.loads(card_file.read_text())
    return {
        "id": card["id"],
        "name": card["name"],
        "base_url": card["base_url"],
        "status": status,
        "keys": [
            {"key_id": k["key_id"], "public_key": k["public_key"], "fingerprint": k["fingerprint"]}
            for k in card["keys"]
        ],
    }


def agreement_signed(a: Deployment, b: Deployment) -> str:
    """Kent proposes and signs a safeguarding agreement; Devon countersigns, over HTTP."""
    agreement_id = (
        a.patchwork(
            "agreement", "propose", KENT["code"], "--partner", f"council:{DEVON['code']}",
            "--purpose", "safeguarding", "--role", "School nurse", "--demographic",
        )
        .strip()
        .splitlines()[-1]
    )  # fmt: skip
    a.patchwork("agreement", "sign", KENT["code"], "--id", agreement_id)
    b.patchwork("agreement", "sign", DEVON["code"], "--id", agreement_id)
    return agreement_id


def kent_asks(a: Deployment, person: int) -> list[str]:
    """What the Kent social worker sees when she asks the other councils."""
    return (
        a.patchwork(
            "check_other_councils", KENT["code"], "--as", ASKER_EMAIL, "--person", str(person)
        )
        .strip()
        .splitlines()
    )


# --- A mistyped NHS number (decision 0013) ----------------------------------------------------

# Devon knows Oliver Pike by this number; Kent typed it, by mistake, for Mia Carter.
MISTYPED_NHS = "9434765889"
# The Kent practitioner's password and authenticator (hex, as django-otp keeps it), so a test
# can sign in over HTTP and read the page as the practitioner does. Demo databases only.
ASKER_PASSWORD = "patchwork-federation-demo-only"
ASKER_TOTP_KEY = "3132333435363738393031323334353637383930"


def _seed_mistyped(code: str, *, asker: bool) -> str:
    """Python run in `patchwork shell`: in Devon, Oliver (MISTYPED_NHS) with a school nurse
    of his own and a duty team; in Kent, Mia, recorded with Oliver's number by mistake, on
    the asking practitioner's team."""
    if asker:
        return f"""import json
from datetime import date
from accounts.models import User
from core.models import InvolvementRole
from core.services import involvement_add, person_create
from django_tenants.utils import schema_context
from tenants.selectors import council_by_code
council = council_by_code({code!r})
with schema_context(council.schema_name):
    user = User.objects.get(email={ASKER_EMAIL!r})
    child = person_create(actor=None, given_name="Mia", family_name="Carter",
        date_of_birth=date(2016, 11, 2), nhs_number={MISTYPED_NHS!r})
    involvement_add(actor=user, person=child, practitioner=user.practitioner,
        role=InvolvementRole.objects.get(name="Social worker"))
    print(json.dumps({{"person": child.pk}}))
"""
    return f"""from datetime import date
from accounts.models import User
from core.models import CouncilPolicy, InvolvementRole
from core.services import (
    involvement_add, organisation_create, person_create, practitioner_profile_set,
)
from django_tenants.utils import schema_context
from tenants.selectors import council_by_code
council = council_by_code({code!r})
with schema_context(council.schema_name):
    policy = CouncilPolicy.current()
    policy.duty_team_contact = "Devon children's duty team, 01392 000000"
    policy.save()
    org = organisation_create(name="Crediton Primary School", agency_type="school")
    user = User.objects.create_user("oliver.nurse@devon.test", full_name="Demo Nurse",
        role="practitioner")
    practitioner = practitioner_profile_set(user=user, organisation=org,
        job_title="School nurse", work_phone="01363 777777")
    child = person_create(actor=None, given_name="Oliver", family_name="Pike",
        date_of_birth=date(2013, 5, 17), nhs_number={MISTYPED_NHS!r})
    involvement_add(actor=user, person=child, practitioner=practitioner,
        role=InvolvementRole.objects.get(name="School nurse"))
"""


def asker_sign_in_set(a: Deployment) -> None:
    """Give Kent's asking practitioner a password and a known authenticator, so a browser
    (or a test over HTTP) can sign in as them."""
    a.shell(
        "from django_otp.plugins.otp_totp.models import TOTPDevice\n"
        "from django_tenants.utils import schema_context\n"
        "from accounts.models import User\n"
        "from tenants.selectors import council_by_code\n"
        f"with schema_context(council_by_code({KENT['code']!r}).schema_name):\n"
        f"    user = User.objects.get(email={ASKER_EMAIL!r})\n"
        f"    user.set_password({ASKER_PASSWORD!r})\n"
        "    user.save()\n"
        "    TOTPDevice.objects.update_or_create(user=user, name='Demo authenticator',\n"
        f"        defaults={{'key': {ASKER_TOTP_KEY!r}, 'confirmed': True}})\n"
    )


def mistyped_lookup(
    a: Deployment, b: Deployment, say: Callable[[str], object] = print
) -> tuple[int, list[str]]:
    """After `exchange`: Kent looks up Mia, whose NHS number it mistyped as that of a Devon
    child. Returns Mia's id at Kent and what the Kent practitioner saw."""
    say("Kent records Mia Carter with an NHS number mistyped: it is Oliver Pike's, in Devon")
    out_a, _ = in_parallel(
        a,
        _seed_mistyped(KENT["code"], asker=True),
        b,
        _seed_mistyped(DEVON["code"], asker=False),
    )
    person = int(json.loads(out_a.strip().splitlines()[-1])["person"])
    say("The Kent social worker asks about Mia")
    seen = (
        a.patchwork(
            "check_other_councils", KENT["code"], "--as", ASKER_EMAIL, "--person", str(person)
        )
        .strip()
        .splitlines()
    )
    for line in seen:
        say(f"  {line}")
    return person, seen


def main() -> None:
    """`make federation-demo`: DATABASE_URL's server (or the embedded PostgreSQL)."""
    os.environ.setdefault("PATCHWORK_ENV", "development")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "deploy.settings")
    from deploy.embedded_pg import start_unless_configured

    start_unless_configured()
    import django

    django.setup()
    import logging

    from django.conf import settings

    logging.getLogger("httpx").setLevel(logging.WARNING)

    base_url = settings.DATABASE_URL
    env = {k: v for k, v in os.environ.items() if k not in {"REDIS_URL"}}
    with deployments(base_url, template=None, base_env=env) as (a, b):
        seen = exchange(a, b)
        _, mistaken = mistyped_lookup(a, b)
    if not any(line.startswith("Known to Devon") for line in seen):
        sys.exit("The lookup did not find the child in Devon")
    if "Devon: possible mismatch" not in mistaken or any("Known to" in x for x in mistaken):
        sys.exit("The mistyped NHS number was not shown as a possible mismatch")
    print(
        "Done: two deployments, one signed agreement, signed lookups over HTTP: one confirmed "
        "match, and a mistyped NHS number shown as a possible mismatch."
    )


if __name__ == "__main__":
    main()
