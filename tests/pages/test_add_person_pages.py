"""Adding a person from the search page, with the "is it one of these?" step, and changing
a record: details, a death, a family member. Through the real sign-in; what a practitioner
sees and what is recorded."""

from __future__ import annotations

from datetime import date, timedelta

from django_tenants.utils import schema_context

from core.models import AuditEvent, FamilyRelationship, Person
from tests.factories import PersonFactory, valid_nhs_number
from tests.personas import client_for

ROSA = {
    "given_name": "Rosa",
    "family_name": "Penhaligon",
    "date_of_birth_day": "2",
    "date_of_birth_month": "1",
    "date_of_birth_year": "2019",
    "sex": "female",
    "postcode": "bn3 7bq",
}


def _in_brighton(world, work):  # type: ignore[no-untyped-def]
    with schema_context(world.brighton.schema_name):
        return work()


def _last_detail(world, action):  # type: ignore[no-untyped-def]
    return _in_brighton(
        world, lambda: AuditEvent.objects.filter(action=action).order_by("-id").first().detail
    )


def test_an_empty_search_offers_to_add_the_person_with_the_details_carried(world, scenario):  # type: ignore[no-untyped-def]
    """The link carries what was searched for; the form opens filled in."""
    client = client_for(world, scenario.teacher)
    page = client.post(
        "/search/",
        {
            "family_name": "Penhaligon",
            "date_of_birth_day": "2",
            "date_of_birth_month": "1",
            "date_of_birth_year": "2019",
        },
    )
    html = page.content.decode()
    assert "0 people found" in html
    link = "/people/new/?family_name=Penhaligon&amp;date_of_birth=2019-01-02"
    assert f'href="{link}">Add this person</a>' in html
    form = client.get(link.replace("&amp;", "&")).content.decode()
    assert 'value="Penhaligon"' in form
    assert 'name="date_of_birth_year" type="text" inputmode="numeric" value="2019"' in form


def test_a_new_person_is_added_and_the_creator_offered_their_involvement(world, scenario):  # type: ignore[no-untyped-def]
    """No likely match: added at once; the confirmation links to "Add my involvement", which
    the creator may open without stating a reason."""
    client = client_for(world, scenario.teacher)
    response = client.post("/people/new/", {**ROSA, "nhs_number": valid_nhs_number()})
    assert response.status_code == 302, response.content.decode()
    person = _in_brighton(world, lambda: Person.objects.get(family_name="Penhaligon"))
    assert response["Location"] == f"/people/{person.pk}/added/"
    added = client.get(response["Location"]).content.decode()
    assert "Record added" in added
    assert f'href="/people/{person.pk}/involvements/new/"' in added
    assert client.get(f"/people/{person.pk}/involvements/new/").status_code == 200
    assert "You added this record" in client.get(f"/people/{person.pk}/").content.decode()


def test_likely_matches_are_offered_before_adding(world, scenario):  # type: ignore[no-untyped-def]
    """Same surname and date of birth as Ava: "is it one of these?" with a link to her; "No,
    add a new record" carries every detail and adds."""
    client = client_for(world, scenario.teacher)
    like_ava = {
        **ROSA,
        "given_name": "Eva",
        "family_name": "O'Brien-Smith",
        "date_of_birth_day": "14",
        "date_of_birth_month": "3",
        "date_of_birth_year": "2015",
    }
    page = client.post("/people/new/", like_ava)
    html = page.content.decode()
    assert page.status_code == 200
    assert "Is it one of these?" in html
    assert f'href="/people/{scenario.ava.pk}/"' in html
    assert 'name="date_of_birth_day" value="14"' in html
    count = _in_brighton(world, Person.objects.count)
    confirmed = client.post("/people/new/", {**like_ava, "confirm_new": "1"})
    assert confirmed.status_code == 302
    assert _in_brighton(world, Person.objects.count) == count + 1


def test_the_same_nhs_number_is_refused_with_a_link_to_the_record(world, scenario):  # type: ignore[no-untyped-def]
    client = client_for(world, scenario.teacher)
    page = client.post("/people/new/", {**ROSA, "nhs_number": "943 476 5919"})
    html = page.content.decode()
    assert "There is a problem" in html
    assert "A record with this NHS number already exists" in html
    assert f'href="/people/{scenario.ava.pk}/">Go to the existing record' in html
    # The link works: she was found, so the teacher is asked for a reason.
    reason = client.get(f"/people/{scenario.ava.pk}/").content.decode()
    assert "Tell us why you need to see this record" in reason


def test_a_shielded_holder_of_the_nhs_number_is_not_revealed(world, scenario):  # type: ignore[no-untyped-def]
    zed_nhs = _in_brighton(world, lambda: Person.objects.get(pk=scenario.zed.pk).nhs_number)
    client = client_for(world, scenario.teacher)
    html = client.post("/people/new/", {**ROSA, "nhs_number": zed_nhs}).content.decode()
    assert "Contact your council&#x27;s Patchwork administrator" in html
    assert "Hollis" not in html and f"/people/{scenario.zed.pk}/" not in html


def test_wrong_details_are_explained_and_nothing_is_added(world, scenario):  # type: ignore[no-untyped-def]
    client = client_for(world, scenario.teacher)
    future = date.today() + timedelta(days=3)
    html = client.post(
        "/people/new/",
        {
            "given_name": "",
            "family_name": "",
            "date_of_birth_day": str(future.day),
            "date_of_birth_month": str(future.month),
            "date_of_birth_year": str(future.year),
            "sex": "unknown",
            "nhs_number": "943 476 5918",
        },
    ).content.decode()
    for message in (
        "Enter the first name",
        "Enter the surname",
        "Date of birth must be today or in the past",
    ):
        assert message in html
    assert _in_brighton(world, lambda: Person.objects.filter(family_name="").count()) == 0


