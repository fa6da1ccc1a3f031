"""Issue 12's first day, in a real browser and from nothing: an operator onboards a new council
on the console; its administrator opens the invitation link the console shows, sets up an
account, follows the set-up checklist (the schools and NHS register extracts, the default
roles kept, a practitioner invited); that practitioner, a school nurse at one of the imported
schools, adds a child and her own involvement; a second practitioner, a GP at one of the
imported practices, finds the child by NHS number, states why, and sees the school nurse in
the network.

Everything after the operator's own account is done through the pages, in Chromium. Each
invitee enrols an authenticator from the key the invitation page shows, and their codes are
worked out from that key; a code works once, so signing in straight after enrolling waits
for the next 30-second step. The live server's address is the council's real address: the
site port is set to the live server's, as a deployment sets it to its own. The council is
offboarded afterwards (through the product's own offboarding, into a temporary folder)."""

from __future__ import annotations

import base64
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from django_otp.oath import totp

from accounts.models import User
from tenants.models import Council
from tenants.services import council_offboard
from tests.browser import chromium, committed, live_server, sign_in_page
from tests.factories import valid_nhs_number
from tests.personas import PASSWORD, Persona, make_persona

pytestmark = pytest.mark.browser

SAMPLES = Path(__file__).resolve().parents[2] / "core" / "registers_samples"
# The samples are Brighton and Hove's: local authority 846, postcode districts BN1 to BN3.
LA_CODE = "846"
POSTCODE_DISTRICTS = "BN1 BN2 BN3"
SCHOOL = "Seagull Lane Primary School"
# Organisations from a register are offered with their postcode (two may share a name).
SCHOOL_OFFERED = f"{SCHOOL} (BN1 9ZA)"
PRACTICE = "The Chain Pier Surgery"  # ODS names are in capitals; Patchwork tidies them
PRACTICE_OFFERED = f"{PRACTICE} (BN2 9ZN)"
CHILD_DOB = date(2018, 4, 9)
SCREENSHOT = Path("/tmp/pw-first-day-network.png")


@dataclass
class Live:
    platform_url: str
    operator: Persona
    council_name: str
    council_code: str
    slug: str
    tag: str

    @property
    def council_url(self) -> str:
        port = urlsplit(self.platform_url).port
        return f"http://{self.slug}.localhost:{port}"


def _remove(code: str, archives: Path) -> None:
    # The operator's account stays, as the session's own operator does: deleting a
    # platform user would look for council tables in the public schema.
    council = Council.objects.filter(code=code).first()
    if council is not None:
        council_offboard(council=council, confirm_code=code, directory=archives)


@pytest.fixture
def live(db: None, settings: Any, tmp_path: Path) -> Iterator[Live]:
    tag = secrets.token_hex(3)
    operator: Persona = committed(  # type: ignore[assignment]
        lambda: make_persona(
            None, f"ops-{tag}@platform.test", f"Oona Operator {tag}", User.Role.OPERATOR
        )
    )
    # A code nothing else uses: the council is committed for the live server.
    code = f"E069{secrets.randbelow(10**5):05d}"
    try:
        with live_server("localhost") as platform_url:
            # Links Patchwork builds (the administrator's invitation) point at this server.
            settings.SITE_PORT = str(urlsplit(platform_url).port)
            yield Live(
                platform_url=platform_url,
                operator=operator,
                council_name=f"Downland {tag}",
                council_code=code,
                slug=f"downland-{tag}",
                tag=tag,
            )
    finally:
        committed(lambda: _remove(code, tmp_path))


