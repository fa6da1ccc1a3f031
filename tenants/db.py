"""The database connection as django-tenants makes it: schema-aware, and typed as such."""

from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar, cast

from django.db import connection, models
from django.db.models import DEFERRED
from django_tenants.postgresql_backend.base import DatabaseWrapper
from psycopg import sql

M = TypeVar("M", bound=models.Model)


def tenant_connection() -> DatabaseWrapper:
    """The default connection, with `schema_name`, `set_tenant` and `set_schema_to_public`."""
    return cast(DatabaseWrapper, connection)


def search_path_changed_here() -> None:
    """Call after setting the search path with your own SQL (see
    tenants.postgresql_backend): the connection sets it again before its next statement."""
    forget = getattr(connection, "forget_search_path", None)
    if forget is not None:
        forget()
    tenant_connection().set_schema_to_public()


def prepared_cursor() -> Any:
    """A cursor on the default connection whose statements with parameters are planned
    once per connection and then only run (tenants.postgresql_backend, decision 0005): for
    the fixed plain statements made on every request. Elsewhere use `connection.cursor()`.
    Each is prepared once per council (decision 0025), even one that names its schemas:
    PostgreSQL plans a prepared statement again whenever the search path has changed."""
    return connection.prepared_cursor()  # type: ignore[attr-defined]


def current_schema() -> str:
    """The schema this connection is using: a council's, or "public"."""
    return tenant_connection().schema_name


def sql_identifier(*names: str) -> str:
    """`names` as one SQL identifier, quoted by psycopg: `sql_identifier(schema, table)` is
    `"schema"."table"`, with any `"` inside a name doubled. For the schema, table and column
    names known only at run time; Django's `quote_name` leaves such quotes as they are."""
    return sql.Identifier(*names).as_string(connection.connection)


def models_from_sql(
    model: type[M],
    sql: str,
    params: Sequence[Any] | Mapping[str, Any],
    *,
    related: Sequence[str] = (),
) -> list[M]:
    """Instances of `model` from one plain statement (`SELECT t.*, [extra columns]`), for
    reads on every request: Django's `raw()` spends more of its time mapping columns than
    the database spends answering. Columns that are not the model's fields become
    attributes of the instance; JSON columns are decoded as the ORM would. The statement
    is prepared on the server (`prepared_cursor`).

    `related` names foreign keys loaded in the same row, as `select_related` would: a
    column named `organisation__name` is the `name` of the instance's `organisation`.
    Fields of either model not selected are loaded on first use, as with `only()`."""
    with prepared_cursor() as cursor:
        cursor.execute(sql, params)
        names = [column.name for column in cursor.description or []]
        rows = cursor.fetchall()
    if not rows:
        return []
    own = [i for i, name in enumerate(names) if name.partition("__")[0] not in related]
    build = model_builder(model, [names[i] for i in own])
    joined: list[tuple[Any, list[int], Callable[[list[Any]], models.Model]]] = []
    for name in related:
        field = model._meta.get_field(name)
        columns = [i for i, n in enumerate(names) if n.startswith(f"{name}__")]
        other = cast(type[models.Model], field.related_model)
        joined.append(
            (field, columns, model_builder(other, [names[i][len(name) + 2 :] for i in columns]))
        )
    instances = []
    for row in rows:
        instance = build([row[i] for i in own])
        for field, columns, build_related in joined:
            field.set_cached_value(instance, build_related([row[i] for i in columns]))
        instances.append(instance)
    return instances


def model_builder(model: type[M], names: list[str]) -> Callable[[list[Any]], M]:
    """Makes an instance of `model` from values for these columns, as the ORM loads one
    (columns that are not the model's fields become attributes): for a statement that
    reads more than one model's row at once."""
    concrete = model._meta.concrete_fields
    by_column = {f.column: f for f in concrete}
    fields = [by_column.get(name) for name in names]
    converters = [getattr(f, "from_db_value", None) if f is not None else None for f in fields]

    def build(values: list[Any]) -> M:
        loaded, extras = {}, {}
        for name, field, convert, value in zip(names, fields, converters, values, strict=True):
            if field is None:
                extras[name] = value
            else:
                loaded[field.attname] = convert(value, None, connection) if convert else value
        # from_db wants the values in the model's field order, whatever the table's is.
        ordered = [loaded.get(f.attname, DEFERRED) for f in concrete]
        instance = model.from_db(connection.alias, list(loaded), ordered)
        instance.__dict__.update(extras)
        return instance

    return build
