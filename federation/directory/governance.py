"""The signed directory of councils (decision 0014), with no database: the governance key
held offline by the federation's operator body, the directory document's format, and its
signature checks.

A directory document is RFC 8785 canonical JSON signed like every other federation
document (`protocol.sign_document`): a `signatures` map whose labels are governance key ids
and whose values are Ed25519 signatures over the document without `signatures`."""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from federation import protocol

DOCUMENT_TYPE = "patchwork.directory"
FORMAT_VERSION = 1
GOVERNANCE_SIGNER = "patchwork:governance"
STATUSES = ("active", "suspended", "left")
# A directory is never valid for longer than this: a governance body that stops signing
# must not leave deployments trusting an old membership for ever.
MAX_VALIDITY = timedelta(days=90)
DEFAULT_VALIDITY_DAYS = 7
# The key kinds a member entry may carry. Only Ed25519 signing keys are trust anchors here;
# other kinds (X25519 encryption keys) are carried, signed, for whoever uses them.
KEY_ALGORITHMS = {"ed25519": "signing", "x25519": "encryption"}
FEDERATION_ID = re.compile(r"^council:[A-Z][0-9]{8}$")


class DirectoryError(ValueError):
    """A directory document, members file or governance key that cannot be used; the
    message says why in an operator's words."""


# --- The governance key -----------------------------------------------------------------------


def governance_key_id(public_key: bytes) -> str:
    """A governance key's id: `governance-` and the first 16 hex digits of its fingerprint."""
    return "governance-" + protocol.fingerprint(public_key)[:16]


@dataclass(frozen=True)
class GovernanceKey:
    private_key: Ed25519PrivateKey

    @property
    def public_key(self) -> bytes:
        return self.private_key.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )

    @property
    def key_id(self) -> str:
        return governance_key_id(self.public_key)

    @property
    def signing_key(self) -> protocol.SigningKey:
        return protocol.SigningKey(GOVERNANCE_SIGNER, self.key_id, self.private_key)


def governance_key_create(*, out: Path, passphrase: bytes) -> GovernanceKey:
    """A new Ed25519 governance key, written to `out` (which must not exist) as PKCS#8 PEM
    encrypted under `passphrase`, readable by its owner only (mode 0600)."""
    if len(passphrase) < 12:
        raise DirectoryError("The passphrase must be at least 12 characters")
    key = GovernanceKey(Ed25519PrivateKey.generate())
    pem = key.private_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(passphrase),
    )
    try:
        handle = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError as exc:
        raise DirectoryError(f"{out} exists already: choose another file") from exc
    except OSError as exc:
        raise DirectoryError(f"Could not create {out}: {exc.strerror}") from exc
    with os.fdopen(handle, "wb") as file:
        file.write(pem)
    return key


def governance_key_load(path: Path, passphrase: bytes) -> GovernanceKey:
    try:
        pem = path.read_bytes()
    except OSError as exc:
        raise DirectoryError(f"Could not read the governance key {path}: {exc.strerror}") from exc
    try:
        private = serialization.load_pem_private_key(pem, password=passphrase)
    except (ValueError, TypeError) as exc:
        raise DirectoryError(f"{path} is not a governance key, or the passphrase is wrong") from exc
    if not isinstance(private, Ed25519PrivateKey):
        raise DirectoryError(f"{path} is not an Ed25519 governance key")
    return GovernanceKey(private)


def trusted_governance_keys(configured: Iterable[str]) -> dict[str, bytes]:
    """The governance keys a deployment trusts (FEDERATION_GOVERNANCE_KEYS: base64url raw
    public keys, each optionally written `fingerprint=key` so a typo cannot go unnoticed),
    by key id."""
    keys: dict[str, bytes] = {}
    for item in configured:
        fingerprint, encoded = (item[:64], item[65:]) if item[64:65] == "=" else ("", item)
        try:
            public = protocol.unb64(encoded.strip())
        except ValueError as exc:
            raise DirectoryError(
                f"bad_governance_keys: governance key {item!r} is not base64url"
            ) from exc
        if len(public) != 32:
            raise DirectoryError(
                f"bad_governance_keys: governance key {item!r} is not a 32-byte Ed25519 key"
            )
        if fingerprint and protocol.fingerprint(public) != fingerprint.strip().lower():
            raise DirectoryError(
                f"bad_governance_keys: governance key {item!r} does not match its fingerprint"
            )
        keys[governance_key_id(public)] = public
    return keys


