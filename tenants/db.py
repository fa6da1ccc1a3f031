"""The database connection as django-tenants makes it: schema-aware, and typed as such."""

from typing import cast

from django.db import connection
from django_tenants.postgresql_backend.base import DatabaseWrapper


def tenant_connection() -> DatabaseWrapper:
    """The default connection, with `schema_name`, `set_tenant` and `set_schema_to_public`."""
    return cast(DatabaseWrapper, connection)


def current_schema() -> str:
    return tenant_connection().schema_name
