"""The database plumbing under every request: instances from plain statements
(tenants.db.models_from_sql), the search path remembered per connection and statements
prepared on the server (tenants.postgresql_backend). They are there for speed; these tests
hold them to being exactly as correct as what they replace."""

from __future__ import annotations

from datetime import UTC, date

from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django_tenants.utils import schema_context

from core.models import Organisation, Person
from tenants.db import models_from_sql, prepared_cursor, tenant_connection
from tests.personas import sign_in


def test_models_from_sql_matches_the_orm_whatever_the_column_order(world, db) -> None:
    with schema_context(world.brighton.schema_name):
        person = Person.objects.create(
            given_name="Ffion",
            family_name="Rees-Jones",
            date_of_birth=date(2016, 3, 4),
            local_identifiers={"school": "UPN-123", "ids": [1, 2]},
        )
        # Columns in another order than the model's, plus one that is not a field.
        found = models_from_sql(
            Person,
            "SELECT p.local_identifiers, p.family_name, p.id, p.given_name, "
            "p.date_of_birth, 42 AS answer FROM core_person p WHERE p.id = %s",
            [person.pk],
        )
        assert len(found) == 1
        loaded = found[0]
        assert loaded.pk == person.pk
        assert loaded.full_name == "Ffion Rees-Jones"
        assert loaded.date_of_birth == date(2016, 3, 4)
        assert loaded.local_identifiers == {"school": "UPN-123", "ids": [1, 2]}
        assert loaded.answer == 42  # type: ignore[attr-defined]
        assert not loaded._state.adding
        # A column not selected is loaded on first use, as with .only().
        assert loaded.sex == Person.objects.get(pk=person.pk).sex
        assert models_from_sql(Person, "SELECT * FROM core_person WHERE id = %s", [-1]) == []


def test_models_from_sql_loads_a_related_instance_in_the_same_row(world, db) -> None:
    """`related` fills the foreign key as select_related would: reading the organisation's
    selected fields asks the database nothing; one not selected is loaded on first use."""
    from core.models import Practitioner
    from tests.factories import OrganisationFactory, PractitionerFactory

    with schema_context(world.brighton.schema_name):
        organisation = OrganisationFactory(name="Hove Park School", phone="01273 000000")
        made = PractitionerFactory(organisation=organisation, job_title="Teacher")
        sql = (
            "SELECT pr.*, o.id AS organisation__id, o.name AS organisation__name "
            "FROM core_practitioner pr JOIN core_organisation o ON o.id = pr.organisation_id "
            "WHERE pr.user_id = %s"
        )
        (loaded,) = models_from_sql(Practitioner, sql, [made.user_id], related=["organisation"])
        with CaptureQueriesContext(connection) as queries:
            assert loaded.job_title == "Teacher"
            assert loaded.organisation.pk == organisation.pk
            assert loaded.organisation.name == "Hove Park School"
        assert queries.captured_queries == []
        assert loaded.organisation.phone == "01273 000000"  # not selected: read now
        assert models_from_sql(Practitioner, sql, [-1], related=["organisation"]) == []


def _search_path_statements(queries: CaptureQueriesContext) -> list[str]:
    return [q["sql"] for q in queries.captured_queries if q["sql"].startswith("SET search_path")]


def test_the_search_path_is_set_once_per_council_and_always_when_it_changes(world, db) -> None:
    """Requests to one council after another send no SET; a request to the other council
    sends one, and sees only its own rows, both ways."""
    with schema_context(world.brighton.schema_name):
        Organisation.objects.create(name="Only In Brighton", agency_type="school")
    with schema_context(world.staffordshire.schema_name):
        Organisation.objects.create(name="Only In Staffordshire", agency_type="school")
    brighton = sign_in(world.brighton_social_worker)
    staffs = sign_in(world.staffordshire_gp)
    assert brighton.get("/").status_code == 200
    with CaptureQueriesContext(connection) as queries:
        assert brighton.get("/").status_code == 200
    assert _search_path_statements(queries) == []
    for client, schema, mine, theirs in [
        (staffs, world.staffordshire.schema_name, "Only In Staffordshire", "Only In Brighton"),
        (brighton, world.brighton.schema_name, "Only In Brighton", "Only In Staffordshire"),
    ]:
        with CaptureQueriesContext(connection) as queries:
            assert client.get("/").status_code == 200
        assert len(_search_path_statements(queries)) == 1
        assert schema in _search_path_statements(queries)[0]
        names = set(Organisation.objects.values_list("name", flat=True))
        assert mine in names and theirs not in names


