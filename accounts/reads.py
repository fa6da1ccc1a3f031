"""One row by its id as a model instance, by a plain statement: for the reads on every
request (the session's user and second-factor device), where the ORM spent more CPU
building the query than the database spent answering it."""

from __future__ import annotations

from typing import Any, TypeVar

from django.db import connection, models

M = TypeVar("M", bound=models.Model)


def model_by_id(model: type[M], pk: Any) -> M | None:
    """The `model` row with primary key `pk` (every concrete field loaded), or None."""
    fields = model._meta.concrete_fields
    quote = connection.ops.quote_name
    columns = ", ".join(quote(str(f.column)) for f in fields)
    table = quote(model._meta.db_table)
    key = quote(str(model._meta.pk.column))
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {columns} FROM {table} WHERE {key} = %s", [pk])  # noqa: S608
        row = cursor.fetchone()
    if row is None:
        return None
    return model.from_db(connection.alias, [f.attname for f in fields], row)
