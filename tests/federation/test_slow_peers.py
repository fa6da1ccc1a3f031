"""A slow or dead council delays nobody beyond the per-peer timeout: over real HTTP, a
Wiltshire practitioner's check reaches two councils that answer (on a gunicorn server
here), one that accepts the connection and never answers, and one that starts answering at
once but finishes only long after the timeout (tiny loopback servers in this test). The
check returns within the timeout plus a small margin, with the two real answers and the
other two shown as "could not be checked"."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import suppress
from dataclasses import dataclass, field

import pytest
from django.db import connection
from django_tenants.utils import schema_context

from accounts.models import User
from core.models import InvolvementRole
from core.services import (
    involvement_add,
    organisation_create,
    person_create,
    practitioner_profile_set,
)
from federation.client import other_councils_check
from federation.directory.models import FederationPeer, council_federation_id
from federation.models import DataSharingAgreement, Exchange
from federation.sealing import seal
from federation.services import agreement_secret_context
from tenants.models import Council
from tenants.services import council_onboard
from tests.factories import valid_nhs_number
from tests.federation.agreement import make_agreement
from tests.federation.live import (
    free_port,
    knows_the_child,
    live_env,
    server_start,
    server_stop,
)

TIMEOUT = 1.0
# What the asking side may take beyond the timeout: recording 4 exchanges and one audit
# event, on a machine shared with other test runs.
MARGIN = 1.0
# The late council finishes its answer this long after the request (well past TIMEOUT),
# sending a byte at a time so that no single read waits as long as the timeout.
LATE_BY = 4.0


@dataclass
class Misbehaving:
    """A loopback server that accepts connections and then stalls (`late` False: never a
    byte) or dribbles out a well-formed answer over LATE_BY seconds (`late` True)."""

    late: bool
    listener: socket.socket = field(init=False)
    requests: int = 0
    stopping: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(0.2)
        threading.Thread(target=self._serve, daemon=True).start()

    @property
    def port(self) -> int:
        return int(self.listener.getsockname()[1])

    def _serve(self) -> None:
        while not self.stopping.is_set():
            try:
                connection, _ = self.listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            threading.Thread(target=self._hold, args=(connection,), daemon=True).start()

    def _hold(self, connection: socket.socket) -> None:
        with connection:
            connection.settimeout(10)
            with suppress(OSError):
                if connection.recv(65536):
                    self.requests += 1
                if not self.late:
                    self.stopping.wait(LATE_BY * 2)
                    return
                body = b'{"outcome":"no_match","type":"patchwork.lookup-answer"}'
                answer = (
                    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                    b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body
                )
                connection.sendall(answer[:20])
                rest = answer[20:]
                for i in range(len(rest)):
                    if self.stopping.wait(LATE_BY / len(rest)):
                        return
                    connection.sendall(rest[i : i + 1])

    def stop(self) -> None:
        self.stopping.set()
        self.listener.close()


@dataclass
class Check:
    wiltshire: Council
    practitioner: User
    child_id: int
    answering: list[str]
    silent: Misbehaving
    late: Misbehaving
    port: int


def _misbehaving_peer(wiltshire: Council, code: str, name: str, server: Misbehaving) -> None:
    """A council on another deployment, at the misbehaving server's address, with an
    agreement in force (its content is never reached: the server does not check)."""
    peer = FederationPeer.objects.create(
        federation_id=f"council:{code}",
        name=name,
        base_url=f"http://{name.lower()}.localhost:{server.port}",
    )
    with schema_context(wiltshire.schema_name):
        model = DataSharingAgreement.objects.exclude(partner_id__startswith="council:E9").first()
        agreement_id = f"agreement-{code}"
        DataSharingAgreement.objects.create(
            agreement_id=agreement_id,
            partner_id=peer.federation_id,
            document={**model.document, "id": agreement_id},
            signatures={"a": {}, "b": {}},
            status=DataSharingAgreement.Status.ACTIVE,
            sealed_secret=seal(bytes(32), context=agreement_secret_context(agreement_id)),
        )


@pytest.fixture(scope="module")
def check(world, django_db_blocker) -> Iterator[Check]:  # type: ignore[no-untyped-def]
    nhs = valid_nhs_number()
    silent, late = Misbehaving(late=False), Misbehaving(late=True)
    with django_db_blocker.unblock():
        wiltshire = council_onboard(
            name="Wiltshire", code="E06000054", admin_email="a@wiltshire.test"
        ).council
        answering = [
            council_onboard(name=name, code=code, admin_email=f"a@{code}.test").council
            for name, code in (("Devon", "E10000008"), ("Somerset", "E06000066"))
        ]
        with schema_context(wiltshire.schema_name):
            practitioner = User.objects.create_user(
                "wren.worker@wiltshire.test", full_name="Wren Worker", role="practitioner"
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
                        name="Wiltshire Children's Services", agency_type="social_care"
                    ),
                    job_title="Social worker",
                ),
                role=InvolvementRole.objects.get_or_create(name="Social worker")[0],
            )
        for council in answering:
            knows_the_child(council, nhs)
            make_agreement(wiltshire, council)
        _misbehaving_peer(wiltshire, "E99000001", "Silentshire", silent)
        _misbehaving_peer(wiltshire, "E99000002", "Lateshire", late)
    port = free_port()
    server = server_start(live_env(port), port, workers=1)
    try:
        yield Check(
            wiltshire,
            practitioner,
            child.pk,
            [council_federation_id(c) for c in answering],
            silent,
            late,
            port,
        )
    finally:
        server_stop(server)
        silent.stop()
        late.stop()
        with django_db_blocker.unblock():
            _remove([wiltshire, *answering])


def _remove(councils: list[Council]) -> None:
    """Leave the session's database as it was: later tests count every council."""
    ids = [council_federation_id(c) for c in councils] + ["council:E99000001", "council:E99000002"]
    for council in councils:
        schema = council.schema_name
        council.delete()
        with connection.cursor() as cursor:
            cursor.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    FederationPeer.objects.filter(federation_id__in=ids).delete()


