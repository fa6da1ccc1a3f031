"""deploy/gunicorn_conf.py's AccessLogger writes the access log's line exactly as gunicorn's
own logger does, making only the fields its format uses; another format gets them all."""

from __future__ import annotations

import datetime
import io
import logging
from types import SimpleNamespace

from gunicorn import glogging
from gunicorn.config import Config

from deploy import gunicorn_conf


def _line(logger_class: type[glogging.Logger], access_format: str) -> str:
    config = Config()
    config.set("accesslog", "-")
    config.set("access_log_format", access_format)
    logger = logger_class(config)
    out = io.StringIO()
    logger.access_log.handlers = [logging.StreamHandler(out)]
    logger.now = lambda: "[30/Nov/2026:07:10:00 +0000]"  # type: ignore[method-assign]
    environ = {
        "REMOTE_ADDR": "127.0.0.1",
        "REQUEST_METHOD": "GET",
        "PATH_INFO": "/people/42/",
        "QUERY_STRING": "q=Ava+O%27Brien",
        "RAW_URI": "/people/42/?q=Ava+O%27Brien",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "HTTP_USER_AGENT": 'Mozilla "quoted"',
    }
    response = SimpleNamespace(status="200 OK", sent=26345, headers=[("Content-Type", "text/html")])
    request = SimpleNamespace(headers=[("HOST", "brighton.localhost")])
    took = datetime.timedelta(seconds=1, microseconds=23_456)
    logger.access(response, request, environ, took)
    return out.getvalue()


def test_the_line_is_gunicorns() -> None:
    ours = _line(gunicorn_conf.AccessLogger, gunicorn_conf.ACCESS_LOG_FORMAT)
    assert ours == _line(glogging.Logger, gunicorn_conf.ACCESS_LOG_FORMAT)
    # The path without its query string: no search term reaches the log.
    when = "[30/Nov/2026:07:10:00 +0000]"
    assert ours == f'127.0.0.1 {when} "GET /people/42/ HTTP/1.1" 200 26345 1023ms\n'


def test_another_format_gets_every_field() -> None:
    other = '%(h)s "%(a)s" %({host}i)s %(q)s'
    assert _line(gunicorn_conf.AccessLogger, other) == _line(glogging.Logger, other)
    assert "brighton.localhost" in _line(gunicorn_conf.AccessLogger, other)