def test_a_rolled_back_search_path_is_set_again(world, db) -> None:
    """A SET inside a savepoint that is rolled back is undone by PostgreSQL: the connection
    must not go on believing it is in force, and the next statement runs in the schema the
    code chose."""
    conn = tenant_connection()
    conn.set_tenant(world.brighton)
    with transaction.atomic():
        Organisation.objects.create(name="Only In Brighton", agency_type="school")
        try:
            with transaction.atomic():
                conn.set_tenant(world.staffordshire)
                Organisation.objects.exists()  # the SET to Staffordshire, inside the savepoint
                raise RuntimeError
        except RuntimeError:
            pass
        # PostgreSQL undid the SET; the code still means Staffordshire, and gets it.
        assert not Organisation.objects.filter(name="Only In Brighton").exists()
        assert world.staffordshire.schema_name in _server_search_path()
        conn.set_tenant(world.brighton)
        assert Organisation.objects.filter(name="Only In Brighton").exists()


def _server_search_path() -> str:
    with connection.cursor() as cursor:
        cursor.execute("SHOW search_path")
        return str(cursor.fetchone()[0])


def test_code_that_sets_the_search_path_itself_leaves_it_right(world, db) -> None:
    """The schema copy sets the search path with its own SQL inside the transaction; after
    it the connection must not trust what it remembered."""
    from tenants.cloning import clone_script
    from tenants.models import Council

    conn = tenant_connection()
    conn.set_schema_to_public()
    assert Council.objects.filter(pk=world.brighton.pk).exists()  # public path in force
    clone_script(world.brighton.schema_name)
    conn.set_schema_to_public()
    assert Council.objects.filter(pk=world.brighton.pk).exists()
    assert _server_search_path() == "public"


ORGANISATION_NAMES = "SELECT name FROM core_organisation WHERE name LIKE %s ORDER BY name"


def _names_prepared() -> list[str]:
    with prepared_cursor() as cursor:
        cursor.execute(ORGANISATION_NAMES, ["Only In %"])
        return [row[0] for row in cursor.fetchall()]


