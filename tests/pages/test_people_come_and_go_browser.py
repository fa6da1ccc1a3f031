"""Issue 13's people who come and go, in a real browser against a live server: an
administrator invites people from a spreadsheet and each invitation arrives by email (a
real SMTP server the test runs); one invitee accepts through the emailed link; another's
invitation is resent (the old link stops working) and then revoked. A lead professional
leaves: the hand-over is enforced, the team is told, and the leaver's open session and API
token are refused on the very next request.

Each test onboards a council of its own (committed, as the live server's threads see only
committed rows) and `committed_restore` drops it afterwards."""

from __future__ import annotations

import base64
import json
import re
import secrets
import socketserver
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from email import message_from_bytes
from email.message import Message
from typing import Any
from urllib.parse import urlsplit

import pytest
from django_otp.oath import totp
from django_tenants.utils import schema_context

from accounts.models import User
from core.api.auth import api_token_issue
from core.models import Involvement, InvolvementRole, Organisation
from core.services import practitioner_profile_set
from tenants.models import Council
from tenants.services import council_onboard
from tests.browser import chromium, committed, live_server, sign_in_page
from tests.factories import PersonFactory
from tests.federation.live import committed_restore, committed_snapshot
from tests.personas import PASSWORD, Persona, make_persona
from tests.teamwork.conftest import FlakySmtp, _SmtpHandler

pytestmark = pytest.mark.browser


@dataclass
class LiveCouncil:
    base_url: str
    council: Council
    admin: Persona
    smtp: FlakySmtp
    tag: str

    def emails_to(self, address: str) -> list[Message]:
        messages = [message_from_bytes(raw) for raw in self.smtp.received]
        return [m for m in messages if m["To"] == address]


def _link_in(message: Message) -> str:
    body = message.get_payload(decode=True).decode()  # type: ignore[union-attr]
    return re.search(r"https?://\S+/invitation/\S+/", body).group(0)  # type: ignore[union-attr]


@pytest.fixture
def smtp(settings: Any) -> Iterator[FlakySmtp]:
    """The suite's small SMTP server on 127.0.0.1; every email goes to it."""
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _SmtpHandler)
    server.daemon_threads = True
    state = FlakySmtp(port=server.server_address[1])
    server.state = state  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", state.port
    settings.EMAIL_USE_TLS, settings.EMAIL_HOST_USER, settings.EMAIL_HOST_PASSWORD = False, "", ""
    settings.NOTIFY_API_KEY = ""
    yield state
    server.shutdown()
    server.server_close()


@pytest.fixture
def live(db: None, settings: Any, smtp: FlakySmtp) -> Iterator[LiveCouncil]:
    snapshot = committed(committed_snapshot)
    tag = secrets.token_hex(3)

    def onboard() -> tuple[Council, Persona]:
        council = council_onboard(
            name=f"Weald {tag}",
            code=f"E069{secrets.randbelow(10**5):05d}",
            admin_email=f"first-{tag}@weald.test",
            slug=f"weald-{tag}",
        ).council
        admin = make_persona(
            council, f"ada-{tag}@weald.test", f"Ada Admin {tag}", User.Role.COUNCIL_ADMIN
        )
        return council, admin

    council, admin = committed(onboard)  # type: ignore[misc]
    try:
        with live_server(council.get_primary_domain().domain) as base_url:
            settings.SITE_PORT = str(urlsplit(base_url).port)
            yield LiveCouncil(base_url, council, admin, smtp, tag)
    finally:
        committed(lambda: committed_restore(snapshot))


class Authenticator:
    """The invitee's authenticator app, set up from the key the invitation page shows."""

    def __init__(self, key_shown: str) -> None:
        self.key = base64.b32decode(key_shown)

    def code(self) -> str:
        while time.time() % 30 > 27:  # never a code in its step's last seconds
            time.sleep(0.5)
        return f"{totp(self.key, step=30, t0=0, digits=6, drift=0):06d}"


def _page(browser: Any, failures: list[str]) -> Any:
    context = browser.new_context(viewport={"width": 1100, "height": 900})
    context.on(
        "response",
        lambda r: failures.append(f"{r.status} {r.url}") if r.status >= 500 else None,
    )
    page = context.new_page()
    page.set_default_timeout(15_000)
    return page


