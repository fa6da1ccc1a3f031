"""End to end on one deployment, over real HTTP, with real Celery workers and Redis:
the practitioner's "other councils" panel, and pushes through the outbox when a peer is
down for a while and when a worker is killed mid-delivery."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta

import pytest
from django.utils import timezone
from django_tenants.utils import schema_context

from accounts.models import User
from core.models import Involvement, InvolvementRole, Organisation, Person
from core.services import (
    involvement_add,
    involvement_end,
    organisation_create,
    person_create,
    practitioner_profile_set,
)
from federation.client import other_councils_check, outbox_deliver
from federation.directory.models import FederationPeer, council_federation_id
from federation.models import DataSharingAgreement, Exchange, OutboxMessage
from federation.sealing import seal
from federation.selectors import other_councils_last_answers
from federation.services import agreement_secret_context
from federation.tasks import outbox_sweep
from tenants.models import Council
from tenants.services import council_onboard
from tests.factories import valid_nhs_number
from tests.federation.agreement import make_agreement
from tests.federation.live import (
    committed_restore,
    committed_snapshot,
    free_port,
    live_env,
    server_start,
    server_stop,
    wait_for,
    worker_kill,
    worker_start,
)
from tests.personas import Persona, make_persona, sign_in

pytestmark = pytest.mark.redis


@dataclass
class Live:
    cornwall: Council
    dorset: Council
    asker: Persona
    asker_person_id: int
    dorset_child_id: int
    dorset_school_id: int
    port: int
    down_port: int


def _school_nurse(org_id: int, n: int) -> int:
    user = User.objects.create_user(
        f"nurse{n}-{timezone.now().timestamp()}@dorset.test", full_name=f"Nurse {n}"
    )
    return practitioner_profile_set(
        user=user,
        organisation=Organisation.objects.get(pk=org_id),
        job_title="School nurse",
        work_phone=f"01305 {n:06d}",
    ).pk


@pytest.fixture(scope="module")
def live(world, django_db_blocker) -> Iterator[Live]:  # type: ignore[no-untyped-def]
    import os

    if not os.environ.get("REDIS_URL"):
        pytest.skip("REDIS_URL is not set: the outbox tests need a Redis server")
    from deploy.celery import app

    nhs = valid_nhs_number()
    with django_db_blocker.unblock():
        snapshot = committed_snapshot()
        cornwall = council_onboard(
            name="Cornwall", code="E06000052", admin_email="a@cornwall.test"
        ).council
        dorset = council_onboard(
            name="Dorset", code="E06000059", admin_email="a@dorset.test"
        ).council
        asker = make_persona(
            cornwall, "cass.care@cornwall.test", "Cass Care", User.Role.PRACTITIONER
        )
        with schema_context(cornwall.schema_name):
            user = User.objects.get(email=asker.email)
            org = organisation_create(
                name="Cornwall Children's Services", agency_type="social_care"
            )
            practitioner = practitioner_profile_set(
                user=user, organisation=org, job_title="Social worker"
            )
            child = person_create(
                actor=None, given_name="Tegan", family_name="Penrose", nhs_number=nhs
            )
            involvement_add(
                actor=user,
                person=child,
                practitioner=practitioner,
                role=InvolvementRole.objects.get_or_create(name="Social worker")[0],
            )
            asker_person_id = child.pk
        with schema_context(dorset.schema_name):
            school = organisation_create(
                name="Weymouth Academy", agency_type="school", phone="01305 000000"
            )
            nurse_id = _school_nurse(school.pk, 0)
            from core.models import Practitioner

            nurse = Practitioner.objects.get(pk=nurse_id)
            dorset_child = person_create(
                actor=None, given_name="Tegan", family_name="Penrose", nhs_number=nhs
            )
            involvement_add(
                actor=nurse.user,
                person=dorset_child,
                practitioner=nurse,
                role=InvolvementRole.objects.get_or_create(name="School nurse")[0],
            )
        make_agreement(cornwall, dorset)
        app.control.purge()
    port, down_port = free_port(), free_port()
    server = server_start(live_env(port), port, workers=1)
    try:
        yield Live(
            cornwall, dorset, asker, asker_person_id, dorset_child.pk, school.pk, port, down_port
        )
    finally:
        server_stop(server)
        with django_db_blocker.unblock():
            committed_restore(snapshot)


def test_with_no_agreement_in_force_nothing_is_sent(world, db) -> None:  # type: ignore[no-untyped-def]
    """A Brighton practitioner checks, but Brighton holds no agreement: no request leaves."""
    from tests.factories import InvolvementFactory, PersonFactory, PractitionerFactory, RoleFactory

    with schema_context(world.brighton.schema_name):
        practitioner = PractitionerFactory()
        person = PersonFactory()
        InvolvementFactory(person=person, practitioner=practitioner, role=RoleFactory())
        assert (
            other_councils_check(
                user=practitioner.user, person_id=person.pk, purpose="safeguarding"
            )
            == []
        )
        assert not Exchange.objects.filter(direction="out").exists()


@pytest.fixture
def on_live_server(live, settings, django_db_blocker) -> Iterator[Live]:  # type: ignore[no-untyped-def]
    """This process reaches councils on this deployment at the live server's port, and
    commits what it writes (the server and workers are other processes)."""
    settings.SITE_PORT = str(live.port)
    with django_db_blocker.unblock():
        yield live


def _an_unreachable_peer_with_an_agreement(live: Live) -> None:
    peer, _ = FederationPeer.objects.get_or_create(
        federation_id="council:E06000053",
        defaults={
            "name": "Isles of Scilly",
            "base_url": f"http://scilly.localhost:{live.down_port}",
        },
    )
    with schema_context(live.cornwall.schema_name):
        mine = DataSharingAgreement.objects.filter(
            partner_id=council_federation_id(live.dorset)
        ).first()
        DataSharingAgreement.objects.get_or_create(
            agreement_id="scilly-agreement",
            defaults={
                "partner_id": peer.federation_id,
                "document": {**mine.document, "id": "scilly-agreement"},
                "signatures": {"a": {}, "b": {}},
                "status": DataSharingAgreement.Status.ACTIVE,
                "sealed_secret": seal(
                    bytes(32), context=agreement_secret_context("scilly-agreement")
                ),
            },
        )


def test_the_panel_shows_each_councils_answer_and_could_not_be_checked_for_a_silent_one(
    on_live_server, django_db_blocker
) -> None:  # type: ignore[no-untyped-def]
    """Dorset answers with its school nurse; Scilly (down) is "could not be checked"."""
    live = on_live_server
    with django_db_blocker.unblock():
        _an_unreachable_peer_with_an_agreement(live)
        client = sign_in(live.asker)
        url = f"/federation/people/{live.asker_person_id}/other-councils/"
        assert "Not checked yet" in client.get(url).content.decode()
        page = client.post(url, {"purpose": "safeguarding"}).content.decode()
    assert "Known to Dorset" in page
    assert "Weymouth Academy" in page and "School nurse" in page
    assert "Isles of Scilly could not be checked" in page
    assert "Not known to Isles of Scilly" not in page


def test_someone_who_cannot_see_the_person_cannot_check_other_councils(
    on_live_server, django_db_blocker
) -> None:  # type: ignore[no-untyped-def]
    """Another Cornwall practitioner, not on the child's team: 404, nothing sent."""
    live = on_live_server
    with django_db_blocker.unblock():
        outsider = make_persona(
            live.cornwall, "olly.out@cornwall.test", "Olly Out", User.Role.PRACTITIONER
        )
        with schema_context(live.cornwall.schema_name):
            practitioner_profile_set(
                user=User.objects.get(email=outsider.email),
                organisation=Organisation.objects.get(name="Cornwall Children's Services"),
                job_title="Family worker",
            )
            sent_before = Exchange.objects.filter(direction="out").count()
        response = sign_in(outsider).post(
            f"/federation/people/{live.asker_person_id}/other-councils/",
            {"purpose": "safeguarding"},
        )
        with schema_context(live.cornwall.schema_name):
            sent_after = Exchange.objects.filter(direction="out").count()
    assert response.status_code == 404
    assert sent_after == sent_before


