"""An upgrade from today's main keeps every council whole: the old code (commit OLD_MAIN,
taken from this repository) migrates a fresh database, onboards two councils and fills every
table of every schema; this checkout's code then migrates the same database. Every row of
every table is still there, unchanged, every audit chain still verifies, and a second
migration changes nothing.

Both codes run as subprocesses against a database of their own on the test server, so the
old code is really the old code (its tree first on PYTHONPATH) and nothing here goes through
the Django of the test process but the server's address."""

from __future__ import annotations

import os
import re
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
from django.conf import settings
from psycopg import sql

# Today's main, before the teamwork and federation models move out of core and tenants.
OLD_MAIN = "c0fd42ae60914a6c2ad5c730fc8423305fb1812a"
CHILDREN_PER_COUNCIL = 40
# Migration bookkeeping: rewritten by any upgrade, so only their survival is checked.
BOOKKEEPING = {"django_migrations", "django_content_type"}
# Permissions for models that are new (or new to an app) are added by every migrate; the
# permissions that were there must stay exactly as they were.
MAY_GROW = frozenset({"auth_permission"})
# Never handed to the subprocesses: the old and new code run with no Redis (tasks run
# in-process), no real email, and only the tree under test on the path.
UNSET = {
    "REDIS_URL",
    "CELERY_TASK_ALWAYS_EAGER",
    "NOTIFY_API_KEY",
    "NOTIFY_TEMPLATE_ID",
    "PYTHONPATH",
    "TEST_DATABASE_NAME",
}

