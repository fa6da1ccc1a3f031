"""A FHIR R4 Bundle (JSON) read as the rows of the CSV template (decision 0009).

The Bundle is read entry by entry with `ijson`, so memory does not grow with the file.
Only what the feed needs is read from each resource; a resource that lacks it becomes a
rejected row with the reason. Resources are not run through the full FHIR models: at a
million entries that would cost minutes, and the rows are checked by the importer anyway.

- Organization: its identifier (ODS code or GIAS URN) names a Patchwork organisation.
- PractitionerRole: `code` (the role's name), `organization`, `telecom` email (the
  practitioner's Patchwork email). Both are remembered by id for the entries after them.
- Patient -> a person: `identifier` (NHS number system), `name`, `birthDate`, `gender`,
  `address`; `meta.security` code R (restricted) shields the person.
- RelatedPerson -> a relationship: `patient` is the person; the relative is the Patient
  named by an identifier of system `urn:patchwork:relative-patient`; `relationship` codes
  from v3 RoleCode (or our own words) say parent, carer, sibling or household; `period`.
- EpisodeOfCare -> an involvement: `patient`, `careManager` (a PractitionerRole earlier in
  the Bundle), `managingOrganization` (optional: else the role's), `period`.
- CareTeam -> one involvement per participant whose member is a PractitionerRole: source id
  `<CareTeam id>/<PractitionerRole id>`, `subject`, the participant's or team's `period`."""

from __future__ import annotations

from collections.abc import Iterator
from typing import IO, Any

import ijson
from django.core.exceptions import ValidationError

NHS_NUMBER_SYSTEM = "https://fhir.nhs.uk/Id/nhs-number"
RELATIVE_SYSTEM = "urn:patchwork:relative-patient"
ORGANISATION_SYSTEMS = (
    "https://fhir.nhs.uk/Id/ods-organization-code",
    "https://fhir.nhs.uk/Id/ods-site-code",
    "urn:gias:urn",
)
ROLE_CODES = {
    "parent": ("PRN", "MTH", "FTH", "NPRN", "NMTH", "NFTH", "STPPRN", "STPMTH", "STPFTH")
    + ("ADOPTP", "ADOPTM", "ADOPTF", "PRNINLAW"),
    "carer": ("GUARD", "FSTPRN", "FSTMTH", "FSTFTH", "CAREGIVER", "C"),
    "sibling": ("SIB", "BRO", "SIS", "HSIB", "HBRO", "HSIS", "STPSIB", "STPBRO", "STPSIS"),
    "household": ("ROOM", "DOMPART", "FAMMEMB", "HH"),
}
RELATIONSHIP_OF_CODE = {code: kind for kind, codes in ROLE_CODES.items() for code in codes}


# An entry's number in the Bundle and the CSV template's columns for it.
Row = tuple[int, dict[str, str]]


class _Malformed(Exception):
    pass


def _reference_id(reference: Any, resource_type: str) -> str:
    text = reference.get("reference", "") if isinstance(reference, dict) else ""
    kind, _, target = text.partition("/")
    if kind != resource_type or not target:
        raise _Malformed(f"has no reference to a {resource_type}")
    return str(target)


def _period(resource: dict[str, Any]) -> tuple[str, str]:
    period = resource.get("period") or {}
    return str(period.get("start", ""))[:10], str(period.get("end", ""))[:10]


def _organisation_code(organization: dict[str, Any]) -> str:
    identifiers = organization.get("identifier") or []
    for wanted in ORGANISATION_SYSTEMS:
        for identifier in identifiers:
            if identifier.get("system") == wanted and identifier.get("value"):
                return str(identifier["value"])
    for identifier in identifiers:
        if identifier.get("value"):
            return str(identifier["value"])
    return str(organization.get("name", ""))


def _patient(resource: dict[str, Any]) -> dict[str, str]:
    # Plain loops rather than generators: a county's Bundle has half a million of these.
    names = resource.get("name") or [{}]
    name = names[0]
    for candidate in names:
        if candidate.get("use") == "official":
            name = candidate
            break
    nhs = ""
    for identifier in resource.get("identifier") or ():
        if identifier.get("system") == NHS_NUMBER_SYSTEM:
            nhs = identifier.get("value", "")
            break
    address = (resource.get("address") or [{}])[0]
    meta = resource.get("meta")
    security = {c.get("code") for c in meta.get("security") or ()} if meta else set()
    return {
        "given_name": " ".join(name.get("given") or []),
        "family_name": str(name.get("family", "")),
        "date_of_birth": str(resource.get("birthDate", "")),
        "sex": str(resource.get("gender", "")),
        "nhs_number": str(nhs),
        "address": ", ".join(address.get("line") or []),
        "postcode": str(address.get("postalCode", "")),
        "shielded": "yes" if "R" in security else "no",
    }