def test_a_spreadsheet_of_invitations_is_emailed_accepted_resent_and_revoked(
    live: LiveCouncil,
) -> None:
    from playwright.sync_api import expect

    tag = live.tag

    def school() -> None:
        with schema_context(live.council.schema_name):
            Organisation.objects.create(name=f"Ashdown School {tag}", agency_type="school")

    committed(school)
    tess, tess_email = f"Tess O'Teacher {tag}", f"tess-{tag}@weald.test"
    ravi, ravi_email = f"Ravi Reader {tag}", f"ravi-{tag}@weald.test"
    sheet = (
        "name,email,organisation,role,job title\n"
        f"{tess},{tess_email},Ashdown School {tag},Practitioner,Teacher\n"
        f"{ravi},{ravi_email},Ashdown School {tag},Practitioner,Teaching assistant\n"
        f"Nobody {tag},nobody-{tag}@weald.test,Atlantis {tag},Practitioner,Teacher\n"
    )
    failures: list[str] = []
    with chromium() as browser:
        admin = _page(browser, failures)
        sign_in_page(admin, live.base_url, live.admin)
        admin.goto(f"{live.base_url}/admin/users/")
        admin.get_by_role("link", name="Invite people from a spreadsheet").click()
        admin.get_by_label("CSV file").set_input_files(
            {"name": "people.csv", "mimeType": "text/csv", "buffer": sheet.encode()}
        )
        admin.get_by_role("button", name="Upload and invite").click()
        expect(admin.get_by_test_id("report-summary")).to_have_text(
            "2 invited by email, 1 not invited."
        )
        expect(admin.get_by_test_id("report-row").nth(2)).to_contain_text(
            f'No open organisation is called "Atlantis {tag}"'
        )
        assert [m["To"] for m in live.emails_to(tess_email)] == [tess_email]
        assert live.emails_to(f"nobody-{tag}@weald.test") == []

        # Tess accepts through the link in her email.
        tess_page = _page(browser, failures)
        tess_page.goto(_link_in(live.emails_to(tess_email)[0]))
        expect(tess_page.get_by_text(f"Welcome, {tess}")).to_be_visible()
        app = Authenticator(tess_page.get_by_test_id("totp-secret").inner_text().strip())
        tess_page.get_by_label("Create a password").fill(PASSWORD)
        tess_page.get_by_label("Type the password again").fill(PASSWORD)
        tess_page.get_by_label("Code from your authenticator app").fill(app.code())
        tess_page.get_by_role("button", name="Create account").click()
        expect(tess_page.get_by_role("heading", name="Your account is ready")).to_be_visible()

        # Ravi's first email went astray: the administrator resends, the old link dies.
        first_link = _link_in(live.emails_to(ravi_email)[0])
        admin.goto(f"{live.base_url}/admin/invitations/")
        admin.get_by_role("link", name=ravi).click()
        expect(admin.get_by_test_id("account-state")).to_have_text("Invitation sent")
        admin.get_by_role("button", name="Resend invitation").click()
        expect(admin.get_by_text(f"A new invitation is emailed to {ravi_email}.")).to_be_visible()
        history = admin.get_by_test_id("invitation-history")
        expect(history.nth(0)).to_contain_text("Sent")
        expect(history.nth(1)).to_contain_text("Revoked")  # replaced by the one resent
        emails = live.emails_to(ravi_email)
        assert len(emails) == 2
        second_link = _link_in(emails[1])
        assert second_link != first_link
        ravi_page = _page(browser, failures)
        ravi_page.goto(first_link)
        expect(ravi_page.get_by_text("does not work")).to_be_visible()
        ravi_page.goto(second_link)
        expect(ravi_page.get_by_text(f"Welcome, {ravi}")).to_be_visible()

        # Then it is revoked: the new link opens nothing either.
        admin.get_by_role("button", name="Revoke invitation").click()
        expect(admin.get_by_text(f"The invitation for {ravi} is revoked.")).to_be_visible()
        expect(admin.get_by_test_id("account-state")).to_have_text("Invitation revoked")
        ravi_page.goto(second_link)
        expect(ravi_page.get_by_text("does not work")).to_be_visible()
        # Both of Ravi's invitations are listed with their state, newest first.
        expect(admin.get_by_test_id("invitation-history")).to_have_count(2)
        expect(admin.get_by_test_id("invitation-history").nth(0)).to_contain_text("Revoked")
        expect(admin.get_by_test_id("invitation-history").nth(1)).to_contain_text("Revoked")

        admin.goto(f"{live.base_url}/admin/invitations/")
        rows = admin.get_by_test_id("invitation-row")
        expect(rows.filter(has_text=tess_email)).to_contain_text("Active")
        expect(rows.filter(has_text=ravi_email)).to_contain_text("Invitation revoked")
        # Every step is in the council's audit export (fetched with the admin's session).
        exported = admin.evaluate(
            "async url => (await fetch(url)).text()", "/admin/audit/export.csv"
        )
        for action in [
            "user_invited",
            "users_invited_from_file",
            "invitation_accepted",
            "invitation_resent",
            "invitation_revoked",
        ]:
            assert f",{action}," in exported, action
    assert failures == []


@dataclass
class Team:
    child: str
    child_id: int
    leaver: Persona
    leaver_name: str
    successor_label: str
    nurse: Persona
    token: str


