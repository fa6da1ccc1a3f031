"""Rate limits (decision 0011): how often one client address, one account, one API caller or
one federation peer may try something, counted with django-ratelimit in the shared
"ratelimit" cache (Redis), so every web process sees the same counts.

Each limit's rate ("20/10m": 20 per 10 minutes) is a setting. A caller asks `limit_wait`
before any costly work (a password hash, a signature check, a query) and answers 429 with
Retry-After when it returns a number of seconds; `limit_count` counts one attempt."""

from __future__ import annotations

import ipaddress
import logging
import re
import time
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from django.conf import settings
from django.core.cache import caches
from django.db import connection
from django.http import HttpRequest
from django_ratelimit.core import (  # private helpers: the same keys and windows as get_usage
    ALL,
    EXPIRATION_FUDGE,
    _get_window,
    _make_cache_key,
    get_usage,
)
from prometheus_client import Counter

log = logging.getLogger(__name__)

RATE = re.compile(r"^([1-9]\d*)/(\d*)([smhd])$")
SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}

RATE_LIMITED = Counter(
    "patchwork_rate_limited",
    "Requests refused with 429 by a rate limit, by limit.",
    ["limit"],
)


def rate_parse(rate: str) -> tuple[int, int]:
    """("20/10m") -> (20, 600): how many in how many seconds."""
    match = RATE.match(rate)
    if match is None:
        raise ValueError(f"A rate is a count per window like 20/10m, not {rate!r}")
    count, multiple, unit = match.groups()
    return int(count), int(multiple or 1) * SECONDS[unit]


@lru_cache(maxsize=8)
def _trusted_networks(
    proxies: tuple[str, ...],
) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    return tuple(ipaddress.ip_network(proxy, strict=False) for proxy in proxies)


