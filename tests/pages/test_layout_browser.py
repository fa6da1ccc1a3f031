"""Issue 15's "done when", in Chromium: every page a practitioner, an administrator and an
operator reach (federation pages included) fits a phone (375 px) and a desktop (1280 px)
with no sideways scrolling, and axe-core (from npm, read from node_modules: nothing from the
internet) finds no violation of any impact on it; and the child of a large family prints
on at most two A4 pages with the printed-by header.

Everything lives in a council onboarded for this module and committed (the live server's
threads see only committed rows), removed afterwards with `committed_restore`. One browser;
each persona signs in once and walks every page in that signed-in context."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from django.utils import timezone
from django_tenants.utils import schema_context
from playwright.sync_api import expect

from accounts.models import User
from core.audit import audit_record
from core.models import FamilyRelationship, Involvement, InvolvementRole, Organisation, Person
from core.services import (
    contact_request_send,
    involvement_add,
    involvement_end,
    organisation_create,
    person_create,
    practitioner_profile_set,
    relationship_add,
    role_create,
)
from federation import services as federation_services
from federation.directory.models import council_federation_id
from teamwork.meetings import meeting_schedule
from teamwork.team_tasks import task_create
from tenants.models import Council
from tenants.services import council_onboard
from tests.browser import chromium, live_server, sign_in_page
from tests.factories import valid_nhs_number
from tests.federation.live import committed_restore, committed_snapshot
from tests.personas import Persona, World, make_persona

pytestmark = [pytest.mark.browser, pytest.mark.django_db]

AXE = Path(__file__).resolve().parents[2] / "node_modules" / "axe-core" / "axe.min.js"
WIDTHS = (375, 1280)  # each page is checked by axe at these widths
NARROWEST = 320  # and for sideways scrolling at this one too
PHONE_SCREENSHOT = Path("/tmp/pw-person-375.png")  # the child's page, as a phone shows it
# A long organisation name, as real ones are: the picture wraps it, never cuts it short.
LONG_ORGANISATION = "Brighton and Hove School Nursing Service for Children and Young People"


@dataclass
class Walk:
    council: Council
    base_url: str
    platform_url: str
    practitioner: Persona
    practitioner_name: str
    admin: Persona
    operator: Persona
    child: Person
    ids: dict[str, int | str] = field(default_factory=dict)


def _build(world: World) -> tuple[Council, dict[str, Any]]:
    """A freshly onboarded council with the largest family the demo makes (four children,
    two parents), each child with a full team and past involvements, and the records the
    team's pages show: a task, a meeting, a request for contact, views, an agreement."""
    council = council_onboard(
        name="Isle of Wight", code="E06000046", admin_email="first.admin@wight.test"
    ).council
    made: dict[str, Any] = {}
    made["admin"] = make_persona(
        council, "admin@wight.test", "Ada Administrator", User.Role.COUNCIL_ADMIN
    )
    made["practitioner"] = make_persona(
        council, "sol.social@wight.test", "Sol O'Sullivan-Social", User.Role.PRACTITIONER
    )
    with schema_context(council.schema_name):
        social = organisation_create(
            name="Isle of Wight Children's Services", agency_type="social_care"
        )
        nursing = organisation_create(name=LONG_ORGANISATION, agency_type="school_nursing")
        school = organisation_create(
            name="Carisbrooke Church of England Primary School", agency_type="school"
        )
        gp = organisation_create(name="The Esplanade Surgery", agency_type="gp")
        police = organisation_create(
            name="Hampshire and Isle of Wight Constabulary", agency_type="police"
        )
        housing = organisation_create(name="Island Housing Partnership", agency_type="housing")
        camhs = organisation_create(name="Island CAMHS", agency_type="mental_health")
        Organisation.objects.filter(pk=camhs.pk).update(sensitive_service=True)

        def role(name: str, child_protection: bool = False) -> InvolvementRole:
            # A new council starts with the default roles; the others are added here.
            existing = InvolvementRole.objects.filter(name=name).first()
            return existing or role_create(name=name, child_protection=child_protection)

        cp = role("Child protection social worker", child_protection=True)
        assert cp.child_protection
        roles = {
            name: role(name)
            for name in (
                "School nurse",
                "Class teacher and designated safeguarding lead",
                "General practitioner",
                "Police officer",
                "Housing officer",
                "CAMHS clinician",
                "Adult social worker",
            )
        }

        def staff(email: str, name: str, organisation: Organisation, title: str) -> User:
            user = User.objects.filter(email=email).first() or User.objects.create_user(
                email, password="x" * 20, full_name=name
            )
            practitioner_profile_set(
                user=user,
                organisation=organisation,
                job_title=title,
                work_phone="01983 821000",
                child_protection=organisation == social,
            )
            return user

        lead = staff("sol.social@wight.test", "", social, "Senior social worker")
        made["practitioner_name"] = lead.full_name
        admin = staff("admin@wight.test", "", social, "Patchwork administrator")
        nurse = staff("nia.nurse@wight.test", "Nia Nightingale-Ferguson", nursing, "School nurse")
        teacher = staff("tom.teacher@wight.test", "Tomasz Wiśniewski-Brown", school, "Teacher")
        doctor = staff("gail.gp@wight.test", "Dr Gail Okonkwo", gp, "GP partner")
        officer = staff("pc.penny@wight.test", "PC Penelope Marchetti", police, "Police officer")
        housing_officer = staff("hal.housing@wight.test", "Hal Ahmed", housing, "Housing officer")
        clinician = staff("cam.camhs@wight.test", "Cam Clinician", camhs, "Clinician")
        former = staff("fay.former@wight.test", "Fay Former-Worker", social, "Social worker")

        def born(year: int, given: str, sex: str = Person.Sex.FEMALE) -> Person:
            return person_create(
                actor=None,
                given_name=given,
                family_name="Fitzgerald-Oyelaran",
                date_of_birth=date(year, 3, 14),
                sex=sex,
                nhs_number=valid_nhs_number(),
                postcode="PO30 1UD",
            )

        children = [born(2014, "Maisie"), born(2016, "Jayden", Person.Sex.MALE)]
        children += [born(2019, "Amelia-Rose"), born(2022, "Oluwaseun", Person.Sex.MALE)]
        parents = [born(1988, "Grace"), born(1985, "Daniel", Person.Sex.MALE)]
        for child in children:
            for parent in parents:
                relationship_add(
                    actor=None, person=child, relative=parent, kind=FamilyRelationship.Kind.PARENT
                )
        for older, younger in zip(children, children[1:], strict=False):
            relationship_add(
                actor=None, person=older, relative=younger, kind=FamilyRelationship.Kind.SIBLING
            )
        long_ago = timezone.localdate() - timedelta(days=400)
        for child in children:
            involvement_add(
                actor=lead,
                person=child,
                practitioner=lead.practitioner,
                role=cp,
                lead_professional=True,
                last_contact_date=timezone.localdate(),
            )
            for user, role in (
                (nurse, "School nurse"),
                (teacher, "Class teacher and designated safeguarding lead"),
                (doctor, "General practitioner"),
                (officer, "Police officer"),
                (clinician, "CAMHS clinician"),
            ):
                involvement_add(
                    actor=user, person=child, practitioner=user.practitioner, role=roles[role]
                )
            ended = involvement_add(
                actor=former,
                person=child,
                practitioner=former.practitioner,
                role=cp,
                start_date=long_ago,
            )
            involvement_end(actor=former, involvement=ended, reason="transferred")
        for parent in parents:
            for user, role in (
                (housing_officer, "Housing officer"),
                (former, "Adult social worker"),
            ):
                involvement_add(
                    actor=user, person=parent, practitioner=user.practitioner, role=roles[role]
                )
        child = children[0]
        for viewer in (nurse, teacher, doctor, officer, housing_officer):
            audit_record(actor=viewer, action="person_viewed", person_id=child.pk)
        task_create(
            actor=lead,
            person=child,
            assignee=nurse,
            text="Book the health assessment before the review conference",
            due_date=timezone.localdate() + timedelta(days=7),
        )
        london = ZoneInfo("Europe/London")
        day = timezone.localdate() + timedelta(days=10)
        meeting = meeting_schedule(
            organiser=lead,
            person=child,
            title="Core group",
            starts_at=datetime.combine(day, time(10), tzinfo=london),
            ends_at=datetime.combine(day, time(11), tzinfo=london),
            place="Isle of Wight Council, County Hall, Newport",
        )
        contact_request_send(
            user=lead,
            person=child,
            organisation=camhs,
            message="Maisie mentioned appointments; could we talk before the conference?",
        )
        agreement = federation_services.agreement_propose(
            actor=admin,
            partner_id=council_federation_id(world.staffordshire),
            purposes=["safeguarding"],
            shareable_roles=[cp.name],
            legal_basis="public_task",
            demographic_matching=True,
            valid_from=timezone.localdate(),
            valid_until=timezone.localdate() + timedelta(days=365),
        )
        involvement = Involvement.objects.get(person=child, practitioner=lead.practitioner)
        made["child"] = child
        made["ids"] = {
            "child": child.pk,
            "sibling": children[1].pk,
            "parent": parents[0].pk,
            "involvement": involvement.pk,
            "meeting": meeting.pk,
            "organisation": nursing.pk,
            "role": cp.pk,
            "agreement": agreement.agreement_id,
            "colleague": nurse.pk,
        }
    return council, made


