"""Requests are signed with `cryptography` directly (federation.protocol.sign_request): the
headers must be what http-message-signatures writes, byte for byte, and its own verifier
must accept them."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from http_message_signatures import HTTPMessageVerifier, algorithms
from hypothesis import given, settings
from hypothesis import strategies as st

from federation import protocol

KEY = protocol.SigningKey(
    "council:E06000043", "E06000043-20261129-1a2b3c4d", Ed25519PrivateKey.generate()
)
CREATED = datetime(2026, 11, 29, 15, 0, 0, tzinfo=UTC)


def signed(url: str, body: bytes, **overrides: str) -> tuple[dict[str, str], dict[str, str]]:
    """The same request signed the fast way and by the library, with one nonce and time."""
    fields = {
        "agreement_id": "7d1c2c8e-4f5a-4c51-9d0e-0d6f1f9f2a11",
        "request_id": "0f3e8b9a-5d2c-4a7b-8e1f-2c3d4e5f6a7b",
        "practitioner": "3f9a0c2b7d1e4f5a6b8c9d0e1f2a3b4c",
        "purpose": "safeguarding",
        "nonce": "bC3x-Q2_pL9sVt0aRk1mNw4Y",
        **overrides,
    }
    nonce = fields.pop("nonce")
    fast = protocol.sign_request(url=url, body=body, key=KEY, now=CREATED, nonce=nonce, **fields)
    headers = {
        "Content-Type": "application/json",
        protocol.HEADER_COUNCIL: KEY.federation_id,
        protocol.HEADER_AGREEMENT: fields["agreement_id"],
        protocol.HEADER_REQUEST_ID: fields["request_id"],
        protocol.HEADER_PRACTITIONER: fields["practitioner"],
        protocol.HEADER_PURPOSE: fields["purpose"],
    }
    # sign_request signs the URL as RFC 9110 normalises it (decision 0017): so does this.
    by_library = protocol._signed_by_library(
        protocol.target_uri_normalised(url),
        body,
        KEY,
        headers,
        CREATED,
        CREATED + protocol.REQUEST_LIFETIME,
        nonce,
    )
    return fast, by_library


def library_accepts(url: str, body: bytes, headers: dict[str, str]) -> bool:
    """http-message-signatures' own verifier, with our public key and the components we
    require (its clock check opened wide: the request was made at a fixed time)."""

    class Verifier(HTTPMessageVerifier):
        max_clock_skew = protocol._PatientVerifier.max_clock_skew

    verifier = Verifier(
        signature_algorithm=algorithms.ED25519,
        key_resolver=protocol._Keys(
            public_key_for=lambda _: KEY.private_key.public_key().public_bytes_raw()
        ),
    )
    results = verifier.verify(
        protocol.HttpMessage("POST", url, dict(headers)),
        max_age=None,
        expect_tag=protocol.SIGNATURE_TAG,
        require_components=protocol.COVERED_COMPONENTS,
        body=body,
    )
    return len(results) == 1


@pytest.mark.parametrize(
    "url",
    [
        "http://staffordshire.localhost:8000/federation/v1/who-is-involved",
        "https://patchwork.staffordshire.gov.uk/federation/v1/who-is-involved",
        "https://brighton-and-hove.example:8443/federation/v1/agreements/offer",
        "http://127.0.0.1:8123/federation/v1/pointer-updates",
    ],
)
def test_it_writes_what_the_library_writes(url: str) -> None:
    """Every header, in the same order, the same bytes; the library's verifier accepts it."""
    body = b'{"match_keys":{"demographic":[],"nhs":["ab12"]},"type":"patchwork.lookup"}'
    fast, by_library = signed(url, body)
    assert list(fast.items()) == list(by_library.items())
    assert library_accepts(url, body, fast)


def test_it_leaves_unusual_requests_to_the_library() -> None:
    """A query string, or a header value with a space or a quote, is signed by the library
    (and verifies), rather than by a shortcut that might write it differently."""
    url = "https://peer.example/federation/v1/who-is-involved?x=1"
    fast, by_library = signed(url, b"{}", purpose='safe "guarding"')
    assert fast == by_library
    assert library_accepts(url, b"{}", fast)


def test_a_changed_body_does_not_verify() -> None:
    """The digest covers the body: the fast signature is not a signature of anything else."""
    url = "http://staffordshire.localhost:8000/federation/v1/who-is-involved"
    fast, _ = signed(url, b'{"a":1}')
    with pytest.raises(Exception):  # noqa: B017, PT011 - the library's own refusal
        library_accepts(url, b'{"a":2}', fast)


@settings(max_examples=200, deadline=None)
@given(
    path=st.text("abcxyz019-._~/", min_size=0, max_size=30),
    port=st.one_of(st.none(), st.integers(1, 65535)),
    body=st.binary(max_size=200),
    value=st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=40),
)
def test_it_matches_the_library_for_any_plain_request(
    path: str, port: int | None, body: bytes, value: str
) -> None:
    """Whatever the path, port, body and header text (any visible ASCII): byte for byte the
    library's, whichever way it was signed."""
    url = f"https://peer.example{'' if port is None else f':{port}'}/{path}"
    fast, by_library = signed(url, body, practitioner=value, request_id=value)
    assert list(fast.items()) == list(by_library.items())
