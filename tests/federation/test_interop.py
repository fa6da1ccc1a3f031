"""Our wire format, checked by an implementation that shares none of our code: npm
`http-message-signatures` rebuilds every request's RFC 9421 signature base, npm `canonicalize`
every document's RFC 8785 bytes, and Node's own crypto checks every Ed25519 signature
(tests/federation/interop/verify.mjs). The objects are the ones our code sends and answers:
lookups, agreement offers, pointer updates; lookup answers, pointers, key documents, council
cards, agreements, audit checkpoints. Then the RFC 8785 test vectors through both
canonicalisers, and a request the Node side signs, verified by ours."""

from __future__ import annotations

import json
import math
import os
import secrets
import struct
import subprocess
import sys
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import pytest
import rfc8785
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from django.core.exceptions import ValidationError
from django_tenants.utils import schema_context
from http_message_signatures import HTTPMessageSigner, algorithms

from core.models import Person
from federation import checkpoints, protocol, services
from federation.client import (
    LOOKUP_PATH,
    OFFER_PATH,
    POINTER_UPDATE_PATH,
    signed_request,
)
from federation.directory.models import CouncilSigningKey, council_federation_id
from federation.models import OutboxMessage
from federation.selectors import peer_active
from tests.factories import (
    InvolvementFactory,
    OrganisationFactory,
    PractitionerFactory,
    RoleFactory,
)
from tests.federation.agreement import LOOKUP, lookup_body, post, signed_headers
from tests.federation.interop import (
    VECTORS,
    document_item,
    labels,
    request_item,
    run_verifier,
)

STAFFS = "staffordshire.localhost"


def public_keys(*councils: Any) -> dict[str, bytes]:
    return {
        key.key_id: bytes(key.public_key)
        for key in CouncilSigningKey.objects.filter(council__in=councils)
    }


def key_of(council: Any) -> protocol.SigningKey:
    with schema_context(council.schema_name):
        return services.signing_key(council)


def outgoing(sender: Any, receiver: Any, *, path: str, payload: dict[str, Any], **kw: Any):  # type: ignore[no-untyped-def]
    """A request as the client sends it: `signed_request`, to the peer's own base URL."""
    with schema_context(sender.schema_name):
        peer = peer_active(council_federation_id(receiver))
        assert peer is not None
        return signed_request(peer=peer, path=path, payload=payload, **kw)


def assert_all_good(answer: dict[str, Any]) -> None:
    for request in answer["requests"]:
        assert request["problems"] == [], request
        assert request["baseMatches"] is True, request
        assert request["signatureValid"] is True, request
        assert request["digestValid"] is True, request
        assert request["library"] is True, request
    for document in answer["documents"]:
        assert document.get("error") is None, document
        assert document["canonicalMatches"] is True, document
        assert document["verified"] and all(document["verified"].values()), document


