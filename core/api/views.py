"""The REST API (/api/v1/). Thin: every read goes through core.selectors and every write
through core.services, so the API has exactly the pages' access rules and audit trail.

Errors a caller can cause come back in the user's words: 400 with field messages, 403 with
why, and 404 that looks the same for "does not exist" and "not yours"."""

from __future__ import annotations

import io
import math
from typing import Any

from django.conf import settings
from django.core.exceptions import PermissionDenied, RequestDataTooBig
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import transaction
from django.http import Http404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.exceptions import APIException, ParseError, Throttled
from rest_framework.parsers import JSONParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.reverse import reverse
from rest_framework.views import APIView, exception_handler

from accounts.digits import ascii_int
from accounts.models import User
from core.api import serializers as s
from core.api.auth import VerifiedSessionAuthentication, api_token_issue
from core.models import Practitioner, RecordOpening
from core.selectors import (
    OPENING_VALID,
    Access,
    Network,
    PersonAccess,
    SearchRefused,
    involvement_for_actor,
    person_access,
    person_likely_matches,
    person_network,
    person_search,
    practitioner_of,
    practitioners_actor_may_act_for,
    roles_active,
)
from core.services import (
    CONFLICT,
    involvement_add,
    involvement_confirm,
    involvement_end,
    involvement_update,
    person_create,
    person_death_record,
    person_update,
    record_open,
)

NOT_FOUND = OpenApiResponse(s.ErrorOut, description="No such record, or not one you may see")
FORBIDDEN = OpenApiResponse(s.ErrorOut, description="Your role does not allow this")
REASON_REQUIRED = OpenApiResponse(
    s.ReasonRequiredOut,
    description="You found this person by search but are not on their team: state a reason "
    "at POST /api/v1/people/{id}/openings first",
)
CONFLICT_WITH_RECORD = OpenApiResponse(
    OpenApiTypes.OBJECT,
    description="Refused because of the record as it stands, not what was sent (an "
    "involvement that has ended, a lead professional already named, an NHS number another "
    "record holds): by field, like 400",
    examples=[
        OpenApiExample("Ended", value={"non_field_errors": ["This involvement has already ended"]})
    ],
)
INVALID = OpenApiResponse(
    OpenApiTypes.OBJECT,
    description="What is wrong, by field (non_field_errors for the whole request)",
    examples=[OpenApiExample("Bad date", value={"start_date": [s.DATE_INVALID]})],
)


class ReasonRequired(APIException):
    status_code = status.HTTP_403_FORBIDDEN
    default_code = "reason_required"

    def __init__(self, access: PersonAccess) -> None:
        person_id = access.person.pk
        warning = (
            " This is a break-glass opening of a shielded record: it will be reviewed."
            if access.break_glass
            else ""
        )
        super().__init__()
        # Set directly: APIException would turn break_glass into the string "False".
        self.detail = {
            "detail": "You are not on this person's team. State why you need to see the record "
            f"at POST {reverse('api:person-openings', args=[person_id])} with a reason and a "
            "note; the lead professional will be told who looked and why." + warning,
            "code": self.default_code,
            "openings_url": reverse("api:person-openings", args=[person_id]),
            "reasons": dict(RecordOpening.Reason.choices),
            "break_glass": access.break_glass,
        }


def _validation_body(exc: DjangoValidationError) -> dict[str, list[str]]:
    if hasattr(exc, "error_dict"):
        return {
            ("non_field_errors" if field == "__all__" else field): messages
            for field, messages in exc.message_dict.items()
        }
    return {"non_field_errors": exc.messages}


CONFLICT_CODES = {CONFLICT, "nhs_number_exists"}


def _is_conflict(exc: DjangoValidationError) -> bool:
    """A refusal about the record's current state (every error in it is one), not about
    what was sent: 409, so a client knows sending the same again will not help."""
    if hasattr(exc, "error_dict"):
        errors = [error for field in exc.error_dict.values() for error in field]
    else:
        errors = exc.error_list
    return all(error.code in CONFLICT_CODES for error in errors)


