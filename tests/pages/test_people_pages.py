"""Search, a person's page (reason form, network picture and list), the family page and
contact requests, through the real sign-in: who reaches what, and what they see."""

from __future__ import annotations

from datetime import date

import pytest
from django.utils.html import escape
from django_tenants.utils import schema_context

from core.models import (
    AuditEvent,
    ContactRequest,
    FamilyRelationship,
    Involvement,
    Organisation,
    RecordOpening,
)
from core.network_svg import network_svg
from core.selectors import TeamMember, contact_reference
from tests.factories import InvolvementFactory, PersonFactory, RoleFactory
from tests.personas import client_for

AVA_NHS = {"nhs_number": "943 476 5919"}


def _search(client, **terms):  # type: ignore[no-untyped-def]
    return client.post("/search/", terms)


def _events(world, action):  # type: ignore[no-untyped-def]
    with schema_context(world.brighton.schema_name):
        return AuditEvent.objects.filter(action=action).count()


def test_it_refuses_a_too_broad_search_and_says_what_to_add(world, scenario) -> None:
    """A surname alone is refused in an error summary, and nothing is searched or audited."""
    client = client_for(world, scenario.teacher)
    before = _events(world, "search")
    page = _search(client, family_name="Smith")
    assert page.status_code == 200
    assert b"There is a problem" in page.content
    assert b"Add a date of birth" in page.content
    assert _events(world, "search") == before


@pytest.mark.parametrize(
    ("day", "month", "year", "message"),
    [
        ("31", "2", "2015", b"Date of birth must be a real date"),
        ("14", "", "2015", b"Date of birth must include a month"),
        ("14", "3", "2099", b"Date of birth must be today or in the past"),
    ],
)
def test_it_explains_a_wrong_date_of_birth(world, scenario, day, month, year, message) -> None:
    """The GOV.UK date input's own messages, and no search is made."""
    client = client_for(world, scenario.teacher)
    page = _search(
        client,
        family_name="O'Brien-Smith",
        date_of_birth_day=day,
        date_of_birth_month=month,
        date_of_birth_year=year,
    )
    assert message in page.content
    assert b"found</h2>" not in page.content


def test_search_results_show_only_what_is_needed_to_pick_the_person(world, scenario) -> None:
    """Name, date of birth, sex and postcode area: not the full postcode or NHS number."""
    client = client_for(world, scenario.teacher)
    page = _search(
        client,
        family_name="obrien smith",
        date_of_birth_day="14",
        date_of_birth_month="3",
        date_of_birth_year="2015",
    )
    html = page.content.decode()
    html = html[html.index('id="results"') :]  # the form's hint quotes an example NHS number
    assert "1 person found" in html
    assert f'href="/people/{scenario.ava.pk}/"' in html
    assert "14 March 2015" in html and "BN3" in html
    assert "7BQ" not in html and "9434765919" not in html and "943 476 5919" not in html
    assert "On your team" not in html


def test_search_tags_people_already_on_your_team(world, scenario) -> None:
    """The lead social worker sees that Ava is on their team."""
    page = _search(client_for(world, scenario.social_worker), **AVA_NHS)
    assert b"On your team" in page.content


@pytest.mark.parametrize(
    ("who", "searched", "expected"),
    [
        ("social_worker", False, "network"),
        ("camhs_worker", False, "network"),
        ("teacher", False, 404),
        ("teacher", True, "reason"),
        ("camhs_colleague", False, 404),
        ("admin", False, 404),
    ],
)
def test_who_reaches_a_person_page(world, scenario, who, searched, expected) -> None:
    """The team sees the network; someone who found the child states a reason first; anyone
    else (administrators included) gets a page that looks like no such person."""
    client = client_for(world, getattr(scenario, who))
    if searched:
        _search(client, **AVA_NHS)
    page = client.get(f"/people/{scenario.ava.pk}/")
    if expected == 404:
        assert page.status_code == 404
        assert client.get(f"/people/{scenario.ava.pk}/family/").status_code in {302, 404}
        return
    html = page.content.decode()
    assert page.status_code == 200
    if expected == "reason":
        assert "Tell us why you need to see this record" in html
        assert "pw-network" not in html and escape(scenario.school_nurse.full_name) not in html
    else:
        assert '<svg xmlns="http://www.w3.org/2000/svg" class="pw-network"' in html
        assert escape(scenario.social_worker.full_name) in html


