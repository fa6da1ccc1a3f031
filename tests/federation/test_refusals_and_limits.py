"""Refusals cost an attacker's target nothing permanent (issue 14, point 3), and the
federation is rate limited per peer and per address (point 5; decision 0011).

A refusal before the peer is authenticated (unknown peer or key, bad signature) is counted
in patchwork_federation_refused and against the client's address, and logged in one short
line a minute: never an audit row. An authenticated peer's refusal is audited, bounded."""

from __future__ import annotations

import json
import logging
import uuid

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from django.test import Client, override_settings
from django_tenants.utils import schema_context
from prometheus_client import REGISTRY

from core.models import AuditEvent
from federation import protocol, services
from federation.directory.models import council_federation_id
from tests.federation.agreement import LOOKUP, lookup_body, signed_headers
from tests.ratelimits.fixtures import production_limits

__all__ = ["production_limits"]

STAFFS = "staffordshire.localhost"
LONG = "x" * 8000


def send(body: bytes, headers: dict[str, str], address: str = "198.51.100.70"):  # type: ignore[no-untyped-def]
    headers = {k: v for k, v in headers.items() if k.lower() != "content-type"}
    return Client(HTTP_HOST=STAFFS, REMOTE_ADDR=address).post(
        LOOKUP, data=body, content_type="application/json", headers=headers
    )


def forged(
    pair, *, council: str | None = None, practitioner: str = "p"
) -> tuple[bytes, dict[str, str]]:  # type: ignore[no-untyped-def]
    """A lookup signed by a key nobody here knows, claiming to be `council`."""
    body = lookup_body(pair)
    federation_id = council or council_federation_id(pair.brighton)
    with schema_context(pair.brighton.schema_name):
        key_id = services.signing_key(pair.brighton).key_id
    key = protocol.SigningKey(federation_id, key_id, Ed25519PrivateKey.generate())
    headers = protocol.sign_request(
        url=f"http://{STAFFS}{LOOKUP}",
        body=body,
        key=key,
        agreement_id=pair.agreement_id,
        request_id=str(uuid.uuid4()),
        practitioner=practitioner,
        purpose="safeguarding",
    )
    return body, headers


def audit_count(pair) -> int:  # type: ignore[no-untyped-def]
    with schema_context(pair.staffordshire.schema_name):
        return AuditEvent.objects.count()


def refused_metric(reason: str, authenticated: str) -> float:
    value = REGISTRY.get_sample_value(
        "patchwork_federation_refused_total",
        {"kind": "lookup", "reason": reason, "authenticated": authenticated},
    )
    return value or 0.0


def test_an_unauthenticated_refusal_is_counted_but_never_audited(pair, production_limits) -> None:
    """A forged signature claiming Brighton, and a council nobody knows with a 8 KB name:
    refused as before, counted in the metric, and the audit table gains no row."""
    before = audit_count(pair)
    bad_signature = refused_metric("bad_signature", "no")
    unknown_peer = refused_metric("unknown_peer", "no")
    response = send(*forged(pair, practitioner=LONG))
    assert response.status_code == 401
    assert response.json() == {"outcome": "refused", "reason": "bad_signature"}
    response = send(*forged(pair, council=f"council:{LONG}"))
    assert response.status_code == 403
    assert response.json() == {"outcome": "refused", "reason": "unknown_peer"}
    assert audit_count(pair) == before
    assert refused_metric("bad_signature", "no") == bad_signature + 1
    assert refused_metric("unknown_peer", "no") == unknown_peer + 1


def test_unauthenticated_refusals_are_logged_briefly_once_a_minute_per_address(
    pair, production_limits, caplog
) -> None:
    """Ten refusals with an 8 KB claimed council from one address: one short log line."""
    with caplog.at_level(logging.INFO, logger="federation.server"):
        for _ in range(10):
            send(*forged(pair, council=f"council:{LONG}"), address="198.51.100.71")
        send(*forged(pair, council=f"council:{LONG}"), address="198.51.100.72")
    lines = [r.getMessage() for r in caplog.records if r.name == "federation.server"]
    assert len(lines) == 2, lines
    assert all(len(line) < 400 for line in lines), [len(line) for line in lines]
    assert "198.51.100.71" in lines[0] and "unknown_peer" in lines[0]
    assert "198.51.100.72" in lines[1]


def test_an_authenticated_peers_refusal_is_audited_with_bounded_claims(
    pair, production_limits
) -> None:
    """Brighton, signing honestly, asks under an agreement Staffordshire does not have, with an
    8 KB practitioner header: refused, and audited with the claim cut to 200 characters."""
    body = lookup_body(pair)
    with schema_context(pair.brighton.schema_name):
        key = services.signing_key(pair.brighton)
    headers = protocol.sign_request(
        url=f"http://{STAFFS}{LOOKUP}",
        body=body,
        key=key,
        agreement_id="no-such-agreement",
        request_id=str(uuid.uuid4()),
        practitioner=LONG,
        purpose="safeguarding",
    )
    before = audit_count(pair)
    response = send(body, headers)
    assert response.status_code == 403
    assert response.json() == {"outcome": "refused", "reason": "no_agreement_in_force"}
    with schema_context(pair.staffordshire.schema_name):
        events = list(AuditEvent.objects.order_by("id")[before:])
    assert [e.action for e in events] == ["federation_refused"]
    detail = events[0].detail
    assert detail["peer"] == council_federation_id(pair.brighton)
    assert detail["reason"] == "no_agreement_in_force"
    assert detail["claimed"]["patchwork-practitioner"] == "x" * 200
    assert len(json.dumps(detail)) < 2000


@override_settings(RATE_LIMIT_FEDERATION_PEER="3/m")
def test_a_peer_is_limited_and_forgeries_in_its_name_do_not_use_its_allowance(
    pair, production_limits
) -> None:
    """Five forged requests claiming Brighton (from another address) do not count against
    Brighton; its own three lookups are answered, its fourth is 429 in the federation's
    shape with Retry-After, and the 429 writes no audit row."""
    for _ in range(5):
        assert send(*forged(pair), address="203.0.113.5").status_code == 401
    for _ in range(3):
        body = lookup_body(pair)
        headers = signed_headers(
            pair.brighton, host=STAFFS, body=body, agreement_id=pair.agreement_id
        )
        assert send(body, headers).json()["outcome"] == "match"
    before = audit_count(pair)
    body = lookup_body(pair)
    headers = signed_headers(pair.brighton, host=STAFFS, body=body, agreement_id=pair.agreement_id)
    limited = send(body, headers)
    assert limited.status_code == 429
    assert limited.json() == {"outcome": "refused", "reason": "rate_limited"}
    assert 1 <= int(limited["Retry-After"]) <= 60
    assert audit_count(pair) == before


def test_an_address_with_many_unauthenticated_refusals_is_limited(pair, production_limits) -> None:
    """Twenty forged requests from one address: after them even a good request from that
    address is refused 429, while the same good request from elsewhere is answered."""
    for _ in range(20):
        assert send(*forged(pair), address="203.0.113.9").status_code == 401
    body = lookup_body(pair)
    headers = signed_headers(pair.brighton, host=STAFFS, body=body, agreement_id=pair.agreement_id)
    limited = send(body, headers, address="203.0.113.9")
    assert limited.status_code == 429
    assert limited.json() == {"outcome": "refused", "reason": "rate_limited"}
    assert int(limited["Retry-After"]) >= 1
    assert send(body, headers, address="203.0.113.10").json()["outcome"] == "match"