@pytest.fixture(scope="module")
def walk(world: World, django_db_blocker: Any) -> Iterator[Walk]:
    """The council, its people and a live server, committed for the module's tests."""
    with django_db_blocker.unblock():
        snapshot = committed_snapshot()
        try:
            council, made = _build(world)
            host = council.get_primary_domain().domain
            with live_server(host) as base_url:
                port = base_url.rsplit(":", 1)[1]
                yield Walk(
                    council=council,
                    base_url=base_url,
                    platform_url=f"http://localhost:{port}",
                    practitioner=made["practitioner"],
                    practitioner_name=made["practitioner_name"],
                    admin=made["admin"],
                    operator=world.operator,
                    child=made["child"],
                    ids=made["ids"],
                )
        finally:
            committed_restore(snapshot)


def _practitioner_pages(ids: dict[str, Any]) -> list[str]:
    child, sibling = ids["child"], ids["sibling"]
    return [
        "/",
        "/search/",
        "/search/?family_name=Fitzgerald-Oyelaran",
        "/search/break-glass/",
        f"/people/{child}/",
        f"/people/{child}/family/",
        f"/people/{child}/views/",
        f"/people/{sibling}/",
        f"/people/{child}/edit/",
        f"/people/{child}/death/",
        f"/people/{child}/family/add/",
        f"/people/{child}/involvements/new/",
        f"/people/{child}/contact-requests/new/",
        f"/people/{child}/timeline/",
        f"/people/{child}/family-timeline/",
        f"/people/{child}/tasks/new/",
        f"/people/{child}/messages/new/",
        f"/people/{child}/meetings/new/",
        f"/meetings/{ids['meeting']}/",
        f"/meetings/{ids['meeting']}/change/",
        f"/federation/people/{child}/other-councils/",
        "/federation/councils/",
        f"/involvements/{ids['involvement']}/",
        f"/involvements/{ids['involvement']}/update/",
        f"/involvements/{ids['involvement']}/end/",
        "/people/new/",
        "/tasks/",
        "/my/involvements/",
        "/my/profile/",
        "/my/notifications/",
        "/my/contact-requests/",
        "/notifications/preferences/",
        "/my/recovery-codes/",
        "/no-such-page/",
        "/admin/users/",  # not theirs: the page that says so
    ]


