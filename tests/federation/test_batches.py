"""Several councils' lookups in one request (federation.batching, decision 0025, spec
§11.5): each request in a batch is checked, answered, signed and audited by its own council
exactly as if it had come alone; a bad one is refused on its own and the others answered;
a malformed batch changes nothing. Over real HTTP, a check across councils on one
deployment leaves in batches and gets every council's own answer."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from django.test import Client
from django_tenants.utils import schema_context

from accounts.models import User
from core.models import AuditEvent, InvolvementRole
from core.services import (
    involvement_add,
    organisation_create,
    person_create,
    practitioner_profile_set,
)
from federation import client, protocol, services
from federation.client import other_councils_check, peer_public_key
from federation.directory.models import council_federation_id
from federation.models import DataSharingAgreement, Exchange
from federation.selectors import peer_active
from tenants.models import Council, Domain
from tenants.services import council_onboard
from tests.factories import valid_nhs_number
from tests.federation.agreement import LOOKUP, lookup_body, make_agreement
from tests.federation.live import (
    committed_restore,
    committed_snapshot,
    free_port,
    knows_the_child,
    live_env,
    server_start,
    server_stop,
)

BATCH = "/federation/v1/batch"
STAFFS = "staffordshire.localhost"


def host_of(council: Council) -> str:
    return Domain.objects.get(tenant=council, is_primary=True).domain


def item(
    sender: Council, *, host: str, body: bytes, agreement_id: str, target: str | None = None
) -> dict[str, Any]:
    """One lookup as `sender` signs it for `host`, placed in a batch (for `target`, if
    another URL is given: a request moved to a council it was not signed for)."""
    url = f"http://{host}{LOOKUP}"
    with schema_context(sender.schema_name):
        key = services.signing_key(sender)
    headers = protocol.sign_request(
        url=url,
        body=body,
        key=key,
        agreement_id=agreement_id,
        request_id=str(uuid.uuid4()),
        practitioner="p-123",
        purpose="safeguarding",
    )
    return {"target": target or url, "headers": headers, "body": body.decode()}


def send(host: str, envelope: Any, address: str = "198.51.100.80") -> Any:
    data = envelope if isinstance(envelope, bytes) else json.dumps(envelope)
    return Client(HTTP_HOST=host, REMOTE_ADDR=address).post(
        BATCH, data=data, content_type="application/json"
    )


def audit_actions(council: Council) -> list[str]:
    with schema_context(council.schema_name):
        return list(AuditEvent.objects.order_by("id").values_list("action", flat=True))


def verified(document: dict[str, Any], council: Council, asker: Council) -> bool:
    """The answer is signed by `council`, as `asker` holds its keys."""
    federation_id = council_federation_id(council)
    with schema_context(asker.schema_name):
        peer = peer_active(federation_id)
        return protocol.verify_document_signature(
            document, federation_id, lambda kid: peer_public_key(peer, kid)
        )


@pytest.fixture
def both_ways(pair):  # type: ignore[no-untyped-def]
    """The pair, and Staffordshire asking Brighton under an agreement of its own."""
    staffs_asks, _received = make_agreement(pair.staffordshire, pair.brighton)
    with schema_context(pair.staffordshire.schema_name):
        secret = services.agreement_secret(staffs_asks)
    keys = protocol.match_keys(
        protocol.Identifiers(nhs_number=valid_nhs_number(), date_of_birth=None, names=()),
        secret=secret,
        demographic=True,
    )
    body = json.dumps({"type": "patchwork.lookup", "match_keys": keys}).encode()
    return pair, staffs_asks.agreement_id, body


def test_each_request_in_a_batch_is_answered_by_its_own_council_as_if_alone(both_ways) -> None:
    """Brighton asks Staffordshire about Kai and Staffordshire asks Brighton about a child
    Brighton does not know, in one batch sent to Staffordshire's host: Staffordshire
    answers "match" and Brighton "no_match", each signed by its own key, each exchange
    and audit event in its own council. In the same batch, each refused on its own as it
    would be alone: Brighton's request with its body changed (bad signature); Brighton's
    request moved to Brighton's own host (a council takes no requests from itself); a host
    nobody serves here; an endpoint that is not a lookup."""
    pair, staffs_agreement, staffs_body = both_ways
    brighton_host = host_of(pair.brighton)
    kai_body = lookup_body(pair)
    tampered = item(pair.brighton, host=STAFFS, body=kai_body, agreement_id=pair.agreement_id)
    tampered["body"] = lookup_body(pair, nhs="9434765919").decode()
    moved = item(
        pair.brighton,
        host=STAFFS,
        body=kai_body,
        agreement_id=pair.agreement_id,
        target=f"http://{brighton_host}{LOOKUP}",
    )
    nobody = item(
        pair.brighton,
        host="nowhere.localhost",
        body=kai_body,
        agreement_id=pair.agreement_id,
    )
    not_a_lookup = item(pair.brighton, host=STAFFS, body=kai_body, agreement_id=pair.agreement_id)
    not_a_lookup["target"] = f"http://{STAFFS}/federation/v1/pointer-updates"
    staffs_before, brighton_before = audit_actions(pair.staffordshire), audit_actions(pair.brighton)

    response = send(
        STAFFS,
        {
            "type": "patchwork.batch",
            "requests": [
                item(pair.brighton, host=STAFFS, body=kai_body, agreement_id=pair.agreement_id),
                item(
                    pair.staffordshire,
                    host=brighton_host,
                    body=staffs_body,
                    agreement_id=staffs_agreement,
                ),
                tampered,
                moved,
                nobody,
                not_a_lookup,
            ],
        },
    )

    assert response.status_code == 200
    document = response.json()
    assert document["type"] == "patchwork.batch-answers"
    answers = document["answers"]
    assert [a["status"] for a in answers] == [200, 200, 401, 403, 404, 400]
    assert [a["body"].get("reason") for a in answers[2:]] == [
        "bad_signature",
        "unknown_peer",
        "not_served_here",
        "not_batchable",
    ]
    from_staffs, from_brighton = answers[0]["body"], answers[1]["body"]
    assert from_staffs["outcome"] == "match"
    assert from_staffs["responder"] == council_federation_id(pair.staffordshire)
    assert {p["role"] for p in from_staffs["pointers"]} == {"School nurse"}
    assert verified(from_staffs, pair.staffordshire, pair.brighton)
    assert from_brighton["outcome"] == "no_match"
    assert from_brighton["responder"] == council_federation_id(pair.brighton)
    assert verified(from_brighton, pair.brighton, pair.staffordshire)
    # Each council audited the one request it answered, and nothing for the refusals
    # before a peer was authenticated (spec §9).
    staffs_new = audit_actions(pair.staffordshire)[len(staffs_before) :]
    brighton_new = audit_actions(pair.brighton)[len(brighton_before) :]
    assert staffs_new.count("federation_lookup_received") == 1
    assert brighton_new.count("federation_lookup_received") == 1
    assert "federation_refused" not in staffs_new + brighton_new
    with schema_context(pair.staffordshire.schema_name):
        assert Exchange.objects.filter(direction="in", outcome="match").count() == 1


def test_a_request_repeated_within_a_batch_is_refused_the_second_time(pair) -> None:
    """The same signed request twice in one batch: the first answered, the copy refused as
    a replay, exactly as two copies sent alone would be."""
    one = item(pair.brighton, host=STAFFS, body=lookup_body(pair), agreement_id=pair.agreement_id)
    response = send(STAFFS, {"type": "patchwork.batch", "requests": [one, one]})
    answers = response.json()["answers"]
    assert [a["status"] for a in answers] == [200, 401]
    assert answers[1]["body"] == {"outcome": "refused", "reason": "replayed"}


def test_a_suspended_council_in_a_batch_answers_for_itself_only(both_ways) -> None:
    """Brighton suspended by the operator: its request in the batch is refused 503, while
    Staffordshire still answers; nothing is recorded in Brighton."""
    pair, staffs_agreement, staffs_body = both_ways
    brighton_before = audit_actions(pair.brighton)
    Council.objects.filter(pk=pair.brighton.pk).update(status=Council.Status.SUSPENDED)
    response = send(
        STAFFS,
        {
            "type": "patchwork.batch",
            "requests": [
                item(
                    pair.staffordshire,
                    host=host_of(pair.brighton),
                    body=staffs_body,
                    agreement_id=staffs_agreement,
                ),
                item(
                    pair.brighton,
                    host=STAFFS,
                    body=lookup_body(pair),
                    agreement_id=pair.agreement_id,
                ),
            ],
        },
    )
    answers = response.json()["answers"]
    assert [a["status"] for a in answers] == [503, 200]
    assert answers[0]["body"] == {"outcome": "refused", "reason": "council_unavailable"}
    assert audit_actions(pair.brighton) == brighton_before


@pytest.mark.parametrize(
    "envelope",
    [
        b"not json",
        b"[]",
        {"type": "patchwork.lookup", "requests": []},
        {"type": "patchwork.batch", "requests": []},
        {"type": "patchwork.batch", "requests": "everything"},
        {"type": "patchwork.batch", "requests": [{"target": 1, "headers": {}, "body": ""}]},
        {"type": "patchwork.batch", "requests": [{"target": "x", "headers": {"a": 1}, "body": ""}]},
        {"type": "patchwork.batch", "requests": [{"target": "x", "headers": {}}]},
        {
            "type": "patchwork.batch",
            "requests": [{"target": "x", "headers": {}, "body": ""}] * 51,
        },
    ],
)
def test_a_malformed_batch_is_refused_whole_and_changes_nothing(pair, envelope) -> None:  # type: ignore[no-untyped-def]
    staffs_before, brighton_before = audit_actions(pair.staffordshire), audit_actions(pair.brighton)
    response = send(STAFFS, envelope)
    assert response.status_code == 400
    assert response.json() == {"outcome": "refused", "reason": "not_a_batch"}
    assert audit_actions(pair.staffordshire) == staffs_before
    assert audit_actions(pair.brighton) == brighton_before


def test_the_batch_endpoint_takes_only_post(pair) -> None:
    response = Client(HTTP_HOST=STAFFS).get(BATCH)
    assert response.status_code == 405


# --- Over real HTTP -------------------------------------------------------------------------


@dataclass
class Deployment:
    asker: Council
    practitioner: User
    child_id: int
    knowing: list[str]
    not_knowing: str
    port: int


@pytest.fixture(scope="module")
def deployment(world, django_db_blocker) -> Iterator[Deployment]:  # type: ignore[no-untyped-def]
    """Cornwall asks Dorset, Kent and Norfolk, all on one deployment (a gunicorn server
    here); Dorset and Kent know the child, Norfolk does not."""
    nhs = valid_nhs_number()
    with django_db_blocker.unblock():
        snapshot = committed_snapshot()
        asker = council_onboard(
            name="Cornwall", code="E06000052", admin_email="a@cornwall.test"
        ).council
        answering = [
            council_onboard(name=name, code=code, admin_email=f"a@{code}.test").council
            for name, code in (
                ("Dorset", "E10000009"),
                ("Kent", "E10000016"),
                ("Norfolk", "E10000020"),
            )
        ]
        with schema_context(asker.schema_name):
            practitioner = User.objects.create_user(
                "cass.worker@cornwall.test", full_name="Cass Worker", role="practitioner"
            )
            child = person_create(
                actor=None, given_name="Ellis", family_name="Marsh", nhs_number=nhs
            )
            involvement_add(
                actor=practitioner,
                person=child,
                practitioner=practitioner_profile_set(
                    user=practitioner,
                    organisation=organisation_create(
                        name="Cornwall Children's Services", agency_type="social_care"
                    ),
                    job_title="Social worker",
                ),
                role=InvolvementRole.objects.get_or_create(name="Social worker")[0],
            )
        for council in answering[:2]:
            knows_the_child(council, nhs)
        for council in answering:
            make_agreement(asker, council)
    port = free_port()
    server = server_start(live_env(port), port, workers=1)
    try:
        yield Deployment(
            asker,
            practitioner,
            child.pk,
            [council_federation_id(c) for c in answering[:2]],
            council_federation_id(answering[2]),
            port,
        )
    finally:
        server_stop(server)
        with django_db_blocker.unblock():
            committed_restore(snapshot)


@pytest.fixture
def posted(monkeypatch) -> list[str]:  # type: ignore[no-untyped-def]
    """The URLs the asking side posts to, recorded by a wrapper that still sends each."""
    urls: list[str] = []
    real_post = client.http_post

    def recording(url: str, **kwargs: Any) -> Any:
        urls.append(url)
        return real_post(url, **kwargs)

    monkeypatch.setattr(client, "http_post", recording)
    return urls


def _check_from_the_asker(deployment) -> list[Any]:  # type: ignore[no-untyped-def]
    """The asking council's practitioner checks the child across the three councils."""
    with schema_context(deployment.asker.schema_name):
        user = User.objects.get(pk=deployment.practitioner.pk)
        return other_councils_check(
            user=user, person_id=deployment.child_id, purpose="safeguarding"
        )


