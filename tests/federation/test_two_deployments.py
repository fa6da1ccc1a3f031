"""Two separate Patchwork deployments (two databases, two gunicorn servers on loopback)
onboard a council each, swap council cards, sign an agreement over federation and answer a
lookup over real HTTP: the same story as `make federation-demo`."""

from __future__ import annotations

import os
import time

from django.conf import settings
from django.db import connections
from patchwork_demo.federation import deployments, exchange, in_parallel


def test_two_deployments_sign_an_agreement_and_answer_a_lookup_over_http(django_db_setup) -> None:  # type: ignore[no-untyped-def]
    """Kent (deployment A) learns that a school nurse in Devon (deployment B) knows the child."""
    started = time.monotonic()
    # The test database is already migrated: each deployment starts as an emptied copy.
    template = connections["default"].settings_dict["NAME"]
    connections.close_all()
    env = {**os.environ, "PATCHWORK_ENV": "test"}
    env.pop("TEST_DATABASE_NAME", None)
    with deployments(settings.DATABASE_URL, template=template, base_env=env) as (a, b):
        seen = exchange(a, b, say=lambda _: None)
        assert a.database_url != b.database_url
        assert a.domain != b.domain and a.port != b.port
        kent_audit, devon_audit = in_parallel(
            a,
            "from django_tenants.utils import schema_context\n"
            "from core.models import AuditEvent\n"
            "with schema_context('council_e10000016'):\n"
            "    print(sorted(set(AuditEvent.objects.filter(action__startswith='federation_')"
            ".values_list('action', flat=True))))",
            b,
            "from django_tenants.utils import schema_context\n"
            "from core.models import AuditEvent, Notification\n"
            "with schema_context('council_e10000008'):\n"
            "    print(sorted(set(AuditEvent.objects.filter(action__startswith='federation_')"
            ".values_list('action', flat=True))))\n"
            "    print([n.text for n in Notification.objects.filter(kind='federation_lookup')])",
        )
    assert seen[0] == "Known to Devon"
    assert seen[1].startswith("  School nurse at Tiverton High School since ")
    assert "Amelia" not in "\n".join(seen)
    assert "federation_lookup_sent" in kent_audit
    assert "federation_lookup_received" in devon_audit
    assert "Kent asked whether anyone here is involved with Amelia Brook-Hughes" in devon_audit
    assert time.monotonic() - started < 110


def test_a_council_card_altered_after_export_is_refused(world, db) -> None:  # type: ignore[no-untyped-def]
    """An operator pasting a card whose address was changed gets a clear refusal."""
    import pytest
    from django.core.exceptions import ValidationError

    from federation.services import council_card, peer_add

    card = council_card(world.brighton)
    card["base_url"] = "https://evil.example"
    with pytest.raises(ValidationError, match="signature does not match"):
        peer_add(card=card)
