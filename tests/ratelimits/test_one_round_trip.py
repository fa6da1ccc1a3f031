"""The federation endpoints' limits in one round trip each (accounts.ratelimits.limit_take,
limit_wait_read) keep django-ratelimit's counters: the same keys, windows and decisions as
limit_wait and limit_count, which the rest of the app uses."""

from __future__ import annotations

import uuid

import pytest
from django.test import RequestFactory, override_settings

from accounts.ratelimits import (
    FEDERATION_ADDRESS,
    FEDERATION_PEER,
    limit_count,
    limit_take,
    limit_wait,
    limit_wait_read,
)

pytestmark = pytest.mark.redis


@override_settings(RATE_LIMIT_FEDERATION_PEER="3/m")
def test_it_lets_three_through_then_refuses_as_limit_wait_would() -> None:
    """Three requests from a peer go on; the fourth waits, and limit_wait (the library's
    way) sees the same count."""
    request = RequestFactory().post("/federation/v1/who-is-involved")
    peer = f"council:test-{uuid.uuid4()}"
    assert [limit_take(FEDERATION_PEER, peer) for _ in range(3)] == [None, None, None]
    assert limit_wait(request, FEDERATION_PEER, peer) is not None
    wait = limit_take(FEDERATION_PEER, peer)
    assert wait is not None and 1 <= wait <= 60


@override_settings(RATE_LIMIT_FEDERATION_ADDRESS="2/10m")
def test_it_reads_what_limit_count_counted() -> None:
    """Two refusals counted against an address by limit_count: one read says wait; another
    address is not affected."""
    request = RequestFactory().post("/federation/v1/who-is-involved")
    address = f"203.0.113.{uuid.uuid4().int % 250}-{uuid.uuid4()}"
    assert limit_wait_read(FEDERATION_ADDRESS, address) is None
    limit_count(request, FEDERATION_ADDRESS, address)
    assert limit_wait_read(FEDERATION_ADDRESS, address) is None
    limit_count(request, FEDERATION_ADDRESS, address)
    assert limit_wait_read(FEDERATION_ADDRESS, address) is not None
    assert limit_wait_read(FEDERATION_ADDRESS, f"other-{address}") is None
