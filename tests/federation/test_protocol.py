"""The lookup endpoint refuses every bad request, and a refusal carries nothing but a
reason: no pointer, organisation, role or contact ever leaks."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from django.utils import timezone
from django_tenants.utils import schema_context

from core.models import AuditEvent, Notification
from federation import keycache, protocol, services
from federation.directory.models import FederationPeer, council_federation_id
from federation.models import Exchange
from federation.selectors import peer_active
from tests.federation.agreement import (
    KAI_NHS,
    LOOKUP,
    lookup_body,
    make_agreement,
    post,
    signed_headers,
)

STAFFS = "staffordshire.localhost"
LEAKS = ["Leek", "School nurse", "01538", "Recovery", "Youth", "pointers", "duty team"]


def assert_refused(response, status: int, reason: str) -> None:  # type: ignore[no-untyped-def]
    assert response.status_code == status, response.content
    body = response.content.decode()
    assert json.loads(body) == {"outcome": "refused", "reason": reason}
    for word in LEAKS:
        assert word not in body


def ask(pair, **overrides):  # type: ignore[no-untyped-def]
    body = overrides.pop("body", None) or lookup_body(pair)
    headers = signed_headers(
        pair.brighton, host=STAFFS, body=body, agreement_id=pair.agreement_id, **overrides
    )
    return post(STAFFS, body, headers), body, headers


def test_it_answers_a_good_lookup_with_signed_pointers_for_shareable_roles_only(pair) -> None:
    """The school nurse crosses; the youth worker (not in the agreement) does not."""
    response, _, _ = ask(pair)
    assert response.status_code == 200
    answer = response.json()
    assert answer["outcome"] == "match"
    assert [p["role"] for p in answer["pointers"]] == ["School nurse"]
    assert answer["pointers"][0]["organisation"] == "Leek High School"
    assert answer["pointers"][0]["contact"]["phone"] == "01538 111222"
    staffs_peer = peer_active(council_federation_id(pair.staffordshire))
    keys = {k.key_id: bytes(k.public_key) for k in pair.staffordshire.signing_keys.all()}
    assert protocol.verify_document_signature(answer, staffs_peer.federation_id, keys.get)
    assert protocol.verify_document_signature(
        answer["pointers"][0], staffs_peer.federation_id, keys.get
    )
    assert "Kai" not in response.content.decode() and KAI_NHS not in response.content.decode()


def test_a_sensitive_involvement_never_crosses_but_the_duty_team_is_named(pair) -> None:
    """The substance-misuse service is only a flag and the duty team's contact."""
    response, _, _ = ask(pair)
    answer = response.json()
    assert "Recovery" not in response.content.decode()
    assert answer["sensitive_service_involved"] is True
    assert answer["duty_team_contact"] == "Staffordshire children's duty team, 0300 111 8007"


def test_it_matches_on_a_previous_name_and_date_of_birth_without_the_nhs_number(pair) -> None:
    """Demographic matching tolerates accents, hyphens and a previous surname."""
    from datetime import date

    body = lookup_body(pair, nhs=None, names=(("KAI", "jones"),), born=date(2014, 6, 1))
    response, _, _ = ask(pair, body=body)
    assert response.json()["outcome"] == "match"
    body = lookup_body(pair, nhs=None, names=(("Kai", "Muller Jones"),), born=date(2014, 6, 1))
    response, _, _ = ask(pair, body=body)
    assert response.json()["outcome"] == "match"


def test_it_answers_no_match_for_a_child_it_does_not_know(pair) -> None:
    """An unknown NHS number is simply not known: nothing else comes back."""
    response, _, _ = ask(pair, body=lookup_body(pair, nhs="9434765919"))
    assert response.json()["outcome"] == "no_match"
    assert response.json()["pointers"] == []


def test_a_shielded_person_is_never_matched(pair) -> None:
    """Zara's NHS number is known to Staffordshire, but she is shielded."""
    from datetime import date

    response, _, _ = ask(
        pair,
        body=lookup_body(
            pair, nhs="9434765919", names=(("Zara", "Hollis"),), born=date(2013, 2, 2)
        ),
    )
    assert response.json()["outcome"] == "no_match"
    assert "Leek" not in response.content.decode()