class RequestTooLarge(APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_code = "too_large"

    def __init__(self) -> None:
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE // 1024
        super().__init__(f"The request body is too large: send at most {limit} KB")


class LimitedJSONParser(JSONParser):
    """JSON, refused with 413 past DATA_UPLOAD_MAX_MEMORY_SIZE whether or not the client
    said how long the body is (DRF reads the stream itself, past Django's own check)."""

    def parse(self, stream: Any, media_type: str | None = None, parser_context: Any = None) -> Any:
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        body = stream.read(limit + 1) if stream is not None else b""
        if len(body) > limit:
            raise RequestTooLarge()
        return super().parse(io.BytesIO(body), media_type, parser_context)


def api_exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """Map the errors services and selectors raise onto HTTP, in their own words."""
    if isinstance(exc, DjangoValidationError):
        conflict = _is_conflict(exc)
        return Response(
            _validation_body(exc),
            status=status.HTTP_409_CONFLICT if conflict else status.HTTP_400_BAD_REQUEST,
        )
    if isinstance(exc, RequestDataTooBig):
        exc = RequestTooLarge()
    if isinstance(exc, SearchRefused):
        return Response({"detail": str(exc)}, status=status.HTTP_400_BAD_REQUEST)
    if isinstance(exc, PermissionDenied):
        # The selector's refusal, in its own words.
        detail = str(exc) or "You do not have permission to perform this action."
        return Response({"detail": detail}, status=status.HTTP_403_FORBIDDEN)
    if isinstance(exc, ParseError):
        return Response(
            {"detail": 'Send the request body as JSON, like {"nhs_number": "9434765919"}'},
            status=status.HTTP_400_BAD_REQUEST,
        )
    if isinstance(exc, Throttled):
        wait = max(1, math.ceil(exc.wait or 1))
        response = Response(
            {"detail": f"Too many requests: wait {wait} seconds, then try again"},
            status=status.HTTP_429_TOO_MANY_REQUESTS,
        )
        response["Retry-After"] = str(wait)
        return response
    if isinstance(exc, Http404):
        # One body for "does not exist" and "you may not know it exists".
        return Response({"detail": "Not found"}, status=status.HTTP_404_NOT_FOUND)
    return exception_handler(exc, context)


class CouncilAPIView(APIView):
    """Every API view: errors as above, and answers never stored by a cache."""

    parser_classes = [LimitedJSONParser]

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        length = ascii_int(request.META.get("CONTENT_LENGTH") or "")
        if length is not None and length > settings.DATA_UPLOAD_MAX_MEMORY_SIZE:
            raise RequestTooLarge()
        super().initial(request, *args, **kwargs)

    def get_exception_handler(self) -> Any:
        return api_exception_handler

    def finalize_response(self, request: Request, response: Any, *args: Any, **kwargs: Any) -> Any:
        response = super().finalize_response(request, response, *args, **kwargs)
        response["Cache-Control"] = "no-store"
        return response


def _viewable(user: User, person_id: int) -> tuple[PersonAccess, Network]:
    """The person's network (audited as a view), or 403 telling an outsider to state a
    reason, or 404."""
    access = person_access(user, person_id)
    if not access.can_see_network:
        raise ReasonRequired(access)
    return access, person_network(user=user, person_id=person_id)


def _practitioner_to_record(user: User, practitioner_id: int | None) -> Practitioner:
    """The caller, or (for a manager) one of their staff; anyone else is a field error that
    looks the same whether the id exists or not."""
    candidates = practitioners_actor_may_act_for(user)
    if not candidates:
        raise PermissionDenied("Only practitioners can record an involvement")
    if practitioner_id is None:
        return candidates[0]
    chosen = next((p for p in candidates if p.pk == practitioner_id), None)
    if chosen is None:
        raise DjangoValidationError({"practitioner": s.STAFF_ONLY})
    return chosen


class TokenCreate(CouncilAPIView):
    authentication_classes = [VerifiedSessionAuthentication]

    @extend_schema(
        operation_id="token_create",
        summary="Issue a bearer token for a system client",
        description="Only from a browser session signed in with the second factor. The token "
        "works at this council only and expires after API_TOKEN_HOURS (8 by default). Send it "
        "as `Authorization: Bearer <token>`.",
        request=None,
        responses={201: s.TokenOut, 403: FORBIDDEN},
    )
    def post(self, request: Request) -> Response:
        issued = api_token_issue(user=request.user)
        out = {"token": issued.token, "token_type": "Bearer", "expires_at": issued.expires_at}
        return Response(s.TokenOut(out).data, status=status.HTTP_201_CREATED)


class Search(CouncilAPIView):
    @extend_schema(
        operation_id="people_search",
        summary="Find a person you can already identify",
        description="Give an NHS number; or a surname and date of birth; or a surname, first "
        "name and postcode. Anything broader is refused with what to add. Every search is "
        "audited. Shielded people are found only by their own team, or by break-glass.",
        request=s.SearchInput,
        responses={200: s.SearchResultsOut, 400: INVALID, 403: FORBIDDEN},
    )
    def post(self, request: Request) -> Response:
        data = s.SearchInput(data=request.data)
        data.is_valid(raise_exception=True)
        results = person_search(
            user=request.user,
            query=data.query(),
            break_glass=data.validated_data["break_glass"],
        )
        return Response(s.SearchResultsOut({"results": results}).data)


NHS_NUMBER_HIDDEN = (
    "A record with this NHS number may already exist. Contact your council's Patchwork "
    "administrator: they can check it and add you to the person's team."
)


class People(CouncilAPIView):
    @extend_schema(
        operation_id="person_create",
        summary="Add a child or adult",
        description="Before anything is added, the search's own rules look for the person: "
        "the same NHS number is refused with 409 (naming the existing record when you may "
        "know it); people with the same surname and date of birth, or the same surname, first "
        "name and postcode, come back as 300 Multiple Choices and nothing is added, unless the "
        'request says `"confirm_new": true`. Shielded people outside your team are never '
        "offered. On 201 the record is added (audited), its address is in Location, and you "
        "may see it for an hour: record your involvement at its involvements URL.",
        request=s.PersonInput,
        responses={
            201: s.PersonOut,
            300: s.PossibleMatchesOut,
            400: INVALID,
            403: FORBIDDEN,
            409: s.NHSNumberExistsOut,
        },
    )
    def post(self, request: Request) -> Response:
        data = s.PersonInput(data=request.data)
        data.is_valid(raise_exception=True)
        fields = data.validated_data
        details = {
            "given_name": fields["given_name"],
            "family_name": fields["family_name"],
            "date_of_birth": fields["date_of_birth"],
            "nhs_number": fields["nhs_number"],
            "postcode": fields["postcode"],
        }
        matches = person_likely_matches(user=request.user, **details)
        if matches.nhs_number_taken:
            existing = matches.same_nhs_number
            body: dict[str, Any] = {
                "detail": "A record with this NHS number already exists"
                if existing
                else NHS_NUMBER_HIDDEN,
                "code": "nhs_number_exists",
                "existing": existing,
            }
            return Response(s.NHSNumberExistsOut(body).data, status=status.HTTP_409_CONFLICT)
        if matches.candidates and not fields["confirm_new"]:
            body = {
                "detail": "Nothing was added: these people may be the one you mean. Open the "
                'right one, or send the request again with "confirm_new": true.',
                "code": "possible_matches",
                "possible_matches": matches.candidates,
            }
            return Response(
                s.PossibleMatchesOut(body).data, status=status.HTTP_300_MULTIPLE_CHOICES
            )
        person = person_create(
            actor=request.user, sex=fields["sex"], address=fields["address"], **details
        )
        return Response(
            s.PersonOut(PersonAccess(person, Access.CREATED)).data,
            status=status.HTTP_201_CREATED,
            headers={"Location": reverse("api:person", args=[person.pk], request=request)},
        )


class PersonDetail(CouncilAPIView):
    @extend_schema(
        operation_id="person_retrieve",
        summary="A person's record",
        description="For the person's team, or someone who has stated a reason. Audited as a "
        "view of the record.",
        responses={200: s.PersonOut, 403: REASON_REQUIRED, 404: NOT_FOUND},
    )
    def get(self, request: Request, person_id: int) -> Response:
        access, _network = _viewable(request.user, person_id)
        return Response(s.PersonOut(access).data)

    @extend_schema(
        operation_id="person_update",
        summary="Change a person's details, or record their death",
        description="For anyone who may see the record; a shielded person's only by their own "
        "team, who alone may shield or unshield a record. Only the fields sent change, and the "
        "audit event holds each changed field's value before and after.",
        request=s.PersonChange,
        responses={
            200: s.PersonOut,
            400: INVALID,
            403: FORBIDDEN,
            404: NOT_FOUND,
            409: CONFLICT_WITH_RECORD,
        },
    )
    def patch(self, request: Request, person_id: int) -> Response:
        access = person_access(request.user, person_id)
        if not access.can_see_network:
            raise ReasonRequired(access)
        data = s.PersonChange(data=request.data)
        data.is_valid(raise_exception=True)
        changes = dict(data.validated_data)
        date_of_death = changes.pop("date_of_death", None)
        with transaction.atomic():
            person = access.person
            if changes:
                person = person_update(actor=request.user, person=person, changes=changes)
            if date_of_death is not None and date_of_death != person.date_of_death:
                person_death_record(actor=request.user, person=person, date_of_death=date_of_death)
        return Response(s.PersonOut(person_access(request.user, person_id)).data)


class PersonNetwork(CouncilAPIView):
    @extend_schema(
        operation_id="person_network",
        summary="The team around a person",
        description="Who is involved now, who was before, and the family's teams. A "
        "sensitive service's involvement appears to anyone outside that service only as "
        f'`{{"sensitive_service": true, "message": "{s.MASKED_MESSAGE}"}}`.',
        responses={200: s.NetworkOut, 403: REASON_REQUIRED, 404: NOT_FOUND},
    )
    def get(self, request: Request, person_id: int) -> Response:
        _access, network = _viewable(request.user, person_id)
        return Response(s.NetworkOut(network).data)


class PersonOpenings(CouncilAPIView):
    @extend_schema(
        operation_id="person_opening_create",
        summary="State why you need to see a record",
        description="For someone outside the person's team who found them by search. The "
        "opening is audited and the lead professional (or the team) is told who looked and "
        "why. The record then stays open to you for a few hours.",
        request=s.OpeningInput,
        responses={
            201: s.OpeningOut,
            200: OpenApiResponse(s.OpeningOut, description="You are on the team already"),
            400: INVALID,
            404: NOT_FOUND,
        },
    )
    def post(self, request: Request, person_id: int) -> Response:
        access = person_access(request.user, person_id)
        person_url = reverse("api:person", args=[person_id])
        # Checked for everyone, the team too: the same request is valid or not whoever sends it.
        data = s.OpeningInput(data=request.data)
        data.is_valid(raise_exception=True)
        if access.access == Access.TEAM:
            out = {"access": "team", "break_glass": False, "valid_until": None}
            return Response(s.OpeningOut({**out, "person_url": person_url}).data)
        opening = record_open(
            user=request.user,
            person=access.person,
            reason=data.validated_data["reason"],
            note=data.validated_data["note"],
            break_glass=access.break_glass,
        )
        out = {
            "access": "opened",
            "break_glass": opening.break_glass,
            "valid_until": opening.opened_at + OPENING_VALID,
            "person_url": person_url,
        }
        return Response(s.OpeningOut(out).data, status=status.HTTP_201_CREATED)


class PersonInvolvements(CouncilAPIView):
    @extend_schema(
        operation_id="person_involvements_list",
        summary="Everyone involved with a person, now and before",
        description="Current involvements first, then history. Audited as a view of the "
        "record, like the network.",
        responses={
            200: OpenApiResponse(s.NetworkEntryListOut),
            403: REASON_REQUIRED,
            404: NOT_FOUND,
        },
    )
    def get(self, request: Request, person_id: int) -> Response:
        _access, network = _viewable(request.user, person_id)
        return Response(
            s.NetworkEntryListOut({"results": [*network.current, *network.history]}).data
        )

    @extend_schema(
        operation_id="person_involvements_create",
        summary="Record that you are involved with a person",
        description="Your own involvement, or (for a manager) one of your staff's. Involvements "
        "of a sensitive service are always sensitive; child-protection roles never are.",
        request=s.InvolvementInput,
        responses={
            201: s.InvolvementOut,
            400: INVALID,
            403: REASON_REQUIRED,
            404: NOT_FOUND,
            409: CONFLICT_WITH_RECORD,
        },
    )
    def post(self, request: Request, person_id: int) -> Response:
        access = person_access(request.user, person_id)
        if not access.can_see_network:
            raise ReasonRequired(access)
        data = s.InvolvementInput(data=request.data)
        data.is_valid(raise_exception=True)
        fields = data.validated_data
        practitioner = _practitioner_to_record(request.user, fields["practitioner"])
        involvement = involvement_add(
            actor=request.user,
            person=access.person,
            practitioner=practitioner,
            role=fields["role"],
            start_date=fields["start_date"],
            legal_basis=fields["legal_basis"],
            sensitive=fields["sensitive"],
            lead_professional=fields["lead_professional"],
            last_contact_date=fields["last_contact_date"],
        )
        return Response(s.InvolvementOut(involvement).data, status=status.HTTP_201_CREATED)


class InvolvementDetail(CouncilAPIView):
    @extend_schema(
        operation_id="involvement_update",
        summary="Update your involvement: last contact, lead professional",
        request=s.InvolvementChange,
        responses={200: s.InvolvementOut, 400: INVALID, 404: NOT_FOUND, 409: CONFLICT_WITH_RECORD},
    )
    def patch(self, request: Request, involvement_id: int) -> Response:
        involvement = involvement_for_actor(request.user, involvement_id)
        data = s.InvolvementChange(data=request.data)
        data.is_valid(raise_exception=True)
        involvement = involvement_update(
            actor=request.user,
            involvement=involvement,
            last_contact_date=data.validated_data.get("last_contact_date"),
            lead_professional=data.validated_data.get("lead_professional"),
        )
        return Response(s.InvolvementOut(involvement).data)


class InvolvementConfirm(CouncilAPIView):
    @extend_schema(
        operation_id="involvement_confirm",
        summary="Confirm you are still involved",
        request=None,
        responses={200: s.InvolvementOut, 404: NOT_FOUND, 409: CONFLICT_WITH_RECORD},
    )
    def post(self, request: Request, involvement_id: int) -> Response:
        involvement = involvement_for_actor(request.user, involvement_id)
        involvement = involvement_confirm(actor=request.user, involvement=involvement)
        return Response(s.InvolvementOut(involvement).data)


class InvolvementEnd(CouncilAPIView):
    @extend_schema(
        operation_id="involvement_end",
        summary="End your involvement",
        description="It stays visible to the team as history; nothing is deleted.",
        request=s.InvolvementEnd,
        responses={200: s.InvolvementOut, 400: INVALID, 404: NOT_FOUND, 409: CONFLICT_WITH_RECORD},
    )
    def post(self, request: Request, involvement_id: int) -> Response:
        involvement = involvement_for_actor(request.user, involvement_id)
        data = s.InvolvementEnd(data=request.data)
        data.is_valid(raise_exception=True)
        involvement = involvement_end(
            actor=request.user,
            involvement=involvement,
            reason=data.validated_data["end_reason"],
            end_date=data.validated_data["end_date"],
        )
        return Response(s.InvolvementOut(involvement).data)


class NotFound(CouncilAPIView):
    """Any other path under /api/v1/ (a person id that is not a number, a path that does
    not exist): the API's own JSON 404, not the pages' HTML one."""

    permission_classes: list[Any] = []
    schema = None

    def http_method_not_allowed(self, request: Request, *args: Any, **kwargs: Any) -> Any:
        raise Http404

    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        raise Http404

    post = put = patch = delete = head = options = get


class Roles(CouncilAPIView):
    @extend_schema(
        operation_id="roles_list",
        summary="The council's list of involvement roles",
        responses={200: s.RoleOut(many=True), 403: FORBIDDEN},
    )
    def get(self, request: Request) -> Response:
        if practitioner_of(request.user) is None:
            raise PermissionDenied("Only practitioners can record an involvement")
        return Response(s.RoleOut(roles_active(), many=True).data)
