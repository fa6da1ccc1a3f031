"""The federation's HTTP endpoints on a council's host: its published key document, the
signed requests other councils send (every check is in `federation.server`), and the REST
API's latest signed audit checkpoint (federation.checkpoints)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.http import Http404, HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.permissions import BasePermission, IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response

from core.api.serializers import ErrorOut
from core.api.views import CouncilAPIView
from federation import batching, server, witnessing
from federation.checkpoints import audit_checkpoint_latest, checkpoint_published
from federation.directory.selectors import directory_published
from federation.models import Exchange
from federation.selectors import GOVERNANCE_ROLES, own_council
from federation.services import key_document


@require_GET
def directory(request: HttpRequest) -> JsonResponse:
    """The directory of councils this deployment's operator published (decision 0014), as
    signed by the governance key, for other deployments to fetch; 404 when none is."""
    published = directory_published()
    if published is None or published.document is None:
        raise Http404("No directory of councils is published here")
    response = JsonResponse(published.document)
    response["Cache-Control"] = "public, max-age=300"
    return response


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
agreement_rekey = _endpoint(
    Exchange.Kind.AGREEMENT_REKEY, server.accept_agreement_rekey, needs_agreement=False
)
audit_witness = _endpoint(
    witnessing.KIND_WITNESS, server.accept_audit_checkpoint, needs_agreement=False
)
audit_witnessed = _endpoint(
    witnessing.KIND_QUERY, server.answer_audit_statement, needs_agreement=False
)


@csrf_exempt
@require_POST
def batch(request: HttpRequest) -> JsonResponse:
    """Several councils' lookups in one request, each checked and answered as if it had
    come on its own (federation.batching)."""
    reply = batching.receive_batch(request)
    response = JsonResponse(reply.body, status=reply.status)
    if reply.retry_after is not None:
        response["Retry-After"] = str(reply.retry_after)
    return response


# --- The latest signed audit checkpoint (REST API, /api/v1/) --------------------------------


class CheckpointSignatureOut(serializers.Serializer):
    key_id = serializers.CharField()
    value = serializers.CharField(help_text="Ed25519 signature, base64url without padding")


class CheckpointDocumentOut(serializers.Serializer):
    type = serializers.CharField(help_text="Always patchwork.audit-checkpoint")
    council = serializers.CharField(help_text="council:<ONS code>")
    sequence = serializers.IntegerField(help_text="1 for the council's first checkpoint")
    events = serializers.IntegerField(help_text="How many events the audit log held")
    head_event_id = serializers.IntegerField(
        allow_null=True, help_text="The newest event's id then"
    )
    head_hash = serializers.CharField(help_text="The newest event's hash (sha-256, hex)")
    signed_at = serializers.DateTimeField()
    previous = serializers.CharField(
        allow_null=True,
        help_text="sha-256 (hex) of the previous checkpoint's canonical JSON without "
        "signatures; null for the first",
    )
    signatures = serializers.DictField(
        child=CheckpointSignatureOut(),
        help_text="By signer: the council's own (under its council:<ONS code>) and, later, "
        "witnesses' countersignatures over the same bytes",
    )


class CheckpointOut(serializers.Serializer):
    checkpoint = CheckpointDocumentOut()
    signer = serializers.CharField()
    key_id = serializers.CharField()
    signature = serializers.CharField(help_text="The council's signature, as in the document")
    public_key = serializers.CharField(help_text="Raw Ed25519 public key, base64url")
    fingerprint = serializers.CharField(help_text="sha-256 (hex) of the raw public key")
    digest = serializers.CharField(help_text="What the next checkpoint names as `previous`")


class IsGovernance(BasePermission):
    message = "Only the council's administrators and information governance officers can do this"

    def has_permission(self, request: Request, view: Any) -> bool:
        return getattr(request.user, "role", None) in GOVERNANCE_ROLES


class AuditCheckpointLatest(CouncilAPIView):
    permission_classes = [IsAuthenticated, IsGovernance]

    @extend_schema(
        operation_id="audit_checkpoint_latest",
        summary="The council's latest signed audit checkpoint",
        description="The head of the council's audit log (how many events it held and the "
        "newest one's hash), signed with the council's Ed25519 federation key. To check "
        "it: the signature is over the RFC 8785 canonical JSON of `checkpoint` without its "
        "`signatures`; compare `fingerprint` with the council's card or published keys "
        "(/.well-known/patchwork/keys) before trusting `public_key`. For council "
        "administrators and information governance officers.",
        responses={
            200: CheckpointOut,
            403: OpenApiResponse(ErrorOut, description="Your role does not allow this"),
            404: OpenApiResponse(ErrorOut, description="No checkpoint has been signed yet"),
        },
    )
    def get(self, request: Request) -> Response:
        checkpoint = audit_checkpoint_latest(own_council())
        if checkpoint is None:
            raise Http404("No checkpoint has been signed yet")
        return Response(checkpoint_published(checkpoint))