@pytest.fixture
def exchanged(pair) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    """Every kind of request and document, made by our code between Brighton and
    Staffordshire: a lookup answered with pointers, then a pointer update for Kai."""
    brighton, staffs = pair.brighton, pair.staffordshire
    lookup = outgoing(
        brighton,
        staffs,
        path=LOOKUP_PATH,
        kind="lookup",
        agreement_id=pair.agreement_id,
        payload=json.loads(lookup_body(pair)),
        purpose="safeguarding",
        practitioner="p-123",
    )
    answered = post(urlsplit(lookup.url).netloc, lookup.body, lookup.headers)
    assert answered.status_code == 200, answered.content
    answer = answered.json()
    assert answer["outcome"] == "match" and answer["pointers"]

    with schema_context(brighton.schema_name):
        agreement = services.agreement_signed_document(pair.brighton_agreement)
        offer = outgoing(
            brighton,
            staffs,
            path=OFFER_PATH,
            kind="agreement_offer",
            agreement_id=pair.agreement_id,
            payload={
                "type": "patchwork.agreement-offer",
                "agreement": agreement,
                "match_key_secret": protocol.b64(
                    services.agreement_secret(pair.brighton_agreement)
                ),
            },
            purpose=services.AGREEMENT_PURPOSE,
        )
        card = services.council_card(brighton)
        keys = services.key_document(brighton)

    with schema_context(staffs.schema_name):
        kai = Person.objects.get(pk=pair.kai.pk)
        InvolvementFactory(
            person=kai,
            practitioner=PractitionerFactory(organisation=OrganisationFactory(name="Leek GP")),
            role=RoleFactory(name="Child protection social worker"),
        )
        # Queued by the change itself (the transactional outbox).
        message = OutboxMessage.objects.filter(person=kai).order_by("-id").first()
        assert message is not None, "a pointer update is queued for Brighton"
    update = outgoing(
        staffs,
        brighton,
        path=POINTER_UPDATE_PATH,
        kind="pointer_update",
        agreement_id=message.agreement_id,
        payload=message.payload,
        purpose=str(message.payload["purpose"]),
        request_id=message.idempotency_key,
    )
    checkpoint = checkpoints.audit_checkpoint_take(council=staffs)
    assert checkpoint is not None
    return {
        "requests": {"lookup": lookup, "offer": offer, "pointer update": update},
        "documents": {
            "lookup answer": answer,
            "pointer": answer["pointers"][0],
            "pointer update": message.payload,
            "key document": keys,
            "council card": card,
            "agreement": agreement,
            "audit checkpoint": checkpoint.document,
        },
    }


def test_it_signs_every_request_and_document_as_an_independent_implementation_reads_them(
    pair, exchanged
) -> None:  # type: ignore[no-untyped-def]
    """npm http-message-signatures and npm canonicalize, with Node's crypto, agree byte for
    byte with every signature base and canonical document our code makes, and every
    signature verifies."""
    keys = public_keys(pair.brighton, pair.staffordshire)
    requests = [
        request_item(
            name,
            url=sent.url,
            headers=sent.headers,
            body=sent.body,
            public_key=keys[key_of(sent_by).key_id],
        )
        for (name, sent), sent_by in zip(
            exchanged["requests"].items(),
            [pair.brighton, pair.brighton, pair.staffordshire],
            strict=True,
        )
    ]
    documents = [document_item(n, d, keys) for n, d in exchanged["documents"].items()]
    answer = run_verifier({"requests": requests, "documents": documents})
    assert [r["name"] for r in answer["requests"]] == ["lookup", "offer", "pointer update"]
    assert len(answer["documents"]) == 7
    assert_all_good(answer)
    agreement = next(d for d in answer["documents"] if d["name"] == "agreement")
    assert len(agreement["verified"]) == 2, "both councils' signatures were checked"


def test_the_independent_verifier_notices_a_changed_byte(pair, exchanged) -> None:  # type: ignore[no-untyped-def]
    """The check can fail: one header changed after signing, one document field changed."""
    keys = public_keys(pair.brighton, pair.staffordshire)
    sent = exchanged["requests"]["lookup"]
    headers = {**sent.headers, "patchwork-purpose": "early_help"}
    tampered = {**exchanged["documents"]["pointer"], "role": "Youth worker"}
    answer = run_verifier(
        {
            "requests": [
                {
                    **request_item(
                        "tampered",
                        url=sent.url,
                        headers=sent.headers,
                        body=sent.body,
                        public_key=keys[key_of(pair.brighton).key_id],
                    ),
                    "headers": headers,
                }
            ],
            "documents": [
                {
                    **document_item("tampered", exchanged["documents"]["pointer"], keys),
                    "document": tampered,
                }
            ],
        }
    )
    assert answer["requests"][0]["signatureValid"] is False
    assert answer["requests"][0]["baseMatches"] is False
    assert answer["documents"][0]["canonicalMatches"] is False
    assert not any(answer["documents"][0]["verified"].values())


# --- RFC 8785 test vectors ---------------------------------------------------------------------