# Run by the old code (`shell -c`) after `demo_setup`: every kind of row the seeder does not
# make, through the old code's own services where there is one, so the audit chain grows as
# it does in use. Some text has tabs, newlines, quotes and non-ASCII letters.
FILL = r"""
import hashlib
import os
from datetime import timedelta

import deploy
from axes.models import AccessAttempt, AccessAttemptExpiration, AccessFailureLog, AccessLog
from django.contrib.auth.models import Group, Permission
from django.contrib.sessions.backends.db import SessionStore
from django.db import connection
from django.utils import timezone
from django_tenants.utils import schema_context

from accounts.models import Invitation, User
from core import contacts, meetings, reminders, services, team_messages, team_tasks
from core.audit import audit_record
from core.models import Involvement, MeetingInvitation, Person, Practitioner
from core.notifications import notification_preferences_set
from federation import services as federation
from federation.client import peer_public_key
from federation.models import Exchange, OutboxMessage
from federation.selectors import peer_active
from tenants.models import Council, FederationPeer

running = os.path.realpath(os.path.dirname(deploy.__file__))
if not running.startswith(os.path.realpath(os.environ["PATCHWORK_OLD_TREE"])):
    raise SystemExit(f"the old code should run, but this is {running}")

AWKWARD = 'St Mary\'s "tab\there" \\ comma, new\nline — Ŵ'


def accounts_fill(user):
    group = Group.objects.create(name="Information governance")
    group.permissions.add(Permission.objects.order_by("pk").first())
    user.groups.add(group)
    user.user_permissions.add(Permission.objects.order_by("pk").last())
    session = SessionStore()
    session["note"] = AWKWARD
    session.create()
    Invitation.objects.create(
        user=user,
        token_hash=hashlib.sha256(f"{connection.schema_name}:{user.pk}".encode()).hexdigest(),
        expires_at=timezone.now() + timedelta(days=7),
    )
    seen = {
        "user_agent": "Firefox",
        "ip_address": "192.0.2.7",
        "username": user.email,
        "http_accept": "text/html",
        "path_info": "/sign-in/",
    }
    attempt = AccessAttempt.objects.create(
        **seen, get_data="", post_data="email=" + user.email, failures_since_start=2
    )
    AccessAttemptExpiration.objects.create(
        access_attempt=attempt, expires_at=timezone.now() + timedelta(hours=1)
    )
    AccessFailureLog.objects.create(**seen, locked_out=False)
    AccessLog.objects.create(**seen, session_hash="0" * 64)


def teamwork_fill(slug):
    users = {
        who: User.objects.get(email=f"{who}@{slug}.example")
        for who in ("social.worker", "school.nurse", "camhs.worker", "admin")
    }
    social, nurse, camhs = users["social.worker"], users["school.nurse"], users["camhs.worker"]
    child = (
        Person.objects.filter(involvements__practitioner__user=nurse)
        .filter(involvements__practitioner__user=camhs)
        .filter(involvements__practitioner__user=social)
        .order_by("pk")
        .first()
    )
    today = timezone.localdate()
    now = timezone.now()
    notification_preferences_set(user=nurse, choices={"meeting_set": "immediate"})
    team_tasks.task_create(
        actor=social, person=child, assignee=nurse, text="Book the review — Ŵ", due_date=today
    )
    done = team_tasks.task_create(
        actor=social, person=child, assignee=social, text="Call school", due_date=today
    )
    team_tasks.task_close(actor=social, task=done, status="done")
    team_messages.team_message_send(sender=social, person=child, text="Review on Tuesday")
    meeting = meetings.meeting_schedule(
        organiser=social,
        person=child,
        title="Team around the child",
        starts_at=now + timedelta(days=2),
        ends_at=now + timedelta(days=2, hours=1),
        place=AWKWARD,
    )
    meetings.meeting_respond(
        invitation=MeetingInvitation.objects.get(meeting=meeting, invitee=nurse),
        response="accepted",
    )
    contacts.contact_log(actor=nurse, person=child, kind="saw")
    outsider = (
        Practitioner.objects.exclude(user__in=users.values())
        .exclude(involvements__person=child)
        .order_by("pk")
        .first()
    )
    services.record_open(
        user=outsider.user, person=child, reason="safeguarding", note="A concern from school"
    )
    sensitive = Involvement.objects.get(person=child, practitioner__user=camhs)
    request = services.contact_request_send(
        user=nurse, person=child, organisation=sensitive.organisation, message="Please call me"
    )
    services.contact_request_decide(user=camhs, request=request, accept=True, response="Yes")
    services.notifications_read(user=social)
    audit_record(actor=social, action="person.viewed", person_id=child.pk, detail={"n": AWKWARD})
    # A year on, every seeded involvement is due for confirmation: reminders and their emails.
    reminders.reminders_run(now=now + timedelta(days=400))
    return child


brighton, staffs = Council.objects.exclude(schema_name="public").order_by("code")
with schema_context("public"):
    accounts_fill(User.objects.get(email="operator@patchwork.example"))
    FederationPeer.objects.create(
        federation_id="council:W06000015",
        name="Cardiff",
        base_url="https://cardiff.patchwork.example",
        trusted_keys=[{"kid": "cardiff-1", "key": "AAAA"}],
        card={"name": "Cardiff", "note": AWKWARD},
    )
federation.council_keys_rotate(council=brighton)
children = {}
for council in (brighton, staffs):
    with schema_context(council.schema_name):
        accounts_fill(User.objects.get(email=f"admin@{council.slug}.example"))
        children[council.code] = teamwork_fill(council.slug)

today = timezone.localdate()
with schema_context(brighton.schema_name):
    proposed = federation.agreement_propose(
        actor=None,
        partner_id=staffs.federation_id,
        purposes=["safeguarding"],
        shareable_roles=["School nurse", "Child protection social worker"],
        legal_basis="public_task",
        demographic_matching=True,
        valid_from=today - timedelta(days=1),
        valid_until=today + timedelta(days=365),
    )
    proposed = federation.agreement_sign_here(actor=None, agreement=proposed)
    document = federation.agreement_signed_document(proposed)
    secret = federation.agreement_secret(proposed)
with schema_context(staffs.schema_name):
    brighton_peer = peer_active(brighton.federation_id)
    received = federation.agreement_received(
        peer=brighton_peer,
        document=document,
        secret=secret,
        public_key_for=lambda kid: peer_public_key(brighton_peer, kid),
    )
    received = federation.agreement_sign_here(actor=None, agreement=received)
    countersigned = federation.agreement_signed_document(received)
    federation.match_keys_rebuild(agreement=received)
with schema_context(brighton.schema_name):
    staffs_peer = peer_active(staffs.federation_id)
    proposed = federation.agreement_countersigned(
        peer=staffs_peer,
        document=countersigned,
        public_key_for=lambda kid: peer_public_key(staffs_peer, kid),
    )
    federation.match_keys_rebuild(agreement=proposed)
for council, partner in ((brighton, staffs), (staffs, brighton)):
    with schema_context(council.schema_name):
        Exchange.objects.create(
            direction="out",
            kind="lookup",
            peer_id=partner.federation_id,
            agreement_id=proposed.agreement_id,
            request_id=f"request-{council.code}",
            nonce=f"nonce-{council.code}",
            body_sha256="0" * 64,
            purpose="safeguarding",
            status_code=200,
            outcome="answered",
            payload={"note": AWKWARD},
            person=children[council.code],
        )
        OutboxMessage.objects.create(
            idempotency_key=f"push-{council.code}",
            peer_id=partner.federation_id,
            agreement_id=proposed.agreement_id,
            in_reply_to=f"request-{partner.code}",
            payload={"pointers": [{"role": "School nurse"}]},
            person=children[council.code],
        )
"""


