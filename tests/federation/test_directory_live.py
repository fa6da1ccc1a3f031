"""The signed directory of councils across two deployments over real HTTP (issue 16, point
2; decision 0014): two databases, two gunicorn servers on loopback. No operator swaps a
council card: the governance body signs a directory, deployment A's operator publishes it,
deployment B fetches it from A's well-known address."""

from __future__ import annotations

import json
import os
import re
from datetime import timedelta
from pathlib import Path

import httpx
import psycopg
import pytest
from django.conf import settings
from django.db import connections
from django.utils import timezone
from patchwork_demo.federation import (
    DEVON,
    KENT,
    Deployment,
    agreement_signed,
    deployments,
    directory_member,
    kent_asks,
    onboard_apart,
    run,
)
from psycopg.types.json import Jsonb

from federation.directory import governance

PASSPHRASE = "a long governance passphrase"
METRICS_TOKEN = "directory-test-metrics-token-0123456789"
DIRECTORY_TABLE = "federation_directory_directorydocument"


def sql(deployment: Deployment, statement: str, params: list[object]) -> list[tuple]:
    with psycopg.connect(deployment.database_url, autocommit=True) as conn:
        cursor = conn.execute(statement, params)
        return cursor.fetchall() if cursor.description else []


def in_force(deployment: Deployment) -> int:
    """The sequence of the directory in force on the deployment."""
    rows = sql(
        deployment,
        f"SELECT max(sequence) FROM {DIRECTORY_TABLE} WHERE decision = 'accepted'",  # noqa: S608
        [],
    )
    return int(rows[0][0])


def peer(deployment: Deployment, federation_id: str) -> dict[str, object]:
    rows = sql(
        deployment,
        "SELECT base_url, card, directory_status, removed_at IS NULL FROM tenants_federationpeer "
        "WHERE federation_id = %s",
        [federation_id],
    )
    base_url, card, status, active = rows[0]
    return {"base_url": base_url, "card": card, "status": status, "active": active}


def serve_instead(a: Deployment, document: dict[str, object]) -> None:
    """An attacker with A's database (or between A and B) changes what A serves."""
    sql(
        a,
        f"UPDATE {DIRECTORY_TABLE} SET document = %s WHERE published",  # noqa: S608
        [Jsonb(document)],
    )