def _admin_pages(ids: dict[str, Any]) -> list[str]:
    return [
        "/",
        "/admin/users/",
        f"/admin/users/{ids['colleague']}/",
        f"/admin/users/{ids['colleague']}/move/",
        f"/admin/users/{ids['colleague']}/deactivate/",
        "/admin/users/invite-file/",
        "/admin/invitations/",
        "/admin/locked-accounts/",
        "/admin/second-factors/",
        "/admin/single-sign-on/",
        "/admin/organisations/",
        f"/admin/organisations/{ids['organisation']}/",
        "/admin/roles/",
        f"/admin/roles/{ids['role']}/",
        "/admin/email/problems/",
        "/admin/email/outbox/",
        "/admin/audit/",
        "/admin/merges/",
        "/admin/merges/new/",
        "/admin/people/subject-access/",
        f"/admin/people/{ids['child']}/subject-access/",
        "/admin/imports/",
        "/admin/imports/systems/new/",
        "/admin/set-up/",
        "/admin/set-up/policy/",
        "/admin/set-up/schools/",
        "/admin/set-up/nhs/",
        "/admin/set-up/sensitive-services/",
        "/federation/agreements/",
        "/federation/agreements/new/",
        f"/federation/agreements/{ids['agreement']}/",
    ]


OPERATOR_PAGES = [
    "/",
    "/councils/new/",
    "/federation/peers/",
    "/federation/peers/add/",
    "/federation/outbox/",
    "/admin/locked-accounts/",
    "/admin/second-factors/",
    "/my/recovery-codes/",
    "/no-such-page/",
]
SIGNED_OUT_PAGES = ["/sign-in/"]
# Forms sent empty, by whom: the error summary, the errors beside the fields, the title.
FORMS_SENT_EMPTY = {
    "": [("/sign-in/", "Continue")],
    "sol.social@wight.test": [
        ("/people/{child}/tasks/new/", "Set the task"),
        ("/people/{child}/meetings/new/", "Send the invitations"),
        ("/people/{child}/messages/new/", "Send the message"),
        ("/people/new/", "Continue"),
    ],
    "admin@wight.test": [("/federation/agreements/new/", "Propose agreement")],
    "ops@platform.test": [("/councils/new/", "Onboard council")],
}


