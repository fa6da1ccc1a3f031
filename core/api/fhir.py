"""A person's current network as a FHIR R4 CareTeam, so NHS systems can read it.

`GET /fhir/CareTeam?subject=Patient/<id>` (or `subject=<id>`, or
`subject:identifier=https://fhir.nhs.uk/Id/nhs-number|<NHS number>`) answers a searchset
Bundle holding one CareTeam. It is built from `person_network`, so it has the pages' access
rules and audit: the team and anyone who has stated a reason see it; anyone else who found
the person gets a 403 OperationOutcome; a person the caller may not know about looks like
no match at all. A sensitive service's involvement appears only as a participant whose role
says "Sensitive service – request contact", with no member and no organisation.

Everything sent is first parsed by the `fhir.resources` R4B models, so a malformed
resource is a server error here rather than a surprise at the NHS end."""

from __future__ import annotations

import math
from typing import Any

from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.capabilitystatement import CapabilityStatement
from fhir.resources.R4B.careteam import CareTeam
from fhir.resources.R4B.operationoutcome import OperationOutcome
from fhir.resources.R4B.patient import Patient
from rest_framework import exceptions, status
from rest_framework.negotiation import BaseContentNegotiation
from rest_framework.permissions import AllowAny
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.reverse import reverse
from rest_framework.views import APIView

from accounts.digits import ascii_int
from accounts.models import User
from core.models import Person
from core.selectors import (
    Network,
    SearchQuery,
    SearchRefused,
    can_read_records,
    person_access,
    person_network,
    person_read,
    person_search,
)

FHIR_JSON = "application/fhir+json"
NHS_NUMBER_SYSTEM = "https://fhir.nhs.uk/Id/nhs-number"
MASKED_ROLE = "Sensitive service – request contact"


def care_team(network: Network) -> CareTeam:
    """The current team around `network.person`, as a validated CareTeam."""
    person = network.person
    subject: dict[str, Any] = {
        "reference": f"Patient/{person.pk}",
        "type": "Patient",
        "display": person.full_name,
    }
    if person.nhs_number:
        subject["identifier"] = {"system": NHS_NUMBER_SYSTEM, "value": person.nhs_number}
    participants: list[dict[str, Any]] = []
    for member in network.current:
        if member.masked:
            participants.append({"role": [{"text": MASKED_ROLE}]})
            continue
        roles = [{"text": member.role}]
        if member.lead_professional:
            roles.append({"text": "Lead professional"})
        participant: dict[str, Any] = {
            "role": roles,
            "member": {"type": "Practitioner", "display": member.practitioner_name},
            "onBehalfOf": {"type": "Organization", "display": member.organisation},
        }
        if member.start_date:
            participant["period"] = {"start": member.start_date.isoformat()}
        participants.append(participant)
    resource: dict[str, Any] = {
        "resourceType": "CareTeam",
        "status": "active",
        "name": f"Team around {person.full_name}",
        "subject": subject,
    }
    if participants:
        resource["participant"] = participants
    return CareTeam.model_validate(resource)


FHIR_GENDER = {
    Person.Sex.FEMALE: "female",
    Person.Sex.MALE: "male",
    Person.Sex.OTHER: "other",
    Person.Sex.UNKNOWN: "unknown",
}


def patient(person: Person) -> Patient:
    """The person a CareTeam's subject names (`Patient/<id>`), as a validated Patient:
    NHS number, name, sex, date of birth and of death. No address: FHIR readers of the team
    need to know whose team it is, not where they live."""
    resource: dict[str, Any] = {
        "resourceType": "Patient",
        "id": str(person.pk),
        "name": [{"use": "official", "family": person.family_name, "given": [person.given_name]}],
        "gender": FHIR_GENDER.get(person.sex, "unknown"),  # type: ignore[call-overload]
    }
    if person.nhs_number:
        resource["identifier"] = [{"system": NHS_NUMBER_SYSTEM, "value": person.nhs_number}]
    if person.date_of_birth:
        resource["birthDate"] = person.date_of_birth.isoformat()
    if person.date_of_death:
        resource["deceasedDateTime"] = person.date_of_death.isoformat()
    return Patient.model_validate(resource)


def searchset(teams: list[CareTeam], self_url: str) -> Bundle:
    return Bundle.model_validate(
        {
            "resourceType": "Bundle",
            "type": "searchset",
            "timestamp": timezone.now().isoformat(),
            "total": len(teams),
            "link": [{"relation": "self", "url": self_url}],
            "entry": [
                {"resource": team.model_dump(mode="json"), "search": {"mode": "match"}}
                for team in teams
            ],
        }
    )