def test_a_check_across_one_deployment_leaves_in_one_batch(
    deployment, settings, db, posted
) -> None:  # type: ignore[no-untyped-def]
    """With one batch per check, the three councils are asked in one POST to the batch
    endpoint over real HTTP (recorded on its way by a wrapper that still sends it), and
    each answers for itself: two matches with their school nurse, one "not known"."""
    settings.SITE_PORT = str(deployment.port)
    settings.FEDERATION_BATCH_REQUESTS = 1
    with schema_context(deployment.asker.schema_name):
        user = User.objects.get(pk=deployment.practitioner.pk)
        answers = other_councils_check(
            user=user, person_id=deployment.child_id, purpose="safeguarding"
        )
        recorded = dict(
            Exchange.objects.filter(direction="out", person_id=deployment.child_id).values_list(
                "peer_id", "outcome"
            )
        )
    by_council = {answer.peer_id: answer for answer in answers}
    assert len(posted) == 1 and posted[0].endswith(BATCH), posted
    for council in deployment.knowing:
        assert by_council[council].outcome == "match"
        assert by_council[council].pointers[0]["role"] == "School nurse"
    assert by_council[deployment.not_knowing].outcome == "no_match"
    assert recorded == {peer: answer.outcome for peer, answer in by_council.items()}
    # The agreements in force here are the three: each council was asked once.
    with schema_context(deployment.asker.schema_name):
        assert DataSharingAgreement.objects.filter(status="active").count() == 3