def _inspect(page: Any, url: str, problems: list[str], *, screenshot: bool = False) -> None:
    """The page as it stands, at each width: sideways scrolling, and every axe violation."""
    for width in (NARROWEST, *WIDTHS):
        page.set_viewport_size({"width": width, "height": 900})
        wide = page.evaluate("() => [document.documentElement.scrollWidth, window.innerWidth]")
        if wide[0] > wide[1]:
            problems.append(f"{url} at {width}px: the page is {wide[0]}px wide")
        if width not in WIDTHS:
            continue
        if width == WIDTHS[0] and screenshot:
            page.screenshot(path=str(PHONE_SCREENSHOT), full_page=True)
        result = page.evaluate("() => axe.run(document, {resultTypes: ['violations']})")
        for violation in result["violations"]:
            where = "; ".join(str(node["target"]) for node in violation["nodes"][:3])
            problems.append(
                f"{url} at {width}px: axe {violation['id']} ({violation['impact']}): {where}"
            )


def _check(
    page: Any, url: str, problems: list[str], *, submit: str = "", screenshot: bool = False
) -> None:
    """Open `url` and inspect it; with `submit`, first send its form empty (pressing the
    button so named) and check the page answers in the GOV.UK error pattern."""
    page.set_viewport_size({"width": WIDTHS[-1], "height": 900})
    try:
        response = page.goto(url)
        if submit:
            with page.expect_navigation():
                page.get_by_role("button", name=submit).click()
    except Exception as exc:  # noqa: BLE001 (noted, and the walk goes on)
        problems.append(f"{url}: {str(exc).splitlines()[0]}")
        return
    status = response.status if response else 0
    if status >= 500:
        problems.append(f"{url}: HTTP {status}")
        return
    if submit:
        url = f"{url} (sent empty)"
        if not page.title().startswith("Error: "):
            problems.append(f"{url}: the title does not start with 'Error: '")
        summary_links = page.locator(".govuk-error-summary a")
        if summary_links.count() == 0:
            problems.append(f"{url}: no error summary linking to the fields")
        for index in range(summary_links.count()):
            target = summary_links.nth(index).get_attribute("href") or ""
            if page.locator(target).count() != 1:
                problems.append(f"{url}: the summary links to {target}, which is not there")
        if page.locator(".govuk-error-message").count() == 0:
            problems.append(f"{url}: no error beside a field")
    _inspect(page, url, problems, screenshot=screenshot)