def test_the_rfc_8785_test_vectors_come_out_byte_for_byte_from_both_canonicalisers() -> None:
    """The JCS reference test data (cyberphone/json-canonicalization): our canonical JSON and
    npm canonicalize both give exactly the expected bytes."""
    names = sorted(p.stem for p in (VECTORS / "input").glob("*.json"))
    assert names == ["arrays", "french", "structures", "unicode", "values", "weird"]
    vectors = []
    for name in names:
        text = (VECTORS / "input" / f"{name}.json").read_text("utf-8")
        expected = (VECTORS / "output" / f"{name}.json").read_bytes()
        ours = protocol.canonical_json(protocol.json_interoperable(text))
        assert ours == expected, name
        vectors.append(
            {
                "name": name,
                "input": text,
                "expected_b64": protocol.b64(expected),
                "ours_b64": protocol.b64(ours),
            }
        )
    answer = run_verifier({"vectors": vectors})
    assert answer["vectors"] == [
        {"name": name, "npmMatchesExpected": True, "oursMatchesExpected": True} for name in names
    ]


def test_the_rfc_8785_number_table_comes_out_byte_for_byte_from_both_canonicalisers() -> None:
    """RFC 8785 Appendix B: each IEEE 754 double written as ECMAScript writes it, by us, by
    npm canonicalize and by Node's own Number.toString; NaN and Infinity refused by both."""
    rows = [line.split(",") for line in (VECTORS / "numbers.csv").read_text().splitlines() if line]
    answer = run_verifier({"numbers": [{"hex": h, "expected": e} for h, e in rows]})
    for (hex_value, expected), theirs in zip(rows, answer["numbers"], strict=True):
        value = struct.unpack(">d", bytes.fromhex(hex_value.zfill(16)))[0]
        if not expected:
            assert not math.isfinite(value)
            with pytest.raises(protocol.NotCanonicalJSON):
                protocol.canonical_json(value)
            assert theirs["canonical"] is None
            continue
        assert protocol.canonical_json(value) == expected.encode(), hex_value
        assert theirs["canonical"] == expected, hex_value
        assert theirs["ecmascript"] == expected, hex_value


# --- Integers beyond 2^53 (issue 16, point 5a) -------------------------------------------------


def test_a_large_integer_written_as_jcs_writes_it_signs_and_verifies_again_here_and_in_node(
    pair,
) -> None:  # type: ignore[no-untyped-def]
    """2^60 is written by JCS as 1152921504606847000; a document holding it, read back from
    the wire (where it is an integer), verifies here as in npm canonicalize."""
    key = key_of(pair.brighton)
    signed = protocol.sign_document({"type": "example", "n": float(2**60)}, key)
    assert protocol.canonical(signed) == b'{"n":1152921504606847000,"type":"example"}'
    from_the_wire = json.loads(rfc8785.dumps(signed))
    assert from_the_wire["n"] == 1152921504606847000
    keys = public_keys(pair.brighton)
    assert protocol.verify_document_signature(from_the_wire, key.federation_id, keys.get)
    answer = run_verifier({"documents": [document_item("large", from_the_wire, keys)]})
    assert_all_good(answer)


@pytest.mark.parametrize("value", [2**53 + 1, -(2**53) - 1, 2**68, 10**21, -(10**22)])
def test_an_integer_jcs_would_change_is_refused_with_a_clear_error_when_signing(
    pair, value
) -> None:  # type: ignore[no-untyped-def]
    """An integer past 2^53 that JCS would write differently (it reads it as a double: 2^68
    comes out as 295147905179352830000) is not signed: one signature would otherwise cover
    two documents."""
    with pytest.raises(protocol.NotCanonicalJSON, match="send it as a string"):
        protocol.sign_document({"type": "example", "n": value}, key_of(pair.brighton))


def test_a_peers_document_holding_such_an_integer_is_not_verified_and_raises_nothing(
    pair,
) -> None:  # type: ignore[no-untyped-def]
    """A pointer from a peer holding 2^53 + 1: not verified (no exception, no 500)."""
    key = key_of(pair.brighton)
    signed = protocol.sign_document({"type": "patchwork.pointer", "n": 1}, key)
    signed["n"] = 2**53 + 1
    assert not protocol.verify_document_signature(
        signed, key.federation_id, public_keys(pair.brighton).get
    )


