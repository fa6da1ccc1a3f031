"""A correctly signed request whose body has the wrong shape is refused with the
federation's own 400 (`{"outcome": "refused", "reason": ...}`), and one larger than the
server reads with its 413: never a server error, never an HTML page (issue 14)."""

from __future__ import annotations

import json

import pytest

from tests.federation.agreement import post, signed_headers

STAFFS = "staffordshire.localhost"


def _signed_lookup(pair, payload: object):  # type: ignore[no-untyped-def]
    body = json.dumps(payload).encode()
    headers = signed_headers(pair.brighton, host=STAFFS, body=body, agreement_id=pair.agreement_id)
    return post(STAFFS, body, headers)


@pytest.mark.parametrize(
    "payload",
    [
        {"type": "patchwork.lookup", "match_keys": {"demographic": 5}},
        {"type": "patchwork.lookup", "match_keys": {"nhs": 5}},
        {"type": "patchwork.lookup", "match_keys": {"nhs": [1, 2]}},
        {"type": "patchwork.lookup", "match_keys": {"nhs": [["nested"]]}},
        {"type": "patchwork.lookup", "match_keys": {"demographic": [{"a": 1}]}},
        {"type": "patchwork.lookup", "match_keys": {"nhs": ["x" * 10_000]}},
        {"type": "patchwork.lookup", "match_keys": []},
        {"type": "patchwork.lookup"},
        {"type": 7, "match_keys": {}},
    ],
)
def test_a_signed_lookup_of_the_wrong_shape_is_refused_with_400(pair, payload) -> None:  # type: ignore[no-untyped-def]
    """The federation's refusal, naming the reason, whatever part of the body is wrong."""
    response = _signed_lookup(pair, payload)
    assert response.status_code == 400, response.content
    assert response.json() == {"outcome": "refused", "reason": "not_a_lookup"}


def test_a_well_formed_lookup_still_matches(pair) -> None:  # type: ignore[no-untyped-def]
    """The check refuses only what is malformed: empty key lists are a plain no match."""
    response = _signed_lookup(
        pair, {"type": "patchwork.lookup", "match_keys": {"nhs": [], "demographic": []}}
    )
    assert response.status_code == 200, response.content
    assert response.json()["outcome"] == "no_match"


def test_a_body_larger_than_the_server_reads_is_refused_with_413(pair, settings) -> None:  # type: ignore[no-untyped-def]
    """Past DATA_UPLOAD_MAX_MEMORY_SIZE: the federation's refusal as JSON, not Django's
    HTML 400 page."""
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 2_000
    payload = {"type": "patchwork.lookup", "match_keys": {"nhs": ["a" * 64] * 40}}
    response = _signed_lookup(pair, payload)
    assert response.status_code == 413, response.content
    assert response["Content-Type"] == "application/json"
    assert response.json() == {"outcome": "refused", "reason": "too_large"}