def _prepared_runs() -> dict[str, tuple[int, int]]:
    """The statements the server holds prepared for ORGANISATION_NAMES, by the schema named
    in their text, with how many times each ran on a generic plan and on a custom plan."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT statement, generic_plans, custom_plans "
            "FROM pg_prepared_statements WHERE statement LIKE %s",
            ["SELECT name FROM core_organisation WHERE name LIKE $1%"],
        )
        return {
            statement.rsplit("/*", 1)[1].strip(" */"): (int(generic), int(custom))
            for statement, generic, custom in cursor.fetchall()
        }


def _times_prepared_and_run() -> tuple[int, int]:
    """How many statements the server holds prepared for ORGANISATION_NAMES, and how many
    times they have run (the generic and custom plan counters of PostgreSQL 14+)."""
    runs = _prepared_runs()
    return len(runs), sum(generic + custom for generic, custom in runs.values())


def test_a_prepared_statement_is_planned_once_per_council_and_reads_each_council(world, db) -> None:
    """One statement text run for one council, then the other, then the first again: each
    council has its own prepared statement (decision 0025), planned once under its own
    search path and never re-planned at a switch, and each sees only its own rows."""
    with schema_context(world.brighton.schema_name):
        Organisation.objects.create(name="Only In Brighton", agency_type="school")
    with schema_context(world.staffordshire.schema_name):
        Organisation.objects.create(name="Only In Staffordshire", agency_type="school")
    conn = tenant_connection()
    for council, mine in [
        (world.brighton, "Only In Brighton"),
        (world.staffordshire, "Only In Staffordshire"),
        (world.brighton, "Only In Brighton"),
        (world.staffordshire, "Only In Staffordshire"),
    ]:
        conn.set_tenant(council)
        assert _names_prepared() == [mine]
    # One generic plan each, reused: no custom planning (force_generic_plan, settings).
    assert _prepared_runs() == {
        world.brighton.schema_name: (2, 0),
        world.staffordshire.schema_name: (2, 0),
    }


def test_a_statement_prepared_for_one_council_still_reads_the_council_in_force(world, db) -> None:
    """The schema in a statement's text only names which prepared copy to use; which
    tables it reads is still the search path's. A cursor made for Brighton, run after
    another cursor switched the connection to Staffordshire, reads Staffordshire's rows:
    PostgreSQL re-plans a cached plan whose search path differs (decision 0005)."""
    with schema_context(world.brighton.schema_name):
        Organisation.objects.create(name="Only In Brighton", agency_type="school")
    with schema_context(world.staffordshire.schema_name):
        Organisation.objects.create(name="Only In Staffordshire", agency_type="school")
    conn = tenant_connection()
    conn.set_tenant(world.brighton)
    assert _names_prepared() == ["Only In Brighton"]
    with prepared_cursor() as made_for_brighton:
        conn.set_tenant(world.staffordshire)
        with connection.cursor() as other:  # making it sets Staffordshire's search path
            other.execute("SELECT 1")
        made_for_brighton.execute(ORGANISATION_NAMES, ["Only In %"])
        assert [row[0] for row in made_for_brighton.fetchall()] == ["Only In Staffordshire"]


def test_a_prepared_statement_survives_a_rolled_back_transaction(world, db) -> None:
    """Preparing is not undone by a rollback, and psycopg knows it: the statement prepared
    in a transaction that failed still runs afterwards, and is not prepared twice."""
    tenant_connection().set_tenant(world.brighton)
    Organisation.objects.create(name="Only In Brighton", agency_type="school")
    try:
        with transaction.atomic():
            assert _names_prepared() == ["Only In Brighton"]
            Organisation.objects.create(name="Only In Brighton, briefly", agency_type="school")
            assert _names_prepared() == ["Only In Brighton", "Only In Brighton, briefly"]
            raise RuntimeError
    except RuntimeError:
        pass
    assert _names_prepared() == ["Only In Brighton"]
    count, _runs = _times_prepared_and_run()
    assert count == 1


def test_statements_without_parameters_are_not_prepared(world, db) -> None:
    tenant_connection().set_tenant(world.brighton)
    with prepared_cursor() as cursor:
        cursor.execute("SELECT count(*) FROM core_organisation WHERE name = 'x'")
        assert cursor.fetchone() == (0,)
        cursor.execute(
            "SELECT count(*) FROM pg_prepared_statements WHERE statement LIKE %s", ["%name = 'x'%"]
        )
        assert cursor.fetchone() == (0,)


def test_a_prepared_statement_goes_on_working_when_a_migration_changes_its_table(world, db) -> None:
    """A running process keeps its prepared statements while a release's migration adds a
    column or changes one's type: PostgreSQL re-plans them, and `*` takes in the change."""
    tenant_connection().set_tenant(world.brighton)
    Organisation.objects.create(name="Only In Brighton", agency_type="school", phone="01273")
    sql = "SELECT o.* FROM core_organisation o WHERE o.name = %s"
    (before,) = models_from_sql(Organisation, sql, ["Only In Brighton"])
    with connection.cursor() as cursor:
        cursor.execute("ALTER TABLE core_organisation ADD COLUMN added_by_a_release integer")
        cursor.execute("ALTER TABLE core_organisation ALTER COLUMN phone TYPE text")
    (after,) = models_from_sql(Organisation, sql, ["Only In Brighton"])
    assert after.pk == before.pk and after.phone == "01273"
    assert after.added_by_a_release is None  # type: ignore[attr-defined]
    assert _prepared_count("SELECT o.* FROM core_organisation o WHERE o.name = $1%") == 1


def _prepared_count(statement: str) -> int:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_prepared_statements WHERE statement LIKE %s", [statement]
        )
        return int(cursor.fetchone()[0])


