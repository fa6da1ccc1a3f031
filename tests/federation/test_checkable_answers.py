"""Checkable answers (decision 0013): the signed answer says which identifiers were compared
and how each came out, with a confidence; a mistyped NHS number that is another child's is a
possible mismatch, never a match, and carries none of that child's pointers; the asking
council refuses detail that contradicts the outcome; the page says it in words and lists the
purposes the council's agreements cover.

Brighton asks; Staffordshire knows Kai (NHS 943 476 5870, born 1 June 2014, Kai
Müller-Jones, previously Kai Jones) with a school nurse at Leek High School."""

from __future__ import annotations

import json
import uuid
from datetime import date
from typing import Any

import pytest
from django.utils import timezone
from django_tenants.utils import schema_context

from core.models import Notification
from core.services import involvement_add
from federation import protocol, services
from federation.client import LOOKUP_PATH, PeerResponse, SignedRequest, _verified_answer
from federation.directory.models import council_federation_id
from federation.models import Exchange, OutboxMessage
from federation.selectors import PeerAnswer, answer_from_document, peer_active
from tests.factories import PersonFactory, PractitionerFactory, RoleFactory
from tests.federation.agreement import (
    KAI_NHS,
    lookup_body,
    make_agreement,
    post,
    signed_headers,
)
from tests.personas import sign_in

STAFFS = "staffordshire.localhost"
KAI_BORN = date(2014, 6, 1)
KAI_NAMES = (("Kai", "Müller-Jones"),)
# Lily is a Brighton child whose NHS number was typed as Kai's.
LILY_NAMES = (("Lily", "Evans"),)
LILY_BORN = date(2016, 3, 3)


def ask(pair, body: bytes, agreement_id: str | None = None) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    headers = signed_headers(
        pair.brighton, host=STAFFS, body=body, agreement_id=agreement_id or pair.agreement_id
    )
    response = post(STAFFS, body, headers)
    assert response.status_code == 200, response.content
    return response.json()


def detail(answer: dict[str, Any]) -> tuple[str, str, dict[str, str]]:
    return answer["outcome"], answer["confidence"], answer["comparisons"]


# --- What the answering council compares ------------------------------------------------------


def test_nhs_number_name_and_date_of_birth_agreeing_is_a_confirmed_match(pair) -> None:
    """All three agree: a match, "confirmed", with the school nurse's pointer."""
    answer = ask(pair, lookup_body(pair, names=KAI_NAMES, born=KAI_BORN))
    assert detail(answer) == (
        "match",
        "confirmed",
        {"nhs_number": "match", "name_and_date_of_birth": "match", "date_of_birth": "match"},
    )
    assert [p["organisation"] for p in answer["pointers"]] == ["Leek High School"]


def test_a_mistyped_nhs_number_that_is_another_childs_is_a_possible_mismatch(pair) -> None:
    """Lily's number was typed as Kai's: the name and date of birth disagree, so the answer
    is a possible mismatch with none of Kai's pointers, only the duty team to ring, and
    Kai's team is not told that Brighton looked for him."""
    answer = ask(pair, lookup_body(pair, names=LILY_NAMES, born=LILY_BORN))
    assert detail(answer) == (
        "possible_mismatch",
        "possible_mismatch",
        {"nhs_number": "match", "name_and_date_of_birth": "no_match", "date_of_birth": "no_match"},
    )
    assert answer["pointers"] == []
    assert "sensitive_service_involved" not in answer
    assert answer["duty_team_contact"] == "Staffordshire children's duty team, 0300 111 8007"
    text = json.dumps(answer)
    assert "Leek" not in text and "01538" not in text and "School nurse" not in text
    with schema_context(pair.staffordshire.schema_name):
        assert not Notification.objects.filter(person=pair.kai).exists()
        received = Exchange.objects.get(direction="in", request_id=answer["request_id"])
        # Staffordshire's own record says whose record the question hit, and how.
        assert (received.outcome, received.person_id) == ("possible_mismatch", pair.kai.pk)
    words = answer_from_document("council:E10000028", "Staffordshire", answer)
    assert words.label == "Staffordshire: possible mismatch"
    assert words.summary == (
        "NHS number matches but the date of birth does not: check with Staffordshire before acting"
    )