def test_the_matched_persons_team_is_told_a_named_council_looked(pair) -> None:
    """Kai's school nurse at Staffordshire gets a notification naming Brighton."""
    ask(pair)
    with schema_context(pair.staffordshire.schema_name):
        texts = list(Notification.objects.filter(person=pair.kai).values_list("text", flat=True))
    assert texts and all("Brighton and Hove" in t for t in texts)


def test_both_ends_keep_the_signed_request_and_answer_in_the_audit_chain(pair) -> None:
    """Staffordshire's audit holds the signature headers and the signed answer."""
    response, _, headers = ask(pair)
    with schema_context(pair.staffordshire.schema_name):
        event = AuditEvent.objects.filter(action="federation_lookup_received").latest("id")
    assert event.detail["request"]["headers"]["Signature"] == headers["Signature"]
    assert event.detail["response"]["body"] == response.json()
    assert event.person_id == pair.kai.pk


# --- Refusals ---------------------------------------------------------------------------------


def test_a_forged_signature_is_refused(pair) -> None:
    """Signed with a key that is not Brighton's, under Brighton's key id."""
    body = lookup_body(pair)
    with schema_context(pair.brighton.schema_name):
        real = services.signing_key(pair.brighton)
    forged = protocol.SigningKey(real.federation_id, real.key_id, Ed25519PrivateKey.generate())
    headers = protocol.sign_request(
        url=f"http://{STAFFS}{LOOKUP}",
        body=body,
        key=forged,
        agreement_id=pair.agreement_id,
        request_id="r-forged",
        practitioner="p",
        purpose="safeguarding",
    )
    assert_refused(post(STAFFS, body, headers), 401, "bad_signature")


def test_a_tampered_body_is_refused(pair) -> None:
    """The body changed after signing: the Content-Digest no longer matches."""
    body = lookup_body(pair)
    headers = signed_headers(pair.brighton, host=STAFFS, body=body, agreement_id=pair.agreement_id)
    tampered = lookup_body(pair, nhs="9434765919")
    assert_refused(post(STAFFS, tampered, headers), 401, "bad_signature")


def test_a_tampered_federation_header_is_refused(pair) -> None:
    """Changing the purpose after signing breaks the signature, which is checked before the
    agreement: an unauthenticated caller learns nothing about which purposes it covers."""
    _, body, headers = ask(pair)
    headers = {**headers, "patchwork-purpose": "early_help"}
    with schema_context(pair.staffordshire.schema_name):
        doc = pair.staffs_agreement.document
        assert "early_help" not in doc["purposes"]
    assert_refused(post(STAFFS, body, headers), 401, "bad_signature")


@pytest.mark.parametrize("which", ["another_councils", "unknown"])
def test_a_wrong_key_is_refused(pair, world, which) -> None:  # type: ignore[no-untyped-def]
    """A key id that is not one of Brighton's (Staffordshire's own, or made up)."""
    body = lookup_body(pair)
    with schema_context(pair.staffordshire.schema_name):
        other = services.signing_key(pair.staffordshire)
    key_id = other.key_id if which == "another_councils" else "E06000043-made-up"
    key = protocol.SigningKey(council_federation_id(pair.brighton), key_id, other.private_key)
    headers = protocol.sign_request(
        url=f"http://{STAFFS}{LOOKUP}",
        body=body,
        key=key,
        agreement_id=pair.agreement_id,
        request_id="r-wrong-key",
        practitioner="p",
        purpose="safeguarding",
    )
    assert_refused(post(STAFFS, body, headers), 401, "unknown_key")