def _dorset_updates(live: Live) -> list[str]:
    with schema_context(live.cornwall.schema_name):
        return list(
            Exchange.objects.filter(
                direction="in", kind="pointer_update", peer_id=council_federation_id(live.dorset)
            ).values_list("request_id", flat=True)
        )


def _pending(live: Live, keys: list[str] | None = None) -> int:
    with schema_context(live.dorset.schema_name):
        messages = OutboxMessage.objects.filter(delivered_at__isnull=True, given_up_at__isnull=True)
        return (
            messages.filter(idempotency_key__in=keys).count()
            if keys is not None
            else messages.count()
        )


def _checked_once(live: Live, django_db_blocker) -> None:  # type: ignore[no-untyped-def]
    with django_db_blocker.unblock(), schema_context(live.cornwall.schema_name):
        if not Exchange.objects.filter(direction="out", kind="lookup", outcome="match").exists():
            user = User.objects.get(email=live.asker.email)
            answers = other_councils_check(
                user=user, person_id=live.asker_person_id, purpose="safeguarding"
            )
            assert any(a.outcome == "match" for a in answers)


def test_a_peer_down_for_a_while_then_back_gets_every_update_exactly_once(
    on_live_server, django_db_blocker
) -> None:  # type: ignore[no-untyped-def]
    """Three changes at Dorset while Cornwall is unreachable: all three arrive, once each."""
    from deploy.celery import app

    live = on_live_server
    _checked_once(live, django_db_blocker)
    before = set(_dorset_updates(live))
    # The worker reaches this deployment's councils on a port where nothing listens yet.
    worker = worker_start(live_env(live.down_port))
    app.conf.task_always_eager = False
    second_server = None
    try:
        with django_db_blocker.unblock(), schema_context(live.dorset.schema_name):
            child = Person.objects.get(pk=live.dorset_child_id)
            nurse_role = InvolvementRole.objects.get(name="School nurse")
            cp_role = InvolvementRole.objects.get_or_create(
                name="Child protection social worker", defaults={"child_protection": True}
            )[0]
            from core.models import Practitioner

            first = Involvement.objects.filter(person=child, end_date__isnull=True).first()
            second = Practitioner.objects.get(pk=_school_nurse(live.dorset_school_id, 1))
            third = Practitioner.objects.get(pk=_school_nurse(live.dorset_school_id, 2))
            involvement_add(actor=second.user, person=child, practitioner=second, role=nurse_role)
            involvement_add(actor=third.user, person=child, practitioner=third, role=cp_role)
            involvement_end(actor=first.practitioner.user, involvement=first, reason="moved_away")
            keys = list(
                OutboxMessage.objects.filter(person=child)
                .order_by("-id")
                .values_list("idempotency_key", flat=True)[:3]
            )
            assert len(keys) == 3
            assert wait_for(
                lambda: OutboxMessage.objects.filter(
                    idempotency_key__in=keys, attempts__gte=2
                ).exists(),
                timeout=30,
            ), "the worker should have tried and backed off"
        assert set(_dorset_updates(live)) == before
        # Cornwall comes back.
        second_server = server_start(live_env(live.down_port), live.down_port, workers=1)
        with django_db_blocker.unblock():
            assert wait_for(lambda: _pending(live, keys) == 0, timeout=45), (
                "not delivered after the peer came back"
            )
            new = [k for k in _dorset_updates(live) if k not in before]
            assert sorted(new) == sorted(keys)
            # A redelivery (a lost acknowledgement) changes nothing at Cornwall.
            with schema_context(live.dorset.schema_name):
                OutboxMessage.objects.filter(idempotency_key=keys[0]).update(delivered_at=None)
            with schema_context(live.dorset.schema_name):
                from django.test import override_settings

                with override_settings(SITE_PORT=str(live.down_port)):
                    assert (
                        outbox_deliver(peer_id=council_federation_id(live.cornwall)).delivered == 1
                    )
            assert sorted(k for k in _dorset_updates(live) if k not in before) == sorted(keys)
            with schema_context(live.cornwall.schema_name):
                user = User.objects.get(email=live.asker.email)
                latest = [
                    a
                    for a in other_councils_last_answers(user=user, person_id=live.asker_person_id)
                    if a.peer_name == "Dorset"
                ][0]
            with schema_context(live.dorset.schema_name):
                current = sorted(
                    Involvement.objects.filter(
                        person_id=live.dorset_child_id, end_date__isnull=True
                    ).values_list("role__name", flat=True)
                )
        assert latest.updated
        assert sorted(p["role"] for p in latest.pointers) == current
    finally:
        app.conf.task_always_eager = True
        worker_kill(worker, signal.SIGTERM)
        if second_server is not None:
            server_stop(second_server)


