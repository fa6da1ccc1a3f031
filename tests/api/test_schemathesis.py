"""Schemathesis against the live API: the OpenAPI schema the app serves, over real HTTP to a
live server on 127.0.0.1, with real credentials of a council that has people, roles and
involvements (a practitioner's bearer token; for the import endpoints a source system's
import token), and every one of
schemathesis's checks on (server errors, status codes, content types, response bodies and
headers against the schema, bad input refused, good input accepted, ...), in every phase
(examples, coverage, fuzzing, stateful). Any finding is a defect in the code or the schema;
tests/api/schemathesis.toml names, with reasons, the rules JSON Schema cannot state.

The council ("Schemathesis Vale") is onboarded for this module and offboarded after it, so
what schemathesis adds (people, involvements, openings) never reaches another test.
Bounded: EXAMPLES_PER_OPERATION, a fixed seed, one worker and REQUEST_TIMEOUT_S per request;
about three minutes on a 2-core machine."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from django_tenants.utils import schema_context

from accounts.models import User
from core.api.auth import api_token_issue
from core.feeds import source_system_create
from core.selectors import roles_active
from core.services import (
    involvement_add,
    organisation_create,
    person_create,
    practitioner_profile_set,
)
from tenants.services import council_offboard, council_onboard
from tests.browser import live_server

CODE = "E06000099"
CONFIG = Path(__file__).with_name("schemathesis.toml")
EXAMPLES_PER_OPERATION = 30
# Per request: a cold first request (template loading, a new connection) can take a second.
REQUEST_TIMEOUT_S = 10

# Marked so pytest-django sets up the test database; the test's own transaction is unused
# (everything goes over HTTP to the live server's own connections).
pytestmark = pytest.mark.django_db


@dataclass
class LiveAPI:
    base_url: str
    host: str
    token: str
    import_token: str
    workdir: Path  # where schemathesis keeps its cache: never the working tree


@pytest.fixture(scope="module")
def live_api(django_db_setup, django_db_blocker, tmp_path_factory) -> Iterator[LiveAPI]:  # type: ignore[no-untyped-def]
    """A council of its own with data, served over HTTP, and a practitioner's token there."""
    with django_db_blocker.unblock():
        council = council_onboard(
            name="Schemathesis Vale", code=CODE, admin_email="first.admin@vale.test"
        ).council
        try:
            yield from _serve(council, tmp_path_factory.mktemp("schemathesis"))
        finally:
            council_offboard(
                council=council, confirm_code=CODE, directory=tmp_path_factory.mktemp("vale")
            )


def _serve(council: Any, workdir: Path) -> Iterator[LiveAPI]:
    host = council.get_primary_domain().domain
    with schema_context(council.schema_name):
        social_care = organisation_create(
            name="Vale Children's Services", agency_type="social_care"
        )
        role = roles_active().first()
        assert role is not None, "a new council has the default roles"
        user = User.objects.create_user(
            "sol.social@vale.test", password="a long synthetic password", full_name="Sol"
        )
        practitioner = practitioner_profile_set(
            user=user, organisation=social_care, job_title="Social worker"
        )
        for given, family, born in [
            ("Ava", "Okafor", date(2015, 3, 14)),
            ("Ben", "Okafor", date(2017, 8, 2)),
            ("Cal", "Reyes", date(2012, 1, 30)),
        ]:
            person = person_create(
                actor=None, given_name=given, family_name=family, date_of_birth=born
            )
            involvement_add(actor=user, person=person, practitioner=practitioner, role=role)
        token = api_token_issue(user=user).token
        _source, import_token = source_system_create(actor=None, name="Vale LCS")
    with live_server(host) as base_url:
        port = base_url.rsplit(":", 1)[1]
        yield LiveAPI(f"http://127.0.0.1:{port}", host, token, import_token, workdir)


def _schemathesis_run(
    live_api: LiveAPI, credentials: dict[str, str], *only: str
) -> tuple[int, str]:
    """`st run` (schemathesis's own runner: every phase and every check) against the live
    server; its exit code and what it printed."""
    headers = [
        part for name, value in credentials.items() for part in ("--header", f"{name}: {value}")
    ]
    command = [
        str(Path(sys.executable).with_name("st")),
        "--config-file",
        str(CONFIG),
        "run",
        f"{live_api.base_url}/api/v1/schema/?format=json",
        "--url",
        live_api.base_url,
        "--header",
        f"Host: {live_api.host}",
        *headers,
        "--checks",
        "all",
        "--mode",
        "all",
        "--phases",
        "examples,coverage,fuzzing,stateful",
        "--max-examples",
        str(EXAMPLES_PER_OPERATION),
        "--seed",
        "14",
        "--workers",
        "1",
        "--request-timeout",
        str(REQUEST_TIMEOUT_S),
        "--max-response-time",
        str(REQUEST_TIMEOUT_S),
        *only,
    ]
    env = {**os.environ, "NO_COLOR": "1", "SCHEMATHESIS_HOOKS": ""}
    done = subprocess.run(
        command, capture_output=True, text=True, env=env, timeout=600, cwd=live_api.workdir
    )
    return done.returncode, done.stdout + done.stderr


def test_the_api_answers_as_its_schema_says(live_api: LiveAPI) -> None:
    """Every operation, with data that fits the schema and data that does not: no server
    error, bad input refused and good input accepted, and every answer (status, content
    type, headers, body) one the schema documents. The import endpoints are called with the
    source system's import token, every other with the practitioner's bearer token."""
    started = time.monotonic()
    runs = [
        # Every operation but the imports, with a practitioner's bearer token. Issuing a token
        # needs a signed-in browser session and its CSRF cookie, which `st run` cannot send
        # beside a session cookie it controls: here it is refused (403), as documented.
        (
            {"Authorization": f"Bearer {live_api.token}"},
            ["--exclude-path-regex", "^/api/v1/imports"],
        ),
        # The import endpoints, with the source system's import token.
        (
            {"Authorization": f"Bearer {live_api.import_token}"},
            ["--include-path-regex", "^/api/v1/imports"],
        ),
    ]
    for credentials, only in runs:
        code, output = _schemathesis_run(live_api, credentials, *only)
        print(output)
        assert code == 0, output
    print(f"schemathesis took {time.monotonic() - started:.0f}s")