def test_an_expired_key_is_refused_but_a_freshly_retired_one_still_verifies(pair) -> None:
    """After rotation the old key works for its grace period, then not at all."""
    with schema_context(pair.brighton.schema_name):
        old = services.signing_key(pair.brighton)
    services.council_keys_rotate(council=pair.brighton)
    body = lookup_body(pair)

    def with_old_key():  # type: ignore[no-untyped-def]
        headers = protocol.sign_request(
            url=f"http://{STAFFS}{LOOKUP}",
            body=body,
            key=old,
            agreement_id=pair.agreement_id,
            request_id=f"r-{timezone.now().timestamp()}",
            practitioner="p",
            purpose="safeguarding",
        )
        return post(STAFFS, body, headers)

    assert with_old_key().json()["outcome"] == "match"
    # Eight days on (and so long past the minute a process holds keys in memory).
    pair.brighton.signing_keys.filter(key_id=old.key_id).update(
        retired_at=timezone.now() - timedelta(days=8)
    )
    keycache.forget()
    assert_refused(with_old_key(), 401, "unknown_key")
    fresh, _, _ = ask(pair)
    assert fresh.json()["outcome"] == "match"


def test_an_unknown_peer_is_refused(pair) -> None:
    """A council that is in no directory here."""
    body = lookup_body(pair)
    key = protocol.SigningKey("council:E06000099", "E06000099-x", Ed25519PrivateKey.generate())
    headers = protocol.sign_request(
        url=f"http://{STAFFS}{LOOKUP}",
        body=body,
        key=key,
        agreement_id=pair.agreement_id,
        request_id="r-unknown",
        practitioner="p",
        purpose="safeguarding",
    )
    assert_refused(post(STAFFS, body, headers), 403, "unknown_peer")


def test_a_removed_peer_is_refused_at_once(pair) -> None:
    """The operator removes Brighton: its very next request is refused."""
    assert ask(pair)[0].status_code == 200
    services.peer_remove(
        peer=FederationPeer.objects.get(federation_id=council_federation_id(pair.brighton))
    )
    assert_refused(ask(pair)[0], 403, "unknown_peer")


def test_an_unsigned_agreement_is_refused(pair, world) -> None:  # type: ignore[no-untyped-def]
    """Offered by Brighton but not countersigned by Staffordshire."""
    proposed, _ = make_agreement(pair.brighton, pair.staffordshire, countersign=False)
    body = lookup_body(pair, agreement=proposed)
    headers = signed_headers(
        pair.brighton, host=STAFFS, body=body, agreement_id=proposed.agreement_id
    )
    assert_refused(post(STAFFS, body, headers), 403, "no_agreement_in_force")


def test_an_expired_agreement_is_refused(pair) -> None:
    """Past its valid-until date."""
    with schema_context(pair.staffordshire.schema_name):
        agreement = pair.staffs_agreement
        agreement.document = {
            **agreement.document,
            "valid_until": "2020-01-01",
            "valid_from": "2019-01-01",
        }
        agreement.save()
    assert_refused(ask(pair)[0], 403, "no_agreement_in_force")


def test_a_revoked_agreement_is_refused(pair) -> None:
    """Staffordshire's IG officer revoked it."""
    with schema_context(pair.staffordshire.schema_name):
        services.agreement_revoke(actor=None, agreement=pair.staffs_agreement, reason="Review")
    assert_refused(ask(pair)[0], 403, "no_agreement_in_force")


def test_a_purpose_the_agreement_does_not_cover_is_refused(pair) -> None:
    """Signed honestly for early help, which the agreement does not cover."""
    assert_refused(ask(pair, purpose="early_help")[0], 403, "purpose_not_covered")


def test_a_replayed_nonce_is_refused(pair) -> None:
    """The exact same signed request sent twice: the second is a replay."""
    first, body, headers = ask(pair)
    assert first.status_code == 200
    assert_refused(post(STAFFS, body, headers), 401, "replayed")


def test_the_same_request_id_with_a_different_body_is_a_conflict(pair) -> None:
    """409, and the second body is never looked up."""
    assert ask(pair, request_id="same-id")[0].status_code == 200
    second, _, _ = ask(pair, request_id="same-id", body=lookup_body(pair, nhs="9434765919"))
    assert_refused(second, 409, "request_id_reused")