def _team(live: LiveCouncil) -> Team:
    tag = live.tag
    with schema_context(live.council.schema_name):
        social_care = Organisation.objects.create(
            name=f"Weald Children's Services {tag}", agency_type="social_care"
        )
        school = Organisation.objects.create(name=f"Ashdown School {tag}", agency_type="school")
        cp = InvolvementRole.objects.create(name=f"Child protection social worker {tag}")
        nurse_role = InvolvementRole.objects.create(name=f"School nurse {tag}")
    people = {
        "leaver": (f"lee-{tag}@weald.test", f"Lee O'Leaver {tag}", social_care, "Social worker"),
        "successor": (f"sue-{tag}@weald.test", f"Sue Successor {tag}", social_care, "Senior SW"),
        "nurse": (f"nat-{tag}@weald.test", f"Nat Nurse {tag}", school, "School nurse"),
    }
    personas: dict[str, Persona] = {}
    users: dict[str, User] = {}
    for key, (email, name, organisation, title) in people.items():
        personas[key] = make_persona(live.council, email, name, User.Role.PRACTITIONER)
        with schema_context(live.council.schema_name):
            users[key] = User.objects.get(email=email)
            practitioner_profile_set(user=users[key], organisation=organisation, job_title=title)
    with schema_context(live.council.schema_name):
        child = PersonFactory(
            given_name="Mia", family_name=f"Hartley{tag}", date_of_birth=date(2016, 1, 2)
        )
        Involvement.objects.create(
            person=child,
            practitioner=users["leaver"].practitioner,
            organisation=social_care,
            role=cp,
            start_date=date(2025, 1, 6),
            lead_professional=True,
        )
        Involvement.objects.create(
            person=child,
            practitioner=users["nurse"].practitioner,
            organisation=school,
            role=nurse_role,
            start_date=date(2025, 2, 3),
        )
        token = api_token_issue(user=users["leaver"]).token
    return Team(
        child=child.full_name,
        child_id=child.pk,
        leaver=personas["leaver"],
        leaver_name=people["leaver"][1],
        successor_label=f"Sue Successor {tag}, Senior SW (Weald Children's Services {tag})",
        nurse=personas["nurse"],
        token=token,
    )


def _api_status(url: str, token: str) -> int:
    """The status of a system client's GET with `token`: to 127.0.0.1, naming the council's
    host (Python, unlike Chromium, does not resolve `*.localhost`)."""
    parts = urlsplit(url)
    request = urllib.request.Request(
        f"http://127.0.0.1:{parts.port}{parts.path}",
        headers={"Authorization": f"Bearer {token}", "Host": parts.netloc},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            json.load(response)
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


def test_a_lead_professional_leaves_hands_over_and_is_shut_out_at_once(live: LiveCouncil) -> None:
    from playwright.sync_api import expect

    team: Team = committed(lambda: _team(live))  # type: ignore[assignment]
    person_api = f"{live.base_url}/api/v1/people/{team.child_id}"
    assert _api_status(person_api, team.token) == 200
    failures: list[str] = []
    with chromium() as browser:
        leaver = _page(browser, failures)
        sign_in_page(leaver, live.base_url, team.leaver)
        admin = _page(browser, failures)
        sign_in_page(admin, live.base_url, live.admin)
        admin.goto(f"{live.base_url}/admin/users/")
        admin.get_by_role("link", name=team.leaver_name).click()
        expect(admin.get_by_text(f"{team.child}: ")).to_contain_text("lead professional")
        admin.get_by_role("link", name="Deactivate account").click()

        # Without a successor for the lead professional's role, nothing happens.
        admin.get_by_role("button", name="Deactivate account").click()
        expect(admin.locator(".govuk-error-summary")).to_contain_text(
            f"{team.leaver_name} is the lead professional for {team.child}: choose who takes over"
        )
        leaver.goto(f"{live.base_url}/")
        expect(leaver.get_by_role("heading", name="Patchwork for")).to_be_visible()

        admin.get_by_label(re.compile(r"lead professional$")).select_option(
            label=team.successor_label
        )
        admin.get_by_role("button", name="Deactivate account").click()
        expect(
            admin.get_by_text("account is deactivated: they are signed out everywhere")
        ).to_be_visible()
        expect(admin.get_by_test_id("account-state")).to_have_text("Deactivated")

        # The leaver's open session and API token are refused on the very next request.
        leaver.goto(f"{live.base_url}/")
        expect(leaver).to_have_url(re.compile(r"/sign-in/"))
        assert _api_status(person_api, team.token) == 401

        # The team hears who takes over.
        nurse = _page(browser, failures)
        sign_in_page(nurse, live.base_url, team.nurse)
        nurse.goto(f"{live.base_url}/my/notifications/")
        expect(nurse.get_by_text("takes over as", exact=False)).to_contain_text(
            f"Sue Successor {live.tag} takes over"
        )
    assert failures == []
