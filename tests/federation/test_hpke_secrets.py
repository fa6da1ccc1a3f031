"""An agreement's match-key secret crosses sealed to the partner with HPKE (decision 0016),
over real HTTP: Southampton offers an agreement to Portsmouth through a loopback proxy
that keeps the exact bytes sent, Portsmouth (served by gunicorn) countersigns, and a
Southampton social worker's check finds Portsmouth's school nurse. Milton Keynes, a third
council on the deployment, holds an X25519 key too, and cannot open what was sealed to
Portsmouth. Then the agreement is re-keyed by the command, including when Portsmouth
cannot be reached and when its answer is lost on the way back."""

from __future__ import annotations

import base64
import importlib
import json
import select
import socket
import threading
from collections.abc import Iterator
from contextlib import suppress
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import pytest
from cryptography.hazmat.bindings._rust import openssl as rust_openssl
from cryptography.hazmat.primitives import hpke
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from django.core.management import CommandError, call_command
from django.db import connection
from django.utils import timezone
from django_tenants.utils import schema_context

from accounts.models import User
from core.models import AuditEvent, InvolvementRole, Practitioner
from core.services import (
    involvement_add,
    organisation_create,
    person_create,
    practitioner_profile_set,
)
from federation import agreement_secrets, client, protocol, sealing, services
from federation.directory.models import CouncilEncryptionKey, council_federation_id
from federation.models import DataSharingAgreement, Exchange
from federation.selectors import peer_active
from tenants.models import Council
from tenants.services import council_onboard
from tests.factories import valid_nhs_number
from tests.federation.live import (
    committed_restore,
    committed_snapshot,
    free_port,
    live_env,
    server_start,
    server_stop,
)

SOUTHAMPTON, PORTSMOUTH, MILTON_KEYNES = "E06000045", "E06000044", "E06000042"