def test_a_retry_with_the_same_request_id_and_body_gets_the_same_answer_once(pair) -> None:
    """Re-signed with a new nonce: the stored answer, and only one exchange recorded."""
    first, body, _ = ask(pair, request_id="retry-id")
    again, _, _ = ask(pair, request_id="retry-id", body=body)
    assert again.json() == first.json()
    with schema_context(pair.staffordshire.schema_name):
        assert Exchange.objects.filter(request_id="retry-id").count() == 1


@pytest.mark.parametrize("skew", [timedelta(minutes=-10), timedelta(minutes=10)])
def test_clock_skew_beyond_the_window_is_refused(pair, skew) -> None:  # type: ignore[no-untyped-def]
    """Signed ten minutes in the past or in the future."""
    assert_refused(ask(pair, now=datetime.now(UTC) + skew)[0], 401, "outside_time_window")


def test_an_overlong_signature_lifetime_is_refused(pair) -> None:
    """A request that claims to stay valid for an hour."""
    assert_refused(ask(pair, lifetime=timedelta(hours=1))[0], 401, "outside_time_window")


def _with_header(headers: dict[str, str], name: str, value: str) -> dict[str, str]:
    return {**{k: v for k, v in headers.items() if k.lower() != name.lower()}, name: value}


@pytest.mark.parametrize(
    ("header", "value", "reason"),
    [
        ("Signature-Input", 'sig1=("@method" "@target-uri"', "unknown_key"),
        ("Signature-Input", "sig1=();keyid=E06000043-unquoted", "unknown_key"),
        ("Signature-Input", "", "unknown_key"),
        ("Signature", "sig1=:not base64 at all", "bad_signature"),
        ("Signature", "sig1=(),,", "bad_signature"),
    ],
)
def test_a_malformed_signature_header_is_refused(pair, header, value, reason) -> None:  # type: ignore[no-untyped-def]
    """A Signature-Input or Signature header that is not a structured-field dictionary
    (RFC 8941) of one signature gets the plain refusal, not an error page."""
    _, body, headers = ask(pair)
    assert_refused(post(STAFFS, body, _with_header(headers, header, value)), 401, reason)


def test_one_signature_label_given_twice_is_refused(pair) -> None:
    """The same label twice in Signature-Input, even with the right key id both times."""
    _, body, headers = ask(pair)
    given = {k.lower(): v for k, v in headers.items()}["signature-input"]
    twice = _with_header(headers, "Signature-Input", f"{given}, {given}")
    assert_refused(post(STAFFS, body, twice), 401, "unknown_key")


TAG = ';tag="patchwork-federation"'


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (f'sig1=("@method");keyid="E06000043-1";created=1{TAG}', "E06000043-1"),
        ('sig1=("@method");keyid="E06000043-1";created=1', None),
        (f'sig1=("@method");created=1{TAG}', None),
        (f"sig1=();keyid=E06000043-1{TAG}", None),
        (f'sig1=();keyid="a"{TAG}, sig2=();keyid="b"{TAG}', None),
        (f'sig1=();keyid="a"{TAG}, gw=();keyid="b";tag="gateway"', "a"),
        (f'gw=();keyid="b", sig1=();keyid="a"{TAG}', "a"),
        (f'sig1=();keyid="a"{TAG}, sig1=();keyid="a"{TAG}', None),
        (f'sig1=("@method";keyid="a"{TAG}', None),
        ("not a dictionary at all", None),
        (f'sig1=();keyid="é"{TAG}', None),
        (f'sig1="a";keyid="a"{TAG}', None),
    ],
)
def test_the_claimed_key_id_is_read_only_from_one_well_formed_signature(value, expected) -> None:  # type: ignore[no-untyped-def]
    """Before anything is verified, the key id is taken from the one signature tagged
    patchwork-federation (others, e.g. a gateway's, are left alone) whose keyid is a string;
    anything else claims no key."""
    assert protocol.signature_key_id({"Signature-Input": value}) == expected
