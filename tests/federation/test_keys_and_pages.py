"""Keys and their published document, council cards, the match-key index and the outbox's
transaction, and who may open each federation page."""

from __future__ import annotations

import io
from datetime import date, timedelta

import pytest
from django.core.management import call_command
from django.db import transaction
from django.test import Client
from django.utils import timezone
from django_tenants.utils import schema_context

from accounts.models import User
from federation import protocol, services
from federation.directory.models import council_federation_id
from federation.directory.services import council_current_key
from federation.models import DataSharingAgreement, MatchKey, OutboxMessage
from federation.selectors import own_council
from tests.factories import PractitionerFactory, RoleFactory
from tests.federation.agreement import lookup_body, post, signed_headers
from tests.personas import make_persona, sign_in

STAFFS = "staffordshire.localhost"


def _date_boxes(name: str, day: date) -> dict[str, str]:
    """A date as the GOV.UK date input sends it: day, month and year boxes."""
    return {
        f"{name}_day": str(day.day),
        f"{name}_month": str(day.month),
        f"{name}_year": str(day.year),
    }


def test_the_key_document_lists_old_and_new_keys_and_an_old_key_alone_trusts_it(world, db) -> None:  # type: ignore[no-untyped-def]
    """After rotation a peer that knew only the old key can verify the new document."""
    old = council_current_key(world.brighton)
    call_command("rotate_keys", world.brighton.code, stdout=io.StringIO())
    new = council_current_key(world.brighton)
    assert new.key_id != old.key_id
    response = Client(HTTP_HOST="brighton-and-hove.localhost").get("/.well-known/patchwork/keys")
    document = response.json()
    listed = {k["key_id"]: k for k in document["keys"]}
    assert listed[old.key_id]["expires_at"] is not None
    assert listed[new.key_id]["expires_at"] is None
    issued = protocol.parse_timestamp(document["issued_at"])
    assert protocol.parse_timestamp(document["valid_until"]) - issued <= timedelta(days=7)
    only_old = {old.key_id: bytes(old.public_key)}
    assert protocol.verify_any_signature(document, only_old.get)
    document["keys"].append({"key_id": "smuggled", "public_key": "AAAA", "expires_at": None})
    assert not protocol.verify_any_signature(document, only_old.get)


def test_a_card_for_a_council_on_this_deployment_is_not_added_again(world, db) -> None:  # type: ignore[no-untyped-def]
    """Councils here are peers already: the operator is told so, nothing changes."""
    from django.core.exceptions import ValidationError

    with pytest.raises(ValidationError, match="on this deployment already"):
        services.peer_add(card=services.council_card(world.staffordshire))


def test_a_newly_shielded_person_leaves_the_index_and_is_no_longer_matched(pair) -> None:
    """Shielding Kai at Staffordshire removes his keys at once: the next lookup is no match."""
    with schema_context(pair.staffordshire.schema_name):
        assert MatchKey.objects.filter(person=pair.kai).exists()
        pair.kai.shielded = True
        pair.kai.save()
        assert not MatchKey.objects.filter(person=pair.kai).exists()
    body = lookup_body(pair)
    headers = signed_headers(pair.brighton, host=STAFFS, body=body, agreement_id=pair.agreement_id)
    assert post(STAFFS, body, headers).json()["outcome"] == "no_match"


def test_a_push_is_queued_only_if_the_change_is_committed(pair) -> None:
    """Kai was matched; a new school nurse queues one update, a rolled-back one queues none."""
    body = lookup_body(pair)
    headers = signed_headers(pair.brighton, host=STAFFS, body=body, agreement_id=pair.agreement_id)
    assert post(STAFFS, body, headers).json()["outcome"] == "match"
    from core.services import involvement_add

    with schema_context(pair.staffordshire.schema_name):
        nurse = PractitionerFactory(job_title="School nurse")
        role = RoleFactory(name="School nurse")
        with pytest.raises(RuntimeError), transaction.atomic():
            involvement_add(actor=nurse.user, person=pair.kai, practitioner=nurse, role=role)
            raise RuntimeError("the page failed after the change")
        assert not OutboxMessage.objects.exists()
        involvement_add(actor=nurse.user, person=pair.kai, practitioner=nurse, role=role)
        queued = list(OutboxMessage.objects.all())
    assert len(queued) == 1
    assert queued[0].peer_id == council_federation_id(pair.brighton)
    assert "Kai" not in str(queued[0].payload)


def test_a_sensitive_involvement_queues_no_push(pair) -> None:
    """A new substance-misuse worker changes nothing the peer may know: nothing is sent."""
    body = lookup_body(pair)
    headers = signed_headers(pair.brighton, host=STAFFS, body=body, agreement_id=pair.agreement_id)
    post(STAFFS, body, headers)
    from core.models import Organisation
    from core.services import involvement_add

    with schema_context(pair.staffordshire.schema_name):
        worker = PractitionerFactory(
            organisation=Organisation.objects.get(name="Staffs Recovery Service")
        )
        involvement_add(
            actor=worker.user,
            person=pair.kai,
            practitioner=worker,
            role=RoleFactory(name="Recovery worker"),
        )
        assert not OutboxMessage.objects.exists()


