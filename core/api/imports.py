"""Scheduled pushes from source systems (decision 0009): `POST /api/v1/imports` with the
file as the request body and the system's import token, answered 202 with the run's id
while a Celery task imports it; `GET /api/v1/imports/<id>` for its progress and counts, and
`/report` for the per-row report. The token reaches nothing else, and only its own runs."""

from __future__ import annotations

from typing import Any, cast

from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import ValidationError
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.reverse import reverse
from rest_framework.views import APIView

from core.api.auth import HasImportToken, ImportTokenAuthentication
from core.feeds import import_report_response, import_run_start
from core.models import ImportRun, SourceSystem
from core.selectors import import_run_get
from core.tasks import feed_import_queue

FORMAT_OF_CONTENT_TYPE = {
    "text/csv": ImportRun.Format.CSV,
    "application/fhir+json": ImportRun.Format.FHIR,
    "application/json": ImportRun.Format.FHIR,
}
QUERY_BOOLEAN = {"true": True, "false": False}


def _query_flag(request: Request, name: str) -> bool:
    """`?name=true` or `?name=false` (or left out): the schema's boolean, nothing else."""
    values = request.query_params.getlist(name)
    if not values:
        return False
    if len(values) > 1 or values[0] not in QUERY_BOOLEAN:
        raise ValidationError({name: [f"Give {name} once, as true or false"]})
    return QUERY_BOOLEAN[values[0]]


class ImportRunOut(serializers.Serializer):
    id = serializers.IntegerField()
    url = serializers.CharField()
    status = serializers.ChoiceField(choices=ImportRun.Status.choices)
    dry_run = serializers.BooleanField()
    full_snapshot = serializers.BooleanField()
    rows_read = serializers.IntegerField()
    counts = serializers.DictField(child=serializers.IntegerField())
    error = serializers.CharField()
    report_url = serializers.CharField(allow_null=True)


def _run_out(request: Request, run: ImportRun) -> dict[str, Any]:
    return {
        "id": run.pk,
        "url": reverse("api:import", args=[run.pk], request=request),
        "status": run.status,
        "dry_run": run.dry_run,
        "full_snapshot": run.full_snapshot,
        "rows_read": run.rows_read,
        "counts": run.counts,
        "error": run.error,
        "report_url": reverse("api:import-report", args=[run.pk], request=request)
        if run.report_path
        else None,
    }


class _ImportView(APIView):
    authentication_classes = [ImportTokenAuthentication]
    permission_classes = [HasImportToken]

    def source(self, request: Request) -> SourceSystem:
        return cast(SourceSystem, request.auth)


class Imports(_ImportView):
    # The body is the file itself, read as a stream into the data directory.
    parser_classes: list[Any] = []

    @extend_schema(
        summary="Send a file from your system to be imported",
        request={"text/csv": OpenApiTypes.BINARY, "application/fhir+json": OpenApiTypes.BINARY},
        parameters=[
            OpenApiParameter("full_snapshot", bool, description="End involvements missing here"),
            OpenApiParameter("dry_run", bool, description="Only report what would change"),
        ],
        responses={
            202: ImportRunOut,
            400: OpenApiResponse(
                OpenApiTypes.OBJECT,
                description="Not a file we read, or a flag that is not true or false: what "
                "is wrong, by field (detail for the file)",
            ),
        },
    )
    def post(self, request: Request) -> Response:
        full_snapshot = _query_flag(request, "full_snapshot")
        dry_run = _query_flag(request, "dry_run")
        content_type = (request.content_type or "").split(";")[0].strip().lower()
        file_format = FORMAT_OF_CONTENT_TYPE.get(content_type)
        if file_format is None:
            raise ValidationError(
                {"detail": "Send the file as text/csv (the template) or application/fhir+json"}
            )
        try:
            run = import_run_start(
                source=self.source(request),
                file_format=file_format,
                binary=request._request,  # a stream: never held in memory whole
                full_snapshot=full_snapshot,
                dry_run=dry_run,
            )
        except DjangoValidationError as exc:
            raise ValidationError({"detail": " ".join(exc.messages)}) from exc
        feed_import_queue(run)
        return Response(_run_out(request, run), status=status.HTTP_202_ACCEPTED)


class ImportDetail(_ImportView):
    @extend_schema(summary="How an import is going", responses={200: ImportRunOut})
    def get(self, request: Request, run_id: int) -> Response:
        run = import_run_get(run_id, source_system_id=self.source(request).pk)
        return Response(_run_out(request, run))


class ImportReport(_ImportView):
    @extend_schema(
        summary="The import's report, one line per row (CSV)",
        responses={(200, "text/csv"): OpenApiTypes.BINARY},
    )
    def get(self, request: Request, run_id: int) -> HttpResponse:
        run = import_run_get(run_id, source_system_id=self.source(request).pk)
        return cast(HttpResponse, import_report_response(run))