def _sign_in_inspecting_the_code_page(
    page: Any, base: str, persona: Persona, problems: list[str]
) -> None:
    """The two steps of signing in, with the second step's page walked too."""
    page.goto(f"{base}/sign-in/")
    page.get_by_label("Email address").fill(persona.email)
    page.get_by_label("Password").fill(persona.password)
    page.get_by_role("button", name="Continue").click()
    page.wait_for_url(f"{base}/sign-in/code/")
    _inspect(page, page.url, problems)
    page.set_viewport_size({"width": WIDTHS[-1], "height": 900})
    page.get_by_label("Code from your authenticator app").fill(persona.code())
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{base}/")


def test_every_page_fits_a_phone_and_axe_finds_nothing(walk: Walk) -> None:
    """Practitioner, administrator, operator and federation pages, at 375 and 1280 px."""
    problems: list[str] = []
    with chromium() as browser:
        for persona, base, pages in (
            (None, walk.base_url, SIGNED_OUT_PAGES),
            (walk.practitioner, walk.base_url, _practitioner_pages(walk.ids)),
            (walk.admin, walk.base_url, _admin_pages(walk.ids)),
            (walk.operator, walk.platform_url, OPERATOR_PAGES),
        ):
            context = browser.new_context()
            context.add_init_script(path=str(AXE))
            page = context.new_page()
            page.set_default_timeout(15_000)
            if persona is not None:
                _sign_in_inspecting_the_code_page(page, base, persona, problems)
            for path in pages:
                child_page = persona == walk.practitioner and path == f"/people/{walk.child.pk}/"
                _check(page, base + path, problems, screenshot=child_page)
            for path, button in FORMS_SENT_EMPTY.get(persona.email if persona else "", []):
                _check(page, base + path.format(**walk.ids), problems, submit=button)
            context.close()
    assert problems == [], "\n".join(problems)


PDF = Path("/tmp/pw-print-child.pdf")


def test_the_child_of_a_large_family_prints_on_two_a4_pages_with_who_printed_it(
    walk: Walk,
) -> None:
    """Chromium's own PDF printing (A4) of the eldest of four children, with two parents,
    each with a full team: two pages at most, and the header naming the council, the child
    and who printed it."""
    with chromium() as browser:
        context = browser.new_context()
        page = context.new_page()
        sign_in_page(page, walk.base_url, walk.practitioner)
        page.goto(f"{walk.base_url}/people/{walk.ids['child']}/")
        page.emulate_media(media="print")
        header = page.locator(".pw-print-header")
        expect(header).to_be_visible()
        expect(header).to_contain_text("Isle of Wight")
        expect(header).to_contain_text(walk.child.full_name)
        expect(header).to_contain_text(
            re.compile(
                rf"Printed by {re.escape(walk.practitioner_name)} at \d\d:\d\d .*"
                r"— contains personal information"
            )
        )
        for hidden in (".govuk-service-navigation", ".govuk-footer", "svg.pw-network-narrow"):
            expect(page.locator(hidden).first).to_be_hidden()
        link_colour = page.locator("main a.govuk-link").first.evaluate(
            "a => getComputedStyle(a).color"
        )
        assert link_colour == "rgb(0, 0, 0)"
        pdf = page.pdf(format="A4", print_background=True)
        context.close()
    PDF.write_bytes(pdf)
    pages = len(re.findall(rb"/Type\s*/Page(?!s)", pdf))
    assert 1 <= pages <= 2, f"{pages} A4 pages (see {PDF})"