def test_a_signed_directory_joins_two_deployments_and_suspends_a_council(  # type: ignore[no-untyped-def]
    django_db_setup, tmp_path
) -> None:
    """Kent (A) and Devon (B) become peers from the directory alone, sign an agreement and
    a lookup is answered; suspended in the directory, the exchange stops at the next fetch;
    a forged and an expired directory are refused and the last good one kept."""
    template = connections["default"].settings_dict["NAME"]
    connections.close_all()
    env = {
        **os.environ,
        "PATCHWORK_ENV": "test",
        "PATCHWORK_GOVERNANCE_PASSPHRASE": PASSPHRASE,
        "METRICS_TOKEN": METRICS_TOKEN,
    }
    env.pop("TEST_DATABASE_NAME", None)
    key_file = tmp_path / "governance.pem"
    with deployments(settings.DATABASE_URL, template=template, base_env=env) as (a, b):
        person = onboard_apart(a, b, tmp_path)
        # The governance body makes its key; every deployment trusts its public half and
        # fetches the directory from A's platform host.
        created = run(["governance_key_create", "--out", str(key_file)], a.env)
        trusted = re.search(r"FEDERATION_GOVERNANCE_KEYS=(\S+)", created)
        assert trusted is not None
        env["FEDERATION_GOVERNANCE_KEYS"] = trusted.group(1)
        env["FEDERATION_DIRECTORY_URLS"] = (
            f"http://{a.domain}:{a.port}/.well-known/patchwork/directory"
        )
        a.base_env.update(env)
        b.base_env.update(env)
        a.start(KENT["slug"])
        b.start(DEVON["slug"])
        kent_id, devon_id = f"council:{KENT['code']}", f"council:{DEVON['code']}"

        def sign_and_publish(sequence: int, kent: str, devon: str) -> Path:
            members = tmp_path / f"members-{sequence}.json"
            members.write_text(
                json.dumps(
                    {
                        "members": [
                            directory_member(tmp_path / "kent.json", kent),
                            directory_member(tmp_path / "devon.json", devon),
                        ]
                    }
                )
            )
            signed = tmp_path / f"directory-{sequence}.json"
            a.patchwork(
                "directory_sign", "--key", str(key_file), "--members", str(members),
                "--sequence", str(sequence), "--out", str(signed),
            )  # fmt: skip
            a.patchwork("directory_publish", str(signed))
            return signed

        # 1. The directory brings each council into the other deployment: no card swapped.
        sign_and_publish(1, "active", "active")
        assert "added Kent" in b.patchwork("directory_fetch")
        for deployment, other in ((a, devon_id), (b, kent_id)):
            entry = peer(deployment, other)
            assert (entry["card"], entry["status"], entry["active"]) == ({}, "active", True)
        agreement_signed(a, b)
        seen = kent_asks(a, person)
        assert seen[0] == "Known to Devon", seen
        assert seen[1].startswith("  School nurse at Tiverton High School since ")

        # 2. Devon suspended: Kent's deployment stops asking at once (one fetch: A is the
        # publisher). Devon is on B and B's own: B leaves it as it is.
        sign_and_publish(2, "active", "suspended")
        assert peer(a, devon_id)["active"] is False
        assert "Known to Devon" not in kent_asks(a, person)
        b.patchwork("directory_fetch")
        assert peer(b, devon_id)["active"] is True

        # 3. Devon back, Kent suspended: B refuses Kent's signed lookup with a reason,
        # one fetch after the directory says so.
        sign_and_publish(3, "suspended", "active")
        assert kent_asks(a, person)[0] == "Known to Devon"
        b.patchwork("directory_fetch")
        assert (peer(b, kent_id)["status"], peer(b, kent_id)["active"]) == ("suspended", False)
        assert kent_asks(a, person) == ["Devon could not be checked"]
        metrics = httpx.get(
            f"http://127.0.0.1:{b.port}/metrics",
            headers={"Host": f"{b.domain}:{b.port}", "Authorization": f"Bearer {METRICS_TOKEN}"},
        ).text
        assert re.search(
            r'^patchwork_federation_refused_total\{[^}]*kind="lookup"[^}]*'
            r'reason="peer_suspended"[^}]*\} [1-9]',
            metrics,
            re.MULTILINE,
        ), metrics

        # 4. A forged directory (Kent made active again, sequence raised) is refused by
        # the publishing command, and by B when someone makes A serve it.
        forged = json.loads((tmp_path / "directory-3.json").read_text())
        forged["sequence"] = 4
        forged["members"][0]["status"] = "active"
        (tmp_path / "forged.json").write_text(json.dumps(forged))
        with pytest.raises(RuntimeError, match="Refused, nothing changed: bad_signature"):
            a.patchwork("directory_publish", str(tmp_path / "forged.json"))
        serve_instead(a, forged)
        fetched = run(["directory_fetch"], b.env, check=False)
        assert (in_force(a), in_force(b)) == (3, 3), fetched
        assert peer(b, kent_id)["active"] is False

        # 5. An expired directory, genuinely signed, is refused too; B keeps sequence 3
        # and says so where an operator looks, without becoming unready for it.
        key = governance.governance_key_load(key_file, PASSPHRASE.encode())
        expired = governance.directory_sign(
            keys=[key],
            members=json.loads((tmp_path / "members-1.json").read_text()),
            sequence=5,
            now=timezone.now() - timedelta(days=10),
            valid_days=2,
        )
        serve_instead(a, expired)
        run(["directory_fetch"], b.env, check=False)
        assert in_force(b) == 3
        assert peer(b, kent_id)["active"] is False
        ready = httpx.get(
            f"http://127.0.0.1:{b.port}/readyz", headers={"Host": f"{b.domain}:{b.port}"}
        ).json()
        assert ready["checks"]["directory"]["status"] == "warning", ready
        assert "expired" in ready["checks"]["directory"]["detail"]
        assert "sequence 3 stays in force" in ready["checks"]["directory"]["detail"]
        assert "directory" not in ready["failing"]


def test_the_directory_is_served_on_the_platform_host_only(world, db) -> None:  # type: ignore[no-untyped-def]
    """A council's host has no directory to give (and running this file alone needs one
    test with the database, so the test database the deployments copy exists)."""
    from django.test import Client

    host = world.brighton.get_primary_domain().domain
    assert Client(HTTP_HOST=host).get("/.well-known/patchwork/directory").status_code == 404
    assert Client(HTTP_HOST="localhost").get("/.well-known/patchwork/directory").status_code == 404
