"""Requests of the shape we sign are verified with `cryptography` directly
(protocol._verified_directly); anything else, and anything that does not check out there,
goes to http-message-signatures. The direct check must accept only what the library accepts,
with the same parameters: signed requests, by us or by the library, and tampered ones."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from federation import protocol
from tests.federation.test_request_signing import KEY, signed

PUBLIC = KEY.private_key.public_key().public_bytes_raw()
URL = "http://staffordshire.localhost:8000/federation/v1/who-is-involved"
BODY = b'{"match_keys":{"nhs":["ab12"]},"type":"patchwork.lookup"}'


def by_library(url: str, headers: dict[str, str], body: bytes) -> dict[str, Any] | None:
    message = protocol.HttpMessage("POST", protocol.target_uri_normalised(url), dict(headers))
    try:
        return protocol._verified_by_library(message, body, PUBLIC)
    except protocol.RequestRefused:
        return None


def directly(url: str, headers: dict[str, str], body: bytes, key: bytes = PUBLIC) -> Any:
    return protocol._verified_directly(
        "POST", protocol.target_uri_normalised(url), headers, body, key
    )


def test_a_request_we_signed_is_verified_directly_as_the_library_verifies_it() -> None:
    fast, library_signed = signed(URL, BODY)
    expected = by_library(URL, fast, BODY)
    assert expected is not None
    assert directly(URL, fast, BODY) == {k: expected[k] for k in directly(URL, fast, BODY)}
    assert directly(URL, library_signed, BODY) is not None


def test_verify_request_still_checks_the_time_window() -> None:
    fast, _ = signed(URL, BODY)
    created = datetime.fromtimestamp(int(directly(URL, fast, BODY)["created"]), UTC)
    verified = protocol.verify_request(
        method="POST", url=URL, headers=fast, body=BODY, public_key=PUBLIC, now=created
    )
    assert verified.key_id == KEY.key_id
    with pytest.raises(protocol.RequestRefused, match="outside_time_window"):
        protocol.verify_request(method="POST", url=URL, headers=fast, body=BODY, public_key=PUBLIC)


def _tampered(headers: dict[str, str], name: str, change: Any) -> dict[str, str]:
    out = dict(headers)
    out[name] = change(out[name])
    return out


TAMPERINGS = [
    ("Signature", lambda v: v.replace("=:", "=:A", 1)),
    ("Signature", lambda v: v[:-3] + ("A" if v[-3] != "A" else "B") + v[-2:]),
    ("Signature", lambda v: v.replace("pyhms", "other", 1)),
    ("Signature-Input", lambda v: v.replace("created=", "created=1", 1)),
    ("Signature-Input", lambda v: v.replace('nonce="', 'nonce="x', 1)),
    ("Signature-Input", lambda v: v.replace('keyid="', 'keyid="x', 1)),
    ("Signature-Input", lambda v: v.replace('"ed25519"', '"rsa-pss-sha512"', 1)),
    ("Signature-Input", lambda v: v.replace("patchwork-federation", "other", 1)),
    ("Content-Digest", lambda v: v.replace("sha-256=:", "sha-256=:A", 1)),
    (protocol.HEADER_PURPOSE, lambda v: v + "x"),
    (protocol.HEADER_COUNCIL, lambda v: "council:E06000001"),
    (protocol.HEADER_REQUEST_ID, lambda v: v[:-1]),
]


@pytest.mark.parametrize(("name", "change"), TAMPERINGS)
def test_a_tampered_request_is_refused_both_ways(name: str, change: Any) -> None:
    fast, _ = signed(URL, BODY)
    headers = _tampered(fast, name, change)
    assert directly(URL, headers, BODY) is None
    assert by_library(URL, headers, BODY) is None


def test_a_changed_body_url_or_key_is_refused_both_ways() -> None:
    fast, _ = signed(URL, BODY)
    other_key = Ed25519PrivateKey.generate().public_key().public_bytes_raw()
    assert directly(URL, fast, BODY + b" ") is None
    assert by_library(URL, fast, BODY + b" ") is None
    assert directly(URL.replace("8000", "8001"), fast, BODY) is None
    assert by_library(URL.replace("8000", "8001"), fast, BODY) is None
    assert directly(URL, fast, BODY, other_key) is None


def test_other_shapes_are_left_to_the_library() -> None:
    """Two signatures (a gateway's too), a header value with a space, a query string: not
    verified directly, but still accepted by verify_request through the library."""
    fast, _ = signed(URL, BODY)
    two = dict(fast)
    two["Signature-Input"] = fast["Signature-Input"] + ', gw=("@method");created=1'
    two["Signature"] = fast["Signature"] + ", gw=:AAAA:"
    assert directly(URL, two, BODY) is None
    assert by_library(URL, two, BODY) is not None
    spaced, _ = signed(URL, BODY, purpose="safe guarding")
    assert directly(URL, spaced, BODY) is None
    assert by_library(URL, spaced, BODY) is not None
    query = URL + "?x=1"
    queried, _ = signed(query, BODY)
    assert directly(query, queried, BODY) is None
    assert by_library(query, queried, BODY) is not None


@settings(max_examples=150, deadline=None)
@given(
    path=st.text("abcxyz019-._~/", min_size=0, max_size=30),
    port=st.one_of(st.none(), st.integers(1, 65535)),
    body=st.binary(max_size=200),
    value=st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), min_size=1, max_size=40),
    flip=st.one_of(st.none(), st.integers(0, 10_000)),
)
def test_direct_acceptance_implies_the_libraries(
    path: str, port: int | None, body: bytes, value: str, flip: int | None
) -> None:
    """Any path, port, body and header text, signed either way, perhaps with one character
    of one header changed: whatever the direct check accepts, the library accepts with the
    same parameters; and every unchanged request we sign is accepted directly when plain."""
    url = f"https://peer.example{'' if port is None else f':{port}'}/{path}"
    fast, library_signed = signed(url, body, practitioner=value, request_id=value)
    for headers in (fast, library_signed):
        if flip is not None:
            names = sorted(headers)
            name = names[flip % len(names)]
            text = headers[name]
            i = flip % len(text)
            headers = {**headers, name: text[:i] + chr(ord(text[i]) ^ 1) + text[i + 1 :]}
        got = directly(url, headers, body)
        expected = by_library(url, headers, body)
        if got is not None:
            assert expected is not None
            assert got == {k: expected[k] for k in got}
        elif (
            flip is None
            and protocol._PLAIN_VALUE.fullmatch(value)
            and protocol._PLAIN_URL.fullmatch(protocol.target_uri_normalised(url))
        ):
            pytest.fail("a plain request we signed was not verified directly")
