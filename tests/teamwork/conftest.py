"""Teamwork fixtures: a committed Brighton team for tests that run the real Celery worker
(its thread has its own database connection, so it sees only committed rows), the worker
itself, and a tiny SMTP server on 127.0.0.1 that can refuse the first message."""

from __future__ import annotations

import socketserver
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
from django.core import mail

from tests.teamwork.team import Team, build_team


@pytest.fixture
def committed_team(world, django_db_blocker) -> Iterator[Team]:  # type: ignore[no-untyped-def]
    from django.db import connection

    # pytest-django sets up the test database only when a collected test asks for `db`;
    # never let committed rows land in a real database.
    assert connection.settings_dict["NAME"].startswith("test"), (
        "Run these tests with at least one database test collected (e.g. the whole module)"
    )
    with django_db_blocker.unblock():
        yield build_team(world.brighton.schema_name)


@pytest.fixture
def celery_worker(celery_worker, settings) -> Iterator[None]:  # type: ignore[no-untyped-def]
    """The suite's real worker; emails go to Django's in-memory outbox unless the test
    points them at the SMTP server below."""
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    settings.EMAIL_RETRY_SECONDS = 0
    mail.outbox = []
    yield


@dataclass
class FlakySmtp:
    """Accepts mail like a real server, but answers 451 (try again later) to the first
    `refuse` messages."""

    port: int
    refuse: int = 0
    received: list[bytes] = field(default_factory=list)
    refused: int = 0


class _SmtpHandler(socketserver.StreamRequestHandler):
    def _say(self, line: str) -> None:
        self.wfile.write(line.encode() + b"\r\n")

    def handle(self) -> None:
        state: FlakySmtp = self.server.state  # type: ignore[attr-defined]
        self._say("220 127.0.0.1 test SMTP")
        body: list[bytes] | None = None
        while line := self.rfile.readline():
            if body is not None:
                if line == b".\r\n":
                    if state.refused < state.refuse:
                        state.refused += 1
                        self._say("451 4.3.0 Try again later")
                    else:
                        state.received.append(b"".join(body))
                        self._say("250 2.0.0 Queued")
                    body = None
                else:
                    body.append(line)
                continue
            command = line[:4].upper()
            if command in {b"EHLO", b"HELO"}:
                self._say("250 127.0.0.1")
            elif command == b"DATA":
                body = []
                self._say("354 End data with <CR><LF>.<CR><LF>")
            elif command == b"QUIT":
                self._say("221 Bye")
                return
            else:
                self._say("250 OK")


@pytest.fixture
def flaky_smtp(settings) -> Iterator[FlakySmtp]:  # type: ignore[no-untyped-def]
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _SmtpHandler)
    server.daemon_threads = True
    state = FlakySmtp(port=server.server_address[1])
    server.state = state  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST = "127.0.0.1"
    settings.EMAIL_PORT = state.port
    settings.EMAIL_USE_TLS = False
    settings.EMAIL_HOST_USER = ""
    settings.EMAIL_HOST_PASSWORD = ""
    yield state
    server.shutdown()
    server.server_close()