def test_an_unknown_person_is_not_found(world, scenario) -> None:
    """A person id that does not exist looks the same as one you may not see."""
    client = client_for(world, scenario.social_worker)
    assert client.get("/people/999999/").status_code == 404


def test_administrators_cannot_search(world, scenario) -> None:
    """Administrators manage Patchwork but do not search records."""
    client = client_for(world, scenario.admin)
    assert client.get("/search/").status_code == 403
    assert _search(client, **AVA_NHS).status_code == 403
    assert client.get("/search/break-glass/").status_code == 403


def test_an_outsider_states_a_reason_and_then_sees_the_network(world, scenario) -> None:
    """The opening is recorded, the lead is told, and the network shows."""
    client = client_for(world, scenario.teacher)
    _search(client, **AVA_NHS)
    url = f"/people/{scenario.ava.pk}/"
    short = client.post(url, {"reason": "safeguarding", "note": "worried"})
    assert b"at least 10 characters" in short.content
    none_chosen = client.post(url, {"note": "Ava said something worrying today."})
    assert b"Choose the reason you need to see this record" in none_chosen.content
    with schema_context(world.brighton.schema_name):
        assert not RecordOpening.objects.filter(user=scenario.teacher).exists()
    done = client.post(
        url, {"reason": "safeguarding", "note": "Ava said something worrying today."}
    )
    assert done.status_code == 302 and done["Location"] == url
    page = client.get(url).content.decode()
    assert "pw-network" in page and escape(scenario.school_nurse.full_name) in page
    assert "Who has viewed this record" not in page  # the team's view only
    with schema_context(world.brighton.schema_name):
        assert RecordOpening.objects.filter(user=scenario.teacher, reason="safeguarding").exists()


def test_break_glass_warns_that_it_will_be_reviewed(world, scenario) -> None:
    """A child-protection practitioner finds a shielded child only with break-glass, and the
    reason form says the opening will be reviewed."""
    client = client_for(world, scenario.mash_worker)
    terms = {
        "family_name": "Hollis",
        "date_of_birth_day": "2",
        "date_of_birth_month": "5",
        "date_of_birth_year": "2016",
    }
    assert b"0 people found" in _search(client, **terms).content
    page = client.get("/search/break-glass/")
    assert b"will be reviewed" in page.content
    found = client.post("/search/break-glass/", terms)
    assert f'href="/people/{scenario.zed.pk}/"'.encode() in found.content
    reason = client.get(f"/people/{scenario.zed.pk}/")
    assert b"Open with break-glass" in reason.content and b"will be reviewed" in reason.content
    client.post(
        f"/people/{scenario.zed.pk}/",
        {"reason": "section_47", "note": "Strategy discussion this afternoon about Zed."},
    )
    assert _events(world, "record_break_glass") == 1


@pytest.mark.parametrize("who", ["teacher", "school_nurse"])
def test_break_glass_is_refused_to_other_practitioners(world, scenario, who) -> None:
    """Only child-protection practitioners get the break-glass search."""
    client = client_for(world, getattr(scenario, who))
    assert client.get("/search/break-glass/").status_code == 403
    assert b"Break-glass search" not in client.get("/search/").content


@pytest.mark.parametrize(
    ("who", "sees_camhs"),
    [("school_nurse", False), ("social_worker", False), ("camhs_worker", True)],
)
def test_a_sensitive_service_is_shown_only_as_a_brokered_notice(
    world, scenario, who, sees_camhs
) -> None:
    """Outside the service: 'A sensitive service is involved' and a request button; inside:
    the service in full."""
    page = client_for(world, getattr(scenario, who)).get(f"/people/{scenario.ava.pk}/")
    html = page.content.decode()
    assert ("Sussex CAMHS" in html) is sees_camhs
    assert (escape(scenario.camhs_worker.full_name) in html) is sees_camhs
    assert ("A sensitive service is involved" in html) is not sees_camhs
    assert ("Request contact" in html) is not sees_camhs
    assert f"service={scenario.camhs.pk}&" not in html  # the service's id is never shown