def _parsed(address: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(address.strip())
    except ValueError:
        return None


def _is_trusted(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    networks = _trusted_networks(tuple(settings.TRUSTED_PROXIES))
    return any(address in network for network in networks)


def client_address(request: HttpRequest) -> str:
    """The address of the client: the connection's own, unless it comes from a trusted proxy
    (TRUSTED_PROXIES), then the nearest address in X-Forwarded-For that is not a trusted
    proxy. Entries to the left of that one are the client's own claims and are ignored."""
    remote = _parsed(request.META.get("REMOTE_ADDR", ""))
    if remote is None:
        return "unknown"
    if not _is_trusted(remote):
        return str(remote)
    hops = [hop for hop in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",") if hop.strip()]
    for hop in reversed(hops):
        address = _parsed(hop)
        if address is None:
            # Not an address: the proxy did not write it, so nothing left of it is trusted.
            break
        if not _is_trusted(address):
            return str(address)
    return str(remote)


def lockout_address(request: HttpRequest) -> str | None:
    """The client address for django-axes' records (an IP address column): None when the
    connection has none (a Unix socket)."""
    address = client_address(request)
    return None if address == "unknown" else address


def address_key(request: HttpRequest) -> str:
    """The key an address is counted under: IPv6 by /64 (one client's usual allocation)."""
    address = _parsed(client_address(request))
    if isinstance(address, ipaddress.IPv6Address):
        return str(ipaddress.ip_network(f"{address}/64", strict=False))
    return str(address or "unknown")


@dataclass(frozen=True)
class Limit:
    """A named limit whose rate is the setting `setting`."""

    name: str
    setting: str

    @property
    def rate(self) -> str:
        return str(getattr(settings, self.setting))


SIGN_IN_ADDRESS = Limit("sign_in_address", "RATE_LIMIT_SIGN_IN_ADDRESS")
SIGN_IN_ACCOUNT = Limit("sign_in_account", "RATE_LIMIT_SIGN_IN_ACCOUNT")
FEDERATION_PEER = Limit("federation_peer", "RATE_LIMIT_FEDERATION_PEER")
FEDERATION_ADDRESS = Limit("federation_address", "RATE_LIMIT_FEDERATION_ADDRESS")


def _usage(
    request: HttpRequest, limit: Limit, key: str, *, increment: bool
) -> dict[str, Any] | None:
    try:
        return get_usage(
            request,
            group=limit.name,
            key=lambda _group, _request: key,
            rate=limit.rate,
            increment=increment,
        )
    except Exception:  # noqa: BLE001 - the cache is down: the lockout (in PostgreSQL) still holds
        log.warning("Rate limit %s not checked: the rate-limit cache does not answer", limit.name)
        return None


def limit_wait(request: HttpRequest, limit: Limit, key: str) -> int | None:
    """Seconds until `key` may try again under `limit`, or None when it may try now. Counts
    nothing; a refusal is counted in the patchwork_rate_limited metric."""
    usage = _usage(request, limit, key, increment=False)
    if usage is None or usage["count"] < usage["limit"]:
        return None
    RATE_LIMITED.labels(limit.name).inc()
    wait = max(1, int(usage["time_left"]))
    limit_reached_log(limit.name, key, wait)
    return wait


def limit_reached_log(name: str, key: str, seconds: int) -> None:
    """One log line when `key` is first refused under a limit, not one per refusal: a flood
    must not fill the logs. Every refusal is in the patchwork_rate_limited metric."""
    try:
        first = caches["ratelimit"].add(
            f"{settings.RATELIMIT_CACHE_PREFIX}logged:{name}:{key}", 1, seconds
        )
    except Exception:  # noqa: BLE001 - the cache is down: say so once more rather than never
        first = True
    if first:
        log.warning("Rate limit %s reached by %.120s: refused for %ss", name, key, seconds)


def limit_count(request: HttpRequest, limit: Limit, key: str) -> None:
    """Count one attempt by `key` under `limit`."""
    _usage(request, limit, key, increment=True)


def council_key(*parts: str) -> str:
    """A key inside the current council (or the platform): user ids, emails and peers are
    only unique within one schema."""
    return ":".join([connection.schema_name, *parts])  # type: ignore[attr-defined]


def sign_in_wait(request: HttpRequest, email: str) -> int | None:
    """Seconds until this address, or this account, may try to sign in again; None when
    they may now. Asked before any password is hashed or code checked."""
    waits = [
        limit_wait(request, SIGN_IN_ADDRESS, address_key(request)),
        limit_wait(request, SIGN_IN_ACCOUNT, council_key(email.lower())),
    ]
    known = [wait for wait in waits if wait is not None]
    return max(known) if known else None


def sign_in_attempted(request: HttpRequest, email: str) -> None:
    """Count an attempt (password or code) at the account."""
    limit_count(request, SIGN_IN_ACCOUNT, council_key(email.lower()))


def sign_in_failed(request: HttpRequest) -> None:
    """Count a failed attempt from the client's address."""
    limit_count(request, SIGN_IN_ADDRESS, address_key(request))


# --- One round trip each, for the federation's machine endpoints ------------------------------
# Every signed request from another council asks the address limit, then the peer's limit,
# then counts the peer: six round trips to Redis through django-ratelimit's get_usage (it
# writes a zero before reading, and before counting). A "who is involved?" check across 150
# councils pays that 150 times (docs/benchmarks.md). The same counters, under the same keys
# and windows as get_usage's, in one round trip each.


def _window_key(limit: Limit, key: str) -> tuple[str, int, int, int]:
    """django-ratelimit's cache key for `key` under `limit` now, its window's end, the
    limit's count and its period in seconds."""
    count, period = rate_parse(limit.rate)
    window = _get_window(key, period)
    return _make_cache_key(limit.name, window, limit.rate, key, ALL), window, count, period


def _refused_for(limit: Limit, key: str, window: int) -> int:
    RATE_LIMITED.labels(limit.name).inc()
    wait = max(1, window - int(time.time()))
    limit_reached_log(limit.name, key, wait)
    return wait


def limit_wait_read(limit: Limit, key: str) -> int | None:
    """`limit_wait` in one read: seconds until `key` may try again, or None."""
    cache_key, window, allowed, _ = _window_key(limit, key)
    try:
        count = caches[settings.RATELIMIT_USE_CACHE].get(cache_key, 0)
    except Exception:  # noqa: BLE001 - the cache is down: as `limit_wait`, fail open
        log.warning("Rate limit %s not checked: the rate-limit cache does not answer", limit.name)
        return None
    return _refused_for(limit, key, window) if int(count or 0) >= allowed else None


def limit_take(limit: Limit, key: str) -> int | None:
    """`limit_wait` then `limit_count`, in one round trip: count this attempt, and return
    the seconds to wait if it is over the limit (None when it may go on). The decision is
    theirs: an attempt is refused when `allowed` were counted before it in the window; a
    refused attempt is counted too, which changes no decision (the window ends when it
    ends)."""
    cache_key, window, allowed, period = _window_key(limit, key)
    cache = caches[settings.RATELIMIT_USE_CACHE]
    try:
        client = getattr(cache, "client", None)
        if client is not None and hasattr(client, "get_client"):
            # django-redis: create at zero if absent (expiring with the window), add one.
            full_key = cache.make_key(cache_key)
            with client.get_client(write=True).pipeline(transaction=False) as pipe:
                pipe.set(full_key, 0, nx=True, ex=period + EXPIRATION_FUDGE)
                pipe.incr(full_key)
                count = int(pipe.execute()[1])
        else:
            cache.add(cache_key, 0, period + EXPIRATION_FUDGE)
            count = cache.incr(cache_key)
    except Exception:  # noqa: BLE001 - the cache is down: as `limit_wait`, fail open
        log.warning("Rate limit %s not checked: the rate-limit cache does not answer", limit.name)
        return None
    return _refused_for(limit, key, window) if count > allowed else None