def test_the_right_date_of_birth_under_another_name_is_still_a_possible_mismatch(pair) -> None:
    """NHS number and date of birth agree but no name does (a new surname, or another
    child): never a plain match."""
    answer = ask(pair, lookup_body(pair, names=(("Kai", "Smith"),), born=KAI_BORN))
    assert detail(answer) == (
        "possible_mismatch",
        "possible_mismatch",
        {"nhs_number": "match", "name_and_date_of_birth": "no_match", "date_of_birth": "match"},
    )
    assert answer["pointers"] == []
    words = answer_from_document("council:E10000028", "Staffordshire", answer).summary
    assert words.startswith("NHS number and date of birth match but the name does not")


def test_an_nhs_number_alone_is_a_match_that_says_nothing_else_was_compared(pair) -> None:
    """Brighton knows only Kai's NHS number: a match, "nhs_number_only"."""
    answer = ask(pair, lookup_body(pair))
    assert detail(answer) == (
        "match",
        "nhs_number_only",
        {
            "nhs_number": "match",
            "name_and_date_of_birth": "not_compared",
            "date_of_birth": "not_compared",
        },
    )
    assert answer["pointers"]
    summary = answer_from_document("council:E10000028", "Staffordshire", answer).summary
    assert summary == "NHS number matches; the name and date of birth were not compared"


def test_without_demographic_matching_names_sent_anyway_are_not_compared(pair) -> None:
    """Under an agreement that does not allow matching on name and date of birth, the asker
    sends none, and any sent anyway (an older or careless asker) are ignored."""
    without, _ = make_agreement(pair.brighton, pair.staffordshire, demographic=False)
    with schema_context(pair.brighton.schema_name):
        secret = services.agreement_secret(without)
    lily = protocol.Identifiers(nhs_number=KAI_NHS, date_of_birth=LILY_BORN, names=LILY_NAMES)
    sent = protocol.match_keys(lily, secret=secret, demographic=False)
    assert sent == {"nhs": [protocol.match_key(secret, f"nhs:{KAI_NHS}")], "demographic": []}
    careless = protocol.match_keys(lily, secret=secret, demographic=True)
    for keys in (sent, careless):
        body = json.dumps({"type": "patchwork.lookup", "match_keys": keys}).encode()
        answer = ask(pair, body, agreement_id=without.agreement_id)
        assert detail(answer)[:2] == ("match", "nhs_number_only")


def test_a_unique_name_and_date_of_birth_without_an_nhs_number_is_demographic_only(pair) -> None:
    """Brighton has no NHS number for the child: matched on a previous name and birth date."""
    answer = ask(pair, lookup_body(pair, nhs=None, names=(("Kai", "Jones"),), born=KAI_BORN))
    assert detail(answer) == (
        "match",
        "demographic_only",
        {"nhs_number": "not_compared", "name_and_date_of_birth": "match", "date_of_birth": "match"},
    )
    assert answer["pointers"]
    summary = answer_from_document("council:E10000028", "Staffordshire", answer).summary
    assert summary == "Name and date of birth match; the NHS number was not compared"


def test_a_name_and_birth_date_match_with_a_different_nhs_number_is_a_possible_mismatch(
    pair,
) -> None:  # type: ignore[no-untyped-def]
    """Brighton's NHS number is unknown here, but the name and birth date are Kai's and Kai
    has another NHS number: a possible mismatch (a typo on one side), not "not known"."""
    answer = ask(pair, lookup_body(pair, nhs="9434765897", names=KAI_NAMES, born=KAI_BORN))
    assert detail(answer) == (
        "possible_mismatch",
        "possible_mismatch",
        {"nhs_number": "no_match", "name_and_date_of_birth": "match", "date_of_birth": "match"},
    )
    assert answer["pointers"] == []
    summary = answer_from_document("council:E10000028", "Staffordshire", answer).summary
    assert summary.startswith("The name and date of birth match a child known to Staffordshire")