def test_the_picture_marks_the_lead_in_words_and_lists_the_same_people(world, scenario) -> None:
    """The SVG names the lead professional in text; the list has the same people."""
    html = (
        client_for(world, scenario.school_nurse).get(f"/people/{scenario.ava.pk}/").content.decode()
    )
    svg = html[html.index("<svg") : html.index("</svg>")]
    assert "LEAD PROFESSIONAL" in svg and escape(scenario.social_worker.full_name) in svg
    assert escape(scenario.school_nurse.full_name) in svg and "A sensitive service" in svg
    listing = html[html.index('id="list-heading"') :]
    for name in (scenario.social_worker.full_name, scenario.school_nurse.full_name):
        assert escape(name) in listing
    assert "Lead professional" in listing and "Last contact" in listing


def test_the_picture_escapes_names() -> None:
    """Names are text, never markup, in the picture."""
    member = TeamMember(
        involvement_id=1,
        practitioner_name="<script>alert(1)</script>",
        job_title="",
        role="Nurse & carer",
        organisation="A",
        agency_type="school",
        agency_label="School",
        phone="",
        email="",
        start_date=None,
        end_date=None,
        end_reason="",
        last_contact_date=None,
        last_confirmed_at=None,
        lead_professional=True,
        child_protection=False,
        is_me=False,
    )
    svg = network_svg(svg_id="t", centre_name="Kid <b>", centre_caption="x", members=[member])
    assert "<script>" not in svg and "&lt;script&gt;" in svg
    assert "Nurse &amp; carer" in svg and "<b>" not in svg


def test_history_family_and_viewers_are_on_the_page(world, scenario) -> None:
    """Ended involvements as history, a parent with their own team, and who has viewed."""
    with schema_context(world.brighton.schema_name):
        mum = PersonFactory(given_name="Grace", family_name="O'Brien-Smith")
        FamilyRelationship.objects.create(person=scenario.ava, relative=mum, kind="parent")
        InvolvementFactory(person=mum, role=RoleFactory(name="Adult social worker"))
        old = InvolvementFactory(person=scenario.ava, role=RoleFactory(name="Health visitor"))
        old.end_date, old.end_reason = date.today(), "case_closed"
        old.save()
    client = client_for(world, scenario.school_nurse)
    html = client.get(f"/people/{scenario.ava.pk}/").content.decode()
    assert (
        "Who was involved before" in html and "Health visitor" in html and "Work finished" in html
    )
    assert "Grace O&#39;Brien-Smith (Parent)" in html and "Adult social worker" in html
    assert "Who has viewed this record" in html and "Viewed the record" in html
    family = client.get(f"/people/{scenario.ava.pk}/family/").content.decode()
    assert family.count('class="pw-network"') == 2 and "Adult social worker" in family


def test_the_page_shows_the_latest_views_and_the_team_reaches_the_rest(world, scenario) -> None:
    """Ten views on the person page with a link to more; the list of views is the team's
    alone (an outsider who opened the record is refused it) and is itself audited."""
    nurse = client_for(world, scenario.school_nurse)
    url = f"/people/{scenario.ava.pk}/"
    for _ in range(3):
        nurse.get(url)
    few = nurse.get(url).content.decode()
    assert few.count("Viewed the record") == 4 and "see more views" not in few
    for _ in range(10):
        nurse.get(url)
    page = nurse.get(url).content.decode()
    assert page.count("Viewed the record") == 10
    assert f'href="/people/{scenario.ava.pk}/views/"' in page
    listed_before = _events(world, "record_views_listed")
    views = nurse.get(f"/people/{scenario.ava.pk}/views/")
    assert views.status_code == 200
    assert views.content.decode().count("Viewed the record") == 15
    assert _events(world, "record_views_listed") == listed_before + 1

    teacher = client_for(world, scenario.teacher)
    assert teacher.get(f"/people/{scenario.ava.pk}/views/").status_code == 404  # not found yet
    _search(teacher, **AVA_NHS)
    teacher.post(url, {"reason": "safeguarding", "note": "Ava said something worrying today."})
    assert teacher.get(url).status_code == 200
    assert teacher.get(f"/people/{scenario.ava.pk}/views/").status_code == 403
    assert _events(world, "record_views_listed") == listed_before + 1