def test_with_more_batches_than_councils_each_council_is_asked_alone(
    deployment, settings, db, posted
) -> None:  # type: ignore[no-untyped-def]
    """The deployment's default of four batches for three councils: a batch of one is sent
    as a plain request, to each council's own lookup endpoint."""
    settings.SITE_PORT = str(deployment.port)
    settings.FEDERATION_BATCH_REQUESTS = 4
    answers = _check_from_the_asker(deployment)
    assert sorted(url.rsplit("/", 1)[1] for url in posted) == ["who-is-involved"] * 3
    assert sorted(a.outcome for a in answers) == ["match", "match", "no_match"]


@pytest.fixture
def in_flight(monkeypatch) -> dict[str, int]:  # type: ignore[no-untyped-def]
    """The most posts the asking side had open at once (each still sent for real)."""
    seen = {"now": 0, "most": 0, "posts": 0}
    lock = threading.Lock()
    real_post = client.http_post

    def counting(url: str, **kwargs: Any) -> Any:
        with lock:
            seen["now"] += 1
            seen["posts"] += 1
            seen["most"] = max(seen["most"], seen["now"])
        try:
            return real_post(url, **kwargs)
        finally:
            with lock:
                seen["now"] -= 1

    monkeypatch.setattr(client, "http_post", counting)
    return seen