def test_several_children_with_the_name_and_birth_date_ask_for_more_details(pair) -> None:
    """Two Ellas born the same day, neither with an NHS number: more attributes requested,
    nothing compared, nothing shared."""
    with schema_context(pair.staffordshire.schema_name):
        for _ in range(2):
            PersonFactory(
                given_name="Ella",
                family_name="Price",
                date_of_birth=date(2017, 1, 9),
                nhs_number=None,
            )
    answer = ask(
        pair, lookup_body(pair, nhs=None, names=(("Ella", "Price"),), born=date(2017, 1, 9))
    )
    assert detail(answer) == (
        "more_attributes_requested",
        "none",
        protocol.nothing_compared(),
    )
    assert answer["pointers"] == []


def test_an_unknown_child_is_no_match_with_nothing_compared(pair) -> None:
    answer = ask(pair, lookup_body(pair, nhs="9434765897", names=LILY_NAMES, born=LILY_BORN))
    assert detail(answer) == ("no_match", "none", protocol.nothing_compared())


# --- The asking council checks the detail -------------------------------------------------------


def _outgoing(pair, keys: dict[str, Any], request_id: str) -> SignedRequest:  # type: ignore[no-untyped-def]
    with schema_context(pair.brighton.schema_name):
        peer = peer_active(council_federation_id(pair.staffordshire))
    return SignedRequest(
        peer=peer,
        agreement_id=pair.agreement_id,
        kind="lookup",
        url=f"http://{STAFFS}{LOOKUP_PATH}",
        payload={"type": "patchwork.lookup", "match_keys": keys},
        body=b"",
        headers={},
        request_id=request_id,
        purpose="safeguarding",
        practitioner="p-123",
    )


def _resigned(pair, answer: dict[str, Any], **changes: Any) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    """The answer changed and signed again with Staffordshire's own key: a faulty or
    dishonest responder, not a forger."""
    with schema_context(pair.staffordshire.schema_name):
        key = services.signing_key(pair.staffordshire)
    unsigned = {k: v for k, v in {**answer, **changes}.items() if k != "signatures"}
    return protocol.sign_document(unsigned, key)


def _verified(pair, keys: dict[str, Any], answer: dict[str, Any]) -> dict[str, Any] | None:  # type: ignore[no-untyped-def]
    outgoing = _outgoing(pair, keys, answer["request_id"])
    with schema_context(pair.brighton.schema_name):
        return _verified_answer(outgoing, PeerResponse(200, json.dumps(answer).encode()))


def _keys(body: bytes) -> dict[str, Any]:
    return json.loads(body)["match_keys"]


def test_the_asker_accepts_the_answer_as_signed(pair) -> None:
    body = lookup_body(pair, names=LILY_NAMES, born=LILY_BORN)
    answer = ask(pair, body)
    assert _verified(pair, _keys(body), answer) == answer


def test_detail_altered_in_transit_breaks_the_signature_and_is_refused(pair) -> None:
    """Someone turns the possible mismatch into a confirmed match on the way: refused."""
    body = lookup_body(pair, names=LILY_NAMES, born=LILY_BORN)
    answer = ask(pair, body)
    forged = {
        **answer,
        "outcome": "match",
        "confidence": "confirmed",
        "comparisons": {k: "match" for k in protocol.COMPARED},
    }
    assert _verified(pair, _keys(body), forged) is None