@pytest.mark.parametrize(
    "body",
    [
        b'{"type": "patchwork.lookup", "match_keys": {"nhs": []}, "n": 9007199254740993}',
        b'{"type": "patchwork.lookup", "match_keys": {"nhs": []}, "n": NaN}',
        b'{"type": "patchwork.lookup", "match_keys": {"nhs": []}, "n": 1e400}',
        b'{"type": "patchwork.lookup", "type": "patchwork.lookup", "match_keys": {"nhs": []}}',
    ],
)
def test_a_request_body_implementations_read_differently_is_refused_with_a_reason(
    pair, body
) -> None:  # type: ignore[no-untyped-def]
    """A large integer, NaN, an overflowing number, a repeated member: 400 with a reason."""
    headers = signed_headers(pair.brighton, host=STAFFS, body=body, agreement_id=pair.agreement_id)
    response = post(STAFFS, body, headers)
    assert response.status_code == 400, response.content
    assert response.json() == {"outcome": "refused", "reason": "not_interoperable_json"}


def test_a_pointer_update_holding_such_an_integer_is_refused_not_an_error(pair, exchanged) -> None:  # type: ignore[no-untyped-def]
    """A signed pointer update whose pointer holds 2^53 + 1, sent to Brighton: refused with a
    reason code, never a server error."""
    payload = json.loads(json.dumps(exchanged["documents"]["pointer update"]))
    payload["pointers"][0]["n"] = 2**53 + 1
    body = json.dumps(payload).encode()
    with schema_context(pair.staffordshire.schema_name):
        key = services.signing_key(pair.staffordshire)
    headers = protocol.sign_request(
        url=f"http://brighton-and-hove.localhost{POINTER_UPDATE_PATH}",
        body=body,
        key=key,
        agreement_id=payload["agreement_id"],
        request_id=str(uuid.uuid4()),
        practitioner="system",
        purpose=payload["purpose"],
    )
    response = post("brighton-and-hove.localhost", body, headers, path=POINTER_UPDATE_PATH)
    assert response.status_code == 400, response.content
    assert response.json()["reason"] == "not_interoperable_json"


# --- Several signatures on one request (point 5b) ----------------------------------------------


def _add_signature(
    headers: dict[str, str], url: str, body: bytes, *, label: str, tag: str, key: Ed25519PrivateKey
) -> dict[str, str]:
    """Another signature on the request, appended as a gateway would (RFC 9421 section 4.3)."""
    message = protocol.HttpMessage(method="POST", url=url, headers=dict(headers))

    class Keys:
        def resolve_private_key(self, key_id: str) -> Ed25519PrivateKey:
            return key

    HTTPMessageSigner(signature_algorithm=algorithms.ED25519, key_resolver=Keys()).sign(  # type: ignore[arg-type]
        message,
        key_id="gateway-2026",
        label=label,
        tag=tag,
        nonce=secrets.token_urlsafe(12),
        covered_component_ids=("@method", "@target-uri", "content-digest"),
        append_if_signature_exists=True,
        use_existing_digest=True,
    )
    return message.headers


def test_a_request_also_signed_by_a_gateway_is_verified_by_our_signature(pair) -> None:  # type: ignore[no-untyped-def]
    """A gateway's valid signature beside ours (another label, another tag, a key we do not
    know) is left alone; ours is found by its tag and verified; so does the Node side."""
    body = lookup_body(pair)
    url = f"http://{STAFFS}{LOOKUP}"
    headers = signed_headers(pair.brighton, host=STAFFS, body=body, agreement_id=pair.agreement_id)
    both = _add_signature(
        headers, url, body, label="gateway", tag="gateway.example", key=Ed25519PrivateKey.generate()
    )
    assert labels(both) == ["pyhms", "gateway"]
    response = post(STAFFS, body, both)
    assert response.status_code == 200, response.content
    assert response.json()["outcome"] == "match"
    keys = public_keys(pair.brighton)
    answer = run_verifier(
        {
            "requests": [
                request_item(
                    "gateway",
                    url=url,
                    headers=both,
                    body=body,
                    public_key=keys[key_of(pair.brighton).key_id],
                )
            ]
        }
    )
    assert_all_good(answer)


