"""What every API operation may answer besides its own results, added to the published
schema in one place (a drf-spectacular postprocessing hook), so the schema states every
answer a client can get and a fuzzer finds none undocumented:

- 401 for an operation that needs a token, when the token is missing, expired or foreign;
- 404 for an operation with an id in its path, when there is no such record (or it is not
  one the caller may know of), and for an id that is not a number;
- 400, 413 and 415 for an operation that takes a JSON body: not JSON, larger than
  DATA_UPLOAD_MAX_MEMORY_SIZE, or sent as another content type;
- 429 with Retry-After, for any operation, when a client calls too often;
- and a request body, where an operation reads one, is required; a PATCH body must change
  something: at least one property.

The FHIR operations answer these as OperationOutcomes in FHIR JSON, the rest as
`{"detail": "..."}` in JSON."""

from __future__ import annotations

from typing import Any

ERROR = {"$ref": "#/components/schemas/ErrorOut"}
OPERATION_OUTCOME = {"type": "object", "description": "A FHIR OperationOutcome"}
RETRY_AFTER = {
    "Retry-After": {
        "description": "Seconds to wait before trying again",
        "schema": {"type": "integer", "minimum": 0},
    }
}
GENERIC = {
    "400": "The body is not what this operation reads (not JSON, or not an object)",
    "401": "No token, or one that has expired or is not valid at this council",
    "404": "No such record, or not one you may see",
    "413": "The request body is larger than the server accepts",
    "415": "The body must be sent as application/json",
    "429": "Too many requests: wait the seconds Retry-After gives, then try again",
}


def _answer(code: str, fhir: bool) -> dict[str, Any]:
    media = "application/fhir+json" if fhir else "application/json"
    answer: dict[str, Any] = {
        "description": GENERIC[code],
        "content": {media: {"schema": OPERATION_OUTCOME if fhir else ERROR}},
    }
    if code == "429":
        answer["headers"] = RETRY_AFTER
    return answer


def _codes_for(operation: dict[str, Any], path: str) -> list[str]:
    codes = ["429"]
    if operation.get("security") and operation["security"] != [{}]:
        codes.append("401")
    if "{" in path:
        codes.append("404")
    content = operation.get("requestBody", {}).get("content", {})
    if "application/json" in content:
        codes += ["400", "413", "415"]
    return codes


def answers_every_operation_may_give(
    result: dict[str, Any], generator: Any, request: Any, public: bool
) -> dict[str, Any]:
    """drf-spectacular postprocessing hook (SPECTACULAR_SETTINGS["POSTPROCESSING_HOOKS"])."""
    for path, operations in result.get("paths", {}).items():
        fhir = path.startswith("/fhir/")
        for operation in operations.values():
            if "requestBody" in operation:
                # Every body the API reads is needed: without one the answer is 400 or 415.
                operation["requestBody"]["required"] = True
            responses = operation.setdefault("responses", {})
            for code in _codes_for(operation, path):
                responses.setdefault(code, _answer(code, fhir))
    for name, component in result.get("components", {}).get("schemas", {}).items():
        if name.startswith("Patched") and component.get("type") == "object":
            component["minProperties"] = 1
    return result
