"""Audit checkpoints (decision 0012): the head of a council's audit log, signed with the
council's own federation key and kept in the public schema.

The hash chain (core.audit) finds any event edited or removed *before* the newest; it cannot
find the newest events removed, because what is left still links. A checkpoint records how
many events the log held and the newest one's hash; `verify_audit` then requires the log to
still reach every checkpoint. Checkpoints are chained too (each names the previous one's
digest), and are documents in the federation's format (RFC 8785 canonical JSON with a
`signatures` map), so peers can countersign them later (issue 16, "witnessed audit")."""

from __future__ import annotations

import hashlib
import logging
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db import connection, transaction
from django.utils import timezone
from django_tenants.utils import schema_context, schema_exists

from core.audit import (
    ChainHead,
    ChainMark,
    ChainReport,
    audit_verify,
    audit_verify_since,
)
from federation import keycache, protocol
from federation.directory.models import CouncilSigningKey, council_federation_id
from tenants.models import AuditCheckpoint, Council

logger = logging.getLogger(__name__)

CHECKPOINT_TYPE = "patchwork.audit-checkpoint"
# A process may sign with a key for up to keycache's minute after another process retired
# it; a key retired for longer than that vouches for nothing signed after.
KEY_RETIREMENT_GRACE = timedelta(seconds=keycache.TTL_SECONDS)


class CheckpointRefused(Exception):
    """The log does not hold from the latest checkpoint: nothing is signed over it."""


def checkpoint_digest(document: dict[str, Any]) -> str:
    """What the next checkpoint names as `previous`: sha-256 of the canonical document
    without its signatures, so a witness's countersignature added later changes nothing."""
    return hashlib.sha256(protocol.canonical(document)).hexdigest()


def checkpoint_signed_at(document: dict[str, Any]) -> datetime:
    return protocol.parse_timestamp(str(document["signed_at"]))


def _head_of(checkpoint: AuditCheckpoint) -> ChainHead:
    document = checkpoint.document
    return ChainHead(int(document["events"]), document["head_event_id"], str(document["head_hash"]))


def _mark_of(checkpoint: AuditCheckpoint) -> ChainMark:
    document = checkpoint.document
    return ChainMark(
        int(document["events"]), str(document["head_hash"]), checkpoint_signed_at(document)
    )


# --- Writes -------------------------------------------------------------------------------


def audit_checkpoint_take(*, council: Council) -> AuditCheckpoint | None:
    """Sign the head of the council's audit log as its next checkpoint, after checking that
    the log still holds from the latest one (only the events since, so it is cheap every
    few minutes; the first checkpoint walks the whole log). Returns None when the head has
    not moved since the latest checkpoint. Raises CheckpointRefused when the latest
    checkpoint is not genuine or the log no longer reaches it: signing now would bless the
    cut."""
    if not schema_exists(council.schema_name):
        raise CheckpointRefused(
            f"{council.name} ({council.code}): its schema {council.schema_name} is missing"
        )
    with transaction.atomic():
        with connection.cursor() as cursor:
            # Two takes at once (beat and a command) would both pick the same sequence.
            key = zlib.crc32(f"patchwork-audit-checkpoint:{council.pk}".encode())
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [key])
        latest = AuditCheckpoint.objects.filter(council=council).order_by("-sequence").first()
        if latest is not None:
            problem = _signature_problem(council, latest, _council_keys(council))
            if problem:
                raise CheckpointRefused(f"{council.name} ({council.code}): {problem}")
        with schema_context(council.schema_name):
            report = audit_verify_since(_head_of(latest)) if latest else audit_verify()
        if not report.intact or report.head is None:
            raise CheckpointRefused(
                f"{council.name} ({council.code}): the audit log does not hold "
                f"({report.problem}), so no checkpoint was signed"
            )
        head = report.head
        if latest is not None and head.events == int(latest.document["events"]):
            return None
        sequence = latest.sequence + 1 if latest else 1
        document: dict[str, Any] = {
            "type": CHECKPOINT_TYPE,
            "council": council_federation_id(council),
            "sequence": sequence,
            "events": head.events,
            "head_event_id": head.head_id,
            "head_hash": head.head_hash,
            "signed_at": protocol.timestamp(timezone.now()),
            "previous": checkpoint_digest(latest.document) if latest else None,
        }
        signed = protocol.sign_document(document, keycache.current_signing_key(council))
        return AuditCheckpoint.objects.create(council=council, sequence=sequence, document=signed)


# --- Reads --------------------------------------------------------------------------------


@dataclass(frozen=True)
class AuditCheck:
    """What `verify_audit` found for one council: the chain walked against every genuine
    checkpoint, and what is wrong with the checkpoints themselves."""

    council: Council
    chain: ChainReport | None  # None: the log could not be read at all
    checkpoints: int
    latest: AuditCheckpoint | None
    problems: tuple[str, ...]

    @property
    def intact(self) -> bool:
        return self.chain is not None and self.chain.intact and not self.problems


