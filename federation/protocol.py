"""The wire format of the pointer protocol, with no database: canonical JSON documents
signed with Ed25519, RFC 9421 HTTP message signatures, and match keys.

Documents (key documents, council cards, data-sharing agreements, pointers, answers) are
RFC 8785 canonical JSON; each carries a `signatures` map {federation id: {key_id, value}}
whose values are Ed25519 signatures over the canonical bytes of the document without
`signatures`. Requests are signed with RFC 9421 over the method, target URI, Content-Digest
(RFC 9530, sha-256) and the federation headers."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import math
import re
import secrets
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import http_sf
import rfc8785
from cryptography.exceptions import InvalidSignature as CryptoInvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from http_message_signatures import (
    HTTPMessageSigner,
    HTTPMessageVerifier,
    HTTPSignatureKeyResolver,
    algorithms,
)
from http_message_signatures.exceptions import HTTPMessageSignaturesException

from core.identifiers import name_key, nhs_number_clean
from tenants.canonical import canonical_json as fast_canonical_json

SIGNATURE_TAG = "patchwork-federation"
HEADER_COUNCIL = "patchwork-council"
HEADER_AGREEMENT = "patchwork-agreement"
HEADER_REQUEST_ID = "patchwork-request-id"
HEADER_PRACTITIONER = "patchwork-practitioner"
HEADER_PURPOSE = "patchwork-purpose"
FEDERATION_HEADERS = (
    HEADER_COUNCIL,
    HEADER_AGREEMENT,
    HEADER_REQUEST_ID,
    HEADER_PRACTITIONER,
    HEADER_PURPOSE,
)
COVERED_COMPONENTS = ("@method", "@target-uri", "content-digest", *FEDERATION_HEADERS)
# A signed request is good for this long after it was made; the receiver also allows this
# much difference between the two councils' clocks.
# Lookups to several councils of one deployment in one request (spec §11.5, decision 0025).
BATCH_TYPE = "patchwork.batch"
BATCH_ANSWERS_TYPE = "patchwork.batch-answers"
BATCH_MAX_REQUESTS = 50
REQUEST_LIFETIME = timedelta(seconds=60)
CLOCK_SKEW = timedelta(seconds=30)
# A key document is never valid for longer than this (the ceiling).
KEY_DOCUMENT_MAX_VALIDITY = timedelta(days=7)

PURPOSES = {
    "safeguarding": "Safeguarding a child",
    "early_help": "Early help and family support",
    "continuity_of_care": "Continuity of care after a move",
}


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def fingerprint(public_key: bytes) -> str:
    """How people compare keys by eye: sha-256 of the raw public key, in hex."""
    return hashlib.sha256(public_key).hexdigest()


# I-JSON's (RFC 7493) integers: every implementation reads these exactly.
SAFE_INTEGER = 2**53 - 1


class NotCanonicalJSON(ValueError):
    """A value RFC 8785 cannot write, or would write differently from how it reads."""


def _jcs_number(value: int) -> int | float:
    """An integer as RFC 8785 sees it. JCS reads every number as an IEEE 754 double and
    writes it as ECMAScript does, so past 2^53 an integer survives only when its digits are
    already the double's ECMAScript form (2^60 arrives as 1152921504606847000, and leaves
    so). Any other large integer is refused, never rounded: rounding would let one signature
    cover two different documents (decision 0017)."""
    if -SAFE_INTEGER <= value <= SAFE_INTEGER:
        return value
    if abs(value) < 10**21:
        as_double = float(value)
        if rfc8785.dumps(as_double) == str(value).encode():
            return as_double
    raise NotCanonicalJSON(
        f"The integer {value} is outside -(2^53-1)..2^53-1 and is not written as RFC 8785 writes "
        "a number: send it as a string"
    )


def _jcs_values(value: Any) -> Any:
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return _jcs_number(value)
    if isinstance(value, float) and not math.isfinite(value):
        raise NotCanonicalJSON(f"{value} is not a JSON number")
    if isinstance(value, Mapping):
        return {k: _jcs_values(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jcs_values(v) for v in value]
    return value


def canonical_json(value: Any) -> bytes:
    """RFC 8785 bytes of any JSON value. Raises NotCanonicalJSON for a value RFC 8785 cannot
    write the same way every implementation reads it."""
    try:
        return fast_canonical_json(value)
    except rfc8785.IntegerDomainError:
        pass  # large integers: the slow path below, which is rare
    except rfc8785.CanonicalizationError as exc:
        raise NotCanonicalJSON(str(exc)) from exc
    try:
        return rfc8785.dumps(_jcs_values(value))
    except rfc8785.CanonicalizationError as exc:
        raise NotCanonicalJSON(str(exc)) from exc


def canonical(document: Mapping[str, Any]) -> bytes:
    """RFC 8785 bytes of the document without its `signatures` (see canonical_json)."""
    return canonical_json({k: v for k, v in document.items() if k != "signatures"})


def _refuse_repeated_member(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    names = [name for name, _ in pairs]
    if len(set(names)) != len(names):
        raise NotCanonicalJSON("An object names one member twice")
    return dict(pairs)


def _refuse_constant(name: str) -> Any:
    raise NotCanonicalJSON(f"{name} is not a JSON number")


def json_interoperable(text: bytes | str) -> Any:
    """JSON as a peer sent it, refused (NotCanonicalJSON, a ValueError) unless every
    implementation reads it as we do: no repeated member names, no NaN or Infinity, no
    number RFC 8785 cannot write back unchanged (I-JSON, RFC 7493)."""
    value = json.loads(
        text, object_pairs_hook=_refuse_repeated_member, parse_constant=_refuse_constant
    )
    _check_numbers(value)
    return value


def _check_numbers(value: Any) -> None:
    """Raise NotCanonicalJSON for a number RFC 8785 would not write back as it came (a walk
    that builds nothing: most bodies hold no number outside the safe range)."""
    if isinstance(value, dict):
        for member in value.values():
            _check_numbers(member)
    elif isinstance(value, list):
        for item in value:
            _check_numbers(item)
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise NotCanonicalJSON(f"{value} is not a JSON number")
    elif isinstance(value, int) and not isinstance(value, bool):
        _jcs_number(value)


def request_payload(body: bytes) -> dict[str, Any]:
    """A signed request's JSON object, or RequestRefused: `not_json` (not a JSON object),
    `not_interoperable_json` (JSON that implementations read differently)."""
    try:
        payload = json_interoperable(body)
    except NotCanonicalJSON as exc:
        raise RequestRefused("not_interoperable_json", 400) from exc
    except ValueError as exc:
        raise RequestRefused("not_json", 400) from exc
    if not isinstance(payload, dict):
        raise RequestRefused("not_json", 400)
    return payload


DEFAULT_PORTS = {"https": 443, "http": 80}


def target_uri_normalised(url: str) -> str:
    """An http(s) URL as RFC 9110 (section 4.2.3) normalises it: scheme and host in lower
    case, the scheme's default port left out. Signer and receiver both write @target-uri
    this way, so `https://x:443/p` and `https://x/p` sign the same."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    if scheme not in DEFAULT_PORTS or not host or parts.username or parts.password:
        raise ValueError(f"Not an http(s) address: {url!r}")
    if ":" in host:  # an IPv6 literal
        host = f"[{host}]"
    port = parts.port  # raises ValueError for a port out of range
    netloc = host if port in (None, DEFAULT_PORTS[scheme]) else f"{host}:{port}"
    return urlunsplit((scheme, netloc, parts.path or "/", parts.query, ""))


