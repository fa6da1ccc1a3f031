"""The counters of accounts.ratelimits (decision 0011, amended): a key's window starts at
its first counted attempt, so a burst is never split across a clock boundary; reads and
counts are one round trip each and agree with each other."""

from __future__ import annotations

import time
import uuid
from typing import Any

import pytest
from django.conf import settings
from django.core.cache import caches
from django.test import override_settings

from accounts.ratelimits import (
    FEDERATION_ADDRESS,
    FEDERATION_PEER,
    SIGN_IN_ACCOUNT,
    _counter_key,
    limit_count,
    limit_take,
    limit_wait,
)

pytestmark = pytest.mark.redis


@override_settings(RATE_LIMIT_FEDERATION_PEER="3/m")
def test_it_lets_three_through_then_refuses_and_limit_wait_agrees() -> None:
    """Three requests from a peer go on; the fourth waits, and limit_wait sees the same
    count."""
    peer = f"council:test-{uuid.uuid4()}"
    assert [limit_take(FEDERATION_PEER, peer) for _ in range(3)] == [None, None, None]
    assert limit_wait(FEDERATION_PEER, peer) is not None
    wait = limit_take(FEDERATION_PEER, peer)
    assert wait is not None and 1 <= wait <= 60


@override_settings(RATE_LIMIT_FEDERATION_ADDRESS="2/10m")
def test_it_reads_what_limit_count_counted() -> None:
    """Two refusals counted against an address by limit_count: one read says wait; another
    address is not affected."""
    address = f"203.0.113.{uuid.uuid4().int % 250}-{uuid.uuid4()}"
    assert limit_wait(FEDERATION_ADDRESS, address) is None
    limit_count(FEDERATION_ADDRESS, address)
    assert limit_wait(FEDERATION_ADDRESS, address) is None
    limit_count(FEDERATION_ADDRESS, address)
    assert limit_wait(FEDERATION_ADDRESS, address) is not None
    assert limit_wait(FEDERATION_ADDRESS, f"other-{address}") is None


@override_settings(RATE_LIMIT_SIGN_IN_ACCOUNT="2/15m")
def test_the_window_starts_at_the_first_attempt_and_the_wait_is_what_is_left_of_it() -> None:
    """The wait given is the window's remainder, counted from the first attempt: at most the
    period, and nearly all of it right after the first attempt."""
    account = f"someone-{uuid.uuid4()}@example.test"
    limit_count(SIGN_IN_ACCOUNT, account)
    limit_count(SIGN_IN_ACCOUNT, account)
    wait = limit_wait(SIGN_IN_ACCOUNT, account)
    assert wait is not None and 15 * 60 - 5 <= wait <= 15 * 60


@override_settings(RATE_LIMIT_SIGN_IN_ACCOUNT="2/15m")
def test_no_email_address_is_written_into_the_cache() -> None:
    """Counters are kept under digests: Redis holds no one's email address."""
    account = f"findable-{uuid.uuid4()}@example.test"
    limit_count(SIGN_IN_ACCOUNT, account)
    redis = caches["ratelimit"].client.get_client(write=True)  # type: ignore[attr-defined]
    keys = [key.decode() for key in redis.scan_iter(f"*{settings.RATELIMIT_CACHE_PREFIX}*")]
    assert keys, "the attempt was counted somewhere"
    assert not [key for key in keys if "findable" in key or "example.test" in key]


@override_settings(RATE_LIMIT_FEDERATION_PEER="2/m")
def test_an_expired_window_starts_afresh() -> None:
    """When a key's window has gone (here: its Redis key expired), the next attempt starts a
    new window rather than being refused."""
    peer = f"council:test-{uuid.uuid4()}"
    assert limit_take(FEDERATION_PEER, peer) is None
    assert limit_take(FEDERATION_PEER, peer) is None
    assert limit_take(FEDERATION_PEER, peer) is not None
    cache: Any = caches["ratelimit"]
    redis = cache.client.get_client(write=True)
    assert redis.pexpire(cache.make_key(_counter_key(FEDERATION_PEER, peer)), 1)
    time.sleep(0.05)
    assert limit_take(FEDERATION_PEER, peer) is None
