"""Several councils' lookups in one HTTP request (decision 0025, federation spec §11.5).

A deployment serves many councils. A "who is involved?" check asks each of them: at 150
councils that was 150 HTTP requests into the same servers, each paying gunicorn, Django's
handler and the middleware again. A batch carries those requests as they are, each signed
by the asking council for its own target URL, in one unsigned envelope:

    {"type": "patchwork.batch",
     "requests": [{"target": "<URL>", "headers": {...}, "body": "<canonical JSON>"}, ...]}

and is answered with one entry per request, in order:

    {"type": "patchwork.batch-answers",
     "answers": [{"status": 200, "body": {...}}, {"status": 429, "body": {...},
                  "retry_after": 30}, ...]}

Nothing about a request changes by travelling in a batch. Each is checked exactly as if it
had arrived on its own at its target (`federation.server.receive`: peer, key, signature
over its own target URL, time window, peer limit, agreement, purpose, nonce, request id;
the client address's limit is asked once, for the batch), answered by its own council in
its own schema and transaction, audited in that council's log, and its answer is signed
by that council. The envelope adds no authority:
a request whose target is not a council served here, or not a lookup, is refused on its
own, and the others are still answered. Only lookups travel in batches (the check a
practitioner waits for); everything else goes on its own."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlsplit

from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest
from django.http.request import split_domain_port
from prometheus_client import Counter

from accounts.ratelimits import FEDERATION_ADDRESS, address_key, limit_count, limit_wait
from federation.models import Exchange
from federation.protocol import (
    BATCH_ANSWERS_TYPE,
    BATCH_MAX_REQUESTS,
    BATCH_TYPE,
    DEFAULT_PORTS,
)
from federation.selectors import peers_remembered
from federation.server import REFUSED, Reply, answer_lookup, receive
from tenants.db import models_from_sql, tenant_connection
from tenants.middleware import RETRY_AFTER_SECONDS
from tenants.models import Council
from tenants.selectors import council_behind

LOOKUP_PATH = "/federation/v1/who-is-involved"
# The request's headers that travel inside the batch. The address the batch came from, and
# how it came (X-Forwarded-*), are the envelope's: a request cannot claim another.
ENVELOPE_ONLY = frozenset({"host", "content-length", "x-forwarded-for", "x-forwarded-proto"})

# Refusals of a request by the batch itself (the others are federation.server's, §9).
ENVELOPE_META = ("HTTP_X_FORWARDED_FOR", "HTTP_X_FORWARDED_PROTO")
BATCH_REASONS = frozenset({"not_batchable", "not_served_here"})

BATCHED = Counter(
    "patchwork_federation_batched",
    "Signed requests received inside a batch, by outcome (answered, or refused in the batch).",
    ["outcome"],
)

COUNCILS_BY_HOST = (
    "SELECT c.*, d.domain AS host FROM public.tenants_council c JOIN public.tenants_domain d "
    "ON d.tenant_id = c.id WHERE d.domain = ANY(%s)"
)


class NotABatch(Exception):
    """The envelope itself is malformed: the whole batch is refused, nothing is answered."""


def _requests(body: bytes) -> list[dict[str, Any]]:
    try:
        document = json.loads(body)
    except ValueError as exc:
        raise NotABatch from exc
    if not isinstance(document, dict) or document.get("type") != BATCH_TYPE:
        raise NotABatch
    requests = document.get("requests")
    if not isinstance(requests, list) or not 1 <= len(requests) <= BATCH_MAX_REQUESTS:
        raise NotABatch
    for one in requests:
        if (
            not isinstance(one, dict)
            or not isinstance(one.get("target"), str)
            or not isinstance(one.get("body"), str)
            or not isinstance(one.get("headers"), dict)
            or not all(isinstance(k, str) and isinstance(v, str) for k, v in one["headers"].items())
        ):
            raise NotABatch
    return requests


def _refusal(reason: str, status: int, retry_after: int | None = None) -> dict[str, Any]:
    """A request refused by the batch itself, before any council looked at it."""
    REFUSED.labels("batch", reason, "no").inc()
    BATCHED.labels("refused").inc()
    entry: dict[str, Any] = {"status": status, "body": {"outcome": "refused", "reason": reason}}
    if retry_after is not None:
        entry["retry_after"] = retry_after
    return entry


def _inner_request(
    envelope: HttpRequest, one: dict[str, Any], council: Council, path: str, netloc: str
) -> HttpRequest:
    """The request as it would have arrived at its own target: the envelope's connection
    (client address, scheme), the request's own host, path, headers and body."""
    inner = HttpRequest()
    inner.method = "POST"
    inner.path = inner.path_info = path
    meta = {
        name: value
        for name, value in envelope.META.items()
        if not name.startswith("HTTP_") or name in ENVELOPE_META
    }
    meta.pop("CONTENT_TYPE", None)
    for name, value in one["headers"].items():
        if name.lower() in ENVELOPE_ONLY:
            continue
        key = name.upper().replace("-", "_")
        meta[key if key == "CONTENT_TYPE" else f"HTTP_{key}"] = value
    body = one["body"].encode("utf-8")
    meta.update(HTTP_HOST=netloc, PATH_INFO=path, QUERY_STRING="", CONTENT_LENGTH=str(len(body)))
    inner.META = meta
    inner._body = body  # what HttpRequest.body returns
    inner.tenant = council  # type: ignore[attr-defined]
    return inner


