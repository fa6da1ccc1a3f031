"""django-tenants' PostgreSQL backend, remembering the search path it last set.

django-tenants forgets the search path whenever a schema is chosen, even the one already in
force, so with `TENANT_LIMIT_SET_CALLS` every request still sent two `SET search_path`
statements (public for routing, then the council). Here the connection remembers what the
server has, and choosing that same schema again sends nothing. Routing reads the public
tables by their qualified names without switching (tenants.middleware), so a process that
serves the same council request after request sets its path once.

The remembered path is forgotten whenever the server may have dropped it: the connection
closes, or a transaction or savepoint is rolled back (a `SET` inside it is undone). Code
that sets the search path with its own SQL must call `forget_search_path()` after."""

from __future__ import annotations

from typing import Any

from django_tenants.postgresql_backend import base


class DatabaseWrapper(base.DatabaseWrapper):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.search_path_on_server: list[str] | None = None
        super().__init__(*args, **kwargs)

    def set_tenant(self, tenant: Any, include_public: bool = True) -> None:
        super().set_tenant(tenant, include_public)
        on_server = getattr(self, "search_path_on_server", None)
        if on_server is not None and on_server == self._get_cursor_search_paths():
            self.search_path_set_schemas = on_server

    def _handle_search_path(self, cursor: Any = None) -> None:
        super()._handle_search_path(cursor)
        self.search_path_on_server = self.search_path_set_schemas

    def forget_search_path(self) -> None:
        """For code that changed the search path with its own SQL (tenants.cloning): the
        next statement sets it again, whatever schema is chosen."""
        self.search_path_on_server = None
        self.search_path_set_schemas = None

    def close(self) -> None:
        self.search_path_on_server = None
        super().close()

    def rollback(self) -> None:
        self.search_path_on_server = None
        super().rollback()

    def savepoint_rollback(self, sid: str) -> None:
        self.search_path_on_server = None
        super().savepoint_rollback(sid)
