"""The signed directory of councils (issue 16, point 2; decision 0014): the governance key,
signing and verifying a directory, and applying one to the deployment's peers.

Brighton and Staffordshire are councils on this deployment; Devon and Kent are councils on
other deployments that only the directory (or a card) tells us about."""

from __future__ import annotations

import json
import stat
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import Client
from django.utils import timezone
from django_tenants.utils import schema_context

from federation import protocol, services
from federation.directory import governance
from federation.directory.governance import DirectoryError, GovernanceKey
from federation.directory.models import DirectoryDocument, FederationPeer, council_federation_id
from federation.directory.selectors import directory_in_force, directory_state
from federation.directory.services import directory_receive
from federation.models import OutboxMessage
from federation.selectors import agreements_in_force, peer_active
from tests.federation.agreement import lookup_body, post, signed_headers
from tests.personas import sign_in

DEVON = "council:E10000008"
KENT = "council:E10000016"
PASSPHRASE = "correct horse battery staple"


def raw_key() -> tuple[str, bytes]:
    public = Ed25519PrivateKey.generate().public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    return protocol.b64(public), public


def member(federation_id: str = DEVON, **overrides: Any) -> dict[str, Any]:
    encoded, _ = raw_key()
    entry: dict[str, Any] = {
        "id": federation_id,
        "name": "Devon" if federation_id == DEVON else "Kent",
        "base_url": f"https://{federation_id.split(':')[1].lower()}.example.test",
        "status": "active",
        "keys": [{"key_id": f"{federation_id}-k1", "public_key": encoded}],
    }
    return {**entry, **overrides}


@pytest.fixture
def governance_key(settings) -> GovernanceKey:  # type: ignore[no-untyped-def]
    """The federation's governance key, trusted by this deployment."""
    key = GovernanceKey(Ed25519PrivateKey.generate())
    settings.FEDERATION_GOVERNANCE_KEYS = [governance.public_key_text(key.public_key)]
    return key


def signed(key: GovernanceKey, members: list[dict[str, Any]], sequence: int, **kw: Any) -> bytes:
    document = governance.directory_sign(
        keys=[key],
        members={"members": members},
        sequence=sequence,
        now=kw.pop("now", timezone.now()),
        **kw,
    )
    return json.dumps(document).encode()


def receive(content: bytes, source: str = "https://directory.example.test") -> DirectoryDocument:
    return directory_receive(content=content, source=source)


# --- The governance key -------------------------------------------------------------------


def test_it_writes_the_governance_key_encrypted_and_readable_by_its_owner_only(tmp_path) -> None:
    """The key file is 0600, useless without the passphrase, and never overwritten."""
    path = tmp_path / "governance.pem"
    key = governance.governance_key_create(out=path, passphrase=PASSPHRASE.encode())
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert b"ENCRYPTED PRIVATE KEY" in path.read_bytes()
    assert governance.governance_key_load(path, PASSPHRASE.encode()).key_id == key.key_id
    with pytest.raises(DirectoryError, match="passphrase is wrong"):
        governance.governance_key_load(path, b"not the passphrase")
    with pytest.raises(DirectoryError, match="exists already"):
        governance.governance_key_create(out=path, passphrase=PASSPHRASE.encode())


def test_the_command_prints_the_public_key_and_its_fingerprint(
    tmp_path, monkeypatch, capsys
) -> None:  # type: ignore[no-untyped-def]
    """`patchwork governance_key_create` says what each deployment must trust."""
    monkeypatch.setenv("PATCHWORK_GOVERNANCE_PASSPHRASE", PASSPHRASE)
    call_command("governance_key_create", "--out", str(tmp_path / "g.pem"))
    out = capsys.readouterr().out
    key = governance.governance_key_load(tmp_path / "g.pem", PASSPHRASE.encode())
    assert f"fingerprint: {protocol.fingerprint(key.public_key)}" in out
    assert f"FEDERATION_GOVERNANCE_KEYS={governance.public_key_text(key.public_key)}" in out