def test_a_request_with_two_patchwork_signatures_is_still_refused(pair) -> None:  # type: ignore[no-untyped-def]
    """Two signatures tagged patchwork-federation, even both by the sender's own key: which
    one speaks for the council is ambiguous, so neither does."""
    body = lookup_body(pair)
    url = f"http://{STAFFS}{LOOKUP}"
    headers = signed_headers(pair.brighton, host=STAFFS, body=body, agreement_id=pair.agreement_id)
    twice = _add_signature(
        headers,
        url,
        body,
        label="again",
        tag=protocol.SIGNATURE_TAG,
        key=key_of(pair.brighton).private_key,
    )
    response = post(STAFFS, body, twice)
    assert response.status_code == 401
    assert response.json() == {"outcome": "refused", "reason": "unknown_key"}


def test_a_request_with_only_a_gateways_signature_is_refused(pair) -> None:  # type: ignore[no-untyped-def]
    """Without ours, the gateway's signature alone claims no Patchwork key."""
    body = lookup_body(pair)
    url = f"http://{STAFFS}{LOOKUP}"
    headers = signed_headers(pair.brighton, host=STAFFS, body=body, agreement_id=pair.agreement_id)
    both = _add_signature(
        headers, url, body, label="gateway", tag="gateway.example", key=Ed25519PrivateKey.generate()
    )
    lower = {k.lower(): v for k, v in both.items()}
    only_gateway = {
        **{k: v for k, v in both.items() if k.lower() not in {"signature", "signature-input"}},
        "Signature-Input": "gateway=" + lower["signature-input"].split(", gateway=")[1],
        "Signature": "gateway=" + lower["signature"].split(", gateway=")[1],
    }
    response = post(STAFFS, body, only_gateway)
    assert response.json() == {"outcome": "refused", "reason": "unknown_key"}


# --- Default ports in base URLs (point 5d) -----------------------------------------------------


@pytest.mark.parametrize(
    ("given", "normalised"),
    [
        ("https://council.example:443", "https://council.example"),
        ("https://council.example:443/", "https://council.example"),
        ("http://council.example:80/", "http://council.example"),
        ("HTTPS://Council.Example", "https://council.example"),
        ("https://council.example:8443/", "https://council.example:8443"),
        ("http://council.example:443", "http://council.example:443"),
        ("https://council.example/patchwork/", "https://council.example/patchwork"),
        (" https://[::1]:443 ", "https://[::1]"),
    ],
)
def test_a_base_url_is_kept_in_one_form(given: str, normalised: str) -> None:
    """The scheme's default port is left out, as every HTTP client writes the URL."""
    assert protocol.base_url_normalised(given) == normalised


@pytest.mark.parametrize(
    "given",
    [
        "ftp://council.example",
        "council.example",
        "https://",
        "https://u:p@council.example",
        "https://council.example?x=1",
        "https://council.example#top",
        "https://council.example:99999",
    ],
)
def test_a_base_url_that_is_not_one_is_refused(given: str) -> None:
    with pytest.raises(ValueError):
        protocol.base_url_normalised(given)