# --- The members file and the document --------------------------------------------------------


def _member_keys(entry: Mapping[str, Any], where: str) -> list[dict[str, Any]]:
    keys = entry.get("keys")
    if not isinstance(keys, list) or not keys:
        raise DirectoryError(f"{where}: `keys` must be a list of at least one key")
    out = []
    for position, key in enumerate(keys, 1):
        at = f"{where}, key {position}"
        if not isinstance(key, dict):
            raise DirectoryError(f"{at}: each key must be an object")
        algorithm = str(key.get("algorithm", "ed25519"))
        if algorithm not in KEY_ALGORITHMS:
            raise DirectoryError(
                f"{at}: algorithm must be one of {', '.join(KEY_ALGORITHMS)}, not {algorithm!r}"
            )
        key_id = key.get("key_id")
        if not isinstance(key_id, str) or not key_id or len(key_id) > 80:
            raise DirectoryError(f"{at}: `key_id` must be a short string")
        try:
            public = protocol.unb64(str(key.get("public_key", "")))
        except ValueError as exc:
            raise DirectoryError(f"{at}: `public_key` is not base64url") from exc
        if len(public) != 32:
            raise DirectoryError(f"{at}: `public_key` must be a 32-byte raw public key")
        fingerprint = protocol.fingerprint(public)
        if "fingerprint" in key and key["fingerprint"] != fingerprint:
            raise DirectoryError(f"{at}: the fingerprint does not match the public key")
        out.append(
            {
                "key_id": key_id,
                "algorithm": algorithm,
                "use": KEY_ALGORITHMS[algorithm],
                "public_key": protocol.b64(public),
                "fingerprint": fingerprint,
            }
        )
    if not any(k["algorithm"] == "ed25519" for k in out):
        raise DirectoryError(f"{where}: at least one key must be an ed25519 signing key")
    return out


def member_clean(entry: Any, where: str) -> dict[str, Any]:
    """One member entry checked and written in its canonical form. Raises DirectoryError."""
    if not isinstance(entry, dict):
        raise DirectoryError(f"{where}: each member must be an object")
    federation_id = entry.get("id")
    if not isinstance(federation_id, str) or not FEDERATION_ID.match(federation_id):
        raise DirectoryError(f"{where}: `id` must be council:<ONS code>, e.g. council:E10000008")
    where = f"{where} ({federation_id})"
    name = entry.get("name")
    if not isinstance(name, str) or not name.strip() or len(name) > 120:
        raise DirectoryError(f"{where}: `name` must be the council's name")
    base_url = entry.get("base_url")
    if not isinstance(base_url, str) or not base_url.startswith(("https://", "http://")):
        raise DirectoryError(f"{where}: `base_url` must be an https:// (or http://) address")
    try:
        base_url = protocol.base_url_normalised(base_url)
    except ValueError as exc:
        raise DirectoryError(f"{where}: {exc}") from exc
    status = entry.get("status", "active")
    if status not in STATUSES:
        raise DirectoryError(f"{where}: `status` must be one of {', '.join(STATUSES)}")
    return {
        "id": federation_id,
        "name": name.strip(),
        "base_url": base_url,
        "status": status,
        "keys": _member_keys(entry, where),
    }


def members_clean(members: Any) -> list[dict[str, Any]]:
    """The members file's `members` list, each entry checked; one council listed once."""
    if isinstance(members, dict):
        members = members.get("members")
    if not isinstance(members, list):
        raise DirectoryError('The members file must be {"members": [ ... ]}')
    cleaned = [member_clean(entry, f"member {n}") for n, entry in enumerate(members, 1)]
    ids = [m["id"] for m in cleaned]
    if duplicates := sorted({i for i in ids if ids.count(i) > 1}):
        raise DirectoryError(f"Listed more than once: {', '.join(duplicates)}")
    return sorted(cleaned, key=lambda m: m["id"])


