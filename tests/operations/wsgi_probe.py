"""What Patchwork is handed behind nginx, for tests/operations/test_nginx_proxy.py: gunicorn
serves the real app through this, which writes each request's path, client address and scheme
(as the WSGI environ carries them to Django) to the file PROBE_LOG names, and hands the
request on unchanged."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable
from typing import Any

from deploy.wsgi import application as patchwork

SEEN = (
    "PATH_INFO",
    "REMOTE_ADDR",
    "HTTP_X_FORWARDED_FOR",
    "HTTP_X_REAL_IP",
    "HTTP_X_FORWARDED_PROTO",
    "HTTP_HOST",
    "wsgi.url_scheme",
)


def application(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    with open(os.environ["PROBE_LOG"], "a") as log:
        log.write(json.dumps({key: environ.get(key) for key in SEEN}) + "\n")
    return patchwork(environ, start_response)