def test_a_configured_key_with_the_wrong_fingerprint_is_refused() -> None:
    """A typo in FEDERATION_GOVERNANCE_KEYS cannot go unnoticed."""
    encoded, public = raw_key()
    assert governance.trusted_governance_keys([encoded]) == {
        governance.governance_key_id(public): public
    }
    with pytest.raises(DirectoryError, match="does not match its fingerprint"):
        governance.trusted_governance_keys(["0" * 64 + "=" + encoded])


# --- Signing and verifying ----------------------------------------------------------------


def test_a_signed_directory_verifies_and_lists_its_members_in_order(governance_key) -> None:
    """What the governance body signs is what a deployment reads."""
    document = json.loads(signed(governance_key, [member(KENT), member(DEVON)], 3))
    assert document["type"] == "patchwork.directory"
    assert [m["id"] for m in document["members"]] == [DEVON, KENT]
    assert document["members"][0]["keys"][0]["algorithm"] == "ed25519"
    assert set(document["signatures"]) == {governance_key.key_id}
    verified = governance.directory_verify(
        document,
        trusted={governance_key.key_id: governance_key.public_key},
        now=timezone.now(),
    )
    assert verified.sequence == 3 and verified.signed_by == [governance_key.key_id]


@pytest.mark.parametrize(
    ("tamper", "reason"),
    [
        (lambda d: d["members"][0].update(status="active"), "bad_signature"),
        (lambda d: d.update(sequence=99), "bad_signature"),
        (lambda d: d.pop("signatures"), "unsigned"),
        (lambda d: d.update(type="patchwork.keys"), "not_a_directory"),
    ],
)
def test_an_altered_directory_is_refused(governance_key, tamper, reason) -> None:  # type: ignore[no-untyped-def]
    """Any change after signing breaks the signature."""
    document = json.loads(signed(governance_key, [member(status="suspended")], 1))
    tamper(document)
    trusted = {governance_key.key_id: governance_key.public_key}
    with pytest.raises(DirectoryError) as raised:
        governance.directory_verify(document, trusted=trusted, now=timezone.now())
    assert governance.reason_code(raised.value) == reason


def test_a_directory_signed_by_a_key_nobody_trusts_is_refused(governance_key) -> None:
    """A well-formed directory signed by someone else's key is not a directory for us."""
    impostor = GovernanceKey(Ed25519PrivateKey.generate())
    document = json.loads(signed(impostor, [member()], 1))
    with pytest.raises(DirectoryError, match="^unknown_governance_key"):
        governance.directory_verify(
            document,
            trusted={governance_key.key_id: governance_key.public_key},
            now=timezone.now(),
        )


def test_an_expired_or_future_directory_is_refused(governance_key) -> None:
    """Outside its validity window a directory is not trusted."""
    trusted = {governance_key.key_id: governance_key.public_key}
    old = json.loads(
        signed(governance_key, [member()], 1, now=timezone.now() - timedelta(days=8), valid_days=7)
    )
    with pytest.raises(DirectoryError, match="^expired"):
        governance.directory_verify(old, trusted=trusted, now=timezone.now())
    future = json.loads(
        signed(governance_key, [member()], 1, now=timezone.now() + timedelta(hours=1))
    )
    with pytest.raises(DirectoryError, match="^not_yet_valid"):
        governance.directory_verify(future, trusted=trusted, now=timezone.now())


def test_during_a_rotation_either_governance_key_is_enough(settings) -> None:  # type: ignore[no-untyped-def]
    """Signed by the old and the new key, a directory verifies where either is trusted."""
    old, new = (GovernanceKey(Ed25519PrivateKey.generate()) for _ in range(2))
    document = governance.directory_sign(
        keys=[old, new], members=[member()], sequence=1, now=timezone.now()
    )
    for key in (old, new):
        verified = governance.directory_verify(
            document, trusted={key.key_id: key.public_key}, now=timezone.now()
        )
        assert verified.signed_by == [key.key_id]