def test_a_request_to_a_base_url_with_its_default_port_verifies(pair) -> None:  # type: ignore[no-untyped-def]
    """Signed for https://x:443/...; the receiver (ours, and the Node side's WHATWG URL) sees
    https://x/...: both verify."""
    body = b'{"type":"patchwork.lookup"}'
    key = key_of(pair.brighton)
    headers = protocol.sign_request(
        url="https://staffordshire.example:443/federation/v1/who-is-involved",
        body=body,
        key=key,
        agreement_id=pair.agreement_id,
        request_id=str(uuid.uuid4()),
        practitioner="p-1",
        purpose="safeguarding",
    )
    keys = public_keys(pair.brighton)
    verified = protocol.verify_request(
        method="POST",
        url="https://staffordshire.example/federation/v1/who-is-involved",
        headers=headers,
        body=body,
        public_key=keys[key.key_id],
    )
    assert verified.key_id == key.key_id
    answer = run_verifier(
        {
            "requests": [
                request_item(
                    "default port",
                    url="https://staffordshire.example/federation/v1/who-is-involved",
                    headers=headers,
                    body=body,
                    public_key=keys[key.key_id],
                )
            ]
        }
    )
    assert_all_good(answer)


def test_a_card_with_a_default_port_adds_a_peer_at_the_plain_address(pair) -> None:  # type: ignore[no-untyped-def]
    """A council card saying https://x:443/ is kept as https://x."""
    key = Ed25519PrivateKey.generate()
    public = key.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    card = protocol.sign_document(
        {
            "type": "patchwork.council-card",
            "id": "council:E06000052",
            "name": "Cornwall Council",
            "base_url": "https://cornwall.example:443/",
            "issued_at": protocol.timestamp(datetime.now(UTC)),
            "keys": [
                {
                    "key_id": "E06000052-1",
                    "public_key": protocol.b64(public),
                    "fingerprint": protocol.fingerprint(public),
                }
            ],
        },
        protocol.SigningKey("council:E06000052", "E06000052-1", key),
    )
    assert services.peer_add(card=card).base_url == "https://cornwall.example"
    with pytest.raises(ValidationError):
        services.peer_add(card={**card, "base_url": "ftp://cornwall.example"})


@pytest.mark.parametrize(
    ("scheme", "port", "kept"),
    [("https", "443", ""), ("http", "80", ""), ("https", "8443", "8443"), ("http", "443", "443")],
)
def test_the_sites_default_port_is_left_out_of_every_address(scheme, port, kept) -> None:  # type: ignore[no-untyped-def]
    """SITE_PORT=443 with https (as Ansible sets it for a platform on 443) writes no port:
    a council's card says https://x, not https://x:443."""
    done = subprocess.run(
        [sys.executable, "-c", "import deploy.settings as s; print(s.SITE_PORT)"],
        env={**os.environ, "SITE_SCHEME": scheme, "SITE_PORT": port},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert done.stdout.strip().splitlines()[-1:] == ([kept] if kept else [])


# --- A request signed by the Node side -----------------------------------------------------------


def test_a_request_signed_by_the_independent_implementation_is_verified_by_ours(pair) -> None:  # type: ignore[no-untyped-def]
    """Node signs a lookup with Brighton's key through npm http-message-signatures (its own
    label, its own serialisation); Staffordshire answers it."""
    key = key_of(pair.brighton)
    seed = key.private_key.private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )
    body = lookup_body(pair)
    created = int(datetime.now(UTC).timestamp())
    signed = run_verifier(
        {
            "sign": [
                {
                    "name": "lookup",
                    "method": "POST",
                    "url": f"http://{STAFFS}{LOOKUP}",
                    "headers": {
                        "Content-Type": "application/json",
                        "patchwork-council": key.federation_id,
                        "patchwork-agreement": pair.agreement_id,
                        "patchwork-request-id": str(uuid.uuid4()),
                        "patchwork-practitioner": "p-node",
                        "patchwork-purpose": "safeguarding",
                    },
                    "body_b64": protocol.b64(body),
                    "seed": protocol.b64(seed),
                    "key_id": key.key_id,
                    "created": created,
                    "expires": created + int(timedelta(seconds=60).total_seconds()),
                    "nonce": secrets.token_urlsafe(18),
                }
            ]
        }
    )["signed"][0]["headers"]
    assert labels(signed) == ["sig"]
    response = post(STAFFS, body, signed)
    assert response.status_code == 200, response.content
    assert response.json()["outcome"] == "match"