def test_a_silent_and_a_late_council_delay_nobody_beyond_the_timeout(check, settings, db) -> None:  # type: ignore[no-untyped-def]
    """Devon and Somerset answer with their school nurse; Silentshire (connection accepted,
    never a byte) and Lateshire (an answer dribbled out over four seconds) are "could not
    be checked", and the practitioner waits the timeout, not four seconds."""
    settings.SITE_PORT = str(check.port)
    with schema_context(check.wiltshire.schema_name):
        user = User.objects.get(pk=check.practitioner.pk)
        # Once with the deployment's timeout, so the server has loaded both councils (a
        # cold worker's first answer is slow) and they are known to answer.
        warm = other_councils_check(user=user, person_id=check.child_id, purpose="safeguarding")
        assert sorted(a.peer_id for a in warm if a.outcome == "match") == sorted(check.answering)
        settings.FEDERATION_LOOKUP_TIMEOUT_SECONDS = TIMEOUT
        started = time.monotonic()
        answers = other_councils_check(user=user, person_id=check.child_id, purpose="safeguarding")
        took = time.monotonic() - started
        recorded = dict(
            Exchange.objects.filter(direction="out", person_id=check.child_id)
            .order_by("id")
            .values_list("peer_id", "outcome")
        )
    by_council = {answer.peer_id: answer for answer in answers}
    assert took < TIMEOUT + MARGIN, f"the check took {took:.2f}s"
    for council in check.answering:
        assert by_council[council].outcome == "match"
        assert by_council[council].pointers[0]["role"] == "School nurse"
    assert by_council["council:E99000001"].outcome == "could_not_check"
    assert by_council["council:E99000002"].outcome == "could_not_check"
    # Both misbehaving councils were asked both times (they are not "could not be checked" for want
    # of a request), and every exchange is on record (the latest), as shown.
    assert check.silent.requests == 2 and check.late.requests == 2
    assert recorded == {peer: answer.outcome for peer, answer in by_council.items()}