@pytest.mark.parametrize(
    ("members", "message"),
    [
        ([], "must be"),
        ({"members": [{"id": "devon"}]}, r"member 1: `id` must be council:<ONS code>"),
        ({"members": [member(base_url="ftp://x")]}, "`base_url` must be"),
        ({"members": [member(status="paused")]}, "`status` must be one of"),
        ({"members": [member(keys=[])]}, "`keys` must be a list"),
        ({"members": [member(keys=[{"key_id": "k", "public_key": "abc"}])]}, "32-byte"),
        (
            {
                "members": [
                    member(keys=[{"key_id": "k", "public_key": raw_key()[0], "fingerprint": "0"}])
                ]
            },
            "fingerprint does not match",
        ),
        ({"members": [member(), member()]}, "Listed more than once: council:E10000008"),
    ],
)
def test_a_bad_members_file_is_explained(members, message) -> None:  # type: ignore[no-untyped-def]
    """The governance body is told which member is wrong and why; nothing is signed."""
    with pytest.raises(DirectoryError, match=message):
        governance.directory_sign(
            keys=[GovernanceKey(Ed25519PrivateKey.generate())],
            members=members if members != [] else "not a list",
            sequence=1,
            now=timezone.now(),
        )


def test_the_sign_command_writes_a_directory_from_a_members_file(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """`patchwork directory_sign` signs; `--previous` numbers the next one; a bad file
    is a clear error."""
    monkeypatch.setenv("PATCHWORK_GOVERNANCE_PASSPHRASE", PASSPHRASE)
    key_file = tmp_path / "g.pem"
    call_command("governance_key_create", "--out", str(key_file))
    members = tmp_path / "members.json"
    members.write_text(json.dumps({"members": [member()]}))
    first, second = tmp_path / "d1.json", tmp_path / "d2.json"
    call_command(
        "directory_sign", "--key", str(key_file), "--members", str(members),
        "--sequence", "5", "--valid-days", "3", "--out", str(first),
    )  # fmt: skip
    call_command(
        "directory_sign", "--key", str(key_file), "--members", str(members),
        "--previous", str(first), "--out", str(second),
    )  # fmt: skip
    document = json.loads(second.read_text())
    assert document["sequence"] == 6
    issued = protocol.parse_timestamp(json.loads(first.read_text())["issued_at"])
    assert protocol.parse_timestamp(json.loads(first.read_text())["valid_until"]) - issued == (
        timedelta(days=3)
    )
    members.write_text("{not json")
    with pytest.raises(CommandError, match="is not JSON"):
        call_command(
            "directory_sign", "--key", str(key_file), "--members", str(members),
            "--sequence", "7", "--out", str(tmp_path / "d3.json"),
        )  # fmt: skip
    assert not Path(tmp_path / "d3.json").exists()


# --- Applying a directory to the peers --------------------------------------------------------


def test_a_new_active_member_becomes_a_peer_trusting_the_directorys_keys(
    governance_key, db
) -> None:
    """No card exchange: Devon's keys come from the signed directory."""
    devon = member()
    record = receive(signed(governance_key, [devon], 1))
    assert record.decision == "accepted", record.reason
    peer = peer_active(DEVON)
    assert peer is not None
    assert peer.base_url == devon["base_url"]
    assert peer.trusted_keys == [
        {
            "key_id": devon["keys"][0]["key_id"],
            "public_key": devon["keys"][0]["public_key"],
            "expires_at": None,
        }
    ]
    assert (peer.directory_status, peer.directory_sequence) == ("active", 1)
    assert record.changes == [f"added Devon ({DEVON}) at {devon['base_url']}"]


def test_a_changed_address_or_key_list_is_updated(governance_key, db) -> None:
    """A new address and a new key: the cached key document is dropped, the new keys are
    the trust anchor."""
    receive(signed(governance_key, [member()], 1))
    FederationPeer.objects.filter(federation_id=DEVON).update(
        keys_document={"keys": []}, keys_valid_until=timezone.now() + timedelta(days=1)
    )
    moved = member(base_url="https://devon.elsewhere.test")
    record = receive(signed(governance_key, [moved], 2))
    peer = FederationPeer.objects.get(federation_id=DEVON)
    assert peer.base_url == "https://devon.elsewhere.test"
    assert peer.trusted_keys[0]["public_key"] == moved["keys"][0]["public_key"]
    assert peer.keys_document is None and peer.keys_valid_until is None
    assert any("address" in line for line in record.changes)
    assert any("trusted keys now" in line for line in record.changes)


@pytest.mark.parametrize("status", ["suspended", "left"])
def test_a_suspended_or_departed_member_stops_exchange(governance_key, db, status) -> None:
    """The asker stops asking it (it is no longer an active peer); made active again, it
    is a peer again."""
    devon = member()
    receive(signed(governance_key, [devon], 1))
    record = receive(signed(governance_key, [{**devon, "status": status}], 2))
    assert peer_active(DEVON) is None
    assert record.changes == [f"Devon ({DEVON}) {status}: exchange stopped"]
    receive(signed(governance_key, [devon], 3))
    assert peer_active(DEVON) is not None


def test_a_member_no_longer_listed_is_stopped(governance_key, db) -> None:
    """Trust that came from the directory ends when the directory drops the council."""
    kent = member(KENT)
    receive(signed(governance_key, [member(), kent], 1))
    record = receive(signed(governance_key, [kent], 2))
    assert peer_active(DEVON) is None
    assert FederationPeer.objects.get(federation_id=DEVON).directory_status == "left"
    assert record.changes == [f"Devon ({DEVON}) is no longer listed: exchange stopped"]


def test_a_rollback_to_an_older_directory_is_refused_and_the_last_good_one_kept(
    governance_key, db
) -> None:
    """An attacker replaying an old, genuinely signed directory (Devon still active) gains
    nothing."""
    old = signed(governance_key, [member(status="active")], 1)
    receive(old)
    receive(signed(governance_key, [member(status="suspended")], 2))
    record = receive(old)
    assert (record.decision, record.reason.split(":")[0]) == ("refused", "rollback")
    assert peer_active(DEVON) is None
    assert directory_in_force().sequence == 2  # type: ignore[union-attr]
    state = directory_state()
    assert state.status == "warning" and "rollback" in state.detail


def test_a_different_document_reusing_the_sequence_in_force_is_refused(governance_key, db) -> None:
    receive(signed(governance_key, [member()], 4))
    record = receive(signed(governance_key, [member(KENT)], 4))
    assert record.reason.startswith("sequence_reused")
    assert peer_active(KENT) is None


def test_the_same_directory_laid_out_differently_is_not_a_reused_sequence(
    governance_key, db
) -> None:  # noqa: E501
    """A mirror may serve the directory re-serialised (as this deployment does): the same
    signed content is the same directory, not a second one under its sequence."""
    content = signed(governance_key, [member()], 5)
    receive(content)
    record = receive(json.dumps(json.loads(content), indent=2, sort_keys=False).encode())
    assert record.decision != "refused", record.reason


def test_a_forged_or_expired_directory_changes_nothing(governance_key, db, caplog) -> None:
    """Refused with an ERROR in the log; the directory in force and every peer stay."""
    devon = member()
    receive(signed(governance_key, [devon], 1))
    forged = json.loads(signed(governance_key, [devon], 2))
    forged["members"][0]["base_url"] = "https://devon.attacker.test"
    expired = signed(
        governance_key, [{**devon, "status": "suspended"}], 3,
        now=timezone.now() - timedelta(days=10), valid_days=2,
    )  # fmt: skip
    with caplog.at_level("ERROR", logger="patchwork.federation.directory"):
        for content, reason in (
            (json.dumps(forged).encode(), "bad_signature"),
            (expired, "expired"),
        ):
            record = receive(content)
            assert (record.decision, governance.reason_code(DirectoryError(record.reason))) == (
                "refused",
                reason,
            )
        assert receive(b"<html>not json</html>").reason.startswith("not_json")
    assert [r.levelname for r in caplog.records].count("ERROR") == 3
    peer = peer_active(DEVON)
    assert peer is not None and peer.base_url == devon["base_url"]
    assert directory_in_force().sequence == 1  # type: ignore[union-attr]
    assert DirectoryDocument.objects.filter(decision="refused").count() == 3


def test_an_expired_directory_in_force_is_a_warning_but_keeps_the_peers(governance_key, db) -> None:
    """Past its end the last good directory still stands; the operator is warned."""
    receive(signed(governance_key, [member()], 1))
    DirectoryDocument.objects.update(valid_until=timezone.now() - timedelta(minutes=1))
    state = directory_state()
    assert state.status == "warning" and "expired" in state.detail
    assert peer_active(DEVON) is not None


def test_the_same_directory_fetched_again_adds_no_row(governance_key, db) -> None:
    """A fetch every quarter of an hour of an unchanged directory records a check, not a
    row; it still enforces the directory (an operator's restore of a suspended peer)."""
    content = signed(governance_key, [member(status="active"), member(KENT, status="suspended")], 1)
    receive(content)
    FederationPeer.objects.filter(federation_id=KENT).update(removed_at=None)
    FederationPeer.objects.filter(federation_id=DEVON).delete()
    assert receive(content).checked_at is not None
    assert DirectoryDocument.objects.count() == 1
    assert peer_active(KENT) is None
    assert peer_active(DEVON) is not None


# --- Cards alongside the directory, and councils on this deployment -------------------------


def test_a_card_peer_outside_the_directory_is_left_alone_and_one_inside_follows_it(
    governance_key, world, db
) -> None:
    """Kent, added from its card, is not listed: untouched. Devon, added from its card, is
    listed: the directory's address and keys win."""
    for federation_id in (KENT, DEVON):
        FederationPeer.objects.create(
            federation_id=federation_id,
            name="From a card",
            base_url="https://card.example.test",
            trusted_keys=[{"key_id": "card-key", "public_key": raw_key()[0], "expires_at": None}],
            card={"type": "patchwork.council-card"},
        )
    devon = member()
    record = receive(signed(governance_key, [devon], 1))
    kent = FederationPeer.objects.get(federation_id=KENT)
    assert (kent.base_url, kent.directory_status, kent.trusted_keys[0]["key_id"]) == (
        "https://card.example.test",
        "",
        "card-key",
    )
    peer = FederationPeer.objects.get(federation_id=DEVON)
    assert peer.base_url == devon["base_url"]
    assert [k["key_id"] for k in peer.trusted_keys] == [devon["keys"][0]["key_id"]]
    assert f"Devon ({DEVON}) is now governed by the directory (was added from its card)" in (
        record.changes
    )


def test_councils_on_this_deployment_are_not_overwritten(governance_key, world, db) -> None:
    """Brighton is on this deployment: a directory listing it suspended, elsewhere, with
    other keys, changes nothing here."""
    brighton = council_federation_id(world.brighton)
    services.peer_directory_sync()
    before = FederationPeer.objects.get(federation_id=brighton)
    receive(signed(governance_key, [member(brighton, name="Brighton", status="suspended")], 1))
    after = FederationPeer.objects.get(federation_id=brighton)
    assert (after.removed_at, after.base_url, after.trusted_keys, after.directory_status) == (
        before.removed_at,
        before.base_url,
        before.trusted_keys,
        "",
    )


# --- Exchange with a suspended council ------------------------------------------------------


def stop_as_the_directory_would(council: Any, status: str) -> None:
    FederationPeer.objects.filter(federation_id=council_federation_id(council)).update(
        directory_status=status, removed_at=timezone.now()
    )


@pytest.mark.parametrize(
    ("status", "reason"), [("suspended", "peer_suspended"), ("left", "peer_left")]
)
def test_the_receiver_refuses_a_stopped_council_with_a_reason(pair, status, reason) -> None:  # type: ignore[no-untyped-def]
    """Staffordshire refuses Brighton's lookup once the directory has stopped Brighton,
    saying why; Brighton stops asking."""
    body = lookup_body(pair)
    headers = signed_headers(
        pair.brighton, host="staffordshire.localhost", body=body, agreement_id=pair.agreement_id
    )
    stop_as_the_directory_would(pair.brighton, status)
    response = post("staffordshire.localhost", body, headers)
    assert (response.status_code, response.json()) == (
        403,
        {"outcome": "refused", "reason": reason},
    )
    stop_as_the_directory_would(pair.staffordshire, status)
    with schema_context(pair.brighton.schema_name):
        assert agreements_in_force("safeguarding") == []


def test_messages_to_a_suspended_council_wait_and_to_one_that_left_are_given_up(pair) -> None:  # type: ignore[no-untyped-def]
    """Suspension may be lifted: pushes wait. A council that left will not come back."""
    from federation.client import outbox_deliver

    staffs = council_federation_id(pair.staffordshire)
    with schema_context(pair.brighton.schema_name):
        message = OutboxMessage.objects.create(
            peer_id=staffs,
            agreement_id=pair.agreement_id,
            idempotency_key="directory-test-1",
            payload={"type": "patchwork.pointer-update", "purpose": "safeguarding"},
        )
        stop_as_the_directory_would(pair.staffordshire, "suspended")
        report = outbox_deliver(peer_id=staffs)
        message.refresh_from_db()
        assert report.delivered == 0 and report.retry_in is not None
        assert message.given_up_at is None and message.next_attempt_at > timezone.now()
        assert "suspended" in message.last_error
        stop_as_the_directory_would(pair.staffordshire, "left")
        OutboxMessage.objects.filter(pk=message.pk).update(next_attempt_at=timezone.now())
        outbox_deliver(peer_id=staffs)
        message.refresh_from_db()
        assert message.given_up_at is not None


# --- Publishing, serving, and what the operator sees -----------------------------------------


def test_a_published_directory_is_served_at_the_well_known_path(
    governance_key, world, db, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    """`patchwork directory_publish` verifies, applies and serves it on the platform host;
    a forged file is refused by the command and nothing is served in its place."""
    platform = Client(HTTP_HOST="localhost")
    assert platform.get("/.well-known/patchwork/directory").status_code == 404
    good = tmp_path / "directory.json"
    good.write_bytes(signed(governance_key, [member()], 1))
    call_command("directory_publish", str(good))
    served = platform.get("/.well-known/patchwork/directory")
    assert served.status_code == 200
    assert served.json() == json.loads(good.read_bytes())
    forged = json.loads(good.read_bytes())
    forged["sequence"] = 2
    bad = tmp_path / "forged.json"
    bad.write_text(json.dumps(forged))
    with pytest.raises(CommandError, match="Refused, nothing changed: bad_signature"):
        call_command("directory_publish", str(bad))
    assert platform.get("/.well-known/patchwork/directory").json()["sequence"] == 1


def test_the_operator_console_shows_a_refused_directory(governance_key, world, db) -> None:
    """The peers page says the directory needs attention, and which sequence stays."""
    receive(signed(governance_key, [member()], 1))
    receive(b"{}", source="https://directory.example.test/broken")
    page = sign_in(world.operator).get("/federation/peers/").content.decode()
    assert 'data-directory-status="warning"' in page
    assert "sequence 1 stays in force" in page
    assert "from the directory (1)" in page


def test_a_card_for_a_council_the_directory_lists_is_refused(governance_key, world, db) -> None:
    """The directory wins: an operator cannot replace a listed council's keys by a card."""
    from django.core.exceptions import ValidationError

    card = services.council_card(world.brighton)
    FederationPeer.objects.filter(federation_id=card["id"]).delete()
    FederationPeer.objects.create(
        federation_id=card["id"], name="Brighton and Hove", directory_status="active"
    )
    with pytest.raises(ValidationError, match="is in the directory of councils"):
        services.peer_add(card=card)


def test_a_fetch_that_gets_no_answer_keeps_the_last_good_directory(
    governance_key, settings, db, caplog
) -> None:  # type: ignore[no-untyped-def]
    """The beat task against an address where nothing listens (real TCP on loopback): an
    ERROR, a warning for the operator, and the peers as the last good directory left them."""
    import socket

    from federation.tasks import directory_fetch_task

    assert settings.CELERY_BEAT_SCHEDULE["federation-directory-fetch"]["schedule"] == (
        settings.FEDERATION_DIRECTORY_FETCH_MINUTES * 60.0
    )
    receive(signed(governance_key, [member()], 1))
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    settings.FEDERATION_DIRECTORY_URLS = [
        f"http://127.0.0.1:{port}/.well-known/patchwork/directory"
    ]
    with caplog.at_level("ERROR"):
        assert directory_fetch_task() == 1
    errors = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert any("refused: unreachable" in line for line in errors), errors
    assert any("needs attention" in line for line in errors), errors
    assert directory_state().status == "warning"
    assert peer_active(DEVON) is not None
    # Fetch after fetch, the same failure is one row whose last check moves on.
    directory_fetch_task()
    refused = DirectoryDocument.objects.get(decision="refused")
    assert refused.checked_at is not None and refused.checked_at > refused.received_at