@pytest.mark.parametrize(
    "changes",
    [
        # A match that says the date of birth disagrees.
        {"outcome": "match"},
        # A confirmed match while the comparisons say otherwise.
        {"outcome": "match", "confidence": "confirmed"},
        # A possible mismatch carrying another child's (validly signed) pointers.
        {"pointers": "Kai's"},
        # Detail without the confidence that must follow from it.
        {"confidence": "nhs_number_only"},
        # A comparison result nobody defined.
        {
            "comparisons": {
                "nhs_number": "match",
                "name_and_date_of_birth": "close_enough",
                "date_of_birth": "match",
            }
        },
    ],
)
def test_detail_that_contradicts_the_outcome_is_refused_even_when_signed(pair, changes) -> None:  # type: ignore[no-untyped-def]
    if changes.get("pointers") == "Kai's":
        changes = {"pointers": ask(pair, lookup_body(pair))["pointers"]}
        assert changes["pointers"]
    body = lookup_body(pair, names=LILY_NAMES, born=LILY_BORN)
    answer = ask(pair, body)
    assert _verified(pair, _keys(body), _resigned(pair, answer, **changes)) is None


def test_an_answer_claiming_to_compare_what_was_never_sent_is_refused(pair) -> None:
    """Brighton sent only the NHS number; an answer "confirmed" on name and birth date too
    cannot be true."""
    body = lookup_body(pair)
    answer = ask(pair, body)
    confirmed = _resigned(
        pair,
        answer,
        confidence="confirmed",
        comparisons={k: "match" for k in protocol.COMPARED},
    )
    assert _verified(pair, _keys(body), confirmed) is None


def test_an_answer_from_a_council_without_the_detail_is_shown_as_needing_a_check(pair) -> None:
    """A council that predates checkable answers: accepted, but never shown as a plain
    match."""
    body = lookup_body(pair)
    answer = ask(pair, body)
    old = _resigned(pair, answer)
    del old["comparisons"], old["confidence"]
    old = _resigned(pair, old)
    assert "comparisons" not in old
    assert _verified(pair, _keys(body), old) == old
    shown = answer_from_document("council:E10000028", "Staffordshire", old)
    assert shown.needs_checking
    assert shown.summary == (
        "Staffordshire did not say which details matched: check with Staffordshire before acting"
    )


@pytest.mark.parametrize(
    ("outcome", "comparisons", "consistent"),
    [
        ("match", ("match", "match", "match"), True),
        ("match", ("match", "not_compared", "not_compared"), True),
        ("match", ("match", "not_compared", "match"), True),
        ("match", ("not_compared", "match", "match"), True),
        ("match", ("match", "no_match", "no_match"), False),
        ("match", ("not_compared", "not_compared", "not_compared"), False),
        ("match", ("match", "match", "not_compared"), False),
        ("possible_mismatch", ("match", "no_match", "no_match"), True),
        ("possible_mismatch", ("match", "no_match", "match"), True),
        ("possible_mismatch", ("no_match", "match", "match"), True),
        ("possible_mismatch", ("match", "match", "match"), False),
        ("possible_mismatch", ("no_match", "not_compared", "not_compared"), False),
        ("no_match", ("not_compared", "not_compared", "not_compared"), True),
        ("no_match", ("match", "not_compared", "not_compared"), False),
        ("more_attributes_requested", ("not_compared", "not_compared", "not_compared"), True),
    ],
)
def test_the_rule_an_asker_checks(
    outcome: str, comparisons: tuple[str, ...], consistent: bool
) -> None:
    """The confidence follows from the comparisons, and they must fit the outcome."""
    compared = dict(zip(protocol.COMPARED, comparisons, strict=True))
    answer = {
        "outcome": outcome,
        "comparisons": compared,
        "confidence": protocol.answer_confidence(outcome, compared),
        "pointers": [],
    }
    sent = {"nhs": ["k"], "demographic": ["k"], protocol.NHS_AND_BIRTH_DATE: ["k"]}
    assert protocol.answer_detail_consistent(answer, sent) is consistent