@dataclass(frozen=True)
class TableState:
    """One table as the upgrade must keep it: its columns and primary key (which later
    snapshots read it by), its rows and their checksum, its highest id, and where its id
    sequence stands (a table copied rather than kept would restart it)."""

    columns: tuple[str, ...]
    key: tuple[str, ...]
    rows: int
    digest: str
    last_key: int | None
    sequence: int | None


Snapshot = dict[tuple[str, str], TableState]


def _catalog(cursor: psycopg.Cursor) -> dict[tuple[str, str], tuple[list[str], list[str]]]:
    """(schema, table) -> (columns in order, primary-key columns) of every base table."""
    cursor.execute(
        """
        SELECT t.table_schema, t.table_name,
               array_agg(c.column_name::text ORDER BY c.ordinal_position),
               coalesce((
                   SELECT array_agg(a.attname::text ORDER BY k.n)
                   FROM pg_index i
                   CROSS JOIN unnest(i.indkey) WITH ORDINALITY AS k(attnum, n)
                   JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
                   WHERE i.indisprimary
                     AND i.indrelid = format('%I.%I', t.table_schema, t.table_name)::regclass
               ), '{}')
        FROM information_schema.tables t
        JOIN information_schema.columns c USING (table_schema, table_name)
        WHERE t.table_type = 'BASE TABLE'
          AND t.table_schema NOT IN ('pg_catalog', 'information_schema')
          AND t.table_schema !~ '^pg_'
        GROUP BY t.table_schema, t.table_name
        """
    )
    return {(schema, table): (columns, key) for schema, table, columns, key in cursor.fetchall()}


def snapshot(
    connection: psycopg.Connection, like: Snapshot | None = None, grow: frozenset[str] = frozenset()
) -> Snapshot:
    """Every table of every schema. With `like`, the tables it knows are read by its columns
    and key, so a column a migration adds changes nothing; a table named in `grow` is read
    only up to the last id it had then."""
    found: Snapshot = {}
    with connection.cursor() as cursor:
        cursor.execute("SET TimeZone = 'UTC'")
        for (schema, table), (columns, key) in sorted(_catalog(cursor).items()):
            earlier = like.get((schema, table)) if like else None
            if earlier is not None:
                columns = [c for c in earlier.columns if c in columns]
                if set(earlier.key) <= set(columns):
                    key = list(earlier.key)
            sequence = None
            if len(key) == 1:
                cursor.execute(
                    "SELECT pg_get_serial_sequence(format('%%I.%%I', %s::text, %s::text), %s)",
                    [schema, table, key[0]],
                )
                (sequence_name,) = cursor.fetchone()
                if sequence_name:
                    cursor.execute(
                        sql.SQL(
                            "SELECT CASE WHEN is_called THEN last_value ELSE last_value - 1 END"
                            " FROM {}"
                        ).format(sql.SQL(sequence_name))
                    )
                    (sequence,) = cursor.fetchone()
            row = sql.SQL("ROW({})::text").format(
                sql.SQL(", ").join(sql.Identifier("t", c) for c in columns)
            )
            order = sql.SQL(", ").join([*(sql.Identifier("t", c) for c in key), row])
            last = sql.SQL("NULL")
            if sequence is not None:
                last = sql.SQL("max({})").format(sql.Identifier("t", key[0]))
            where = sql.SQL("")
            if earlier is not None and table in grow and earlier.last_key is not None:
                where = sql.SQL("WHERE {} <= {}").format(
                    sql.Identifier("t", earlier.key[0]), sql.Literal(earlier.last_key)
                )
            cursor.execute(
                sql.SQL(
                    "SELECT count(*), md5(coalesce(string_agg({row}, E'\\n' ORDER BY {order}),"
                    " '')), {last} FROM {name} t {where}"
                ).format(
                    row=row, order=order, last=last, name=sql.Identifier(schema, table), where=where
                )
            )
            rows, digest, last_key = cursor.fetchone()
            found[(schema, table)] = TableState(
                columns=tuple(columns),
                key=tuple(key),
                rows=rows,
                digest=digest,
                last_key=last_key,
                sequence=sequence,
            )
    return found