def operation_outcome(code: str, diagnostics: str) -> OperationOutcome:
    return OperationOutcome.model_validate(
        {
            "resourceType": "OperationOutcome",
            "issue": [{"severity": "error", "code": code, "diagnostics": diagnostics}],
        }
    )


def fhir_response(resource: Any, status_code: int = 200) -> HttpResponse:
    return HttpResponse(
        resource.model_dump_json(),
        status=status_code,
        content_type=FHIR_JSON,
        headers={"Cache-Control": "no-store"},
    )


def capability_statement(base_url: str) -> CapabilityStatement:
    """What this FHIR endpoint offers: searching CareTeam by subject, in FHIR JSON."""
    return CapabilityStatement.model_validate(
        {
            "resourceType": "CapabilityStatement",
            "status": "active",
            "date": timezone.now().isoformat(),
            "publisher": "Patchwork",
            "kind": "instance",
            "implementation": {
                "description": "Patchwork: the team around a child, as FHIR CareTeam",
                "url": base_url,
            },
            # CareTeam is the same in R4 and R4B; NHS England's systems speak R4.
            "fhirVersion": "4.0.1",
            "format": [FHIR_JSON],
            "rest": [
                {
                    "mode": "server",
                    "security": {
                        "description": "Authorization: Bearer <token>, from POST "
                        "/api/v1/tokens/; the same access rules and audit as Patchwork's pages"
                    },
                    "resource": [
                        {
                            "type": "Patient",
                            "interaction": [{"code": "read"}],
                        },
                        {
                            "type": "CareTeam",
                            "interaction": [{"code": "search-type"}],
                            "searchParam": [
                                {
                                    "name": "subject",
                                    "type": "reference",
                                    "documentation": "Patient/<id>, <id>, or with :identifier "
                                    f"{NHS_NUMBER_SYSTEM}|<NHS number>",
                                }
                            ],
                        },
                    ],
                }
            ],
        }
    )


class FHIRProblem(Exception):
    def __init__(self, status_code: int, code: str, diagnostics: str) -> None:
        super().__init__(diagnostics)
        self.status_code, self.code, self.diagnostics = status_code, code, diagnostics


class FHIRJSONRenderer(JSONRenderer):
    media_type = FHIR_JSON
    format = "fhir"


class FHIROnly(BaseContentNegotiation):
    """FHIR clients send all sorts of Accept headers; the answer is always FHIR JSON."""

    def select_parser(self, request: Request, parsers: list[Any]) -> Any:
        return parsers[0] if parsers else None

    def select_renderer(
        self, request: Request, renderers: list[Any], format_suffix: str | None = None
    ) -> tuple[Any, str]:
        return (renderers[0], renderers[0].media_type)


def _person_ids(user: User, params: Any) -> list[int]:
    """The people the subject parameter names, as this caller may know them."""
    identifier = params.get("subject:identifier", "")
    subject = params.get("subject", "")
    if identifier:
        system, _, value = identifier.rpartition("|")
        if system != NHS_NUMBER_SYSTEM or not value:
            raise FHIRProblem(
                400,
                "invalid",
                f"Give the subject's identifier as {NHS_NUMBER_SYSTEM}|<NHS number>",
            )
        try:
            results = person_search(user=user, query=SearchQuery(nhs_number=value))
        except SearchRefused as exc:
            raise FHIRProblem(400, "invalid", str(exc)) from exc
        return [r.person_id for r in results]
    if subject:
        reference = subject.removeprefix("Patient/")
        person_id = ascii_int(reference)
        if person_id is None:
            raise FHIRProblem(400, "invalid", "Give the subject as Patient/<id>")
        return [person_id]
    raise FHIRProblem(
        400,
        "required",
        f"Give the subject: subject=Patient/<id> or subject:identifier={NHS_NUMBER_SYSTEM}|"
        "<NHS number>",
    )


class FHIRView(APIView):
    """Answers and errors in FHIR JSON (OperationOutcome), whatever the client accepts."""

    renderer_classes = [FHIRJSONRenderer]
    content_negotiation_class = FHIROnly

    def handle_exception(self, exc: Exception) -> HttpResponse:
        if isinstance(exc, FHIRProblem):
            return fhir_response(operation_outcome(exc.code, exc.diagnostics), exc.status_code)
        if isinstance(exc, exceptions.NotAuthenticated | exceptions.AuthenticationFailed):
            response = fhir_response(operation_outcome("login", str(exc.detail)), 401)
            header = self.get_authenticate_header(self.request)
            if header:
                response["WWW-Authenticate"] = header
            return response
        if isinstance(exc, exceptions.Throttled):
            wait = max(1, math.ceil(exc.wait or 1))
            response = fhir_response(
                operation_outcome("throttled", f"Too many requests: wait {wait} seconds"), 429
            )
            response["Retry-After"] = str(wait)
            return response
        if isinstance(exc, exceptions.APIException):
            return fhir_response(operation_outcome("processing", str(exc.detail)), exc.status_code)
        if isinstance(exc, PermissionDenied):
            return fhir_response(
                operation_outcome("forbidden", str(exc)), status.HTTP_403_FORBIDDEN
            )
        raise exc