def test_a_pointer_update_for_a_possible_mismatch_is_refused(pair) -> None:
    """Staffordshire may not push Kai's team to Brighton after a possible mismatch, and
    Brighton's page would not show it as a match either."""
    with schema_context(pair.brighton.schema_name):
        Exchange.objects.create(
            direction="out",
            kind="lookup",
            peer_id=council_federation_id(pair.staffordshire),
            agreement_id=pair.agreement_id,
            request_id="lookup-1",
            body_sha256="0" * 64,
            outcome="possible_mismatch",
        )
    with schema_context(pair.staffordshire.schema_name):
        key = services.signing_key(pair.staffordshire)
    update = protocol.sign_document(
        {
            "type": "patchwork.pointer-update",
            "responder": council_federation_id(pair.staffordshire),
            "agreement_id": pair.agreement_id,
            "in_reply_to": "lookup-1",
            "purpose": "safeguarding",
            "issued_at": protocol.timestamp(timezone.now()),
            "pointers": [],
            "sensitive_service_involved": False,
            "duty_team_contact": "",
            "digest": "x",
        },
        key,
    )
    body = json.dumps(update).encode()
    headers = signed_headers(
        pair.staffordshire,
        host="brighton-and-hove.localhost",
        body=body,
        agreement_id=pair.agreement_id,
        path="/federation/v1/pointer-updates",
        request_id=str(uuid.uuid4()),
    )
    response = post("brighton-and-hove.localhost", body, headers, "/federation/v1/pointer-updates")
    assert response.status_code == 400
    assert response.json() == {"outcome": "refused", "reason": "not_a_pointer_update"}


# --- The page -------------------------------------------------------------------------------------


def _recorded(pair, person_id: int, answer: dict[str, Any]) -> None:  # type: ignore[no-untyped-def]
    with schema_context(pair.brighton.schema_name):
        Exchange.objects.create(
            direction="out",
            kind="lookup",
            peer_id=council_federation_id(pair.staffordshire),
            agreement_id=pair.agreement_id,
            request_id=answer["request_id"],
            body_sha256="0" * 64,
            outcome=answer["outcome"],
            response=answer,
            person_id=person_id,
        )


def test_the_page_warns_of_a_possible_mismatch_and_shows_no_contacts(pair, scenario, world) -> None:  # type: ignore[no-untyped-def]
    """Ava's page after a possible mismatch: GOV.UK warning text in words, the duty team,
    and none of Kai's contacts; never "Known to Staffordshire"."""
    answer = ask(pair, lookup_body(pair, names=(("Ava", "O'Brien-Smith"),), born=date(2015, 3, 14)))
    _recorded(pair, scenario.ava.pk, answer)
    page = (
        sign_in(world.brighton_social_worker)
        .get(f"/federation/people/{scenario.ava.pk}/other-councils/")
        .content.decode()
    )
    assert "govuk-warning-text" in page
    assert (
        "NHS number matches but the date of birth does not: check with Staffordshire before acting"
        in page
    )
    assert "Staffordshire children&#x27;s duty team, 0300 111 8007" in page
    assert "Known to Staffordshire" not in page
    assert "Leek High School" not in page and "01538" not in page


def test_the_page_says_a_confirmed_match_in_words(pair, scenario, world) -> None:  # type: ignore[no-untyped-def]
    answer = ask(pair, lookup_body(pair, names=KAI_NAMES, born=KAI_BORN))
    _recorded(pair, scenario.ava.pk, answer)
    page = (
        sign_in(world.brighton_social_worker)
        .get(f"/federation/people/{scenario.ava.pk}/other-councils/")
        .content.decode()
    )
    assert "Known to Staffordshire" in page
    assert "NHS number, name and date of birth match" in page
    assert "govuk-warning-text" not in page
    assert "Leek High School" in page


def test_the_page_lists_the_purposes_covered_and_offers_one_first(pair, scenario, world) -> None:  # type: ignore[no-untyped-def]
    """Only an early-help agreement in force: that is the purpose offered first, and
    checking for safeguarding says no agreement covers it and which purposes are covered."""
    with schema_context(pair.brighton.schema_name):
        pair.brighton_agreement.status = "revoked"
        pair.brighton_agreement.revoked_at = timezone.now()
        pair.brighton_agreement.save()
    make_agreement(pair.brighton, pair.staffordshire, purposes=["early_help"])
    client = sign_in(world.brighton_social_worker)
    url = f"/federation/people/{scenario.ava.pk}/other-councils/"
    page = client.get(url).content.decode()
    assert "Early help and family support (Staffordshire)" in page
    assert "Safeguarding a child (" not in page
    assert '<option value="early_help" selected>' in page
    page = client.post(url, {"purpose": "safeguarding"}).content.decode()
    assert "There is no council with an agreement in force for “Safeguarding a child”" in page
    assert "Early help and family support (Staffordshire)" in page


