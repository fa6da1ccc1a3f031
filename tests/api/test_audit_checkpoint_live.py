"""The latest signed checkpoint over real HTTP: gunicorn serving the test database, a
council administrator signing in through both steps, and the signature checked with the key
the council publishes."""

from __future__ import annotations

import re

import httpx
import rfc8785
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from django_otp.plugins.otp_totp.models import TOTPDevice
from django_tenants.utils import schema_context

from core.audit import audit_record
from federation import protocol
from federation.checkpoints import audit_checkpoint_take
from tenants.models import AuditCheckpoint
from tests.api.client import host_of
from tests.federation.live import free_port, live_env, server_start, server_stop

TOKEN = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')


def _client(port: int, host: str) -> httpx.Client:
    """Loopback, naming the council's host (names under .localhost need no resolver)."""
    return httpx.Client(base_url=f"http://127.0.0.1:{port}", headers={"Host": host}, timeout=30)


def _signed_in(client: httpx.Client, persona) -> httpx.Client:  # type: ignore[no-untyped-def]
    for path, data in (
        ("/sign-in/", {"email": persona.email, "password": persona.password}),
        ("/sign-in/code/", lambda: {"code": persona.code()}),
    ):
        page = client.get(path)
        token = TOKEN.search(page.text)
        assert token, page.text[:500]
        fields = data() if callable(data) else data
        answer = client.post(path, data={**fields, "csrfmiddlewaretoken": token[1]})
        assert answer.status_code == 302, answer.text[:500]
    return client


def test_an_administrator_fetches_and_checks_the_checkpoint_over_http(  # type: ignore[no-untyped-def]
    world, django_db_blocker
) -> None:
    """Anonymous: 401. Signed in with password and code: the checkpoint, which verifies."""
    port = free_port()
    with django_db_blocker.unblock():
        host = host_of(world.brighton)
        with schema_context(world.brighton.schema_name):
            audit_record(actor=None, action="search", detail={"result_ids": []})
        AuditCheckpoint.objects.filter(council=world.brighton).delete()
        checkpoint = audit_checkpoint_take(council=world.brighton)
        server = server_start(live_env(port), port, workers=1)
        try:
            anonymous = _client(port, host).get("/api/v1/audit/checkpoints/latest")
            assert anonymous.status_code == 401
            client = _signed_in(_client(port, host), world.brighton_admin)
            answer = client.get("/api/v1/audit/checkpoints/latest")
            assert answer.status_code == 200, answer.text
            body = answer.json()
            assert body["checkpoint"] == checkpoint.document
            keys = client.get("/.well-known/patchwork/keys").json()["keys"]
            public = next(k["public_key"] for k in keys if k["key_id"] == body["key_id"])
            unsigned = {k: v for k, v in body["checkpoint"].items() if k != "signatures"}
            Ed25519PublicKey.from_public_bytes(protocol.unb64(public)).verify(
                protocol.unb64(body["signature"]), rfc8785.dumps(unsigned)
            )
        finally:
            server_stop(server)
            AuditCheckpoint.objects.filter(council=world.brighton).delete()
            # The server committed the code as used: later tests in the same 30 seconds
            # sign this persona in with the same code.
            with schema_context(world.brighton.schema_name):
                TOTPDevice.objects.filter(user__email=world.brighton_admin.email).update(last_t=-1)