def base_url_normalised(url: str) -> str:
    """A council's base URL in the one form every deployment keeps it in: http(s), host in
    lower case, no default port, no query, fragment or credentials, no trailing slash
    (`HTTPS://Council.Example:443/` becomes `https://council.example`). Raises ValueError
    for anything else. Call it wherever a base URL enters: card, peer, directory, settings."""
    text = url.strip()
    parts = urlsplit(text)
    if parts.query or parts.fragment:
        raise ValueError(f"A base URL has no query or fragment: {url!r}")
    return target_uri_normalised(text).rstrip("/")


def timestamp(moment: datetime) -> str:
    return moment.astimezone(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def parse_timestamp(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


@dataclass(frozen=True)
class SigningKey:
    """A council's private key, opened from its sealed form only for the moment of use."""

    federation_id: str
    key_id: str
    private_key: Ed25519PrivateKey


def sign_document(
    document: dict[str, Any], key: SigningKey, label: str | None = None
) -> dict[str, Any]:
    """The document with `key`'s signature added to its `signatures` map, under the
    signer's federation id (or `label`, for a document signed by several of one council's
    keys)."""
    signature = key.private_key.sign(canonical(document))
    signatures = dict(document.get("signatures") or {})
    signatures[label or key.federation_id] = {"key_id": key.key_id, "value": b64(signature)}
    return {**document, "signatures": signatures}


def verify_document_signature(
    document: Mapping[str, Any], signer: str, public_key_for: Callable[[str], bytes | None]
) -> bool:
    """Whether `signer` signed exactly this document with a key `public_key_for` accepts."""
    entry = (document.get("signatures") or {}).get(signer)
    if not isinstance(entry, dict):
        return False
    public = public_key_for(str(entry.get("key_id", "")))
    if public is None:
        return False
    try:
        Ed25519PublicKey.from_public_bytes(public).verify(
            unb64(str(entry.get("value", ""))), canonical(document)
        )
    except (CryptoInvalidSignature, ValueError):  # NotCanonicalJSON among them
        return False
    return True


def verify_any_signature(
    document: Mapping[str, Any], public_key_for: Callable[[str], bytes | None]
) -> bool:
    """Whether any one signature on the document is by a key `public_key_for` accepts."""
    return any(
        verify_document_signature(document, label, public_key_for)
        for label in (document.get("signatures") or {})
    )


# --- Match keys ---------------------------------------------------------------------------


def _variants_of_family_name(family_name: str) -> set[str]:
    """The whole surname and, for double-barrelled names, each part: one council may have
    recorded 'O'Brien-Smith' and the other only 'Smith'."""
    whole = name_key(family_name)
    parts = {name_key(part) for part in family_name.replace("-", " ").split()}
    return {v for v in {whole, *parts} if len(v) >= 2}


def match_key(secret: bytes, label: str) -> str:
    return hmac.new(secret, label.encode(), hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class Identifiers:
    """What a council knows of one person, enough to compute match keys."""

    nhs_number: str | None
    date_of_birth: date | None
    names: tuple[tuple[str, str], ...] = field(default_factory=tuple)  # (given, family)


def nhs_and_birth_date_key(secret: bytes, nhs_number: str, date_of_birth: date) -> str:
    """The key of an NHS number together with a date of birth: what lets the answering
    council say "the NHS number matches but the date of birth does not" (decision 0013).
    Bound to the NHS number, so a council that does not know the number learns nothing of
    the date (a date of birth alone has a few thousand values: its key would be a dictionary
    lookup away for the partner, who holds the secret)."""
    return match_key(secret, f"nhs-dob:{nhs_number_clean(nhs_number)}|{date_of_birth.isoformat()}")


def match_keys(
    identifiers: Identifiers, *, secret: bytes, demographic: bool
) -> dict[str, list[str]]:
    """HMAC-SHA256 keys of the person's normalised identifiers under the agreement's secret:
    always the NHS number; name and date of birth variants, and the NHS number with the date
    of birth (`nhs_and_birth_date`), only when `demographic` (the agreement allows matching
    on them)."""
    keys: dict[str, list[str]] = {"nhs": [], "demographic": []}
    nhs = nhs_number_clean(identifiers.nhs_number or "")
    if nhs:
        keys["nhs"].append(match_key(secret, f"nhs:{nhs}"))
    if demographic and nhs and identifiers.date_of_birth is not None:
        keys[NHS_AND_BIRTH_DATE] = [nhs_and_birth_date_key(secret, nhs, identifiers.date_of_birth)]
    if demographic and identifiers.date_of_birth is not None:
        born = identifiers.date_of_birth.isoformat()
        labels = {
            f"dem:{family}|{name_key(given)}|{born}"
            for given, family_name in identifiers.names
            for family in _variants_of_family_name(family_name)
            if name_key(given)
        }
        keys["demographic"] = sorted(match_key(secret, label) for label in labels)
    return keys


def new_agreement_secret() -> bytes:
    return secrets.token_bytes(32)


# --- What an answer says was compared (decision 0013) -----------------------------------------

# The lookup's key kind for the NHS number together with the date of birth.
NHS_AND_BIRTH_DATE = "nhs_and_birth_date"
# Each identifier the answering council compared, and how it came out.
COMPARED = ("nhs_number", "name_and_date_of_birth", "date_of_birth")
MATCHED, DIFFERS, NOT_COMPARED = "match", "no_match", "not_compared"
COMPARISON_RESULTS = frozenset({MATCHED, DIFFERS, NOT_COMPARED})
# Outcomes an answer may give; `possible_mismatch` is never a match (no pointers cross).
POSSIBLE_MISMATCH = "possible_mismatch"
ANSWER_OUTCOMES = frozenset({"match", "no_match", "more_attributes_requested", POSSIBLE_MISMATCH})
CONFIDENCES = frozenset(
    {"confirmed", "nhs_number_only", "demographic_only", POSSIBLE_MISMATCH, "none"}
)


def nothing_compared() -> dict[str, str]:
    return dict.fromkeys(COMPARED, NOT_COMPARED)


def answer_confidence(outcome: str, comparisons: Mapping[str, str]) -> str:
    """The one `confidence` that follows from an answer's outcome and comparisons. Both
    councils use this rule: the answering one to write it, the asking one to check it."""
    if outcome not in {"match", POSSIBLE_MISMATCH}:
        return "none"
    if DIFFERS in comparisons.values():
        return POSSIBLE_MISMATCH
    nhs, named = comparisons.get("nhs_number"), comparisons.get("name_and_date_of_birth")
    if nhs == MATCHED and named == MATCHED:
        return "confirmed"
    if nhs == MATCHED:
        return "nhs_number_only"
    if named == MATCHED:
        return "demographic_only"
    return "none"


def answer_detail_consistent(answer: Mapping[str, Any], sent: Mapping[str, Any]) -> bool:
    """Whether a signed answer's `comparisons` and `confidence` agree with its outcome, its
    pointers and the keys we `sent`. An answer from a council that predates them carries
    neither (shown as "did not say what matched"); one carrying only one of them, or detail
    that contradicts the outcome, is refused: a possible mismatch must never pass as a match."""
    outcome = answer.get("outcome")
    has_comparisons, has_confidence = "comparisons" in answer, "confidence" in answer
    if not has_comparisons and not has_confidence:
        return outcome in {"match", "no_match", "more_attributes_requested"}
    comparisons, confidence = answer.get("comparisons"), answer.get("confidence")
    if (
        not isinstance(comparisons, dict)
        or set(comparisons) != set(COMPARED)
        or not all(value in COMPARISON_RESULTS for value in comparisons.values())
        or confidence not in CONFIDENCES
        or outcome not in ANSWER_OUTCOMES
        or confidence != answer_confidence(str(outcome), comparisons)
    ):
        return False
    values = set(comparisons.values())
    if outcome == "match" and (
        confidence not in {"confirmed", "nhs_number_only", "demographic_only"} or DIFFERS in values
    ):
        return False
    if outcome == POSSIBLE_MISMATCH and not ({MATCHED, DIFFERS} <= values):
        return False
    if outcome in {"no_match", "more_attributes_requested"} and values != {NOT_COMPARED}:
        return False
    if outcome != "match" and (answer.get("pointers") or answer.get("sensitive_service_involved")):
        return False
    # Nothing is compared that we did not send.
    sent_nhs = bool(sent.get("nhs"))
    sent_names = bool(sent.get("demographic"))
    sent_birth = bool(sent.get(NHS_AND_BIRTH_DATE))
    named = comparisons["name_and_date_of_birth"]
    born = comparisons["date_of_birth"]
    if comparisons["nhs_number"] != NOT_COMPARED and not sent_nhs:
        return False
    if named != NOT_COMPARED and not sent_names:
        return False
    if born == DIFFERS and not sent_birth:
        return False
    if born == MATCHED and not (sent_birth or named == MATCHED):
        return False
    # A name-and-birth match is a birth-date match.
    return not (named == MATCHED and born != MATCHED)


# --- HTTP message signatures (RFC 9421) -----------------------------------------------------


@dataclass
class HttpMessage:
    """The parts of an HTTP request the signature library reads and writes."""

    method: str
    url: str
    headers: dict[str, str]


class _Keys(HTTPSignatureKeyResolver):
    def __init__(
        self,
        private: Ed25519PrivateKey | None = None,
        public_key_for: Callable[[str], bytes | None] | None = None,
    ) -> None:
        self.private = private
        self.public_key_for = public_key_for

    def resolve_private_key(self, key_id: str) -> Ed25519PrivateKey:
        assert self.private is not None
        return self.private

    def resolve_public_key(self, key_id: str) -> Ed25519PublicKey | None:
        raw = self.public_key_for(key_id) if self.public_key_for else None
        return Ed25519PublicKey.from_public_bytes(raw) if raw else None


def sign_request(
    *,
    url: str,
    body: bytes,
    key: SigningKey,
    agreement_id: str,
    request_id: str,
    practitioner: str,
    purpose: str,
    now: datetime | None = None,
    lifetime: timedelta = REQUEST_LIFETIME,
    nonce: str | None = None,
) -> dict[str, str]:
    """The headers of a signed POST of `body` to `url`. `nonce`: fresh unless given (tests).

    The signature base is built here and signed with `cryptography` directly: what
    http-message-signatures would write for these components, byte for byte
    (tests/federation/test_request_signing.py), at a fifth of its cost, which every peer
    of a "who is involved?" check pays on the asking side (docs/benchmarks.md). Anything
    outside the plain shape we always send (a query, userinfo, a header value with spaces
    or quotes) goes through the library instead."""
    created = (now or datetime.now(UTC)).replace(microsecond=0)
    url = target_uri_normalised(url)
    headers = {
        "Content-Type": "application/json",
        HEADER_COUNCIL: key.federation_id,
        HEADER_AGREEMENT: agreement_id,
        HEADER_REQUEST_ID: request_id,
        HEADER_PRACTITIONER: practitioner,
        HEADER_PURPOSE: purpose,
    }
    nonce = nonce or secrets.token_urlsafe(18)
    if _PLAIN_URL.fullmatch(url) and all(
        _PLAIN_VALUE.fullmatch(value)
        for value in (key.key_id, nonce, *(headers[name] for name in FEDERATION_HEADERS))
    ):
        return _signed_directly(url, body, key, headers, created, created + lifetime, nonce)
    return _signed_by_library(url, body, key, headers, created, created + lifetime, nonce)


# The shape every request of ours has: an absolute http(s) URL with a path and nothing
# else, and header values and parameters of visible ASCII without quotes or backslashes.
# For these, RFC 9421's `@target-uri` is the URL as written, a field's value is the header
# as written, and a Structured Field String is the text in quotes.
_PLAIN_URL = re.compile(r"https?://[A-Za-z0-9.\-]+(?::[0-9]+)?/[A-Za-z0-9._~\-/]*")
_PLAIN_VALUE = re.compile(r"[!#-\[\]-~]+")
# http-message-signatures' default label, kept so the headers are what it writes.
SIGNATURE_LABEL = "pyhms"
_COMPONENT_LIST = "(" + " ".join(f'"{name}"' for name in COVERED_COMPONENTS) + ")"


def _signed_directly(
    url: str,
    body: bytes,
    key: SigningKey,
    headers: dict[str, str],
    created: datetime,
    expires: datetime,
    nonce: str,
) -> dict[str, str]:
    digest = f"sha-256=:{base64.b64encode(hashlib.sha256(body).digest()).decode()}:"
    params = (
        f'{_COMPONENT_LIST};created={int(created.timestamp())};keyid="{key.key_id}";'
        f'alg="ed25519";expires={int(expires.timestamp())};nonce="{nonce}";'
        f'tag="{SIGNATURE_TAG}"'
    )
    base = "\n".join(
        [
            '"@method": POST',
            f'"@target-uri": {url}',
            f'"content-digest": {digest}',
            *(f'"{name}": {headers[name]}' for name in FEDERATION_HEADERS),
            f'"@signature-params": {params}',
        ]
    )
    signature = base64.b64encode(key.private_key.sign(base.encode())).decode()
    headers["Content-Digest"] = digest
    headers["Signature-Input"] = f"{SIGNATURE_LABEL}={params}"
    headers["Signature"] = f"{SIGNATURE_LABEL}=:{signature}:"
    return headers


def _signed_by_library(
    url: str,
    body: bytes,
    key: SigningKey,
    headers: dict[str, str],
    created: datetime,
    expires: datetime,
    nonce: str,
) -> dict[str, str]:
    message = HttpMessage(method="POST", url=url, headers=headers)
    HTTPMessageSigner(
        signature_algorithm=algorithms.ED25519, key_resolver=_Keys(key.private_key)
    ).sign(
        message,
        key_id=key.key_id,
        created=created,
        expires=expires,
        nonce=nonce,
        tag=SIGNATURE_TAG,
        covered_component_ids=COVERED_COMPONENTS,
        body=body,
    )
    return message.headers


def _refuse_repeated_label(key: str, context: str) -> None:
    # Two signatures under one label: as http-message-signatures itself refuses them when it
    # verifies, and unlike RFC 8941's default of keeping the last one.
    if context == "dictionary":
        raise ValueError(f"Signature label {key!r} appears twice")


def _patchwork_signatures(headers: Mapping[str, str]) -> list[tuple[str, dict[str, Any]]]:
    """The Signature-Input members tagged `patchwork-federation`, as (label, parameters).
    Signature-Input is a structured-field Dictionary (RFC 8941): each label maps to its
    covered components and their parameters. Others' signatures (a gateway's) are left."""
    value = {k.lower(): v for k, v in headers.items()}.get("signature-input")
    if not value:
        return []
    try:
        parsed = http_sf.parse(
            value.encode(), tltype="dictionary", on_duplicate_key=_refuse_repeated_label
        )
    except ValueError:  # http_sf.StructuredFieldError, a repeated label, or not text
        return []
    if not isinstance(parsed, dict):
        return []
    return [
        (label, member[1])
        for label, member in parsed.items()
        if isinstance(member, tuple)
        and isinstance(member[0], list)
        and member[1].get("tag") == SIGNATURE_TAG
    ]


def signature_key_id(headers: Mapping[str, str]) -> str | None:
    """The `keyid` a request claims, read before anything is verified (to find the key):
    that of its one signature tagged `patchwork-federation` (RFC 9421 section 4.3: a
    request may carry other signatures, e.g. a gateway's, which are not ours to check).
    None when there is no such signature, or more than one."""
    ours = _patchwork_signatures(headers)
    if len(ours) != 1:
        return None
    keyid = ours[0][1].get("keyid")
    # A token (unquoted) or byte sequence is not a key id we issue: only a string.
    return keyid if isinstance(keyid, str) else None


class RequestRefused(Exception):
    """A request failed a check; `reason` is a short code, `status` the HTTP status."""

    def __init__(self, reason: str, status: int = 401, *, retry_after: int | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status
        # Seconds, for a refusal by a rate limit (429).
        self.retry_after = retry_after


@dataclass(frozen=True)
class VerifiedSignature:
    key_id: str
    created: datetime
    expires: datetime
    nonce: str


class _PatientVerifier(HTTPMessageVerifier):
    # The library checks the time before the signature; the receiver's order is signature
    # first, then its own time window, so the library's own window is opened wide here.
    max_clock_skew = timedelta(days=3650)


_SIGNATURE_INPUT = re.compile(
    r"([a-z*][a-z0-9_\-.*]*)="
    + re.escape(_COMPONENT_LIST)
    + r';created=(0|[1-9][0-9]{0,9});keyid="([!#-\[\]-~]+)";alg="ed25519";'
    r'expires=(0|[1-9][0-9]{0,9});nonce="([!#-\[\]-~]+)";tag="' + re.escape(SIGNATURE_TAG) + '"'
)
_SIGNATURE_VALUE = re.compile(r"([a-z*][a-z0-9_\-.*]*)=:([A-Za-z0-9+/]+={0,2}):")
_VERIFIED_BY_LIBRARY = {"signature-input", "signature", "content-digest", *FEDERATION_HEADERS}


def _verified_directly(
    method: str, url: str, headers: Mapping[str, str], body: bytes, public_key: bytes
) -> dict[str, Any] | None:
    """The parameters of the one signature of exactly the shape `sign_request` writes (its
    label, components and parameters in its order, plain values), checked with
    `cryptography` over the signature base built as `_signed_directly` builds it: the base
    http-message-signatures builds for such a request (tests/federation/test_request_signing.py
    compares the two). None for anything else, or a signature that does not check out here:
    the library then decides, so nothing is accepted that it would refuse, nor refused that
    it would accept."""
    lower = {k.lower(): v for k, v in headers.items()}
    if method != "POST" or len(lower) != len(headers) or not _PLAIN_URL.fullmatch(url):
        return None
    if not _VERIFIED_BY_LIBRARY.issubset(lower):
        return None
    if not all(_PLAIN_VALUE.fullmatch(lower[name]) for name in FEDERATION_HEADERS):
        return None
    signature_input = _SIGNATURE_INPUT.fullmatch(lower["signature-input"])
    signature = _SIGNATURE_VALUE.fullmatch(lower["signature"])
    if signature_input is None or signature is None:
        return None
    label, created, keyid, expires, nonce = signature_input.groups()
    if signature.group(1) != label:
        return None
    digest = f"sha-256=:{base64.b64encode(hashlib.sha256(body).digest()).decode()}:"
    if lower["content-digest"] != digest:
        return None
    try:
        raw = base64.b64decode(signature.group(2), validate=True)
    except ValueError:
        return None
    if base64.b64encode(raw).decode() != signature.group(2):
        return None
    # The library's own time check (_PatientVerifier's wide clock skew), at its own time.
    now = datetime.now(UTC)
    skew = _PatientVerifier.max_clock_skew
    try:
        if (
            datetime.fromtimestamp(int(created), UTC) > now + skew
            or datetime.fromtimestamp(int(expires), UTC) < now - skew
        ):
            return None
    except (OverflowError, OSError, ValueError):
        return None
    params = signature_input.group(0)[len(label) + 1 :]
    base = "\n".join(
        [
            '"@method": POST',
            f'"@target-uri": {url}',
            f'"content-digest": {digest}',
            *(f'"{name}": {lower[name]}' for name in FEDERATION_HEADERS),
            f'"@signature-params": {params}',
        ]
    )
    try:
        Ed25519PublicKey.from_public_bytes(public_key).verify(raw, base.encode())
    except (CryptoInvalidSignature, ValueError):
        return None
    return {"created": int(created), "expires": int(expires), "nonce": nonce, "keyid": keyid}


def verify_request(
    *,
    method: str,
    url: str,
    headers: Mapping[str, str],
    body: bytes,
    public_key: bytes,
    now: datetime | None = None,
) -> VerifiedSignature:
    """Check the signature (covering every federation header and the body's digest), then
    the time window. Raises RequestRefused."""
    try:
        message = HttpMessage(method=method, url=target_uri_normalised(url), headers=dict(headers))
    except ValueError as exc:
        raise RequestRefused("bad_signature") from exc
    params = _verified_directly(method, message.url, headers, body, public_key)
    if params is None:
        params = _verified_by_library(message, body, public_key)
    created = datetime.fromtimestamp(int(params["created"]), UTC)
    expires = datetime.fromtimestamp(int(params["expires"]), UTC)
    moment = now or datetime.now(UTC)
    if (
        created > moment + CLOCK_SKEW
        or expires < moment - CLOCK_SKEW
        or expires - created > REQUEST_LIFETIME
        or created < moment - REQUEST_LIFETIME - CLOCK_SKEW
    ):
        raise RequestRefused("outside_time_window")
    return VerifiedSignature(
        key_id=str(params["keyid"]), created=created, expires=expires, nonce=str(params["nonce"])
    )


def _verified_by_library(message: HttpMessage, body: bytes, public_key: bytes) -> dict[str, Any]:
    """The one signature tagged ours checked by http-message-signatures' generic verifier:
    its parameters. Raises RequestRefused."""
    verifier = _PatientVerifier(
        signature_algorithm=algorithms.ED25519,
        key_resolver=_Keys(public_key_for=lambda _: public_key),
    )
    try:
        results = verifier.verify(
            message,
            max_age=None,
            expect_tag=SIGNATURE_TAG,
            require_components=COVERED_COMPONENTS,
            body=body,
        )
    except (HTTPMessageSignaturesException, ValueError, TypeError) as exc:
        raise RequestRefused("bad_signature") from exc
    # Only the signature tagged ours is verified (the library selects by tag); two of them
    # would be two claims of one request, and are refused.
    if len(results) != 1:
        raise RequestRefused("bad_signature")
    params = results[0].parameters
    if not all(k in params for k in ("created", "expires", "nonce", "keyid")):
        raise RequestRefused("bad_signature")
    return params


def body_digest(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


def header_values(headers: Mapping[str, str], names: Iterable[str]) -> dict[str, str]:
    lower = {k.lower(): v for k, v in headers.items()}
    return {name: lower.get(name, "") for name in names}
