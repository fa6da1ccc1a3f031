"""A council brought back from an archive beside the original (`import_council` as a copy)
accepts none of the original's credentials: not a signed-in browser's session cookie, an
API token, an import token, an unused invitation, nor a password and authenticator. It
keeps the records and the users; its administrators get new invitations (issue 14,
point 9)."""

from __future__ import annotations

import io
import re
from urllib.parse import urlsplit

from django.conf import settings
from django.core.management import call_command
from django.test import Client
from django_otp.plugins.otp_static.models import StaticToken
from django_otp.plugins.otp_totp.models import TOTPDevice
from django_tenants.utils import schema_context

from accounts.factors import recovery_codes_issue
from accounts.models import User
from accounts.services import user_invite
from core.feeds import source_system_create
from core.models import Person, SourceSystem
from tenants.models import Council
from tests.api.client import token_for
from tests.personas import PASSWORD, Persona, sign_in

COPY_HOST = "brighton-copy.localhost"


def _copy(world, tmp_path) -> tuple[Council, str]:  # type: ignore[no-untyped-def]
    with schema_context("public"):
        call_command("export_council", "e06000043", output=tmp_path)
    (archive,) = tmp_path.glob("E06000043-*.pwa")
    out = io.StringIO()
    with schema_context("public"):
        call_command(
            "import_council",
            str(archive),
            code="E06000091",
            name="Brighton and Hove (copy)",
            slug="brighton-copy",
            stdout=out,
        )
        return Council.objects.get(code="E06000091"), out.getvalue()


def test_it_refuses_the_original_s_session_cookie_and_every_other_credential(
    world, scenario, tmp_path
) -> None:
    """Signed in at Brighton, with an API token, an import token and an invitation not yet
    used: after the copy is made, each still works at Brighton and none at the copy."""
    original = sign_in(world.brighton_social_worker)
    assert original.get("/").status_code == 200
    cookie = original.cookies[settings.SESSION_COOKIE_NAME].value
    api_token = token_for(scenario.social_worker, world.brighton)
    with schema_context(world.brighton.schema_name):
        _, import_token = source_system_create(actor=scenario.admin, name="Liquidlogic LCS")
        _, invitation = user_invite(
            email="new.starter@brighton.test", full_name="New Starter", role="practitioner"
        )
        recovery_codes_issue(user=User.objects.get(email=world.brighton_social_worker.email))

    copy, printed = _copy(world, tmp_path)

    stolen = Client(HTTP_HOST=COPY_HOST)
    stolen.cookies[settings.SESSION_COOKIE_NAME] = cookie
    page = stolen.get("/")
    assert page.status_code == 302 and page["Location"].startswith("/sign-in/")
    assert original.get("/").status_code == 200  # the original's own session is untouched

    copy_client = Client(HTTP_HOST=COPY_HOST)
    for token in (api_token, import_token):
        answer = copy_client.get("/api/v1/roles", HTTP_AUTHORIZATION=f"Bearer {token}")
        assert answer.status_code in (401, 403)
        imports = copy_client.post(
            "/api/v1/imports",
            b"record,source_id\n",
            content_type="text/csv",
            HTTP_AUTHORIZATION=f"Bearer {token}",
        )
        assert imports.status_code in (401, 403)
    assert copy_client.get(f"/invitation/{invitation}/").status_code == 404

    password = copy_client.post(
        "/sign-in/", {"email": world.brighton_social_worker.email, "password": PASSWORD}
    )
    assert password.status_code == 200  # the form again, with its error: no second step

    with schema_context(copy.schema_name):
        assert User.objects.count() == User.objects.filter(password__startswith="!").count()
        assert not SourceSystem.objects.exclude(token_hash="").exists()
        assert not StaticToken.objects.exists()  # nor a recovery code (decision 0019)
        people = Person.objects.count()
    with schema_context(world.brighton.schema_name):
        assert Person.objects.count() == people
        assert SourceSystem.objects.get(name="Liquidlogic LCS").token_hash

    # Each administrator is given a new invitation, which works at the copy only.
    links = re.findall(r"(http://brighton-copy\.localhost[^\s]*/invitation/[^\s/]+/)", printed)
    with schema_context(copy.schema_name):
        admins = User.objects.filter(role=User.Role.COUNCIL_ADMIN, is_active=True).count()
    assert admins and len(links) == admins
    path = urlsplit(links[0]).path
    assert copy_client.get(path).status_code == 200
    assert Client(HTTP_HOST=world.brighton.get_primary_domain().domain).get(path).status_code == 404


def test_an_administrator_of_the_copy_invites_a_colleague_again(world, scenario, tmp_path) -> None:
    """Someone who cannot sign in to the copy gets a new one-time link from the Users page;
    someone who can already sign in does not (the link would hand over their account). A
    source system gets a new import token from the Imports page."""
    with schema_context(world.brighton.schema_name):
        source_system_create(actor=None, name="Liquidlogic LCS")
    copy, printed = _copy(world, tmp_path)
    with schema_context(copy.schema_name):
        admin = User.objects.get(email=world.brighton_admin.email)
        admin.set_password(PASSWORD)
        admin.save()
        device = TOTPDevice.objects.create(user=admin, name="app", confirmed=True)
        nurse = User.objects.get(email=world.brighton_school_nurse.email)
    client = sign_in(
        Persona(
            email=admin.email,
            schema_name=copy.schema_name,
            host=COPY_HOST,
            device_key=device.key,
        )
    )
    page = client.post(f"/admin/users/{nurse.pk}/invitation/")
    link = re.search(r'data-testid="invitation-url">([^<]+)<', page.content.decode())
    assert link is not None and "/invitation/" in link.group(1)
    assert client.get("/invitation/" + link.group(1).split("/invitation/")[1]).status_code == 200
    refused = client.post(f"/admin/users/{admin.pk}/invitation/")
    assert b"can already sign in" in refused.content
    assert b'data-testid="invitation-url"' not in refused.content

    imports = client.get("/admin/imports/").content.decode()
    assert "Liquidlogic LCS (no import token: issue one)" in imports
    with schema_context(copy.schema_name):
        source = SourceSystem.objects.get(name="Liquidlogic LCS")
    renewed = client.post(f"/admin/imports/systems/{source.pk}/token/").content.decode()
    token = re.search(r'<code id="token">([^<]+)</code>', renewed)
    assert token is not None and "has a new import token" in renewed
    system = Client(HTTP_HOST=COPY_HOST, HTTP_AUTHORIZATION=f"Bearer {token.group(1)}")
    assert system.get("/api/v1/imports/999999").status_code == 404  # known, and no such run
    stranger = Client(HTTP_HOST=COPY_HOST, HTTP_AUTHORIZATION="Bearer pwi_made-up")
    assert stranger.get("/api/v1/imports/999999").status_code in (401, 403)