def test_the_page_says_when_there_is_no_agreement_in_force_at_all(scenario, world) -> None:  # type: ignore[no-untyped-def]
    page = (
        sign_in(world.brighton_social_worker)
        .get(f"/federation/people/{scenario.ava.pk}/other-councils/")
        .content.decode()
    )
    assert "no data-sharing agreement in force with another council" in page


def test_every_state_has_words_and_only_a_match_has_pointers() -> None:
    """A possible mismatch never shows pointers, even if a stored answer held some."""
    stored = {
        "outcome": "possible_mismatch",
        "confidence": "possible_mismatch",
        "comparisons": {
            "nhs_number": "match",
            "name_and_date_of_birth": "no_match",
            "date_of_birth": "not_compared",
        },
        "pointers": [{"organisation": "Leek High School"}],
        "sensitive_service_involved": True,
    }
    shown = answer_from_document("council:E10000028", "Staffordshire", stored)
    assert shown.pointers == [] and not shown.sensitive_service_involved
    assert shown.summary == (
        "NHS number matches but the name and date of birth do not: check with Staffordshire "
        "before acting"
    )
    assert PeerAnswer("c", "Staffordshire", "no_match", []).summary == ""


def test_after_a_possible_mismatch_nothing_is_pushed_when_the_team_changes(pair) -> None:
    """A new school nurse for Kai queues no pointer update to Brighton: only a lookup
    answered with a match is followed up."""
    ask(pair, lookup_body(pair, names=LILY_NAMES, born=LILY_BORN))
    with schema_context(pair.staffordshire.schema_name):
        nurse = PractitionerFactory(job_title="School nurse")
        involvement_add(
            actor=nurse.user,
            person=pair.kai,
            practitioner=nurse,
            role=RoleFactory(name="School nurse"),
        )
        assert not OutboxMessage.objects.exists()
    ask(pair, lookup_body(pair, names=KAI_NAMES, born=KAI_BORN))
    with schema_context(pair.staffordshire.schema_name):
        nurse = PractitionerFactory(job_title="School nurse")
        involvement_add(
            actor=nurse.user,
            person=pair.kai,
            practitioner=nurse,
            role=RoleFactory(name="School nurse"),
        )
        assert OutboxMessage.objects.count() == 1


def test_a_stored_update_never_turns_a_possible_mismatch_into_a_match(
    pair, scenario, world
) -> None:  # type: ignore[no-untyped-def]
    """Even if a pointer update were on record for it, Ava's possible mismatch stays one on
    the page, with no contacts."""
    answer = ask(pair, lookup_body(pair, names=LILY_NAMES, born=LILY_BORN))
    _recorded(pair, scenario.ava.pk, answer)
    pointers = ask(pair, lookup_body(pair))["pointers"]
    with schema_context(pair.brighton.schema_name):
        Exchange.objects.create(
            direction="in",
            kind="pointer_update",
            peer_id=council_federation_id(pair.staffordshire),
            agreement_id=pair.agreement_id,
            request_id="update-1",
            body_sha256="0" * 64,
            outcome="applied",
            payload={"type": "patchwork.pointer-update", "pointers": pointers},
            in_reply_to=answer["request_id"],
        )
    page = (
        sign_in(world.brighton_social_worker)
        .get(f"/federation/people/{scenario.ava.pk}/other-councils/")
        .content.decode()
    )
    assert "Staffordshire: possible mismatch" in page
    assert "Leek High School" not in page and "Known to Staffordshire" not in page