def _answer(
    envelope: HttpRequest, one: dict[str, Any], councils: dict[str, Council], port: str
) -> dict[str, Any]:
    parts = urlsplit(one["target"])
    if parts.path != LOOKUP_PATH or parts.query or parts.fragment:
        return _refusal("not_batchable", 400)
    council = councils.get((parts.hostname or "").lower())
    # Served here only at the scheme and port the batch itself came in on.
    if council is None or parts.scheme != envelope.scheme or str(parts.port or "") != port:
        return _refusal("not_served_here", 404)
    if council.is_suspended:
        return _refusal("council_unavailable", 503)
    if council_behind(council.schema_name):
        return _refusal("council_updating", 503, RETRY_AFTER_SECONDS)
    tenant_connection().set_tenant(council)
    inner = _inner_request(envelope, one, council, parts.path, parts.netloc)
    reply = receive(
        inner,
        kind=Exchange.Kind.LOOKUP,
        handler=answer_lookup,
        needs_agreement=True,
        address_checked=True,
    )
    BATCHED.labels("answered").inc()
    entry: dict[str, Any] = {"status": reply.status, "body": reply.body}
    if reply.retry_after is not None:
        entry["retry_after"] = reply.retry_after
    return entry


def receive_batch(request: HttpRequest) -> Reply:
    """Answer every request in a batch, each as if it had come on its own (module text)."""
    wait = limit_wait(FEDERATION_ADDRESS, address_key(request))
    if wait is not None:
        REFUSED.labels("batch", "rate_limited", "no").inc()
        return Reply(429, {"outcome": "refused", "reason": "rate_limited"}, wait)
    try:
        requests = _requests(request.body)
    except RequestDataTooBig:
        limit_count(FEDERATION_ADDRESS, address_key(request))
        REFUSED.labels("batch", "too_large", "no").inc()
        return Reply(413, {"outcome": "refused", "reason": "too_large"})
    except NotABatch:
        limit_count(FEDERATION_ADDRESS, address_key(request))
        REFUSED.labels("batch", "not_a_batch", "no").inc()
        return Reply(400, {"outcome": "refused", "reason": "not_a_batch"})
    hosts = sorted({(urlsplit(one["target"]).hostname or "").lower() for one in requests})
    councils = {
        council.host: council for council in models_from_sql(Council, COUNCILS_BY_HOST, [hosts])
    }
    _host, port = split_domain_port(request.get_host())
    if port == str(DEFAULT_PORTS.get(request.scheme or "", "")):
        port = ""
    connection = tenant_connection()
    here = getattr(request, "tenant", None)
    try:
        with peers_remembered():
            answers = [_answer(request, one, councils, port) for one in requests]
    finally:
        # Back to the council the batch was sent to, for the rest of this request.
        if here is not None:
            connection.set_tenant(here)
    if any(entry["body"].get("reason") in BATCH_REASONS for entry in answers):
        # Requests nobody here could have answered count against the sender's address, as
        # any refusal before a peer is authenticated does (decision 0011).
        limit_count(FEDERATION_ADDRESS, address_key(request))
    return Reply(200, {"type": BATCH_ANSWERS_TYPE, "answers": answers})
