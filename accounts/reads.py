"""One row by its id as a model instance, by a plain statement: for the reads on every
request (the session's user and second-factor device), where the ORM spent more CPU
building the query than the database spent answering it."""

from __future__ import annotations

from functools import cache
from typing import Any, TypeVar

from django.db import connection, models

M = TypeVar("M", bound=models.Model)


def plain_cursor() -> Any:
    """A cursor whose statements with parameters are prepared once per connection and
    council, where the database backend offers it (tenants.postgresql_backend's
    `prepared_cursor`: decisions 0005 and 0025); else an ordinary one. For the reads every
    request makes, which PostgreSQL otherwise plans afresh each time."""
    prepared = getattr(connection, "prepared_cursor", None)
    return prepared() if prepared is not None else connection.cursor()


@cache
def _by_id_sql(model: type[models.Model]) -> tuple[str, list[str]]:
    fields = model._meta.concrete_fields
    quote = connection.ops.quote_name
    columns = ", ".join(quote(str(f.column)) for f in fields)
    table = quote(model._meta.db_table)
    key = quote(str(model._meta.pk.column))
    sql = f"SELECT {columns} FROM {table} WHERE {key} = %s"  # noqa: S608
    return sql, [f.attname for f in fields]


def model_by_id(model: type[M], pk: Any) -> M | None:
    """The `model` row with primary key `pk` (every concrete field loaded), or None."""
    sql, attnames = _by_id_sql(model)
    with plain_cursor() as cursor:
        cursor.execute(sql, [pk])
        row = cursor.fetchone()
    if row is None:
        return None
    return model.from_db(connection.alias, attnames, row)