class Authenticator:
    """The invitee's authenticator app, set up from the key the invitation page shows."""

    def __init__(self, key_shown: str) -> None:
        self.key = base64.b32decode(key_shown)
        self.last_step = -1

    def code(self) -> str:
        """The code showing now; a code is accepted once, so wait for the next step after
        the last one used (and never take one in a step's last seconds)."""
        while True:
            now = time.time()
            if int(now // 30) > self.last_step and now % 30 < 27:
                break
            time.sleep(0.5)
        self.last_step = int(now // 30)
        return f"{totp(self.key, step=30, t0=0, digits=6, drift=0):06d}"


def _accept_invitation(page: Any, url: str, full_name: str) -> Authenticator:
    """Open the invitation link, set a password and enrol the authenticator."""
    from playwright.sync_api import expect

    page.goto(url)
    expect(page.get_by_role("heading", name="Set up your account")).to_be_visible()
    expect(page.get_by_text(f"Welcome, {full_name}")).to_be_visible()
    app = Authenticator(page.get_by_test_id("totp-secret").inner_text().strip())
    page.get_by_label("Create a password").fill(PASSWORD)
    page.get_by_label("Type the password again").fill(PASSWORD)
    page.get_by_label("Code from your authenticator app").fill(app.code())
    page.get_by_role("button", name="Create account").click()
    expect(page.get_by_role("heading", name="Your account is ready")).to_be_visible()
    return app


def _sign_in(page: Any, base_url: str, email: str, app: Authenticator) -> None:
    from playwright.sync_api import expect

    page.goto(f"{base_url}/sign-in/")
    page.get_by_label("Email address").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Continue").click()
    page.get_by_label("Code from your authenticator app").fill(app.code())
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{base_url}/")
    expect(page.get_by_role("heading", name="Patchwork for")).to_be_visible()


def _task_status(page: Any, label: str) -> Any:
    task = page.locator(".govuk-task-list__item", has_text=label)
    return task.locator(".govuk-task-list__status")


def _report_count(page: Any, key: str) -> Any:
    row = page.locator(".govuk-summary-list__row").filter(has=page.get_by_text(key, exact=True))
    return row.locator("dd")


def _profile_set(page: Any, organisation: str, job_title: str, phone: str) -> None:
    from playwright.sync_api import expect

    page.get_by_role("link", name="tell us where you work and how colleagues can reach you").click()
    expect(page.get_by_role("heading", name="Your profile")).to_be_visible()
    page.get_by_label("Organisation").select_option(label=organisation)
    page.get_by_label("Job title").fill(job_title)
    page.get_by_label("Work phone (optional)").fill(phone)
    page.get_by_role("button", name="Save profile").click()
    expect(page.get_by_text("Your profile is saved.")).to_be_visible()


def test_a_new_council_goes_from_onboarding_to_a_shared_network(live: Live) -> None:
    """Operator, administrator, and two practitioners, each in a browser of their own."""
    from playwright.sync_api import expect

    council = live.council_url
    admin_name, admin_email = f"Ada Admin {live.tag}", f"ada.admin-{live.tag}@downland.test"
    nurse_name, nurse_email = f"Nell Nurse {live.tag}", f"nell.nurse-{live.tag}@downland.test"
    gp_name, gp_email = f"Gus GP {live.tag}", f"gus.gp-{live.tag}@downland.test"
    surname = f"Fairweather{live.tag}"
    child = f"Poppy {surname}"
    nhs_number = valid_nhs_number()
    failures: list[str] = []

    def watch(response: Any) -> None:
        if response.status >= 500:
            failures.append(f"{response.status} {response.request.method} {response.url}")

    with chromium() as browser:

        def browser_of_their_own() -> Any:
            context = browser.new_context(viewport={"width": 1100, "height": 900})
            context.on("response", watch)
            page = context.new_page()
            page.set_default_timeout(15_000)
            return page

        # The operator onboards the council on the console, which shows the invitation link.
        operator = browser_of_their_own()
        sign_in_page(operator, live.platform_url, live.operator)
        expect(operator.get_by_role("heading", name="Councils")).to_be_visible()
        operator.get_by_role("link", name="Onboard a council").click()
        expect(operator.get_by_role("heading", name="Onboard a council")).to_be_visible()
        operator.get_by_label("Council name").fill(live.council_name)
        operator.get_by_label("ONS code").fill(live.council_code)
        operator.get_by_label("First administrator's full name").fill(admin_name)
        operator.get_by_label("First administrator's email address").fill(admin_email)
        operator.get_by_role("button", name="Onboard council").click()
        # The first council of a run may build the template schema first: tens of seconds
        # on a busy machine, well past the page's usual wait.
        expect(
            operator.get_by_role("heading", name=f"{live.council_name} is on Patchwork")
        ).to_be_visible(timeout=90_000)
        expect(operator.locator(".govuk-summary-list")).to_contain_text(f"{live.slug}.localhost")
        admin_link = operator.get_by_test_id("invitation-url").inner_text().strip()
        assert admin_link.startswith(f"{council}/invitation/"), admin_link
        operator.get_by_role("link", name="Back to councils").click()
        row = operator.get_by_role("row").filter(has_text=live.council_name)
        expect(row).to_contain_text(live.council_code)
        expect(row).to_contain_text("Active")

        # The administrator accepts, signs in, and is sent to the checklist.
        admin = browser_of_their_own()
        admin_app = _accept_invitation(admin, admin_link, admin_name)
        admin.get_by_role("link", name="Sign in").click()
        _sign_in(admin, council, admin_email, admin_app)
        expect(admin.get_by_text("Patchwork is not set up yet")).to_contain_text(
            "you have completed 1 of 8 tasks"
        )
        admin.get_by_role("link", name="Carry on setting up Patchwork").click()
        expect(
            admin.get_by_role("heading", name=f"Set up Patchwork for {live.council_name}")
        ).to_be_visible()
        expect(_task_status(admin, "Import your schools")).to_have_text("Incomplete")
        expect(_task_status(admin, "Import GP practices and NHS trusts")).to_have_text("Incomplete")
        expect(_task_status(admin, "Check the list of roles")).to_have_text("Completed")
        expect(_task_status(admin, "Invite your staff")).to_have_text("Incomplete")

        # Schools: the sample's six open Brighton and Hove schools; the closed one left out.
        admin.get_by_role("link", name="Import your schools").click()
        admin.get_by_label("Your council's local authority code").fill(LA_CODE)
        admin.get_by_label("Upload the file").set_input_files(
            str(SAMPLES / "gias_edubasealldata.csv")
        )
        admin.get_by_role("button", name="Import").click()
        expect(admin.get_by_role("heading", name="What the import did")).to_be_visible()
        expect(_report_count(admin, "Added")).to_have_text("6")
        expect(_report_count(admin, "Not added (closed already)")).to_have_text("1")
        expect(admin.locator(".govuk-table")).to_contain_text(SCHOOL)
        admin.get_by_role("link", name="Back to setting up Patchwork").click()

        # NHS: the GP practices file, then the trusts file, for the sample's districts.
        admin.get_by_role("link", name="Import GP practices and NHS trusts").click()
        admin.get_by_label("GP practices (epraccur)").check()
        admin.get_by_label("Postcode districts your council covers").fill(POSTCODE_DISTRICTS)
        admin.get_by_label("Upload the file").set_input_files(str(SAMPLES / "ods_epraccur.csv"))
        admin.get_by_role("button", name="Import").click()
        expect(admin.get_by_role("heading", name="What the import did")).to_be_visible()
        expect(_report_count(admin, "Added")).to_have_text("3")
        expect(_report_count(admin, "Not added (closed already)")).to_have_text("1")
        expect(admin.get_by_text("1 row outside your area was left out")).to_be_visible()
        expect(admin.locator(".govuk-table")).to_contain_text(PRACTICE)
        admin.get_by_label("NHS trusts (etr)").check()
        expect(admin.get_by_label("Postcode districts your council covers")).to_have_value(
            POSTCODE_DISTRICTS
        )
        admin.get_by_label("Upload the file").set_input_files(str(SAMPLES / "ods_etr.csv"))
        admin.get_by_role("button", name="Import").click()
        expect(admin.get_by_role("heading", name="What the import did")).to_be_visible()
        expect(_report_count(admin, "Added")).to_have_text("2")
        admin.get_by_role("link", name="Back to setting up Patchwork").click()
        expect(_task_status(admin, "Import your schools")).to_have_text("Completed")
        expect(_task_status(admin, "Import GP practices and NHS trusts")).to_have_text("Completed")
        expect(admin.get_by_text("You have completed 3 of 8 tasks")).to_be_visible()

        # The roles: the national defaults are there already; the administrator keeps them.
        admin.get_by_role("link", name="Check the list of roles").click()
        expect(admin.get_by_role("heading", name="Involvement roles")).to_be_visible()
        roles = admin.locator(".govuk-table")
        for role in ("Social worker", "School nurse", "GP"):
            expect(roles.get_by_role("cell", name=role, exact=True)).to_be_visible()
        admin.go_back()
        expect(_task_status(admin, "Check the list of roles")).to_have_text("Completed")

        # Staff: the users page shows each one-time invitation link once.
        admin.get_by_role("link", name="Invite your staff").click()
        expect(admin.get_by_role("heading", name="Users")).to_be_visible()
        links = {}
        for name, email in ((nurse_name, nurse_email), (gp_name, gp_email)):
            admin.get_by_label("Full name").fill(name)
            admin.get_by_label("Work email address").fill(email)
            admin.get_by_label("Role").select_option(label="Practitioner")
            admin.get_by_role("button", name="Send invitation").click()
            expect(admin.get_by_text(f"{name} is invited.")).to_be_visible()
            links[email] = admin.get_by_test_id("invitation-url").inner_text().strip()
            assert links[email].startswith(f"{council}/invitation/"), links[email]
        expect(admin.locator(".govuk-table")).to_contain_text(nurse_email)
        admin.goto(f"{council}/admin/set-up/")
        expect(_task_status(admin, "Invite your staff")).to_have_text("Completed")
        expect(admin.get_by_text("You have completed 4 of 8 tasks")).to_be_visible()

        # Both practitioners accept; the nurse signs in once her code has moved on.
        nurse = browser_of_their_own()
        nurse_app = _accept_invitation(nurse, links[nurse_email], nurse_name)
        gp = browser_of_their_own()
        gp_app = _accept_invitation(gp, links[gp_email], gp_name)
        _sign_in(nurse, council, nurse_email, nurse_app)
        _profile_set(nurse, SCHOOL_OFFERED, "School nurse", "01273 000100")

        # She searches first, finds no one, and adds the child from the search.
        nurse.goto(f"{council}/search/")
        nurse.get_by_label("Surname").fill(surname)
        nurse.get_by_label("Day").fill(str(CHILD_DOB.day))
        nurse.get_by_label("Month").fill(str(CHILD_DOB.month))
        nurse.get_by_label("Year").fill(str(CHILD_DOB.year))
        nurse.get_by_label("First name").fill("Poppy")
        nurse.get_by_role("button", name="Search", exact=True).click()
        expect(nurse.get_by_role("heading", name="0 people found")).to_be_visible()
        nurse.get_by_role("link", name="Add this person").click()
        expect(nurse.get_by_role("heading", name="Add a person")).to_be_visible()
        expect(nurse.get_by_label("Surname")).to_have_value(surname)
        nurse.get_by_label("Female").check()
        nurse.get_by_label("NHS number (optional)").fill(nhs_number)
        nurse.get_by_label("Postcode (optional)").fill("BN1 9ZA")
        nurse.get_by_role("button", name="Continue").click()
        expect(nurse.get_by_role("heading", name="Record added")).to_be_visible()
        expect(nurse.locator(".govuk-panel__body")).to_have_text(child)
        nurse.get_by_role("link", name="Add my involvement").click()
        nurse.get_by_label("Role").select_option(label="School nurse")
        nurse.get_by_role("button", name="Add involvement").click()
        expect(nurse.get_by_text(f"You are now on the team around {child}")).to_be_visible()

        # The GP signs in, finds the child by NHS number, says why, and sees the network.
        _sign_in(gp, council, gp_email, gp_app)
        _profile_set(gp, PRACTICE_OFFERED, "GP", "01273 000200")
        gp.goto(f"{council}/")
        gp.get_by_label("Find a person by NHS number").fill(nhs_number)
        gp.get_by_role("button", name="Search", exact=True).click()
        expect(gp.get_by_role("heading", name="1 person found")).to_be_visible()
        gp.get_by_role("link", name=child).click()
        expect(
            gp.get_by_role("heading", name="Tell us why you need to see this record")
        ).to_be_visible()
        gp.get_by_label("About to start work with this person").check()
        gp.get_by_label("Say in a sentence what this is about").fill(
            "Poppy is newly registered with the practice."
        )
        gp.get_by_role("button", name="Open the record").click()
        expect(gp.get_by_role("heading", name=child)).to_be_visible()
        expect(gp.get_by_text("You opened this record having stated a reason")).to_be_visible()
        team = gp.locator(".pw-team-list")
        member = team.locator(".pw-member", has_text=nurse_name)
        expect(member).to_be_visible()
        expect(member).to_contain_text("School nurse")
        expect(member).to_contain_text(SCHOOL)
        expect(member).to_contain_text("01273 000100")
        gp.screenshot(path=str(SCREENSHOT), full_page=True)
    assert failures == []