def directory_sign(
    *,
    keys: list[GovernanceKey],
    members: Any,
    sequence: int,
    now: datetime,
    valid_days: int = DEFAULT_VALIDITY_DAYS,
) -> dict[str, Any]:
    """A directory document listing `members`, signed by every governance key given."""
    if not keys:
        raise DirectoryError("Sign with at least one governance key")
    if sequence < 1 or sequence >= 2**53:
        raise DirectoryError("The sequence must be a whole number from 1")
    if not 1 <= valid_days <= MAX_VALIDITY.days:
        raise DirectoryError(f"--valid-days must be from 1 to {MAX_VALIDITY.days}")
    document: dict[str, Any] = {
        "type": DOCUMENT_TYPE,
        "version": FORMAT_VERSION,
        "sequence": sequence,
        "issued_at": protocol.timestamp(now),
        "valid_until": protocol.timestamp(now + timedelta(days=valid_days)),
        "members": members_clean(members),
    }
    for key in keys:
        document = protocol.sign_document(document, key.signing_key, label=key.key_id)
    return document


@dataclass(frozen=True)
class VerifiedDirectory:
    document: dict[str, Any]
    sequence: int
    issued_at: datetime
    valid_until: datetime
    members: list[dict[str, Any]]
    signed_by: list[str]


def directory_verify(
    document: Any, *, trusted: Mapping[str, bytes], now: datetime
) -> VerifiedDirectory:
    """Check a directory document: signed by a trusted governance key over exactly this
    content, of the right type, inside its validity window, and every member well formed.
    Raises DirectoryError naming the first problem (a short reason code first)."""
    if not isinstance(document, dict) or document.get("type") != DOCUMENT_TYPE:
        raise DirectoryError("not_a_directory: the document is not a Patchwork directory")
    if not trusted:
        raise DirectoryError("no_governance_keys: FEDERATION_GOVERNANCE_KEYS is not set")
    signatures = document.get("signatures")
    if not isinstance(signatures, dict) or not signatures:
        raise DirectoryError("unsigned: the directory carries no signature")
    signed_by = [
        label
        for label in signatures
        if isinstance(signatures[label], dict)
        and signatures[label].get("key_id") == label
        and protocol.verify_document_signature(document, label, trusted.get)
    ]
    if not signed_by:
        known = any(
            isinstance(entry, dict) and entry.get("key_id") in trusted
            for entry in signatures.values()
        )
        raise DirectoryError(
            "bad_signature: the signature does not match the content"
            if known
            else "unknown_governance_key: not signed by a governance key this deployment trusts"
        )
    try:
        sequence = document["sequence"]
        issued_at = protocol.parse_timestamp(str(document["issued_at"]))
        valid_until = protocol.parse_timestamp(str(document["valid_until"]))
    except (KeyError, ValueError) as exc:
        raise DirectoryError("malformed: sequence, issued_at or valid_until missing") from exc
    if not isinstance(sequence, int) or isinstance(sequence, bool) or sequence < 1:
        raise DirectoryError("malformed: the sequence is not a positive whole number")
    if document.get("version") != FORMAT_VERSION:
        raise DirectoryError(f"unsupported_version: version {document.get('version')!r}")
    if valid_until - issued_at > MAX_VALIDITY or valid_until <= issued_at:
        raise DirectoryError("malformed: the validity window is empty or too long")
    if issued_at > now + protocol.CLOCK_SKEW:
        raise DirectoryError("not_yet_valid: the directory is issued in the future")
    if valid_until <= now:
        raise DirectoryError(f"expired: the directory expired at {protocol.timestamp(valid_until)}")
    try:
        members = members_clean(document.get("members"))
    except DirectoryError as exc:
        raise DirectoryError(f"malformed: {exc}") from exc
    return VerifiedDirectory(
        document=document,
        sequence=sequence,
        issued_at=issued_at,
        valid_until=valid_until,
        members=members,
        signed_by=signed_by,
    )


def reason_code(error: DirectoryError) -> str:
    return str(error).split(":", 1)[0]


def public_key_text(public_key: bytes) -> str:
    """What FEDERATION_GOVERNANCE_KEYS holds for a key: `fingerprint=base64url key`."""
    return f"{protocol.fingerprint(public_key)}={protocol.b64(public_key)}"