def upgrade_losses(before: Snapshot, after: Snapshot) -> list[str]:
    """What the upgrade lost or changed, one line per table, naming schema and table."""
    problems = []
    for (schema, table), was in sorted(before.items()):
        where = f"{schema}.{table}"
        now = after.get((schema, table))
        if now is None:
            if was.rows:
                problems.append(f"{where}: gone, with its {was.rows} rows")
            continue
        gone = [c for c in was.columns if c not in now.columns]
        if gone and was.rows:
            problems.append(f"{where}: columns gone: {', '.join(gone)}")
            continue
        if table in BOOKKEEPING:
            continue
        if (now.rows, now.digest) != (was.rows, was.digest):
            problems.append(
                f"{where}: {was.rows} rows (md5 {was.digest}) before, "
                f"{now.rows} rows (md5 {now.digest}) after"
            )
        if was.sequence is not None and (now.sequence is None or now.sequence < was.sequence):
            problems.append(
                f"{where}: its id sequence was at {was.sequence}, now {now.sequence}: "
                "new rows would reuse ids"
            )
    return problems


@dataclass
class Deployment:
    """One code tree run as `patchwork` against the upgrade's database."""

    label: str
    tree: Path
    command: list[str]
    env: dict[str, str]

    def run(self, *args: str) -> str:
        started = time.monotonic()
        done = subprocess.run(
            [*self.command, *args],
            cwd=self.tree,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        shown = " ".join("<script>" if "\n" in a else a for a in args)
        print(f"  {self.label}: {shown} ({time.monotonic() - started:.1f}s)")
        if done.returncode:
            pytest.fail(
                f"`patchwork {shown}` on the {self.label} code exited {done.returncode}\n"
                f"stdout:\n{done.stdout[-4000:]}\nstderr:\n{done.stderr[-4000:]}"
            )
        return done.stdout


def _environment(tree: Path, database_url: str, data_dir: Path, old_tree: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in UNSET}
    env.update(
        DJANGO_SETTINGS_MODULE="deploy.settings",
        PYTHONPATH=str(tree),
        PATCHWORK_ENV="test",
        PATCHWORK_DATA_DIR=str(data_dir),
        DATABASE_URL=database_url,
        EMAIL_BACKEND="django.core.mail.backends.locmem.EmailBackend",
        PATCHWORK_OLD_TREE=str(old_tree),
    )
    return env


def _repository() -> Path:
    here = Path(__file__).resolve().parent
    top = subprocess.run(
        ["git", "rev-parse", "--show-toplevel"], cwd=here, capture_output=True, text=True
    )
    if top.returncode:
        pytest.fail(f"The upgrade test needs the git repository it lives in: {top.stderr}")
    return Path(top.stdout.strip())


def _old_main(repository: Path, into: Path) -> Path:
    known = subprocess.run(
        ["git", "cat-file", "-e", f"{OLD_MAIN}^{{commit}}"], cwd=repository, capture_output=True
    )
    if known.returncode:
        pytest.fail(
            f"Commit {OLD_MAIN} (the main an existing deployment runs) is not in {repository}: "
            f"fetch it (e.g. `git fetch --unshallow`) so the upgrade from it can be tested"
        )
    into.mkdir()
    archive = into.parent / "old-main.tar"
    subprocess.run(["git", "archive", "-o", str(archive), OLD_MAIN], cwd=repository, check=True)
    subprocess.run(["tar", "-x", "-f", str(archive), "-C", str(into)], check=True)
    return into


def _with_database(url: str, name: str) -> str:
    return urlunsplit(urlsplit(url)._replace(path=f"/{name}"))


@contextmanager
def _fresh_database() -> Iterator[str]:
    """A new, uniquely named database on the test settings' server, dropped afterwards."""
    name = f"pw_upgrade_{os.getpid()}_{secrets.token_hex(4)}"
    server = _with_database(settings.DATABASE_URL, "postgres")
    with psycopg.connect(server, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield _with_database(settings.DATABASE_URL, name)
    finally:
        with psycopg.connect(server, autocommit=True) as admin:
            admin.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


def _snapshot_of(
    url: str, like: Snapshot | None = None, grow: frozenset[str] = frozenset()
) -> Snapshot:
    with psycopg.connect(url) as connection:
        return snapshot(connection, like, grow)


def test_it_keeps_every_council_row_and_audit_chain_through_an_upgrade_from_main(
    tmp_path: Path,
) -> None:
    """A deployment filled by today's main (two councils with people, involvements,
    teamwork, federation, sign-in records and audit events in every table) is migrated by
    this code: every table of every schema keeps its rows unchanged, each council's audit
    chain is intact, and migrating again changes nothing."""
    started = time.monotonic()
    repository = _repository()
    old_tree = _old_main(repository, tmp_path / "old-main")
    new_venv = repository / ".venv" / "bin" / "patchwork"
    new_command = [str(new_venv)] if new_venv.exists() else [sys.executable, "-m", "django"]
    with _fresh_database() as url:
        old = Deployment(
            label="old (main)",
            tree=old_tree,
            command=[sys.executable, "-c", "from deploy.cli import main; main()"],
            env=_environment(old_tree, url, tmp_path / "data", old_tree),
        )
        new = Deployment(
            label="new",
            tree=repository,
            command=new_command,
            env=_environment(repository, url, tmp_path / "data", old_tree),
        )
        old.run("migrate_platform")
        old.run("demo_setup", "--children", str(CHILDREN_PER_COUNCIL))
        old.run("shell", "-c", FILL)
        old_audit = old.run("verify_audit")
        assert old_audit.count(", intact") == 2, old_audit

        before = _snapshot_of(url)
        with psycopg.connect(url) as connection:
            councils = connection.execute(
                "SELECT code, schema_name FROM tenants_council ORDER BY code"
            ).fetchall()
        assert len(councils) == 2, councils
        filled = {"public", *(schema for _, schema in councils)}
        empty = sorted(
            f"{s}.{t}" for (s, t), state in before.items() if s in filled and not state.rows
        )
        assert not empty, f"The old code's fill left tables empty, so they go unchecked: {empty}"
        print(
            f"  before: {len(before)} tables, "
            f"{sum(state.rows for state in before.values()):,} rows in "
            f"{len({schema for schema, _ in before})} schemas"
        )

        migrated = new.run("migrate_platform")
        # What site.yml's "changed" rests on: a run that applied migrations does not say
        # there was nothing to do, and a run with nothing to apply says so.
        assert "Nothing to migrate" not in migrated, migrated
        after = _snapshot_of(url, like=before, grow=MAY_GROW)
        losses = upgrade_losses(before, after)
        assert not losses, "The upgrade lost or changed rows:\n" + "\n".join(losses)
        for code, schema in councils:
            report = new.run("verify_audit", code)
            intact = re.search(
                rf"^{re.escape(code)} .*: (\d+) events, intact$", report, re.MULTILINE
            )
            assert intact, f"{code}'s audit chain after the upgrade:\n{report}"
            assert int(intact[1]) == before[(schema, "core_auditevent")].rows, report
            # A sound log gets its first signed checkpoint (decision 0012).
            assert f"checkpoint 1 signed ({intact[1]} events)" in report, report

        # Everything the upgrade left, the rows it may add included, and the checkpoints
        # verify_audit signed: the no-op check below.
        settled = _snapshot_of(url, like=before)

        migrated_again = new.run("migrate_platform")
        assert "Nothing to migrate: every schema was already up to date" in migrated_again
        again = _snapshot_of(url, like=before)
        changed = sorted(
            ".".join(table)
            for table in settled.keys() | again.keys()
            if settled.get(table) != again.get(table)
        )
        assert not changed, f"Migrating again changed: {changed}"
    print(f"  upgrade test: {time.monotonic() - started:.1f}s")
