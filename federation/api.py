"""The federation's HTTP endpoints on a council's host: its published key document and the
signed requests other councils send. Thin: every check is in `federation.server`."""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST

from federation import server
from federation.models import Exchange
from federation.selectors import own_council
from federation.services import key_document


@require_GET
def keys(request: HttpRequest) -> JsonResponse:
    response = JsonResponse(key_document(own_council()))
    response["Cache-Control"] = "public, max-age=3600"
    return response


def _endpoint(
    kind: str, handler: server.Handler, *, needs_agreement: bool
) -> Callable[[HttpRequest], JsonResponse]:
    @csrf_exempt
    @require_POST
    def view(request: HttpRequest) -> JsonResponse:
        reply = server.receive(request, kind=kind, handler=handler, needs_agreement=needs_agreement)
        response = JsonResponse(reply.body, status=reply.status)
        if reply.retry_after is not None:
            response["Retry-After"] = str(reply.retry_after)
        return response

    return view


who_is_involved = _endpoint(Exchange.Kind.LOOKUP, server.answer_lookup, needs_agreement=True)
pointer_updates = _endpoint(
    Exchange.Kind.POINTER_UPDATE, server.accept_pointer_update, needs_agreement=True
)
agreement_offer = _endpoint(
    Exchange.Kind.AGREEMENT_OFFER, server.accept_agreement_offer, needs_agreement=False
)
agreement_countersign = _endpoint(
    Exchange.Kind.AGREEMENT_COUNTERSIGN, server.accept_countersignature, needs_agreement=False
)
agreement_revoke = _endpoint(
    Exchange.Kind.AGREEMENT_REVOKE, server.accept_revocation, needs_agreement=False
)