def test_batches_wait_for_a_free_lane_and_every_council_still_answers(
    deployment, settings, db, in_flight
) -> None:  # type: ignore[no-untyped-def]
    """One lane and batches of one: the three councils are asked one after another, never
    two at once, and each answers for itself within the same check."""
    settings.SITE_PORT = str(deployment.port)
    settings.FEDERATION_BATCH_REQUESTS = 1
    settings.FEDERATION_BATCH_SIZE = 1
    answers = _check_from_the_asker(deployment)
    assert in_flight["posts"] == 3 and in_flight["most"] == 1, in_flight
    assert sorted(a.outcome for a in answers) == ["match", "match", "no_match"]


def test_batches_are_no_larger_than_the_batch_size(deployment, settings, db, posted) -> None:  # type: ignore[no-untyped-def]
    """Two lanes, batches of at most two: one batch of two councils and one plain request."""
    settings.SITE_PORT = str(deployment.port)
    settings.FEDERATION_BATCH_REQUESTS = 2
    settings.FEDERATION_BATCH_SIZE = 2
    answers = _check_from_the_asker(deployment)
    assert sorted(url.rsplit("/", 1)[1] for url in posted) == ["batch", "who-is-involved"]
    assert sorted(a.outcome for a in answers) == ["match", "match", "no_match"]


def test_nothing_waiting_for_a_lane_is_sent_after_the_deadline() -> None:
    """A batch still waiting for a lane when the check's time is up is not sent: its
    councils are shown as not checked, and nobody waits for them."""
    lane = threading.BoundedSemaphore(1)
    sent: list[int] = []
    assert lane.acquire()  # the only lane is busy
    started = time.monotonic()
    result = client._in_lane(lane, started + 0.2, 3, lambda: sent.append(1) or [])
    assert result == [None, None, None] and sent == []
    assert 0.15 <= time.monotonic() - started < 2
    lane.release()
    # Past the deadline already: not sent even though the lane is free.
    assert client._in_lane(lane, time.monotonic() - 1, 2, lambda: sent.append(1) or []) == [
        None,
        None,
    ]
    assert sent == []
    # In time and free: sent.
    assert client._in_lane(lane, time.monotonic() + 5, 1, lambda: [None]) == [None]