def test_an_outsider_is_sent_to_the_reason_form_from_the_family_page(world, scenario) -> None:
    """The family page shows nothing before a reason is stated."""
    client = client_for(world, scenario.teacher)
    _search(client, **AVA_NHS)
    page = client.get(f"/people/{scenario.ava.pk}/family/")
    assert page.status_code == 302 and page["Location"] == f"/people/{scenario.ava.pk}/"


def _request_link(client, person_id):  # type: ignore[no-untyped-def]
    html = client.get(f"/people/{person_id}/").content.decode()
    start = html.index(f"/people/{person_id}/contact-requests/new/?service=")
    return html[start : html.index('"', start)]


def test_a_contact_request_reaches_the_service_which_answers_it(world, scenario) -> None:
    """The request is brokered: the service accepts, and the requester is told."""
    nurse = client_for(world, scenario.school_nurse)
    link = _request_link(nurse, scenario.ava.pk)
    token = link.split("service=")[1].replace("%3A", ":")
    url = f"/people/{scenario.ava.pk}/contact-requests/new/"
    bad = nurse.post(url, {"service": token, "message": "hi"})
    assert b"Say in a sentence" in bad.content
    sent = nurse.post(url, {"service": token, "message": "Ava mentioned appointments at school."})
    assert sent.status_code == 302
    with schema_context(world.brighton.schema_name):
        request = ContactRequest.objects.get()
    assert request.organisation == scenario.camhs and request.requested_by == scenario.school_nurse

    assert (
        client_for(world, scenario.teacher).get(f"/my/contact-requests/{request.pk}/").status_code
        == 404
    )
    camhs = client_for(world, scenario.camhs_colleague)
    assert scenario.school_nurse.full_name.encode() in camhs.get("/my/contact-requests/").content
    answer = f"/my/contact-requests/{request.pk}/"
    assert b"Choose whether to accept" in camhs.post(answer, {"decision": ""}).content
    assert camhs.post(answer, {"decision": "accept"}).status_code == 302
    with schema_context(world.brighton.schema_name):
        request.refresh_from_db()
    assert request.status == "accepted"


@pytest.mark.parametrize("token", ["forged", "other-person"])
def test_a_forged_service_token_is_not_found(world, scenario, token) -> None:
    """The request page only accepts a reference made for this person and this viewer."""
    client = client_for(world, scenario.school_nurse)
    if token == "other-person":
        token = contact_reference(
            user_id=scenario.school_nurse.pk,
            person_id=scenario.zed.pk,
            organisation_id=scenario.camhs.pk,
        )
    page = client.get(f"/people/{scenario.ava.pk}/contact-requests/new/?service={token}")
    assert page.status_code == 404


def test_a_non_sensitive_service_cannot_be_asked(world, scenario) -> None:
    """A reference for an organisation with no sensitive involvement is not found."""
    client = client_for(world, scenario.school_nurse)
    with schema_context(world.brighton.schema_name):
        school = Organisation.objects.get(name="Hove Park School")
    token = contact_reference(
        user_id=scenario.school_nurse.pk, person_id=scenario.ava.pk, organisation_id=school.pk
    )
    page = client.get(f"/people/{scenario.ava.pk}/contact-requests/new/?service={token}")
    assert page.status_code == 404
    with schema_context(world.brighton.schema_name):
        assert not Involvement.objects.filter(organisation=school, sensitive=True).exists()