def test_killing_the_worker_mid_delivery_loses_nothing_and_duplicates_nothing(
    on_live_server, django_db_blocker
) -> None:  # type: ignore[no-untyped-def]
    """SIGKILL a worker part-way through 25 pushes; a new worker finishes; each arrives once."""
    from deploy.celery import app

    live = on_live_server
    _checked_once(live, django_db_blocker)
    before = set(_dorset_updates(live))
    app.conf.task_always_eager = False
    try:
        with django_db_blocker.unblock(), schema_context(live.dorset.schema_name):
            child = Person.objects.get(pk=live.dorset_child_id)
            nurse_role = InvolvementRole.objects.get(name="School nurse")
            start = OutboxMessage.objects.order_by("-id").values_list("id", flat=True).first() or 0
            for n in range(25):
                nurse = __import__(
                    "core.models", fromlist=["Practitioner"]
                ).Practitioner.objects.get(pk=_school_nurse(live.dorset_school_id, 100 + n))
                involvement_add(
                    actor=nurse.user,
                    person=child,
                    practitioner=nurse,
                    role=nurse_role,
                    start_date=timezone.localdate() - timedelta(days=n),
                )
            keys = list(
                OutboxMessage.objects.filter(id__gt=start).values_list("idempotency_key", flat=True)
            )
        assert len(keys) == 25
        first_worker = worker_start(live_env(live.port))
        with django_db_blocker.unblock():
            assert wait_for(lambda: len(set(_dorset_updates(live)) - before) >= 3, timeout=60)
            worker_kill(first_worker)
            delivered_at_kill = len(set(_dorset_updates(live)) - before)
            assert delivered_at_kill < 25, "the worker finished before it could be killed"
            second_worker = worker_start(live_env(live.port))
            try:
                with schema_context(live.dorset.schema_name):
                    outbox_sweep.delay()
                assert wait_for(lambda: _pending(live, keys) == 0, timeout=90)
            finally:
                worker_kill(second_worker, signal.SIGTERM)
            arrived = [k for k in _dorset_updates(live) if k not in before]
        assert sorted(arrived) == sorted(keys)
        assert len(arrived) == len(set(arrived)) == 25
    finally:
        app.conf.task_always_eager = True