def audit_check(*, council: Council, held: Sequence[dict[str, Any]] = ()) -> AuditCheck:
    """Verify the council's audit chain, every checkpoint's signature and their order, and
    that the chain still reaches every checkpointed head. `held` are checkpoint documents
    kept outside this database (a copy saved from the API; later, witnesses'): each must be
    genuine, still be in the database, and be reached by the chain too."""
    if not schema_exists(council.schema_name):
        problem = f"its schema {council.schema_name} is missing, so its audit log cannot be read"
        return AuditCheck(council, None, 0, None, (problem,))
    checkpoints = list(AuditCheckpoint.objects.filter(council=council).order_by("sequence"))
    keys = _council_keys(council)
    problems: list[str] = []
    marks: list[ChainMark] = []
    previous: AuditCheckpoint | None = None
    for checkpoint in checkpoints:
        forged = _signature_problem(council, checkpoint, keys)
        if forged:
            problems.append(forged)
            continue
        # A genuine checkpoint out of order still records a head the log must reach.
        out_of_order = _order_problem(checkpoint, previous)
        if out_of_order:
            problems.append(out_of_order)
        marks.append(_mark_of(checkpoint))
        previous = checkpoint
    digests = {
        checkpoint.sequence: checkpoint_digest(checkpoint.document) for checkpoint in checkpoints
    }
    for document in held:
        sequence = document.get("sequence")
        outside = AuditCheckpoint(
            council=council,
            sequence=sequence if isinstance(sequence, int) else 0,
            document=document,
        )
        forged = _signature_problem(council, outside, keys)
        if forged:
            problems.append(f"the copy held outside: {forged}")
            continue
        if digests.get(outside.sequence) != checkpoint_digest(document):
            problems.append(
                f"checkpoint {outside.sequence}, held outside the database, is no longer in "
                "it: checkpoints were deleted or replaced"
            )
        marks.append(_mark_of(outside))
    with schema_context(council.schema_name):
        chain = audit_verify(marks=marks)
    return AuditCheck(council, chain, len(checkpoints), previous, tuple(problems))


def audit_checkpoint_latest(council: Council) -> AuditCheckpoint | None:
    return AuditCheckpoint.objects.filter(council=council).order_by("-sequence").first()


def checkpoint_published(checkpoint: AuditCheckpoint) -> dict[str, Any]:
    """The latest checkpoint as the API gives it: the signed document, and the signature
    and key id pulled out of it, with the public key, so anyone can check it."""
    document = checkpoint.document
    signer = document["council"]
    signature = document["signatures"][signer]
    key = CouncilSigningKey.objects.filter(
        council=checkpoint.council, key_id=signature["key_id"]
    ).first()
    public = bytes(key.public_key) if key else b""
    return {
        "checkpoint": document,
        "signer": signer,
        "key_id": signature["key_id"],
        "signature": signature["value"],
        "public_key": protocol.b64(public),
        "fingerprint": protocol.fingerprint(public),
        "digest": checkpoint_digest(document),
    }


def _council_keys(council: Council) -> dict[str, CouncilSigningKey]:
    return {key.key_id: key for key in CouncilSigningKey.objects.filter(council=council)}


def _signature_problem(
    council: Council, checkpoint: AuditCheckpoint, keys: dict[str, CouncilSigningKey]
) -> str:
    document = checkpoint.document
    forged = (
        f"checkpoint {checkpoint.sequence} does not carry a valid signature of "
        f"{council.name}'s key: it was forged or altered"
    )
    if not isinstance(document, dict) or document.get("type") != CHECKPOINT_TYPE:
        return forged
    try:
        signed_at = checkpoint_signed_at(document)
    except (KeyError, TypeError, ValueError):
        return forged

    def public_key_for(key_id: str) -> bytes | None:
        key = keys.get(key_id)
        if key is None:
            return None
        if key.retired_at is not None and key.retired_at + KEY_RETIREMENT_GRACE < signed_at:
            return None
        return bytes(key.public_key)

    signer = council_federation_id(council)
    if document.get("council") != signer or not protocol.verify_document_signature(
        document, signer, public_key_for
    ):
        return forged
    if document.get("sequence") != checkpoint.sequence:
        return (
            f"checkpoint {checkpoint.sequence} holds the document of checkpoint "
            f"{document.get('sequence')}: the checkpoints were reordered"
        )
    return ""


def _order_problem(checkpoint: AuditCheckpoint, previous: AuditCheckpoint | None) -> str:
    document = checkpoint.document
    expected = previous.sequence + 1 if previous else 1
    if checkpoint.sequence != expected:
        between = (
            f"checkpoint {expected} is"
            if expected == checkpoint.sequence - 1
            else f"checkpoints {expected} to {checkpoint.sequence - 1} are"
        )
        return f"{between} missing or not genuine: deleted or replaced"
    if previous is None:
        return "" if document.get("previous") is None else "checkpoint 1 names a previous one"
    if document.get("previous") != checkpoint_digest(previous.document):
        return (
            f"checkpoint {checkpoint.sequence} does not follow checkpoint {previous.sequence}: "
            "one of them was replaced"
        )
    if int(document["events"]) < int(previous.document["events"]):
        return (
            f"checkpoint {checkpoint.sequence} recorded fewer events than checkpoint "
            f"{previous.sequence}"
        )
    return ""