def _reason_first(person_id: int) -> FHIRProblem:
    return FHIRProblem(
        403,
        "forbidden",
        "You are not on this person's team. State why you need to see the record "
        f"at POST {reverse('api:person-openings', args=[person_id])} (reason and "
        "note) first; the lead professional will be told.",
    )


class PatientRead(FHIRView):
    @extend_schema(
        operation_id="fhir_patient_read",
        summary="FHIR R4 Patient: the person a CareTeam is about",
        description="The same access rules as GET /api/v1/people/{id}: the person's team, or "
        "someone who has stated a reason. Audited as a view of the record. A person you may "
        "not know about is a 404 OperationOutcome, exactly like one who does not exist.",
        responses={
            200: OpenApiResponse(OpenApiTypes.OBJECT, description="A FHIR Patient"),
            401: OpenApiResponse(OpenApiTypes.OBJECT, description="OperationOutcome"),
            403: OpenApiResponse(OpenApiTypes.OBJECT, description="OperationOutcome"),
            404: OpenApiResponse(OpenApiTypes.OBJECT, description="OperationOutcome"),
        },
    )
    def get(self, request: Request, person_id: int) -> HttpResponse:
        user = request.user
        if not can_read_records(user):
            raise FHIRProblem(403, "forbidden", "Only practitioners can read patients")
        try:
            access = person_read(user, person_id)
        except Http404 as exc:
            raise FHIRProblem(404, "not-found", f"No Patient/{person_id} here") from exc
        except PermissionDenied as exc:
            raise _reason_first(person_id) from exc
        return fhir_response(patient(access.person))


class CareTeamSearch(FHIRView):
    @extend_schema(
        operation_id="fhir_careteam_search",
        summary="FHIR R4 CareTeam for a person's current network",
        description="A searchset Bundle with one CareTeam (or none, if there is no such "
        "person or you may not know about them). Sensitive services appear as a participant "
        f"with role text '{MASKED_ROLE}' and no member. Errors are OperationOutcomes.",
        parameters=[
            OpenApiParameter("subject", str, description="Patient/<id> or <id>"),
            OpenApiParameter(
                "subject:identifier", str, description=f"{NHS_NUMBER_SYSTEM}|<NHS number>"
            ),
        ],
        responses={
            200: OpenApiResponse(OpenApiTypes.OBJECT, description="A FHIR searchset Bundle"),
            400: OpenApiResponse(OpenApiTypes.OBJECT, description="OperationOutcome"),
            401: OpenApiResponse(OpenApiTypes.OBJECT, description="OperationOutcome"),
            403: OpenApiResponse(OpenApiTypes.OBJECT, description="OperationOutcome"),
        },
    )
    def get(self, request: Request) -> HttpResponse:
        user = request.user
        if not can_read_records(user):
            raise FHIRProblem(403, "forbidden", "Only practitioners can read care teams")
        teams = []
        for person_id in _person_ids(user, request.query_params):
            try:
                access = person_access(user, person_id)
            except Http404:
                continue
            if not access.can_see_network:
                raise _reason_first(person_id)
            # A care team holds the person's own team only: no relative's team is shown.
            network = person_network(user=user, person_id=person_id, family_shown=False)
            teams.append(care_team(network))
        return fhir_response(searchset(teams, request.build_absolute_uri()))


class Metadata(APIView):
    """GET /fhir/metadata: public, as FHIR clients expect to read it before signing in."""

    authentication_classes: list[Any] = []
    permission_classes = [AllowAny]
    renderer_classes = [FHIRJSONRenderer]
    content_negotiation_class = FHIROnly

    @extend_schema(
        operation_id="fhir_capabilities",
        summary="FHIR CapabilityStatement",
        responses={200: OpenApiResponse(OpenApiTypes.OBJECT, description="CapabilityStatement")},
    )
    def get(self, request: Request) -> HttpResponse:
        return fhir_response(capability_statement(request.build_absolute_uri("/fhir/")))


def not_supported(request: HttpRequest, path: str) -> HttpResponse:
    """Any other FHIR path: an OperationOutcome rather than an HTML page."""
    return fhir_response(
        operation_outcome(
            "not-supported",
            "Only GET /fhir/CareTeam?subject=… and GET /fhir/Patient/<id> are offered here",
        ),
        status.HTTP_404_NOT_FOUND,
    )
