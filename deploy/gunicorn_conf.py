"""gunicorn settings for a council deployment; each value can be overridden from the environment."""

import multiprocessing
import os
from typing import Any

from gunicorn import glogging

bind = os.environ.get("GUNICORN_BIND", "127.0.0.1:8000")
workers = int(os.environ.get("GUNICORN_WORKERS", multiprocessing.cpu_count() * 2 + 1))
threads = int(os.environ.get("GUNICORN_THREADS", "2"))
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "30"))
graceful_timeout = 30
# A worker is replaced after this many requests (a guard against slow leaks). Each new one
# loads Django again (0.7 s of CPU) and warms its caches: at 2,000 that was every 13 checks
# across 150 councils per worker, all served on two cores (docs/benchmarks.md, issue 16).
max_requests = int(os.environ.get("GUNICORN_MAX_REQUESTS", "20000"))
max_requests_jitter = max_requests // 10
accesslog = "-"
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1")
# Log the path without its query string: search terms (children's names) must never reach
# the logs.
ACCESS_LOG_FORMAT = '%(h)s %(t)s "%(m)s %(U)s %(H)s" %(s)s %(b)s %(M)sms'
access_log_format = ACCESS_LOG_FORMAT


class AccessLogger(glogging.Logger):
    """gunicorn's logger, making only the fields the access log's format above writes.
    gunicorn's own makes every field it knows on every request (each request and response
    header and every WSGI variable, each escaped): 2.5 % of a person page's CPU. Any other
    format (`--access-logformat`) gets gunicorn's fields."""

    def atoms(self, resp: Any, req: Any, environ: dict[str, Any], request_time: Any) -> Any:
        if self.cfg.access_log_format != ACCESS_LOG_FORMAT:
            return super().atoms(resp, req, environ, request_time)
        status = resp.status
        if isinstance(status, str):
            status = status.split(None, 1)[0]
        sent = getattr(resp, "sent", None)
        return {
            "h": environ.get("REMOTE_ADDR", "-"),
            "t": self.now(),
            "m": environ.get("REQUEST_METHOD"),
            "U": environ.get("PATH_INFO"),
            "H": environ.get("SERVER_PROTOCOL"),
            "s": status,
            "b": sent is not None and str(sent) or "-",
            "M": request_time.seconds * 1000 + int(request_time.microseconds / 1000),
        }


logger_class = AccessLogger