class RecordingProxy:
    """A TCP proxy on a loopback port in front of the live server: keeps every byte each
    client sent, and can lose the server's answers (`drop_answers`) after the server has
    started answering, as a network failing on the way back would."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.sent: list[bytearray] = []
        self.drop_answers = False
        self._stopped = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._stopped:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._pump, args=(conn,), daemon=True).start()

    def _pump(self, conn: socket.socket) -> None:
        upstream = socket.create_connection(("127.0.0.1", self.target_port))
        record = bytearray()
        self.sent.append(record)
        try:
            while True:
                ready, _, _ = select.select([conn, upstream], [], [], 30)
                if not ready:
                    return
                for side in ready:
                    data = side.recv(65536)
                    if not data:
                        return
                    if side is conn:
                        record.extend(data)
                        upstream.sendall(data)
                    elif self.drop_answers:
                        return
                    else:
                        conn.sendall(data)
        except OSError:
            return
        finally:
            for s in (conn, upstream):
                with suppress(OSError):
                    s.close()

    def requests_to(self, path: str) -> list[bytes]:
        return [bytes(r) for r in self.sent if r.startswith(f"POST {path} ".encode())]

    def stop(self) -> None:
        self._stopped = True
        self.listener.close()


@dataclass
class Live:
    southampton: Council
    portsmouth: Council
    milton_keynes: Council
    asker_id: int
    child_id: int
    nhs: str
    proxy: RecordingProxy
    facts: dict[str, Any] = field(default_factory=dict)


def test_a_freshly_onboarded_council_has_a_published_encryption_key(world, db) -> None:  # type: ignore[no-untyped-def]
    """Onboarding gives Brighton an X25519 key, its private half sealed under the KEK, and
    its key document publishes it."""
    [key] = CouncilEncryptionKey.objects.filter(council=world.brighton)
    private = agreement_secrets.own_private_key(world.brighton, key.key_id)
    assert private is not None
    assert bytes(key.public_key) == (
        X25519PrivateKey.from_private_bytes(private).public_key().public_bytes_raw()
    )
    assert private not in bytes(key.sealed_private_key)
    with schema_context(world.brighton.schema_name):
        published = services.key_document(world.brighton)["encryption_keys"]
    assert agreement_secrets.encryption_key_from_entries(published) == (
        key.key_id,
        bytes(key.public_key),
    )


@pytest.fixture(scope="module")
def live(world, django_db_blocker) -> Iterator[Live]:  # type: ignore[no-untyped-def]
    """Three councils on the deployment; one child known to Southampton and Portsmouth."""
    nhs = valid_nhs_number()
    with django_db_blocker.unblock():
        snapshot = committed_snapshot()
        southampton = council_onboard(
            name="Southampton", code=SOUTHAMPTON, admin_email="a@southampton.test"
        ).council
        portsmouth = council_onboard(
            name="Portsmouth", code=PORTSMOUTH, admin_email="a@portsmouth.test"
        ).council
        milton_keynes = council_onboard(
            name="Milton Keynes", code=MILTON_KEYNES, admin_email="a@mk.test"
        ).council
        with schema_context(southampton.schema_name):
            user = User.objects.create_user(
                "sol.social@southampton.test", full_name="Sol Social", role="practitioner"
            )
            org = organisation_create(
                name="Southampton Children's Services", agency_type="social_care"
            )
            worker = practitioner_profile_set(
                user=user, organisation=org, job_title="Social worker"
            )
            child = person_create(actor=None, given_name="Ryan", family_name="Hale", nhs_number=nhs)
            involvement_add(
                actor=user,
                person=child,
                practitioner=worker,
                role=InvolvementRole.objects.get_or_create(name="Social worker")[0],
            )
            asker_id, child_id = user.pk, child.pk
        with schema_context(portsmouth.schema_name):
            nurse_user = User.objects.create_user(
                "nell.nurse@portsmouth.test", full_name="Nell Nurse", role="practitioner"
            )
            school = organisation_create(
                name="Portsmouth Academy", agency_type="school", phone="023 9200 0000"
            )
            nurse = practitioner_profile_set(
                user=nurse_user,
                organisation=school,
                job_title="School nurse",
                work_phone="023 9211 1222",
            )
            theirs = person_create(
                actor=None, given_name="Ryan", family_name="Hale", nhs_number=nhs
            )
            involvement_add(
                actor=nurse_user,
                person=theirs,
                practitioner=Practitioner.objects.get(pk=nurse.pk),
                role=InvolvementRole.objects.get_or_create(name="School nurse")[0],
            )
    port = free_port()
    server = server_start(live_env(port), port, workers=1)
    proxy = RecordingProxy(port)
    try:
        yield Live(southampton, portsmouth, milton_keynes, asker_id, child_id, nhs, proxy)
    finally:
        proxy.stop()
        server_stop(server)
        with django_db_blocker.unblock():
            committed_restore(snapshot)


@pytest.fixture
def through_proxy(live, settings, django_db_blocker) -> Iterator[Live]:  # type: ignore[no-untyped-def]
    """This process reaches councils on the deployment through the recording proxy, and
    commits what it writes (the server is another process)."""
    settings.SITE_PORT = str(live.proxy.port)
    live.proxy.drop_answers = False
    with django_db_blocker.unblock():
        yield live


def _propose_and_sign(live: Live) -> DataSharingAgreement:
    today = timezone.localdate()
    with schema_context(live.southampton.schema_name):
        proposed = services.agreement_propose(
            actor=None,
            partner_id=council_federation_id(live.portsmouth),
            purposes=["safeguarding"],
            shareable_roles=["School nurse"],
            legal_basis="public_task",
            demographic_matching=True,
            valid_from=today - timedelta(days=1),
            valid_until=today + timedelta(days=90),
        )
        return services.agreement_sign_here(actor=None, agreement=proposed)


def _body(request: bytes) -> dict[str, Any]:
    return json.loads(request.split(b"\r\n\r\n", 1)[1])


def _encodings(secret: bytes) -> list[bytes]:
    """The secret as it might leak: raw, hex, base64 and base64url, padded or not."""
    forms = [
        secret,
        secret.hex().encode(),
        secret.hex().upper().encode(),
        base64.b64encode(secret),
        base64.urlsafe_b64encode(secret),
    ]
    return forms + [f.rstrip(b"=") for f in forms[3:]]


def _private_key(council: Council) -> tuple[str, bytes]:
    key = CouncilEncryptionKey.objects.get(council=council, retired_at__isnull=True)
    private = agreement_secrets.own_private_key(council, key.key_id)
    assert private is not None
    return key.key_id, private


def _offer_info(live: Live, agreement_id: str, **changed: str) -> bytes:
    fields = {
        "message": agreement_secrets.OFFER,
        "agreement_id": agreement_id,
        "sender": council_federation_id(live.southampton),
        "recipient": council_federation_id(live.portsmouth),
        **changed,
    }
    return agreement_secrets.secret_info(**fields)


@pytest.fixture
def offered(through_proxy) -> Live:  # type: ignore[no-untyped-def]
    """Southampton signs and offers an agreement over HTTP, once for the module."""
    live = through_proxy
    if "agreement_id" not in live.facts:
        agreement = _propose_and_sign(live)
        with schema_context(live.southampton.schema_name):
            client.agreement_deliver(agreement=agreement)
            live.facts["secret"] = services.agreement_secret(agreement)
        live.facts["agreement_id"] = agreement.agreement_id
        live.facts["document"] = agreement.document
        [request] = live.proxy.requests_to(client.OFFER_PATH)
        live.facts["offer"] = request
    return live


def test_a_captured_offer_does_not_reveal_the_secret(offered) -> None:  # type: ignore[no-untyped-def]
    """The exact bytes Southampton sent hold the secret in no encoding, and no clear field."""
    live = offered
    request = live.facts["offer"]
    for form in _encodings(live.facts["secret"]):
        assert form not in request
    body = _body(request)
    assert "match_key_secret" not in body
    sealed = body["sealed_match_key_secret"]
    assert sealed["suite"] == "HPKE-Base-X25519-SHA256-AES128GCM"
    assert sealed["key_id"] == _private_key(live.portsmouth)[0]


def test_the_sealed_secret_opens_only_with_the_partners_key_and_binding(offered) -> None:  # type: ignore[no-untyped-def]
    """Milton Keynes' key cannot open it, nor can a fresh key; Portsmouth's can, and only
    with this agreement's info and aad. An independent HPKE (OpenSSL, through
    `cryptography`) opens it the same way."""
    live = offered
    sealed = _body(live.facts["offer"])["sealed_match_key_secret"]
    enc, ct = protocol.unb64(sealed["enc"]), protocol.unb64(sealed["ct"])
    agreement_id = live.facts["agreement_id"]
    info = _offer_info(live, agreement_id)
    aad = agreement_secrets.secret_aad(live.facts["document"])
    _, portsmouth_key = _private_key(live.portsmouth)
    _, milton_keynes_key = _private_key(live.milton_keynes)
    stranger = sealing.new_encryption_key_pair()[1]

    for wrong_key in (milton_keynes_key, stranger):
        with pytest.raises(sealing.NotOpened):
            sealing.hpke_open(enc, ct, private_key=wrong_key, info=info, aad=aad)
    wrong_infos = [
        _offer_info(live, "another-agreement"),
        _offer_info(live, agreement_id, message=agreement_secrets.REKEY),
        _offer_info(
            live,
            agreement_id,
            sender=council_federation_id(live.portsmouth),
            recipient=council_federation_id(live.southampton),
        ),
        _offer_info(live, agreement_id, recipient=council_federation_id(live.milton_keynes)),
    ]
    for wrong_info in wrong_infos:
        with pytest.raises(sealing.NotOpened):
            sealing.hpke_open(enc, ct, private_key=portsmouth_key, info=wrong_info, aad=aad)
    longer = {**live.facts["document"], "valid_until": "2099-01-01"}
    with pytest.raises(sealing.NotOpened):
        sealing.hpke_open(
            enc, ct, private_key=portsmouth_key, info=info, aad=agreement_secrets.secret_aad(longer)
        )

    opened = sealing.hpke_open(enc, ct, private_key=portsmouth_key, info=info, aad=aad)
    assert opened == live.facts["secret"]
    openssl = rust_openssl.hpke._decrypt_with_aad(
        hpke.Suite(hpke.KEM.X25519, hpke.KDF.HKDF_SHA256, hpke.AEAD.AES_128_GCM),
        enc + ct,
        X25519PrivateKey.from_private_bytes(portsmouth_key),
        info=info,
        aad=aad,
    )
    assert openssl == live.facts["secret"]
    with schema_context(live.portsmouth.schema_name):
        received = DataSharingAgreement.objects.get(agreement_id=agreement_id)
        assert received.status == DataSharingAgreement.Status.AWAITING_US
        assert services.agreement_secret(received) == live.facts["secret"]
        kept = Exchange.objects.get(
            direction="in", kind="agreement_offer", agreement_id=agreement_id
        )
        assert "sealed_match_key_secret" not in kept.payload


def _send_offer(
    live: Live, agreement: DataSharingAgreement, extra: dict[str, Any]
) -> tuple[int | None, dict[str, Any]]:
    with schema_context(live.southampton.schema_name):
        peer = peer_active(council_federation_id(live.portsmouth))
        assert peer is not None
        outgoing = client.signed_request(
            peer=peer,
            path=client.OFFER_PATH,
            kind=Exchange.Kind.AGREEMENT_OFFER,
            agreement_id=agreement.agreement_id,
            payload={
                "type": agreement_secrets.OFFER,
                "agreement": services.agreement_signed_document(agreement),
                **extra,
            },
            purpose=services.AGREEMENT_PURPOSE,
        )
        return client.send(outgoing, timeout=20)


def test_an_offer_with_a_clear_missing_malformed_or_misbound_secret_is_refused(offered) -> None:  # type: ignore[no-untyped-def]
    """Each is refused with its reason, and Portsmouth holds no agreement afterwards."""
    live = offered
    agreement = _propose_and_sign(live)
    secret = protocol.new_agreement_secret()
    captured = _body(live.facts["offer"])["sealed_match_key_secret"]
    key_id, _ = _private_key(live.portsmouth)
    with schema_context(live.portsmouth.schema_name):
        public = bytes(CouncilEncryptionKey.objects.get(key_id=key_id).public_key)
    sealed_for_this = agreement_secrets.secret_seal(
        secret,
        recipient_key=(key_id, public),
        info=_offer_info(live, agreement.agreement_id),
        aad=agreement_secrets.secret_aad(agreement.document),
    )
    cases = [
        ({"match_key_secret": protocol.b64(secret)}, "clear_secret_refused"),
        (
            {"match_key_secret": protocol.b64(secret), "sealed_match_key_secret": sealed_for_this},
            "clear_secret_refused",
        ),
        ({}, "sealed_secret_missing"),
        ({"sealed_match_key_secret": "AAAA"}, "sealed_secret_malformed"),
        ({"sealed_match_key_secret": {**sealed_for_this, "enc": "!!"}}, "sealed_secret_malformed"),
        (
            {"sealed_match_key_secret": {**sealed_for_this, "suite": "RSA"}},
            "sealed_secret_unsupported_suite",
        ),
        (
            {"sealed_match_key_secret": {**sealed_for_this, "key_id": "nobody"}},
            "sealed_secret_unknown_key",
        ),
        # The secret sealed into the first offer, replayed into this agreement's.
        ({"sealed_match_key_secret": captured}, "sealed_secret_not_opened"),
    ]
    for extra, reason in cases:
        status, answer = _send_offer(live, agreement, extra)
        assert (status, answer) == (400, {"outcome": "refused", "reason": reason}), extra
    with schema_context(live.portsmouth.schema_name):
        assert not DataSharingAgreement.objects.filter(agreement_id=agreement.agreement_id).exists()
    # The same offer, sealed for it, is accepted.
    status, answer = _send_offer(live, agreement, {"sealed_match_key_secret": sealed_for_this})
    assert (status, answer) == (202, {"outcome": "received"})
    with schema_context(live.portsmouth.schema_name):
        received = DataSharingAgreement.objects.get(agreement_id=agreement.agreement_id)
        assert services.agreement_secret(received) == secret
        services.agreement_revoke(actor=None, agreement=received, reason="test over")


def _check(live: Live) -> str:
    with schema_context(live.southampton.schema_name):
        user = User.objects.get(pk=live.asker_id)
        [answer] = client.other_councils_check(
            user=user, person_id=live.child_id, purpose="safeguarding"
        )
        return answer.outcome


def _lookup_with_secret(live: Live, secret: bytes) -> str:
    """A signed lookup for the child whose match keys are made with `secret`."""
    with schema_context(live.southampton.schema_name):
        peer = peer_active(council_federation_id(live.portsmouth))
        assert peer is not None
        keys = protocol.match_keys(
            protocol.Identifiers(nhs_number=live.nhs, date_of_birth=None, names=()),
            secret=secret,
            demographic=False,
        )
        outgoing = client.signed_request(
            peer=peer,
            path=client.LOOKUP_PATH,
            kind=Exchange.Kind.LOOKUP,
            agreement_id=live.facts["agreement_id"],
            payload={"type": "patchwork.lookup", "match_keys": keys},
            purpose="safeguarding",
        )
        status, answer = client.send(outgoing, timeout=20)
        assert status == 200, answer
        return str(answer["outcome"])


def _secrets(live: Live) -> tuple[bytes, bytes]:
    agreement_id = live.facts["agreement_id"]
    found = []
    for council in (live.southampton, live.portsmouth):
        with schema_context(council.schema_name):
            found.append(
                services.agreement_secret(
                    DataSharingAgreement.objects.get(agreement_id=agreement_id)
                )
            )
    return found[0], found[1]


@pytest.fixture
def agreed(offered) -> Live:  # type: ignore[no-untyped-def]
    """Portsmouth countersigns the offered agreement, over HTTP."""
    live = offered
    with schema_context(live.portsmouth.schema_name):
        received = DataSharingAgreement.objects.get(agreement_id=live.facts["agreement_id"])
        if received.status == DataSharingAgreement.Status.AWAITING_US:
            client.agreement_sign(actor=None, agreement=received)
    return live


def test_offer_countersign_and_lookup_work_over_http(agreed) -> None:  # type: ignore[no-untyped-def]
    """Southampton's social worker finds Portsmouth's school nurse under the sealed secret."""
    live = agreed
    with schema_context(live.southampton.schema_name):
        mine = DataSharingAgreement.objects.get(agreement_id=live.facts["agreement_id"])
        assert mine.is_in_force
    assert _check(live) == "match"
    assert _lookup_with_secret(live, live.facts["secret"]) == "match"


def _audited(council: Council, action: str) -> int:
    with schema_context(council.schema_name):
        return AuditEvent.objects.filter(action=action).count()


def test_rekey_over_http_changes_the_secret_on_both_sides(agreed) -> None:  # type: ignore[no-untyped-def]
    """After `rekey_agreements`, both councils hold one new secret, the check still finds
    the nurse, and match keys made with the old secret no longer match anything."""
    live = agreed
    old = _secrets(live)[0]
    before = (
        _audited(live.southampton, "agreement_rekeyed"),
        _audited(live.portsmouth, "agreement_rekeyed"),
    )
    call_command("rekey_agreements", SOUTHAMPTON, "--agreement", live.facts["agreement_id"])
    ours, theirs = _secrets(live)
    assert ours == theirs != old
    [request] = live.proxy.requests_to(client.REKEY_PATH)[-1:]
    for form in _encodings(ours):
        assert form not in request
    assert _check(live) == "match"
    assert _lookup_with_secret(live, ours) == "match"
    assert _lookup_with_secret(live, old) == "no_match"
    assert (
        _audited(live.southampton, "agreement_rekeyed"),
        _audited(live.portsmouth, "agreement_rekeyed"),
    ) == (
        before[0] + 1,
        before[1] + 1,
    )
    with schema_context(live.southampton.schema_name):
        assert (
            DataSharingAgreement.objects.get(agreement_id=live.facts["agreement_id"]).pending_rekey
            is None
        )


def test_rekey_with_the_partner_unreachable_keeps_the_old_secret_until_it_answers(
    agreed, settings
) -> None:  # type: ignore[no-untyped-def]
    """Portsmouth cannot be reached: the command fails, both keep the old secret and the
    check still matches; run again once it is back, both move to the same new secret."""
    live = agreed
    old = _secrets(live)
    settings.SITE_PORT = str(free_port())
    with pytest.raises(CommandError, match="not re-keyed"):
        call_command("rekey_agreements", SOUTHAMPTON)
    assert _secrets(live) == old
    with schema_context(live.southampton.schema_name):
        waiting = DataSharingAgreement.objects.get(agreement_id=live.facts["agreement_id"])
        assert waiting.pending_rekey is not None
    settings.SITE_PORT = str(live.proxy.port)
    assert _check(live) == "match"
    call_command("rekey_agreements", SOUTHAMPTON)
    ours, theirs = _secrets(live)
    assert ours == theirs != old[0]
    assert _check(live) == "match"


def test_a_rekey_whose_answer_was_lost_is_resent_and_applied_once(agreed) -> None:  # type: ignore[no-untyped-def]
    """Portsmouth applies the rekey but its answer never arrives: Southampton keeps the
    message and sends it again, byte for byte; Portsmouth answers as before (no second
    effect) and both end on the same secret."""
    live = agreed
    old = _secrets(live)[0]
    live.proxy.drop_answers = True
    with pytest.raises(CommandError):
        call_command("rekey_agreements", SOUTHAMPTON)
    ours, theirs = _secrets(live)
    assert ours == old != theirs
    live.proxy.drop_answers = False
    applied = _audited(live.portsmouth, "agreement_rekeyed")
    call_command("rekey_agreements", SOUTHAMPTON)
    ours, theirs_after = _secrets(live)
    assert ours == theirs_after == theirs
    assert _audited(live.portsmouth, "agreement_rekeyed") == applied
    first, second = live.proxy.requests_to(client.REKEY_PATH)[-2:]
    assert _body(first) == _body(second)
    assert _check(live) == "match"


def _send_rekey(live: Live, sealed: Any) -> tuple[int | None, dict[str, Any]]:
    with schema_context(live.southampton.schema_name):
        peer = peer_active(council_federation_id(live.portsmouth))
        assert peer is not None
        outgoing = client.signed_request(
            peer=peer,
            path=client.REKEY_PATH,
            kind=Exchange.Kind.AGREEMENT_REKEY,
            agreement_id=live.facts["agreement_id"],
            payload={
                "type": agreement_secrets.REKEY,
                "agreement_id": live.facts["agreement_id"],
                "rekey_id": "r-1",
                **sealed,
            },
            purpose=services.AGREEMENT_PURPOSE,
        )
        return client.send(outgoing, timeout=20)


def test_a_rekey_in_clear_or_sealed_for_another_message_is_refused(agreed) -> None:  # type: ignore[no-untyped-def]
    """Portsmouth refuses a new secret sent in clear, or sealed with an offer's binding or
    another rekey id, and keeps the secret it had."""
    live = agreed
    before = _secrets(live)
    secret = protocol.new_agreement_secret()
    key_id, _ = _private_key(live.portsmouth)
    public = bytes(CouncilEncryptionKey.objects.get(key_id=key_id).public_key)

    def sealed(**binding: str) -> dict[str, Any]:
        fields = {
            "message": agreement_secrets.REKEY,
            "agreement_id": live.facts["agreement_id"],
            "sender": council_federation_id(live.southampton),
            "recipient": council_federation_id(live.portsmouth),
            "rekey_id": "r-1",
            **binding,
        }
        return {
            "sealed_match_key_secret": agreement_secrets.secret_seal(
                secret,
                recipient_key=(key_id, public),
                info=agreement_secrets.secret_info(**fields),
                aad=agreement_secrets.secret_aad(live.facts["document"]),
            )
        }

    cases = [
        ({"match_key_secret": protocol.b64(secret)}, "clear_secret_refused"),
        (sealed(message=agreement_secrets.OFFER, rekey_id=""), "sealed_secret_not_opened"),
        (sealed(rekey_id="r-2"), "sealed_secret_not_opened"),
    ]
    for extra, reason in cases:
        status, answer = _send_rekey(live, extra)
        assert (status, answer) == (400, {"outcome": "refused", "reason": reason})
    assert _secrets(live) == before


def test_a_rekey_the_partner_refuses_changes_nothing(agreed) -> None:  # type: ignore[no-untyped-def]
    """Portsmouth is re-keying the same agreement itself: it refuses ours
    (`rekey_in_progress`), Southampton drops its new secret, and both keep the old one."""
    live = agreed
    before = _secrets(live)
    with schema_context(live.portsmouth.schema_name):
        DataSharingAgreement.objects.filter(agreement_id=live.facts["agreement_id"]).update(
            pending_rekey={"rekey_id": "theirs"}
        )
    try:
        with pytest.raises(CommandError, match="not re-keyed"):
            call_command("rekey_agreements", SOUTHAMPTON)
    finally:
        with schema_context(live.portsmouth.schema_name):
            DataSharingAgreement.objects.filter(agreement_id=live.facts["agreement_id"]).update(
                pending_rekey=None
            )
    assert _secrets(live) == before
    with schema_context(live.southampton.schema_name):
        mine = DataSharingAgreement.objects.get(agreement_id=live.facts["agreement_id"])
        assert mine.pending_rekey is None and mine.pending_sealed_secret is None
    assert _audited(live.southampton, "agreement_rekey_abandoned") >= 1
    assert _check(live) == "match"


def test_the_key_document_and_card_publish_a_signed_encryption_key(through_proxy) -> None:  # type: ignore[no-untyped-def]
    """Portsmouth's key document (over HTTP) and card carry its X25519 key inside what its
    signing key signed: altered, the signature no longer verifies."""
    live = through_proxy
    key = CouncilEncryptionKey.objects.get(council=live.portsmouth, retired_at__isnull=True)
    with schema_context(live.portsmouth.schema_name):
        card = services.council_card(live.portsmouth)
        signing = {k.key_id: bytes(k.public_key) for k in live.portsmouth.signing_keys.all()}
    response = client.http_get(
        f"http://portsmouth.localhost:{live.proxy.port}{client.KEYS_PATH}", timeout=10
    )
    document = response.json()
    for signed in (document, card):
        assert agreement_secrets.encryption_key_from_entries(signed["encryption_keys"]) == (
            key.key_id,
            bytes(key.public_key),
        )
        assert protocol.verify_any_signature(signed, signing.get)
        forged = {
            **signed,
            "encryption_keys": [
                agreement_secrets.encryption_key_entry(
                    CouncilEncryptionKey.objects.get(council=live.milton_keynes)
                )
            ],
        }
        assert not protocol.verify_any_signature(forged, signing.get)


def test_the_migration_gives_existing_councils_an_encryption_key(through_proxy) -> None:  # type: ignore[no-untyped-def]
    """A council from before decision 0016 gets a key, sealed under the KEK, on migrate."""
    live = through_proxy
    CouncilEncryptionKey.objects.filter(council=live.milton_keynes).delete()
    migration = importlib.import_module("federation.directory.migrations.0002_councilencryptionkey")
    from django.apps import apps

    with connection.schema_editor() as editor:
        migration.keys_for_existing_councils(apps, editor)
        migration.keys_for_existing_councils(apps, editor)
    [key] = CouncilEncryptionKey.objects.filter(council=live.milton_keynes)
    assert agreement_secrets.own_private_key(live.milton_keynes, key.key_id) is not None
