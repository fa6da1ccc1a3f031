"""Setting up a council in a real browser: a new administrator signs in, is told set-up is
not finished, opens the checklist, uploads the schools extract and sees the report, and
the task is then completed. Data is committed for the live server (see test_browser.py)
and removed afterwards; the audit events stay, being append-only."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
from django_otp.plugins.otp_totp.models import TOTPDevice
from django_tenants.utils import schema_context

from accounts.models import User
from core.models import CouncilPolicy, Organisation
from tests.browser import chromium, committed, live_server, sign_in_page
from tests.personas import PASSWORD, Persona, World

SAMPLE = (
    Path(__file__).resolve().parents[2] / "core" / "registers_samples" / "gias_edubasealldata.csv"
)

SCREENSHOT = Path("/tmp/pw-setup-report.png")

pytestmark = pytest.mark.browser


def _admin(world: World, host: str, tag: str) -> Persona:
    with schema_context(world.brighton.schema_name):
        user = User.objects.create_user(
            f"setup-{tag}@brighton.test",
            password=PASSWORD,
            full_name=f"Sid Setup {tag}",
            role=User.Role.COUNCIL_ADMIN,
        )
        device = TOTPDevice.objects.create(user=user, name="app", confirmed=True)
    return Persona(
        email=user.email,
        schema_name=world.brighton.schema_name,
        host=host,
        device_key=device.key,
    )


def _remove(world: World, persona: Persona) -> None:
    with schema_context(world.brighton.schema_name):
        Organisation.objects.filter(register=Organisation.Register.GIAS).delete()
        CouncilPolicy.objects.filter(pk=1).update(gias_local_authority_codes="")
        TOTPDevice.objects.filter(user__email=persona.email).delete()
        User.objects.filter(email=persona.email).delete()


@pytest.fixture
def live_admin(world: World, db: None) -> Iterator[tuple[str, Persona]]:
    host = world.brighton.get_primary_domain().domain
    persona: Persona = committed(lambda: _admin(world, host, secrets.token_hex(3)))  # type: ignore[assignment]
    try:
        with live_server(host) as base_url:
            yield base_url, persona
    finally:
        committed(lambda: _remove(world, persona))


def test_an_administrator_sets_up_the_schools_from_the_checklist(live_admin) -> None:
    """Banner, task list, file upload, report, and the task marked completed."""
    base_url, persona = live_admin
    from playwright.sync_api import expect

    with chromium() as browser:
        page = browser.new_context(viewport={"width": 1100, "height": 900}).new_page()
        sign_in_page(page, base_url, persona)
        expect(page.get_by_text("Patchwork is not set up yet")).to_be_visible()
        page.get_by_role("link", name="Carry on setting up Patchwork").click()
        schools = page.locator(".govuk-task-list__item", has_text="Import your schools")
        expect(schools.locator(".govuk-task-list__status")).to_have_text("Incomplete")
        schools.get_by_role("link", name="Import your schools").click()

        page.get_by_role("button", name="Import").click()
        summary = page.locator(".govuk-error-summary")
        expect(summary).to_contain_text("Choose the file to upload")
        expect(summary).to_contain_text("Enter your council's local authority code")

        page.get_by_label("Your council's local authority code").fill("846")
        page.get_by_label("Upload the file").set_input_files(str(SAMPLE))
        page.get_by_role("button", name="Import").click()
        expect(page.get_by_role("heading", name="What the import did")).to_be_visible()
        added = page.locator(".govuk-summary-list__row").filter(
            has=page.get_by_text("Added", exact=True)
        )
        expect(added.locator("dd")).to_have_text("6")
        expect(page.locator(".govuk-table")).to_contain_text("Palmeira Gardens Infant School")
        page.screenshot(path=str(SCREENSHOT), full_page=True)

        page.get_by_role("link", name="Back to setting up Patchwork").click()
        schools = page.locator(".govuk-task-list__item", has_text="Import your schools")
        expect(schools.locator(".govuk-task-list__status")).to_have_text("Completed")
