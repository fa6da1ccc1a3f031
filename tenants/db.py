"""The database connection as django-tenants makes it: schema-aware, and typed as such."""

from collections.abc import Mapping, Sequence
from typing import Any, TypeVar, cast

from django.db import connection, models
from django.db.models import DEFERRED
from django_tenants.postgresql_backend.base import DatabaseWrapper

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
    the fixed plain statements made on every request. Elsewhere use `connection.cursor()`."""
    make = getattr(connection, "prepared_cursor", None)
    return make() if make is not None else connection.cursor()


def current_schema() -> str:
    return tenant_connection().schema_name


def models_from_sql(model: type[M], sql: str, params: Sequence[Any] | Mapping[str, Any]) -> list[M]:
    """Instances of `model` from one plain statement (`SELECT t.*, [extra columns]`), for
    reads on every request: Django's `raw()` spends more of its time mapping columns than
    the database spends answering. Columns that are not the model's fields become
    attributes of the instance; JSON columns are decoded as the ORM would. The statement
    is prepared on the server (`prepared_cursor`)."""
    with prepared_cursor() as cursor:
        cursor.execute(sql, params)
        names = [column.name for column in cursor.description or []]
        rows = cursor.fetchall()
    if not rows:
        return []
    concrete = model._meta.concrete_fields
    by_column = {f.column: f for f in concrete}
    fields = [by_column.get(name) for name in names]
    converters = [getattr(f, "from_db_value", None) if f is not None else None for f in fields]
    instances = []
    for row in rows:
        loaded, extras = {}, {}
        for name, field, convert, value in zip(names, fields, converters, row, strict=True):
            if field is None:
                extras[name] = value
            else:
                loaded[field.attname] = convert(value, None, connection) if convert else value
        # from_db wants the values in the model's field order, whatever the table's is.
        values = [loaded.get(f.attname, DEFERRED) for f in concrete]
        instance = model.from_db(connection.alias, list(loaded), values)
        instance.__dict__.update(extras)
        instances.append(instance)
    return instances
