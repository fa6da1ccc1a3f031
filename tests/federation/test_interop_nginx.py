"""A council on an HTTPS port other than 443, behind the Ansible role's nginx site (rendered
and started as tests/operations/test_nginx_proxy.py does): a real signed federation request,
made by our client code for https://council.localhost:PORT/..., goes through nginx over TLS
and is verified by the app, which must rebuild the same @target-uri, port included. The
independent verifier (npm, Node) checks the same request and the signed answer, and a request
Node signs goes through nginx too."""

from __future__ import annotations

import json
import secrets
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import pytest
from cryptography.hazmat.primitives import serialization
from django_tenants.utils import schema_context

from federation import protocol, services
from federation.client import LOOKUP_PATH, signed_request
from federation.directory.models import CouncilSigningKey, council_federation_id
from federation.selectors import peer_active
from tenants.services import council_onboard
from tests.federation.agreement import make_agreement
from tests.federation.interop import document_item, request_item, run_verifier
from tests.federation.live import committed_restore, committed_snapshot
from tests.operations.test_nginx_proxy import (  # noqa: F401 - `proxy` is the fixture used here
    ClientConnection,
    Proxy,
    proxy,
)

pytestmark = pytest.mark.django_db


@dataclass
class Councils:
    asker: Any
    answerer: Any
    agreement_id: str


@pytest.fixture(scope="module")
def councils(world, django_db_blocker) -> Iterator[Councils]:  # type: ignore[no-untyped-def]
    """Portsmouth asks, Southampton answers, under an agreement: committed, since the app
    behind nginx is another process."""
    with django_db_blocker.unblock():
        snapshot = committed_snapshot()
        portsmouth = council_onboard(
            name="Portsmouth", code="E06000044", admin_email="a@portsmouth.test"
        ).council
        southampton = council_onboard(
            name="Southampton", code="E06000045", admin_email="a@southampton.test"
        ).council
        agreement, _ = make_agreement(portsmouth, southampton)
    yield Councils(portsmouth, southampton, agreement.agreement_id)
    with django_db_blocker.unblock():
        committed_restore(snapshot)


def public_keys(*councils: Any) -> dict[str, bytes]:
    return {
        key.key_id: bytes(key.public_key)
        for key in CouncilSigningKey.objects.filter(council__in=councils)
    }


def lookup(councils: Councils) -> Any:
    """A lookup, as the client signs it, for Southampton's own address: https, the port."""
    with schema_context(councils.asker.schema_name):
        peer = peer_active(council_federation_id(councils.answerer))
        assert peer is not None
        return signed_request(
            peer=peer,
            path=LOOKUP_PATH,
            kind="lookup",
            agreement_id=councils.agreement_id,
            payload={
                "type": "patchwork.lookup",
                "match_keys": {"nhs": [secrets.token_hex(32)], "demographic": []},
            },
            purpose="safeguarding",
            practitioner="p-portsmouth",
        )


def through_nginx(nginx: Proxy, url: str, headers: dict[str, str], body: bytes) -> tuple[int, Any]:
    """POST over TLS to nginx, as the client does: the URL's host (and port) in Host."""
    parts = urlsplit(url)
    assert parts.port == nginx.https_port
    connection = ClientConnection(nginx.https_port, parts.hostname or "")
    try:
        connection.request("POST", parts.path, body=body, headers=headers)
        response = connection.getresponse()
        return response.status, json.loads(response.read())
    finally:
        connection.close()


@pytest.fixture
def on_a_non_default_port(proxy: Proxy, settings, django_db_blocker) -> Iterator[Proxy]:  # type: ignore[no-untyped-def]  # noqa: F811
    """Councils here are at https://<council>.localhost:<nginx's port>."""
    settings.SITE_SCHEME = "https"
    settings.SITE_PORT = str(proxy.https_port)
    with django_db_blocker.unblock():
        yield proxy


def test_a_signed_request_to_a_council_on_a_non_default_port_is_verified_behind_nginx(
    on_a_non_default_port: Proxy, councils: Councils
) -> None:
    """The app behind nginx rebuilds https://southampton.localhost:PORT/... and verifies
    Portsmouth's signature; the signed answer comes back. Node verifies both."""
    nginx = on_a_non_default_port
    sent = lookup(councils)
    assert sent.url.startswith(f"https://southampton.localhost:{nginx.https_port}/")
    status, answer = through_nginx(nginx, sent.url, sent.headers, sent.body)
    assert status == 200, answer
    assert answer["type"] == "patchwork.lookup-answer"
    assert answer["outcome"] == "no_match"
    seen = nginx.seen(LOOKUP_PATH)
    assert seen["HTTP_HOST"] == f"southampton.localhost:{nginx.https_port}"

    keys = public_keys(councils.asker, councils.answerer)
    with schema_context(councils.asker.schema_name):
        asker_key = services.signing_key(councils.asker).key_id
    checked = run_verifier(
        {
            "requests": [
                request_item(
                    "through nginx",
                    url=sent.url,
                    headers=sent.headers,
                    body=sent.body,
                    public_key=keys[asker_key],
                )
            ],
            "documents": [document_item("answer", answer, keys)],
        }
    )
    request = checked["requests"][0]
    assert request["problems"] == [] and request["baseMatches"] and request["signatureValid"]
    assert request["library"] is True
    assert checked["documents"][0]["canonicalMatches"]
    assert all(checked["documents"][0]["verified"].values())


def test_a_request_node_signs_is_verified_behind_nginx_on_a_non_default_port(
    on_a_non_default_port: Proxy, councils: Councils
) -> None:
    """npm http-message-signatures signs a lookup with Portsmouth's key for
    https://southampton.localhost:PORT/...; the app behind nginx answers it."""
    nginx = on_a_non_default_port
    with schema_context(councils.asker.schema_name):
        key = services.signing_key(councils.asker)
    seed = key.private_key.private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )
    url = f"https://southampton.localhost:{nginx.https_port}{LOOKUP_PATH}"
    body = json.dumps(
        {"type": "patchwork.lookup", "match_keys": {"nhs": [secrets.token_hex(32)]}}
    ).encode()
    created = int(datetime.now(UTC).timestamp())
    signed = run_verifier(
        {
            "sign": [
                {
                    "name": "lookup",
                    "method": "POST",
                    "url": url,
                    "headers": {
                        "Content-Type": "application/json",
                        "patchwork-council": key.federation_id,
                        "patchwork-agreement": councils.agreement_id,
                        "patchwork-request-id": str(uuid.uuid4()),
                        "patchwork-practitioner": "p-node",
                        "patchwork-purpose": "safeguarding",
                    },
                    "body_b64": protocol.b64(body),
                    "seed": protocol.b64(seed),
                    "key_id": key.key_id,
                    "created": created,
                    "expires": created + 60,
                    "nonce": secrets.token_urlsafe(18),
                }
            ]
        }
    )["signed"][0]["headers"]
    status, answer = through_nginx(nginx, url, signed, body)
    assert status == 200, answer
    assert answer["outcome"] == "no_match"