def _related_person(resource: dict[str, Any]) -> dict[str, str]:
    relative = next(
        (
            i.get("value", "")
            for i in resource.get("identifier") or []
            if i.get("system") == RELATIVE_SYSTEM
        ),
        "",
    )
    if not relative:
        raise _Malformed(f"has no identifier of system {RELATIVE_SYSTEM} naming the relative")
    kind = ""
    for concept in resource.get("relationship") or []:
        for coding in concept.get("coding") or []:
            code = str(coding.get("code", ""))
            kind = RELATIONSHIP_OF_CODE.get(code.upper(), code.lower())
            if kind:
                break
        kind = kind or str(concept.get("text", "")).lower()
        if kind:
            break
    start, end = _period(resource)
    return {
        "person_source_id": _reference_id(resource.get("patient"), "Patient"),
        "relative_source_id": str(relative),
        "relationship": kind,
        "start_date": start,
        "end_date": end,
    }


class _Bundle:
    def __init__(self) -> None:
        self.organisations: dict[str, str] = {}
        self.roles: dict[str, dict[str, str]] = {}

    def practitioner_role(self, resource: dict[str, Any]) -> None:
        code = resource.get("code") or [{}]
        coding = (code[0].get("coding") or [{}])[0]
        organisation = ""
        reference = (resource.get("organization") or {}).get("reference", "")
        if reference.startswith("Organization/"):
            organisation = self.organisations.get(reference.split("/", 1)[1], "")
        email = next(
            (
                t.get("value", "")
                for t in resource.get("telecom") or []
                if t.get("system") == "email"
            ),
            "",
        )
        self.roles[str(resource.get("id", ""))] = {
            "role": str(code[0].get("text") or coding.get("display") or ""),
            "organisation_code": organisation,
            "practitioner_email": str(email),
        }

    def involvement(
        self, role_reference: Any, organisation_reference: Any, patient: Any, period: tuple
    ) -> dict[str, str]:
        role_id = _reference_id(role_reference, "PractitionerRole")
        role = self.roles.get(role_id)
        if role is None:
            raise _Malformed(f"names PractitionerRole/{role_id}, not given earlier in the Bundle")
        values = dict(role)
        if organisation_reference:
            organisation_id = _reference_id(organisation_reference, "Organization")
            values["organisation_code"] = self.organisations.get(organisation_id, "")
        values["person_source_id"] = _reference_id(patient, "Patient")
        values["start_date"], values["end_date"] = period
        return values

    def rows(self, entry: int, resource: dict[str, Any]) -> list[Row]:
        """The rows one resource stands for (none, one, or a CareTeam's several)."""
        kind = resource.get("resourceType")
        source_id = str(resource.get("id", ""))
        if kind == "Organization":
            self.organisations[source_id] = _organisation_code(resource)
            return []
        if kind == "PractitionerRole":
            self.practitioner_role(resource)
            return []
        if kind == "CareTeam":
            team: list[Row] = []
            team_period = _period(resource)
            for participant in resource.get("participant") or []:
                member = participant.get("member")
                reference = (member or {}).get("reference", "")
                if not reference.startswith("PractitionerRole/"):
                    continue  # patients, relatives and others in the team are not involvements
                row_id = f"{source_id}/{reference.split('/', 1)[1]}"
                try:
                    period = _period(participant) if participant.get("period") else team_period
                    values = self.involvement(member, None, resource.get("subject"), period)
                except _Malformed as exc:
                    values = {"_problem": f"The CareTeam {exc}"}
                team.append((entry, {"record": "involvement", "source_id": row_id, **values}))
            return team
        record = {"Patient": "person", "RelatedPerson": "relationship"}.get(str(kind))
        if kind == "EpisodeOfCare":
            record = "involvement"
        if record is None:
            problem = f"A {kind} resource is not one Patchwork imports"
            return [(entry, {"record": str(kind), "source_id": source_id, "_problem": problem})]
        try:
            if kind == "Patient":
                values = _patient(resource)
            elif kind == "RelatedPerson":
                values = _related_person(resource)
            else:
                values = self.involvement(
                    resource.get("careManager"),
                    resource.get("managingOrganization"),
                    resource.get("patient"),
                    _period(resource),
                )
        except _Malformed as exc:
            values = {"_problem": f"The {kind} {exc}"}
        values["record"] = record  # each mapping above made `values` afresh
        values["source_id"] = source_id
        return [(entry, values)]


def _is_bundle(binary: IO[bytes]) -> bool:
    for prefix, event, value in ijson.parse(binary):
        if prefix == "resourceType" and event == "string":
            return bool(value == "Bundle")
        if prefix == "entry" and event == "start_array":
            break
    return False


def fhir_rows(binary: IO[bytes]) -> Iterator[Row]:
    """The Bundle's entries as rows, one at a time. A file that is not a JSON Bundle (with
    `resourceType` before `entry`), or whose JSON breaks off, is refused with the reason."""
    try:
        if not _is_bundle(binary):
            raise ValidationError(
                'The file is not a FHIR Bundle: it needs "resourceType": "Bundle" before '
                "its entries"
            )
        binary.seek(0)
        bundle = _Bundle()
        entry = 0
        for resource in ijson.items(binary, "entry.item.resource", use_float=True):
            entry += 1
            if not isinstance(resource, dict):
                yield (entry, {"record": "", "_problem": "The entry is not a resource"})
                continue
            yield from bundle.rows(entry, resource)
    except ijson.JSONError as exc:
        raise ValidationError(f"The file is not valid JSON: {exc}") from exc