@pytest.mark.parametrize(
    ("role", "expected"),
    [
        (User.Role.IG_OFFICER, 200),
        (User.Role.COUNCIL_ADMIN, 200),
        (User.Role.PRACTITIONER, 403),
        (User.Role.MANAGER, 403),
    ],
)
def test_who_may_open_the_agreements_pages(world, db, role, expected) -> None:  # type: ignore[no-untyped-def]
    """Only IG officers and administrators see agreements, their history and traffic."""
    persona = make_persona(world.brighton, f"{role}@brighton.test", "Someone", role)
    client = sign_in(persona)
    assert client.get("/federation/agreements/").status_code == expected
    assert client.get("/federation/agreements/new/").status_code == expected


def test_an_ig_officer_proposes_signs_and_revokes_an_agreement_in_the_pages(world, db) -> None:  # type: ignore[no-untyped-def]
    """Signing stands even when the partner cannot be reached, and says so; revoking ends it."""
    ig = make_persona(world.brighton, "ig@brighton.test", "Ife Governance", User.Role.IG_OFFICER)
    with schema_context(world.brighton.schema_name):
        RoleFactory(name="School nurse")
    client = sign_in(ig)
    today = timezone.localdate()
    response = client.post(
        "/federation/agreements/new/",
        {
            "partner_id": council_federation_id(world.staffordshire),
            "purposes": ["safeguarding"],
            "shareable_roles": ["School nurse"],
            "legal_basis": "public_task",
            **_date_boxes("valid_from", today),
            **_date_boxes("valid_until", today + timedelta(days=30)),
        },
    )
    assert response.status_code == 302
    with schema_context(world.brighton.schema_name):
        agreement = DataSharingAgreement.objects.get()
    page = client.post(f"/federation/agreements/{agreement.agreement_id}/sign/", follow=True)
    assert "Signed here, but not yet sent" in page.content.decode()
    with schema_context(world.brighton.schema_name):
        agreement.refresh_from_db()
        assert agreement.status == DataSharingAgreement.Status.AWAITING_PARTNER
        assert list(agreement.signatures) == [council_federation_id(world.brighton)]
    page = client.post(
        f"/federation/agreements/{agreement.agreement_id}/revoke/",
        {"reason": "Ended by review"},
        follow=True,
    )
    assert "Agreement revoked" in page.content.decode()
    assert "agreement_revoked" in page.content.decode()


def test_an_agreement_ending_before_it_starts_is_refused_with_a_clear_message(world, db) -> None:  # type: ignore[no-untyped-def]
    """Nothing is created; the IG officer is told what to fix."""
    ig = make_persona(world.brighton, "ig2@brighton.test", "Ife Two", User.Role.IG_OFFICER)
    with schema_context(world.brighton.schema_name):
        RoleFactory(name="School nurse")
    page = sign_in(ig).post(
        "/federation/agreements/new/",
        {
            "partner_id": council_federation_id(world.staffordshire),
            "purposes": ["safeguarding"],
            "shareable_roles": ["School nurse"],
            "legal_basis": "public_task",
            **_date_boxes("valid_from", date(2030, 1, 2)),
            **_date_boxes("valid_until", date(2030, 1, 1)),
        },
    )
    assert "The end date must be after the start date" in page.content.decode()
    with schema_context(world.brighton.schema_name):
        assert not DataSharingAgreement.objects.exists()


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/federation/peers/", 200),
        ("/federation/outbox/", 200),
        ("/federation/cards/E06000043/", 200),
        ("/federation/cards/E06999999/", 404),
    ],
)
def test_the_operator_sees_peers_cards_and_the_outbox_queue(world, db, path, expected) -> None:  # type: ignore[no-untyped-def]
    """On the platform host, for operators only."""
    assert sign_in(world.operator).get(path).status_code == expected


def test_a_council_user_cannot_reach_the_operators_federation_pages(world, db) -> None:  # type: ignore[no-untyped-def]
    """The peer directory is not served on a council's host at all."""
    assert sign_in(world.brighton_admin).get("/federation/peers/").status_code == 404


def test_an_operator_removes_a_peer_in_the_console(world, db) -> None:  # type: ignore[no-untyped-def]
    """One button, and the peer is marked removed."""
    from federation.directory.models import FederationPeer

    client = sign_in(world.operator)
    client.get("/federation/peers/")
    peer = FederationPeer.objects.get(federation_id=council_federation_id(world.staffordshire))
    page = client.post(f"/federation/peers/{peer.pk}/remove/", follow=True).content.decode()
    assert "every request from it is refused" in page
    peer.refresh_from_db()
    assert peer.removed_at is not None
    with schema_context(world.brighton.schema_name):
        assert own_council() == world.brighton
