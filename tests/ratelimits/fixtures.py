"""Fixtures for the tests of the rate limits (decision 0011): the production limits, with
fresh counters, and Argon2 counting its runs. Imported by the conftest here and by tests
elsewhere that need them."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, ClassVar

import pytest
from django.conf import settings
from django.core.cache import caches
from django.test import override_settings

from accounts.hashers import FastArgon2PasswordHasher


def counters_clear() -> None:
    cache: Any = caches["ratelimit"]
    if hasattr(cache, "delete_pattern"):  # Redis
        cache.delete_pattern(f"{settings.RATELIMIT_CACHE_PREFIX}*")
    else:
        cache.clear()


@pytest.fixture
def production_limits() -> Iterator[dict[str, str]]:
    """Every limit at its production default (the test settings raise them), from counters
    at zero."""
    counters_clear()
    with override_settings(**settings.RATE_LIMIT_DEFAULTS):
        yield dict(settings.RATE_LIMIT_DEFAULTS)
    counters_clear()


class CountingArgon2PasswordHasher(FastArgon2PasswordHasher):
    """The test suite's Argon2, counting every hash it computes (checking or setting)."""

    runs: ClassVar[int] = 0

    def encode(self, password: str, salt: str) -> str:
        CountingArgon2PasswordHasher.runs += 1
        return super().encode(password, salt)

    def verify(self, password: str, encoded: str) -> bool:
        CountingArgon2PasswordHasher.runs += 1
        return super().verify(password, encoded)


@pytest.fixture
def argon2_runs() -> Iterator[type[CountingArgon2PasswordHasher]]:
    """How many times Argon2 ran: `argon2_runs.runs`."""
    CountingArgon2PasswordHasher.runs = 0
    with override_settings(
        PASSWORD_HASHERS=["tests.ratelimits.fixtures.CountingArgon2PasswordHasher"]
    ):
        yield CountingArgon2PasswordHasher
