"""The API's rate limit (decision 0011): DRF's throttle, counted per caller in each council
(a user, whether by bearer token or session, or a source system's import token) in the
shared "ratelimit" cache, at RATE_LIMIT_API."""

from __future__ import annotations

import logging
from typing import Any

from django.conf import settings
from django.core.cache import caches
from rest_framework.request import Request
from rest_framework.throttling import SimpleRateThrottle

from accounts.ratelimits import (
    RATE_LIMITED,
    address_key,
    council_key,
    limit_reached_log,
    rate_parse,
)
from core.models import SourceSystem

log = logging.getLogger(__name__)


class CallerRateThrottle(SimpleRateThrottle):
    scope = "api"

    @property
    def cache(self) -> Any:
        return caches["ratelimit"]

    def allow_request(self, request: Request, view: Any) -> bool:
        try:
            return super().allow_request(request, view)
        except Exception:  # noqa: BLE001 - the cache is down: answer rather than fail (0011)
            log.warning("Rate limit api not checked: the rate-limit cache does not answer")
            return True

    def get_rate(self) -> str:
        return str(settings.RATE_LIMIT_API)

    def parse_rate(self, rate: str | None) -> tuple[int | None, int | None]:
        return rate_parse(rate) if rate else (None, None)

    def get_cache_key(self, request: Request, view: Any) -> str:
        if isinstance(request.auth, SourceSystem):
            caller = f"source:{request.auth.pk}"
        elif request.user and request.user.is_authenticated:
            caller = f"user:{request.user.pk}"
        else:
            caller = f"address:{address_key(request)}"
        return f"{settings.RATELIMIT_CACHE_PREFIX}api:{council_key(caller)}"

    def throttle_failure(self) -> bool:
        RATE_LIMITED.labels("api").inc()
        limit_reached_log(
            "api", self.key.removeprefix(settings.RATELIMIT_CACHE_PREFIX), int(self.duration or 60)
        )
        return False

    def wait(self) -> float:
        # DRF gives no wait when more requests were let through than the rate (two processes
        # raced): then the oldest one's expiry, so a 429 always says when to come back.
        assert self.duration is not None
        oldest = self.history[-1] if self.history else self.now
        return super().wait() or max(1.0, self.duration - (self.now - oldest))
