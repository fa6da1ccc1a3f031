"""An agreement between two councils, made through the same services the HTTP endpoints call,
and signed federation requests sent under it."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from django.test import Client
from django.utils import timezone
from django_tenants.utils import schema_context

from core.models import Person
from federation import protocol, services
from federation.client import peer_public_key
from federation.directory.models import council_federation_id
from federation.models import DataSharingAgreement
from federation.selectors import peer_active

LOOKUP = "/federation/v1/who-is-involved"
KAI_NHS = "9434765870"
SHAREABLE = ["Child protection social worker", "School nurse"]


@dataclass
class Pair:
    brighton: Any
    staffordshire: Any
    kai: Person
    zara: Person
    brighton_agreement: DataSharingAgreement
    staffs_agreement: DataSharingAgreement

    @property
    def agreement_id(self) -> str:
        return self.brighton_agreement.agreement_id


def make_agreement(
    asker: Any,
    answerer: Any,
    *,
    purposes: list[str] | None = None,
    demographic: bool = True,
    countersign: bool = True,
    valid_until: date | None = None,
) -> tuple[DataSharingAgreement, DataSharingAgreement | None]:
    """An agreement proposed and signed by `asker`, received (and countersigned) by
    `answerer`, through the same services the HTTP endpoints call."""
    today = timezone.localdate()
    with schema_context(asker.schema_name):
        proposed = services.agreement_propose(
            actor=None,
            partner_id=council_federation_id(answerer),
            purposes=purposes or ["safeguarding"],
            shareable_roles=SHAREABLE,
            legal_basis="public_task",
            demographic_matching=demographic,
            valid_from=today - timedelta(days=1),
            valid_until=valid_until or today + timedelta(days=90),
        )
        proposed = services.agreement_sign_here(actor=None, agreement=proposed)
        document = services.agreement_signed_document(proposed)
        secret = services.agreement_secret(proposed)
    with schema_context(answerer.schema_name):
        asker_peer = peer_active(council_federation_id(asker))
        received = services.agreement_received(
            peer=asker_peer,
            document=document,
            secret=secret,
            public_key_for=lambda kid: peer_public_key(asker_peer, kid),
        )
        if not countersign:
            return proposed, received
        received = services.agreement_sign_here(actor=None, agreement=received)
        countersigned = services.agreement_signed_document(received)
    with schema_context(asker.schema_name):
        answerer_peer = peer_active(council_federation_id(answerer))
        proposed = services.agreement_countersigned(
            peer=answerer_peer,
            document=countersigned,
            public_key_for=lambda kid: peer_public_key(answerer_peer, kid),
        )
    return proposed, received


def lookup_body(
    pair: Pair,
    *,
    nhs: str | None = KAI_NHS,
    names: tuple = (),
    born: date | None = None,
    agreement: DataSharingAgreement | None = None,
) -> bytes:
    agreement = agreement or pair.brighton_agreement
    with schema_context(pair.brighton.schema_name):
        secret = services.agreement_secret(agreement)
    keys = protocol.match_keys(
        protocol.Identifiers(nhs_number=nhs, date_of_birth=born, names=names),
        secret=secret,
        demographic=True,
    )
    return json.dumps({"type": "patchwork.lookup", "match_keys": keys}).encode()


def signed_headers(
    sender: Any,
    *,
    host: str,
    body: bytes,
    agreement_id: str,
    purpose: str = "safeguarding",
    request_id: str | None = None,
    path: str = LOOKUP,
    **kwargs: Any,
) -> dict[str, str]:
    with schema_context(sender.schema_name):
        key = services.signing_key(sender)
    return protocol.sign_request(
        url=f"http://{host}{path}",
        body=body,
        key=key,
        agreement_id=agreement_id,
        request_id=request_id or str(uuid.uuid4()),
        practitioner="p-123",
        purpose=purpose,
        **kwargs,
    )


def post(host: str, body: bytes, headers: dict[str, str], path: str = LOOKUP):  # type: ignore[no-untyped-def]
    headers = {k: v for k, v in headers.items() if k.lower() != "content-type"}
    return Client(HTTP_HOST=host).post(
        path, data=body, content_type="application/json", headers=headers
    )