def test_a_statement_naming_its_schemas_is_still_prepared_once_per_council(world, db) -> None:
    """Routing reads `public.tenants_council` whatever council is in force, but PostgreSQL
    plans a prepared statement again whenever the search path differs from the one it was
    planned under, schema-qualified or not: so it too has one prepared copy per council's
    search path, and a connection switching council does not plan it at every request."""
    from tenants.middleware import COUNCIL_BY_HOST

    host = world.brighton.domains.first().domain
    conn = tenant_connection()
    for council in [world.brighton, world.staffordshire, world.brighton, world.staffordshire]:
        conn.set_tenant(council)
        found = models_from_sql(type(world.brighton), COUNCIL_BY_HOST, [host])
        assert [c.pk for c in found] == [world.brighton.pk]
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT statement, generic_plans + custom_plans FROM pg_prepared_statements "
            "WHERE statement LIKE %s",
            [COUNCIL_BY_HOST[:40] + "%"],
        )
        runs = {s.rsplit("/*", 1)[1].strip(" */"): int(n) for s, n in cursor.fetchall()}
    assert runs == {world.brighton.schema_name: 2, world.staffordshire.schema_name: 2}


def test_the_connection_keeps_one_prepared_cursor_and_every_statement_is_seen(world, db) -> None:
    """Each `prepared_cursor()` hands out the connection's one kept psycopg cursor in a new
    Django wrapper: closing the wrapper leaves it open, and the query log (what the
    statement-count tests and benchmarks read) still sees each statement run on it."""
    tenant_connection().set_tenant(world.brighton)
    with schema_context(world.brighton.schema_name):
        Organisation.objects.create(name="Only In Brighton", agency_type="school")
    with prepared_cursor() as first:
        kept = first.cursor
    assert not kept.closed
    with CaptureQueriesContext(connection) as seen, prepared_cursor() as second:
        assert second.cursor is kept
        second.execute(ORGANISATION_NAMES, ["Only In %"])
        assert [row[0] for row in second.fetchall()] == ["Only In Brighton"]
    assert [q["sql"] for q in seen.captured_queries] == [
        ORGANISATION_NAMES.replace("%s", "'Only In %'")
    ]


def test_the_health_check_finds_an_ended_connection_and_sends_nothing_on_a_busy_one(db) -> None:
    """`CONN_HEALTH_CHECKS`: a connection the server ended (as at a restart) is found and
    replaced before the request uses it; a busy one (checked within the last few seconds),
    idle and with nothing to read, is trusted without a round trip (the server's last
    statement from it is still the one we sent); one left longer is asked `SELECT 1`."""
    import select

    from django.db import connections

    def last_statement(pid: int) -> str:
        with connection.cursor() as cursor:
            # The test's transaction keeps one snapshot of the statistics unless told.
            cursor.execute("SELECT pg_stat_clear_snapshot()")
            cursor.execute("SELECT query FROM pg_stat_activity WHERE pid = %s", [pid])
            return str(cursor.fetchone()[0])

    def check() -> None:
        other.health_check_done = False
        other.close_if_health_check_failed()

    other = connections.create_connection("default")
    try:
        other.ensure_connection()
        assert other.health_check_enabled
        pid = other.connection.info.backend_pid
        check()  # the first check of a connection asks
        assert last_statement(pid) == "SELECT 1"
        with other.connection.cursor() as cursor:
            cursor.execute("SELECT 41")
        check()  # checked a moment ago: trusted
        assert other.connection is not None and last_statement(pid) == "SELECT 41"
        other._checked_at -= other.TRUSTED_FOR + 1  # left alone for a while: asked again
        check()
        assert last_statement(pid) == "SELECT 1"
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_terminate_backend(%s)", [pid])
        # The server says why and closes the socket; wait (at most 5 s) for that to arrive.
        select.select([other.connection.fileno()], [], [], 5)
        check()
        assert other.connection is None
        other.ensure_connection()
        with other.connection.cursor() as cursor:
            cursor.execute("SELECT 42")
            assert cursor.fetchone() == (42,)
    finally:
        other.close()


def test_times_read_by_the_prepared_cursor_are_the_ones_django_reads(world, db) -> None:
    """The prepared cursor reads times with psycopg's own (C) loader: the same instants,
    in the same zone object, as Django's cursors give."""
    tenant_connection().set_tenant(world.brighton)
    sql = "SELECT %s::timestamptz, %s::timestamptz"
    moments = ["2026-03-29 01:30:00.123456+00", "2026-12-31 23:59:59+05:30"]
    with connection.cursor() as cursor:
        cursor.execute(sql, moments)
        djangos = cursor.fetchone()
    with prepared_cursor() as cursor:
        cursor.execute(sql, moments)
        ours = cursor.fetchone()
    assert ours == djangos
    assert [t.tzinfo for t in ours] == [t.tzinfo for t in djangos] == [UTC, UTC]
