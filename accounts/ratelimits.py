"""Rate limits (decision 0011): how often one client address, one account, one API caller or
one federation peer may try something, counted in the shared "ratelimit" cache (Redis), so
every web process sees the same counts.

Each limit's rate ("20/10m": 20 per 10 minutes) is a setting. A caller asks `limit_wait`
before any costly work (a password hash, a signature check, a query) and answers 429 with
Retry-After when it returns a number of seconds; `limit_count` counts one attempt;
`limit_take` does both at once.

A key's window starts at its first counted attempt and lasts the limit's period (a Redis key
created with SET NX EX, then INCR): no calendar boundary in the middle of a burst lets an
attacker try twice the limit, and the wait given is the window's true remainder."""

from __future__ import annotations

import hashlib
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


def _counter_key(limit: Limit, key: str) -> str:
    """The cache key `key` is counted under for `limit`: hashed, so no email address or
    client address is written into Redis."""
    digest = hashlib.sha256(f"{limit.name}\0{limit.rate}\0{key}".encode()).hexdigest()
    return f"{settings.RATELIMIT_CACHE_PREFIX}{limit.name}:{digest}"


def _redis(cache: Any) -> Any | None:
    """The Redis client behind a django-redis cache, or None for another backend."""
    client = getattr(cache, "client", None)
    if client is not None and hasattr(client, "get_client"):
        return client.get_client(write=True)
    return None


def _refused_for(limit: Limit, key: str, seconds: int) -> int:
    RATE_LIMITED.labels(limit.name).inc()
    wait = max(1, seconds)
    limit_reached_log(limit.name, key, wait)
    return wait


def _count_read(limit: Limit, key: str) -> tuple[int, int]:
    """How many `key` has counted under `limit` in its window, and the seconds left of it."""
    cache = caches["ratelimit"]
    counter = _counter_key(limit, key)
    redis = _redis(cache)
    if redis is not None:
        full_key = cache.make_key(counter)
        with redis.pipeline(transaction=False) as pipe:
            pipe.get(full_key)
            pipe.ttl(full_key)
            count, ttl = pipe.execute()
        return int(count or 0), max(0, int(ttl))
    count = cache.get(counter, 0)
    started = cache.get(f"{counter}:started")
    _, period = rate_parse(limit.rate)
    left = period - (time.time() - started) if started is not None else period
    return int(count or 0), max(0, int(left))


def _count_add(limit: Limit, key: str) -> tuple[int, int]:
    """Count one attempt by `key` under `limit`: its window starts at its first attempt and
    lasts the limit's period. The count now, and the seconds left of the window."""
    _, period = rate_parse(limit.rate)
    cache = caches["ratelimit"]
    counter = _counter_key(limit, key)
    redis = _redis(cache)
    if redis is not None:
        full_key = cache.make_key(counter)
        with redis.pipeline(transaction=False) as pipe:
            pipe.set(full_key, 0, nx=True, ex=period)
            pipe.incr(full_key)
            pipe.ttl(full_key)
            _, count, ttl = pipe.execute()
        return int(count), max(0, int(ttl))
    # Another backend (the demo's memory): the same window, kept beside the count.
    if cache.add(counter, 0, period):
        cache.set(f"{counter}:started", time.time(), period)
    try:
        count = cache.incr(counter)
    except ValueError:  # the window ended between add and incr
        cache.add(counter, 0, period)
        count = cache.incr(counter)
    return int(count), period


def limit_wait(limit: Limit, key: str) -> int | None:
    """Seconds until `key` may try again under `limit`, or None when it may try now. Counts
    nothing; a refusal is counted in the patchwork_rate_limited metric. One round trip."""
    allowed, _ = rate_parse(limit.rate)
    try:
        count, left = _count_read(limit, key)
    except Exception:  # noqa: BLE001 - the cache is down: the lockout (in PostgreSQL) still holds
        log.warning("Rate limit %s not checked: the rate-limit cache does not answer", limit.name)
        return None
    return _refused_for(limit, key, left) if count >= allowed else None


def limit_reached_log(name: str, key: str, seconds: int) -> None:
    """One log line when `key` is first refused under a limit, not one per refusal: a flood
    must not fill the logs. Every refusal is in the patchwork_rate_limited metric."""
    try:
        first = caches["ratelimit"].add(
            f"{settings.RATELIMIT_CACHE_PREFIX}logged:{name}:"
            + hashlib.sha256(key.encode()).hexdigest(),
            1,
            seconds,
        )
    except Exception:  # noqa: BLE001 - the cache is down: say so once more rather than never
        first = True
    if first:
        log.warning("Rate limit %s reached by %.120s: refused for %ss", name, key, seconds)


def limit_count(limit: Limit, key: str) -> None:
    """Count one attempt by `key` under `limit`. One round trip."""
    try:
        _count_add(limit, key)
    except Exception:  # noqa: BLE001 - the cache is down: as `limit_wait`, fail open
        log.warning("Rate limit %s not counted: the rate-limit cache does not answer", limit.name)


def limit_take(limit: Limit, key: str) -> int | None:
    """`limit_wait` then `limit_count`, in one round trip: count this attempt, and return
    the seconds to wait if it is over the limit (None when it may go on). An attempt is
    refused when `allowed` were counted before it in the window; a refused attempt is
    counted too, which changes no decision (the window ends when it ends)."""
    allowed, _ = rate_parse(limit.rate)
    try:
        count, left = _count_add(limit, key)
    except Exception:  # noqa: BLE001 - the cache is down: as `limit_wait`, fail open
        log.warning("Rate limit %s not checked: the rate-limit cache does not answer", limit.name)
        return None
    return _refused_for(limit, key, left) if count > allowed else None


def council_key(*parts: str) -> str:
    """A key inside the current council (or the platform): user ids, emails and peers are
    only unique within one schema."""
    return ":".join([connection.schema_name, *parts])  # type: ignore[attr-defined]


def sign_in_wait(request: HttpRequest, email: str) -> int | None:
    """Seconds until this address, or this account, may try to sign in again; None when
    they may now. Asked before any password is hashed or code checked."""
    waits = [
        limit_wait(SIGN_IN_ADDRESS, address_key(request)),
        limit_wait(SIGN_IN_ACCOUNT, council_key(email.lower())),
    ]
    known = [wait for wait in waits if wait is not None]
    return max(known) if known else None


def sign_in_attempted(request: HttpRequest, email: str) -> None:
    """Count an attempt (password or code) at the account."""
    limit_count(SIGN_IN_ACCOUNT, council_key(email.lower()))


def sign_in_failed(request: HttpRequest) -> None:
    """Count a failed attempt from the client's address."""
    limit_count(SIGN_IN_ADDRESS, address_key(request))


def limit_left(limit: Limit, key: str) -> tuple[int, int] | None:
    """How many more attempts `key` may make under `limit` in its window, and the seconds
    left of the window (the lockout warning, decision 0019); None when the cache does not
    answer. Counts nothing."""
    allowed, _ = rate_parse(limit.rate)
    try:
        count, left = _count_read(limit, key)
    except Exception:  # noqa: BLE001 - the cache is down: no warning, as no limit
        return None
    return max(0, allowed - count), left


def limit_clear(limit: Limit, key: str) -> None:
    """Forget `key`'s attempts under `limit` (an administrator unlocked the account)."""
    counter = _counter_key(limit, key)
    try:
        caches["ratelimit"].delete_many([counter, f"{counter}:started"])
    except Exception:  # noqa: BLE001 - the cache is down: its window ends on its own
        log.warning("Rate limit %s not cleared: the rate-limit cache does not answer", limit.name)