def test_an_administrator_does_not_add_people(world, scenario):  # type: ignore[no-untyped-def]
    assert client_for(world, scenario.admin).get("/people/new/").status_code == 403


def test_the_team_changes_details_and_the_change_is_audited(world, scenario):  # type: ignore[no-untyped-def]
    client = client_for(world, scenario.school_nurse)
    person = f"/people/{scenario.ava.pk}/"
    assert f'href="{person}edit/"' in client.get(person).content.decode()
    form = client.get(f"{person}edit/").content.decode()
    assert 'value="O&#x27;Brien-Smith"' in form
    assert "Shield this record" in form  # on the team
    response = client.post(
        f"{person}edit/",
        {
            "given_name": "Ava",
            "family_name": "O'Brien-Smith",
            "date_of_birth_day": "14",
            "date_of_birth_month": "3",
            "date_of_birth_year": "2015",
            "sex": "female",
            "nhs_number": "9434765919",
            "postcode": "BN3 7BQ",
        },
    )
    assert response.status_code == 302
    assert _last_detail(world, "person_updated") == {
        "changed": {"sex": {"before": "unknown", "after": "female"}}
    }


def test_who_reaches_the_change_pages(world, scenario):  # type: ignore[no-untyped-def]
    """Never found: 404; found, no reason: the reason page; a shielded record broken into
    by someone outside its team: 403."""
    teacher = client_for(world, scenario.teacher)
    assert teacher.get(f"/people/{scenario.ava.pk}/edit/").status_code == 404
    teacher.post("/search/", {"nhs_number": "943 476 5919"})
    assert teacher.get(f"/people/{scenario.ava.pk}/death/")["Location"] == (
        f"/people/{scenario.ava.pk}/"
    )
    mash = client_for(world, scenario.mash_worker)
    mash.post(
        "/search/break-glass/",
        {
            "family_name": "Hollis",
            "date_of_birth_day": "2",
            "date_of_birth_month": "5",
            "date_of_birth_year": "2016",
        },
    )
    mash.post(
        f"/people/{scenario.zed.pk}/",
        {"reason": "section_47", "note": "Section 47 enquiry opened today."},
    )
    assert mash.get(f"/people/{scenario.zed.pk}/").status_code == 200
    assert mash.get(f"/people/{scenario.zed.pk}/edit/").status_code == 403
    assert "Change details" not in mash.get(f"/people/{scenario.zed.pk}/").content.decode()


def test_a_death_is_recorded_from_its_page(world, scenario):  # type: ignore[no-untyped-def]
    client = client_for(world, scenario.school_nurse)
    page = f"/people/{scenario.ava.pk}/death/"
    future = date.today() + timedelta(days=1)
    refused = client.post(
        page,
        {
            "date_of_death_day": str(future.day),
            "date_of_death_month": str(future.month),
            "date_of_death_year": str(future.year),
        },
    ).content.decode()
    assert "Date of death must be today or in the past" in refused
    response = client.post(
        page, {"date_of_death_day": "5", "date_of_death_month": "1", "date_of_death_year": "2025"}
    )
    assert response.status_code == 302
    assert "5 January 2025" in client.get(f"/people/{scenario.ava.pk}/").content.decode()
    assert _last_detail(world, "person_death_recorded") == {
        "changed": {"date_of_death": {"before": None, "after": "2025-01-05"}}
    }


def test_a_family_member_is_found_chosen_and_recorded(world, scenario):  # type: ignore[no-untyped-def]
    mother = _in_brighton(
        world, lambda: PersonFactory(family_name="Okafor", date_of_birth=date(1988, 4, 1))
    )
    client = client_for(world, scenario.school_nurse)
    find = f"/people/{scenario.ava.pk}/family/add/"
    choose = f"{find}{mother.pk}/"
    assert client.get(choose).status_code == 404  # not found by search yet
    html = client.post(
        find,
        {
            "family_name": "okafor",
            "date_of_birth_day": "1",
            "date_of_birth_month": "4",
            "date_of_birth_year": "1988",
        },
    ).content.decode()
    assert f'href="{choose}"' in html
    assert (
        f"{mother.full_name} is Ava O&#x27;Brien-Smith&#x27;s"
        in client.get(choose).content.decode()
    )
    assert client.post(choose, {"kind": "parent"}).status_code == 302
    assert _in_brighton(
        world,
        lambda: FamilyRelationship.objects.filter(
            person=scenario.ava, relative=mother, kind="parent"
        ).exists(),
    )
    again = client.post(choose, {"kind": "parent"}).content.decode()
    assert "already recorded" in again


def test_a_child_is_recorded_the_other_way_round(world, scenario):  # type: ignore[no-untyped-def]
    """ "Child" on Ava's page records Ava as the baby's parent."""
    baby = _in_brighton(
        world, lambda: PersonFactory(family_name="Okafor", date_of_birth=date(2024, 9, 9))
    )
    client = client_for(world, scenario.school_nurse)
    client.post(
        f"/people/{scenario.ava.pk}/family/add/",
        {
            "family_name": "Okafor",
            "date_of_birth_day": "9",
            "date_of_birth_month": "9",
            "date_of_birth_year": "2024",
        },
    )
    response = client.post(f"/people/{scenario.ava.pk}/family/add/{baby.pk}/", {"kind": "child"})
    assert response.status_code == 302
    assert _in_brighton(
        world,
        lambda: FamilyRelationship.objects.filter(
            person=baby, relative=scenario.ava, kind="parent"
        ).exists(),
    )
    page = client.get(f"/people/{scenario.ava.pk}/").content.decode()
    assert f"{baby.full_name} (Child)" in page
