"""Patchwork settings, read from the environment.

`PATCHWORK_ENV` picks the mode: `production` (the default, so a forgotten variable fails
safe), `development` (the demo) or `test`. Production refuses to start without a real
secret key, key-encryption key, database and platform domain.
"""

from __future__ import annotations

import base64
import importlib.util
import ipaddress
import os
import re
import ssl
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from celery.schedules import crontab
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent


def envstr(name: str, default: str = "") -> str:
    """A string from the environment; `NAME_FILE` (a path) wins, for container secrets."""
    file_path = os.environ.get(f"{name}_FILE")
    if file_path:
        return Path(file_path).read_text().strip()
    return os.environ.get(name, default)


def envbool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    if value.lower() in {"1", "true", "yes", "on"}:
        return True
    if value.lower() in {"0", "false", "no", "off"}:
        return False
    raise ImproperlyConfigured(f"{name} must be true or false, not {value!r}")


def envint(name: str, default: int) -> int:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    try:
        return int(value)
    except ValueError as exc:
        raise ImproperlyConfigured(f"{name} must be a whole number, not {value!r}") from exc


def envlist(name: str, default: str = "") -> list[str]:
    return [item.strip() for item in envstr(name, default).split(",") if item.strip()]


PATCHWORK_ENV = envstr("PATCHWORK_ENV", "production")
if PATCHWORK_ENV not in {"production", "development", "test"}:
    raise ImproperlyConfigured("PATCHWORK_ENV must be production, development or test")
PRODUCTION = PATCHWORK_ENV == "production"
TESTING = PATCHWORK_ENV == "test"

DEBUG = envbool("DEBUG", PATCHWORK_ENV == "development")
if PRODUCTION and DEBUG:
    raise ImproperlyConfigured("DEBUG cannot be on in production")

# Where the embedded PostgreSQL and other local state live: never inside the repository.
DATA_DIR = Path(envstr("PATCHWORK_DATA_DIR", str(Path.home() / ".local/share/patchwork")))

INSECURE_SECRET_KEY = "insecure-development-key-never-use-in-production"
SECRET_KEY = envstr("SECRET_KEY")
if PRODUCTION:
    if not SECRET_KEY or SECRET_KEY == INSECURE_SECRET_KEY or len(SECRET_KEY) < 50:
        raise ImproperlyConfigured(
            "SECRET_KEY must be set to a random value of at least 50 characters in production"
        )
elif not SECRET_KEY:
    SECRET_KEY = INSECURE_SECRET_KEY

# The key-encryption key (KEK) that seals every council's private signing key and other
# federation secrets at rest: base64 of 32 random bytes.
_kek = envstr("KEY_ENCRYPTION_KEY")
if not _kek:
    if PRODUCTION:
        raise ImproperlyConfigured("KEY_ENCRYPTION_KEY must be set in production")
    # Development and tests: a fixed, obviously-not-secret key so the demo restarts cleanly.
    _kek = base64.b64encode(b"patchwork-development-kek-000000").decode()
try:
    KEY_ENCRYPTION_KEY = base64.b64decode(_kek, validate=True)
except ValueError as exc:
    raise ImproperlyConfigured("KEY_ENCRYPTION_KEY must be base64") from exc
if len(KEY_ENCRYPTION_KEY) != 32:
    raise ImproperlyConfigured("KEY_ENCRYPTION_KEY must decode to exactly 32 bytes")

PLATFORM_DOMAIN = envstr("PLATFORM_DOMAIN", "" if PRODUCTION else "localhost").lower()
if not PLATFORM_DOMAIN:
    raise ImproperlyConfigured("PLATFORM_DOMAIN must be set in production (e.g. patchwork.gov.uk)")
ALLOWED_HOSTS = envlist("ALLOWED_HOSTS", f"{PLATFORM_DOMAIN},.{PLATFORM_DOMAIN}")
if not PRODUCTION:
    ALLOWED_HOSTS += ["testserver"]

# --- Applications: the platform (public schema) and each council (its own schema) ---
SHARED_APPS = [
    "django_tenants",
    "tenants",
    # The federation's deployment-wide records: the peer directory and council signing keys.
    "federation.directory",
    # Accounts, sessions, second factors and lockouts exist in both scopes: operators in the
    # public schema, each council's users in its own (sessions live beside their users).
    "accounts",
    "django.contrib.contenttypes",
    "django.contrib.auth",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_otp",
    "django_otp.plugins.otp_totp",
    "django_otp.plugins.otp_static",
    "axes",
    # The API (no models of their own: we do not use DRF's authtoken).
    "rest_framework",
    "drf_spectacular",
]
TENANT_APPS = [
    "accounts",
    "django.contrib.contenttypes",
    "django.contrib.auth",
    "django.contrib.sessions",
    "django_otp",
    "django_otp.plugins.otp_totp",
    "django_otp.plugins.otp_static",
    "axes",
    "core",
    "teamwork",
    "federation",
]
INSTALLED_APPS = SHARED_APPS + [app for app in TENANT_APPS if app not in SHARED_APPS]
# The demo's commands (demo_setup, seed_demo, demo_code) come from a separate distribution,
# `demo/`, that development installs and production never does (it brings Faker).
if not PRODUCTION and importlib.util.find_spec("patchwork_demo") is not None:
    INSTALLED_APPS.append("patchwork_demo")

TENANT_MODEL = "tenants.Council"
TENANT_DOMAIN_MODEL = "tenants.Domain"
# New councils are cloned from this schema, kept migrated by `patchwork migrate`.
TENANT_BASE_SCHEMA = "council_template"
# Set the search path once per schema switch, not before every query: it halves the round
# trips of a page (measured: 52 statements, 25 of them SET, on the person page).
TENANT_LIMIT_SET_CALLS = True
TENANT_CREATION_FAKES_MIGRATIONS = True
PUBLIC_SCHEMA_URLCONF = "deploy.urls_public"
ROOT_URLCONF = "deploy.urls_tenant"

MIDDLEWARE = [
    # First, so it times everything, and reads the council routing put on the request.
    "deploy.metrics.RequestMetricsMiddleware",
    # Before routing, so every answer the app makes (an unknown host's too) has the security
    # headers (deploy/headers.py; settings below).
    "deploy.headers.ResponseHeadersMiddleware",
    # django-csp's, with the fixed policy built once (deploy/headers.py).
    "deploy.headers.CSPMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "tenants.middleware.CouncilRoutingMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "tenants.middleware.CouncilServingMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # django-otp's, with the device read by a plain statement (accounts/middleware.py).
    "accounts.middleware.VerifiedDeviceMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "axes.middleware.AxesMiddleware",
]

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "deploy" / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "tenants.context_processors.council",
            ],
        },
    },
    # The person page's content and the parts it shares (decision 0027): templates in each
    # app's jinja2/ folder, rendered by core.templating.jinja_render.
    {
        "BACKEND": "django.template.backends.jinja2.Jinja2",
        "APP_DIRS": True,
        "OPTIONS": {"environment": "core.templating.environment", "autoescape": True},
    },
]

WSGI_APPLICATION = "deploy.wsgi.application"

# --- Database: DATABASE_URL. Reading settings never starts a server: outside production the
# `patchwork` command and pytest start the embedded PostgreSQL first and put its address in
# DATABASE_URL (deploy/embedded_pg.py); the default here is only a placeholder, so importing
# settings (mypy's django-stubs plugin does) connects to nothing, and a process started some
# other way (gunicorn, celery) fails at its first query with a name that says what to do
# rather than reaching whatever server happens to listen on 127.0.0.1.
DATABASE_URL_PLACEHOLDER = (
    "postgres://set-DATABASE_URL-or-run-the-patchwork-command.invalid/patchwork"
)
DATABASE_URL = envstr("DATABASE_URL", "" if PRODUCTION else DATABASE_URL_PLACEHOLDER)
if not DATABASE_URL:
    raise ImproperlyConfigured(
        "DATABASE_URL must be set in production"
        if PRODUCTION
        else "DATABASE_URL is set but empty: unset it to use the embedded PostgreSQL"
    )
# Refuse a connection pooler in transaction mode at each process's first connection
# (tenants/postgresql_backend/pooler.py). Turning it off is unsafe: docs/operations.md.
DATABASE_POOLER_CHECK = envbool("DATABASE_POOLER_CHECK", True)

import dj_database_url  # noqa: E402

DATABASES = {
    "default": dj_database_url.parse(DATABASE_URL, conn_max_age=envint("DB_CONN_MAX_AGE", 300))
}
DATABASES["default"]["ENGINE"] = "tenants.postgresql_backend"
# A database that does not answer fails in seconds (and /readyz with it), not a TCP timeout.
DATABASES["default"].setdefault("OPTIONS", {}).setdefault(
    "connect_timeout", envint("DB_CONNECT_TIMEOUT", 5)
)
# After PostgreSQL restarts or fails over, each process's kept connection is dead: check it
# at the start of a request and reconnect, rather than fail that request.
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
# The hot statements prepared on the server (decisions 0005 and 0025): at most this many per
# connection, one per statement and council, least recently used dropped; each planned once
# (`force_generic_plan`; "auto" lets PostgreSQL plan each five times with its parameters
# before choosing). Only statements our prepared cursor runs have cached plans.
DB_PREPARED_STATEMENTS_MAX = envint("DB_PREPARED_STATEMENTS_MAX", 2000)
DB_PLAN_CACHE_MODE = envstr("DB_PLAN_CACHE_MODE", "force_generic_plan")
if DB_PLAN_CACHE_MODE not in ("auto", "force_generic_plan", "force_custom_plan"):
    raise ImproperlyConfigured(
        "DB_PLAN_CACHE_MODE must be auto, force_generic_plan or force_custom_plan"
    )
if envstr("TEST_DATABASE_NAME"):
    DATABASES["default"]["TEST"] = {"NAME": envstr("TEST_DATABASE_NAME")}
DATABASE_ROUTERS = ["django_tenants.routers.TenantSyncRouter"]
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Redis: cache and Celery broker. Without REDIS_URL, tasks run eagerly in-process ---
REDIS_URL = envstr("REDIS_URL")
# A rediss:// address is always verified: Redis's certificate must chain to REDIS_CA_FILE
# (the deployment's internal CA; unset, the system's CAs) and name the host in the URL.
# Left to themselves, Celery's broker would accept any certificate and its result backend
# would refuse to start, so every Redis client here takes these options.
REDIS_CA_FILE = envstr("REDIS_CA_FILE")
REDIS_TLS = REDIS_URL.startswith("rediss://")
if REDIS_CA_FILE and not REDIS_TLS:
    raise ImproperlyConfigured(
        "REDIS_CA_FILE is set but REDIS_URL is not a rediss:// address: "
        "the connection to Redis would not use TLS"
    )
if REDIS_CA_FILE and not Path(REDIS_CA_FILE).is_file():
    raise ImproperlyConfigured(f"REDIS_CA_FILE names no file: {REDIS_CA_FILE}")
if any(option.startswith("ssl_") for option in parse_qs(urlsplit(REDIS_URL).query)):
    raise ImproperlyConfigured(
        "REDIS_URL cannot carry ssl_ options: Redis's certificate is always checked; "
        "give the CA's certificate in REDIS_CA_FILE"
    )
REDIS_TLS_OPTIONS: dict[str, Any] = (
    {
        "ssl_cert_reqs": ssl.CERT_REQUIRED,
        "ssl_ca_certs": REDIS_CA_FILE or None,
        "ssl_check_hostname": True,
    }
    if REDIS_TLS
    else {}
)
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_FUNCTION": "django_tenants.cache.make_key",
            "KEY_PREFIX": envstr("CACHE_KEY_PREFIX", "patchwork"),
            "OPTIONS": {"CONNECTION_POOL_KWARGS": REDIS_TLS_OPTIONS},
        }
    }
else:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
            "KEY_FUNCTION": "django_tenants.cache.make_key",
        }
    }
CELERY_BROKER_URL = REDIS_URL or "memory://"
CELERY_RESULT_BACKEND = REDIS_URL or None
CELERY_BROKER_USE_SSL = REDIS_TLS_OPTIONS or None
CELERY_REDIS_BACKEND_USE_SSL = REDIS_TLS_OPTIONS or None
CELERY_TASK_ALWAYS_EAGER = envbool("CELERY_TASK_ALWAYS_EAGER", not REDIS_URL)
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TASK_ACKS_LATE = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# A worker process is replaced after this many tasks: what its connection and the process
# have cached for every council it touched is freed (docs/operations.md, "Connection
# lifetime and memory").
CELERY_WORKER_MAX_TASKS_PER_CHILD = envint("CELERY_WORKER_MAX_TASKS_PER_CHILD", 1000)
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TIMEZONE = "Europe/London"

# --- Broker outages: enqueueing is best effort, the outbox rows are the promise ---
# (tenants/queueing.py, docs/operations.md "When Redis is down"). A publish gives up after
# one try of at most BROKER_TIMEOUT_SECONDS (connect, then each socket read or write), so a
# dead or hung Redis costs a request well under a second; after a failure a process does not
# try the broker again for BROKER_RETRY_AFTER_SECONDS (its enqueues are counted as failed at
# once), so a page that queues many emails stays quick. Work left behind is found by the
# sweeps, every SWEEP_SECONDS: an email still queued SWEEP_AFTER_SECONDS after it was
# written is sent by `core.tasks.email_sweep`, an import run still queued is queued again
# by `core.tasks.feed_import_sweep` (a run is claimed before it starts, so it runs once),
# and federation pushes have their own sweep. A sender claims an email for
# EMAIL_CLAIM_SECONDS before sending it, so the sweep and a late broker message never both
# send it; a worker that dies mid-send leaves the claim to expire and the email to the
# sweep. The claim outlasts EMAIL_TIMEOUT, the mail server's socket timeout.
BROKER_TIMEOUT_SECONDS = float(envstr("BROKER_TIMEOUT_SECONDS", "0.5"))
BROKER_RETRY_AFTER_SECONDS = float(envstr("BROKER_RETRY_AFTER_SECONDS", "5"))
CELERY_TASK_PUBLISH_RETRY = False
CELERY_BROKER_CONNECTION_TIMEOUT = BROKER_TIMEOUT_SECONDS
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "socket_connect_timeout": BROKER_TIMEOUT_SECONDS,
    # Workers read the broker from their event loop, so a short timeout only bounds waits
    # on a broker that stopped answering; it does not cut their long polls.
    "socket_timeout": BROKER_TIMEOUT_SECONDS,
    "retry_on_timeout": False,
}
# Results (kept only for tasks someone waits on) are Redis too: storing or reading one tries
# twice more, not twenty times a second apart, so a worker does not stall for 19 s either.
CELERY_REDIS_SOCKET_CONNECT_TIMEOUT = BROKER_TIMEOUT_SECONDS
CELERY_RESULT_BACKEND_TRANSPORT_OPTIONS = {
    "retry_policy": {"max_retries": 2, "interval_start": 0.2, "interval_step": 0.3}
}
SWEEP_SECONDS = envint("SWEEP_SECONDS", 60)
SWEEP_AFTER_SECONDS = envint("SWEEP_AFTER_SECONDS", 60)
# --- Imports: how long the files of a finished import run are kept (the file imported and
# its per-row report, both naming people); the nightly retention task deletes them after.
IMPORT_FILES_KEEP_DAYS = envint("IMPORT_FILES_KEEP_DAYS", 30)
if IMPORT_FILES_KEEP_DAYS < 1:
    raise ImproperlyConfigured("IMPORT_FILES_KEEP_DAYS must be at least 1")
EMAIL_TIMEOUT = envint("EMAIL_TIMEOUT", 30)
EMAIL_CLAIM_SECONDS = envint("EMAIL_CLAIM_SECONDS", 300)
if EMAIL_CLAIM_SECONDS <= EMAIL_TIMEOUT:
    raise ImproperlyConfigured("EMAIL_CLAIM_SECONDS must be longer than EMAIL_TIMEOUT")
# The cache is Redis too: with Redis down a read is a miss and a write does nothing (logged
# by django-redis), within the same short timeouts, rather than a 500. Sessions are in the
# database (SESSION_ENGINE below), so nobody is signed out by a Redis outage.
CACHE_OPTIONS: dict[str, object] = {
    "SOCKET_CONNECT_TIMEOUT": BROKER_TIMEOUT_SECONDS,
    "SOCKET_TIMEOUT": BROKER_TIMEOUT_SECONDS,
    "IGNORE_EXCEPTIONS": True,
    # The certificate checks above (a rediss:// address), as for every Redis client.
    "CONNECTION_POOL_KWARGS": REDIS_TLS_OPTIONS,
}
if REDIS_URL:
    CACHES["default"]["OPTIONS"] = CACHE_OPTIONS
DJANGO_REDIS_LOG_IGNORED_EXCEPTIONS = True

# --- Accounts, passwords, second factor, lockout ---
AUTH_USER_MODEL = "accounts.User"
PASSWORD_HASHERS = [
    "django.contrib.auth.hashers.Argon2PasswordHasher",
    "django.contrib.auth.hashers.PBKDF2PasswordHasher",
]
if TESTING:
    # Argon2 stays the hasher under test; only its cost is lowered to keep the suite quick.
    PASSWORD_HASHERS = ["accounts.hashers.FastArgon2PasswordHasher"]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {
        "NAME": "django.contrib.auth.password_validation.MinimumLengthValidator",
        "OPTIONS": {"min_length": 12},
    },
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    # Django's ModelBackend, with the session's user read by a plain statement (decision 0027).
    "accounts.backends.UserBackend",
]
LOGIN_URL = "accounts:sign_in"
AXES_FAILURE_LIMIT = envint("LOCKOUT_FAILURE_LIMIT", 5)
AXES_COOLOFF_TIME = envint("LOCKOUT_MINUTES", 30) / 60  # hours
AXES_LOCKOUT_PARAMETERS = ["username"]
AXES_USERNAME_FORM_FIELD = "email"
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_TEMPLATE = "accounts/locked_out.html"
AXES_VERBOSE = False
OTP_TOTP_ISSUER = "Patchwork"
INVITE_VALID_DAYS = envint("INVITE_VALID_DAYS", 7)

# --- Lockout warnings, unlocking, second-factor resets and recovery codes (decision 0019) ---
# The lockout page says how long is left (accounts.lockouts); recovery codes are django-otp
# static tokens, RECOVERY_CODES of them at a time; after an administrator resets someone's
# authenticator they may set up a new one after their password for FACTOR_RESET_VALID_DAYS.
AXES_LOCKOUT_CALLABLE = "accounts.lockouts.lockout_response"
RECOVERY_CODES = envint("RECOVERY_CODES", 10)
if RECOVERY_CODES < 1:
    raise ImproperlyConfigured("RECOVERY_CODES must be at least 1")
FACTOR_RESET_VALID_DAYS = envint("FACTOR_RESET_VALID_DAYS", 7)
if FACTOR_RESET_VALID_DAYS < 1:
    raise ImproperlyConfigured("FACTOR_RESET_VALID_DAYS must be at least 1")
# How long a stated reason keeps a person's record open for the practitioner who stated it.
RECORD_OPENING_HOURS = envint("RECORD_OPENING_HOURS", 8)

# --- Sessions and cookies: host-only (never shared across councils' subdomains) ---
# Django's database sessions, read by a plain statement (accounts/sessions.py).
SESSION_ENGINE = "accounts.sessions"
SESSION_COOKIE_DOMAIN = None
CSRF_COOKIE_DOMAIN = None
SESSION_COOKIE_NAME = "patchwork_session"
SESSION_COOKIE_AGE = envint("SESSION_HOURS", 9) * 3600
SESSION_EXPIRE_AT_BROWSER_CLOSE = True
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
SESSION_COOKIE_SECURE = envbool("SECURE_COOKIES", PRODUCTION)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
CSRF_COOKIE_HTTPONLY = True
SECURE_SSL_REDIRECT = envbool("SECURE_SSL_REDIRECT", PRODUCTION)
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_HSTS_SECONDS = envint("SECURE_HSTS_SECONDS", 31536000 if PRODUCTION else 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = PRODUCTION
SECURE_HSTS_PRELOAD = PRODUCTION
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$"]

# --- Security headers of the app's own responses (deploy/headers.py, django-csp) ---
# The app owns every security header of what it answers; nginx owns HSTS and fills in the
# same headers only on what it answers itself (static files, its own error pages):
# docs/operations.md, "Security headers: which layer sends what". Besides these, Django
# sends X-Frame-Options (DENY), X-Content-Type-Options, Referrer-Policy and
# Cross-Origin-Opener-Policy (above), and every response not marked otherwise by its view is
# `Cache-Control: no-store`. The policy is fixed, not read from the environment: the browser
# tests prove every page works under it (tests/pages/test_browser_csp.py).
from csp.constants import NONCE, NONE, SELF  # noqa: E402

CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [NONE],
        # GOV.UK Frontend starts from a module file (patchwork/init.js), not an inline script;
        # a nonce appears in the header only on a page that asks for one (request.csp_nonce).
        "script-src": [SELF, NONCE],
        "style-src": [SELF],
        "img-src": [SELF],
        "font-src": [SELF],
        "connect-src": [SELF],
        "manifest-src": [SELF],
        "form-action": [SELF],
        "frame-ancestors": [NONE],
        "base-uri": [NONE],
        "object-src": [NONE],
    }
}
# Where browsers report what the policy blocked (CSP_REPORT_URI, e.g. a collector of the
# operator's); empty sends no reports.
CSP_REPORT_URI = envstr("CSP_REPORT_URI")
if CSP_REPORT_URI:
    CONTENT_SECURITY_POLICY["DIRECTIVES"]["report-uri"] = [CSP_REPORT_URI]
# Browser features no page of Patchwork uses, turned off for every page and anything it embeds.
PERMISSIONS_POLICY: dict[str, list[str]] = {
    feature: []
    for feature in (
        "accelerometer",
        "autoplay",
        "camera",
        "display-capture",
        "encrypted-media",
        "fullscreen",
        "geolocation",
        "gyroscope",
        "magnetometer",
        "microphone",
        "midi",
        "payment",
        "picture-in-picture",
        "publickey-credentials-get",
        "screen-wake-lock",
        "usb",
        "xr-spatial-tracking",
    )
}

# --- Email ---
EMAIL_BACKEND = envstr(
    "EMAIL_BACKEND",
    "django.core.mail.backends.smtp.EmailBackend"
    if PRODUCTION
    else "django.core.mail.backends.console.EmailBackend",
)
EMAIL_HOST = envstr("EMAIL_HOST", "localhost")
EMAIL_PORT = envint("EMAIL_PORT", 25)
EMAIL_HOST_USER = envstr("EMAIL_HOST_USER")
EMAIL_HOST_PASSWORD = envstr("EMAIL_HOST_PASSWORD")
EMAIL_USE_TLS = envbool("EMAIL_USE_TLS", PRODUCTION)
DEFAULT_FROM_EMAIL = envstr("DEFAULT_FROM_EMAIL", f"Patchwork <no-reply@{PLATFORM_DOMAIN}>")
# GOV.UK Notify sends instead of SMTP when a key is set: one template whose subject is
# ((subject)) and body ((body)) (and ((calendar)) for meeting invitations).
NOTIFY_API_KEY = envstr("NOTIFY_API_KEY")
NOTIFY_TEMPLATE_ID = envstr("NOTIFY_TEMPLATE_ID")
if NOTIFY_API_KEY and not NOTIFY_TEMPLATE_ID:
    raise ImproperlyConfigured("NOTIFY_TEMPLATE_ID must be set with NOTIFY_API_KEY")
NOTIFY_BASE_URL = envstr("NOTIFY_BASE_URL") or "https://api.notifications.service.gov.uk"
EMAIL_MAX_RETRIES = envint("EMAIL_MAX_RETRIES", 8)
EMAIL_RETRY_SECONDS = envint("EMAIL_RETRY_SECONDS", 60)

# --- Static and media files (tenant-aware media) ---
STATIC_URL = "/static/"
# Production serves collected files from STATIC_ROOT; elsewhere WhiteNoise reads the finders.
STATIC_ROOT = (
    Path(envstr("STATIC_ROOT", "/opt/patchwork/static"))
    if PRODUCTION or envstr("STATIC_ROOT")
    else None
)
MEDIA_ROOT = envstr("MEDIA_ROOT", str(DATA_DIR / "media"))
MEDIA_URL = "/media/"
MULTITENANT_RELATIVE_MEDIA_ROOT = "%s"
STORAGES = {
    "default": {"BACKEND": "django_tenants.files.storage.TenantFileSystemStorage"},
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
        if PRODUCTION
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}
WHITENOISE_USE_FINDERS = not PRODUCTION

LANGUAGE_CODE = "en-gb"
TIME_ZONE = "Europe/London"
USE_I18N = False
USE_TZ = True

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {
        # A 429 is counted in patchwork_rate_limited (decision 0011); a line for each one
        # would let a flood fill the logs instead.
        "not_rate_limited": {
            "()": "django.utils.log.CallbackFilter",
            "callback": lambda record: getattr(record, "status_code", None) != 429,
        }
    },
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": envstr("LOG_LEVEL", "INFO")},
    "loggers": {
        "axes": {"level": "WARNING"},
        "pgserver": {"level": "WARNING"},
        "django.request": {"filters": ["not_rate_limited"]},
    },
}

# Lockout is per account, not per address: a council's staff share one egress address, and
# locking it would lock out a whole office (axes warns of the trade-off).
SILENCED_SYSTEM_CHECKS: list[str] = ["axes.W006"]

# How links to a council's host are written (invitations, emails): https in production; the
# demo serves plain http on port 8000.
SITE_SCHEME = envstr("SITE_SCHEME", "https" if PRODUCTION else "http")
SITE_PORT = envstr("SITE_PORT", "" if PRODUCTION else "8000")
# The scheme's own port is left out of every address (RFC 9110 section 4.2.3): a council's
# federation base URL is signed as its peers write it, and they never write `:443`.
if (SITE_SCHEME, SITE_PORT) in {("https", "443"), ("http", "80")}:
    SITE_PORT = ""
EXPORT_DIR = Path(envstr("EXPORT_DIR", str(DATA_DIR / "exports")))
# GOV.UK Frontend, built by deploy/build_frontend.py into the package so the wheel has it.
STATICFILES_DIRS = [BASE_DIR / "deploy" / "frontend", BASE_DIR / "deploy" / "static"]


# --- The REST API (/api/v1/) and FHIR (/fhir/): deny by default; JSON only ---
API_TOKEN_HOURS = envint("API_TOKEN_HOURS", 8)
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        # Bearer first, so an anonymous call gets 401 with a WWW-Authenticate challenge.
        "core.api.auth.BearerTokenAuthentication",
        "core.api.auth.VerifiedSessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    # RATE_LIMIT_API per caller (decision 0011).
    "DEFAULT_THROTTLE_CLASSES": ["core.api.throttles.CallerRateThrottle"],
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Patchwork API",
    "DESCRIPTION": "Who else is involved with this child, and how do I reach them: search, "
    "a person's record and network, and your own involvements, with the same access rules "
    "and audit as the pages.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_PERMISSIONS": ["rest_framework.permissions.AllowAny"],
    "SCHEMA_PATH_PREFIX": r"/api/v1",
    "COMPONENT_SPLIT_REQUEST": True,
}

# --- API validation (issue 14): the published schema names every answer the API gives ---
# Besides enums (drf-spectacular's default hook), each operation's 401/404/413/415/429 and
# "a PATCH changes something" are added in one place: core/api/schema.py. Request bodies
# past DATA_UPLOAD_MAX_MEMORY_SIZE (Django's, 2.5 MB unless set) are refused with 413, by
# the API in JSON and by the federation endpoints in the federation's refusal shape.
SPECTACULAR_SETTINGS["POSTPROCESSING_HOOKS"] = [
    "drf_spectacular.hooks.postprocess_schema_enums",
    "core.api.schema.answers_every_operation_may_give",
]

# --- Federation: lookup timeout per peer, and the outbox's retry backoff ---
FEDERATION_LOOKUP_TIMEOUT_SECONDS = float(envstr("FEDERATION_LOOKUP_TIMEOUT_SECONDS", "3"))
# A check asks the councils on this deployment in batched requests (federation.batching,
# decision 0025) of at most FEDERATION_BATCH_SIZE lookups, at most FEDERATION_BATCH_REQUESTS
# of them in flight at once (about the number of cores serving them), each next batch
# taken by whichever is free first.
FEDERATION_BATCH_REQUESTS = envint("FEDERATION_BATCH_REQUESTS", 4)
FEDERATION_BATCH_SIZE = envint("FEDERATION_BATCH_SIZE", 10)
FEDERATION_BACKOFF_BASE_SECONDS = float(envstr("FEDERATION_BACKOFF_BASE_SECONDS", "2"))
FEDERATION_BACKOFF_MAX_SECONDS = float(envstr("FEDERATION_BACKOFF_MAX_SECONDS", "3600"))

# --- The signed directory of councils (federation/directory, decision 0014) ---
# The governance public keys this deployment trusts (base64url, each optionally written
# `<sha-256 fingerprint>=<key>`; several during a rotation), where the directory is fetched
# from (tried in order; the first good answer wins), and how often.
FEDERATION_GOVERNANCE_KEYS = envlist("FEDERATION_GOVERNANCE_KEYS")
FEDERATION_DIRECTORY_URLS = envlist("FEDERATION_DIRECTORY_URLS")
FEDERATION_DIRECTORY_FETCH_MINUTES = envint("FEDERATION_DIRECTORY_FETCH_MINUTES", 15)
if FEDERATION_DIRECTORY_FETCH_MINUTES < 1:
    raise ImproperlyConfigured("FEDERATION_DIRECTORY_FETCH_MINUTES must be at least 1")

# --- Health and metrics (deploy/health.py, deploy/metrics.py) ---
# /metrics answers only `Authorization: Bearer <METRICS_TOKEN>`; with no token it is 404.
METRICS_TOKEN = envstr("METRICS_TOKEN")
if METRICS_TOKEN and len(METRICS_TOKEN) < 32:
    raise ImproperlyConfigured("METRICS_TOKEN must be at least 32 random characters")
# Beat has a worker write a heartbeat this often; /readyz is unready once it is older than
# READYZ_HEARTBEAT_MAX_AGE. Councils found up to date are not re-checked for a few seconds.
CELERY_HEARTBEAT_SECONDS = envint("CELERY_HEARTBEAT_SECONDS", 30)
READYZ_HEARTBEAT_MAX_AGE = envint("READYZ_HEARTBEAT_MAX_AGE", 120)
READYZ_MIGRATIONS_CACHE_SECONDS = envint("READYZ_MIGRATIONS_CACHE_SECONDS", 5)
# --- Readiness per council (issue 18) ---
# A council whose schema lacks a migration the code has answers 503 ("being updated") on
# its own while every other council serves. A council found up to date is read again after
# this many seconds (a schema falls behind only by migrating it backwards by hand).
COUNCIL_MIGRATIONS_RECHECK_SECONDS = envint("COUNCIL_MIGRATIONS_RECHECK_SECONDS", 300)

# --- Audit checkpoints (federation/checkpoints.py, decision 0012) ---
# Beat signs each council's audit head this often, when its log grew: deleting the newest
# events is found by `verify_audit` once a checkpoint recorded them, so this is the longest
# stretch of the log a truncation can remove unseen.
AUDIT_CHECKPOINT_MINUTES = envint("AUDIT_CHECKPOINT_MINUTES", 15)
if AUDIT_CHECKPOINT_MINUTES < 1:
    raise ImproperlyConfigured("AUDIT_CHECKPOINT_MINUTES must be at least 1")

# --- Witnessed audit (federation/witnessing.py, decision 0015) ---
# Beat sends each council's latest checkpoint to AUDIT_WITNESSES partner councils this often
# (an unchanged head is countersigned again with a fresh time: "still at N").
AUDIT_WITNESS_MINUTES = envint("AUDIT_WITNESS_MINUTES", 60)
if AUDIT_WITNESS_MINUTES < 1:
    raise ImproperlyConfigured("AUDIT_WITNESS_MINUTES must be at least 1")
AUDIT_WITNESSES = envint("AUDIT_WITNESSES", 3)
if AUDIT_WITNESSES < 2:
    raise ImproperlyConfigured("AUDIT_WITNESSES must be at least 2")

# --- Rate limits (decision 0011, docs/operations.md "Rate limits") ---
# Each limit is "COUNT/WINDOW": "20/10m" is 20 per 10 minutes (s, m, h, d). Counters live in
# the "ratelimit" cache (Redis, shared by every process; accounts.ratelimits and DRF's
# throttle count there). A limited request is answered 429 with Retry-After before any costly work.
RATE_LIMIT_DEFAULTS = {
    # Failed sign-in attempts (password or code) from one client address, over every council
    # and the operator console. Only failures count: a council's staff share one address.
    "RATE_LIMIT_SIGN_IN_ADDRESS": "20/10m",
    # Sign-in attempts (password and code steps alike) at one account, from any address.
    "RATE_LIMIT_SIGN_IN_ACCOUNT": "10/15m",
    # API and FHIR requests per user (bearer token or session) or import token, per council.
    "RATE_LIMIT_API": "300/m",
    # Signed federation requests from one peer council to one council here.
    "RATE_LIMIT_FEDERATION_PEER": "600/m",
    # Unauthenticated federation refusals (unknown peer or key, bad signature, stale time)
    # from one client address; past it every federation request from there is refused.
    "RATE_LIMIT_FEDERATION_ADDRESS": "20/10m",
}
# The tests sign in hundreds of times from one address; tests of the limits themselves put
# the production values back (tests/ratelimits/).
_rate_limit_test_default = "100000/m"
RATE_LIMIT_SIGN_IN_ADDRESS = envstr(
    "RATE_LIMIT_SIGN_IN_ADDRESS",
    _rate_limit_test_default if TESTING else RATE_LIMIT_DEFAULTS["RATE_LIMIT_SIGN_IN_ADDRESS"],
)
RATE_LIMIT_SIGN_IN_ACCOUNT = envstr(
    "RATE_LIMIT_SIGN_IN_ACCOUNT",
    _rate_limit_test_default if TESTING else RATE_LIMIT_DEFAULTS["RATE_LIMIT_SIGN_IN_ACCOUNT"],
)
RATE_LIMIT_API = envstr(
    "RATE_LIMIT_API", _rate_limit_test_default if TESTING else RATE_LIMIT_DEFAULTS["RATE_LIMIT_API"]
)
RATE_LIMIT_FEDERATION_PEER = envstr(
    "RATE_LIMIT_FEDERATION_PEER",
    _rate_limit_test_default if TESTING else RATE_LIMIT_DEFAULTS["RATE_LIMIT_FEDERATION_PEER"],
)
RATE_LIMIT_FEDERATION_ADDRESS = envstr(
    "RATE_LIMIT_FEDERATION_ADDRESS",
    _rate_limit_test_default if TESTING else RATE_LIMIT_DEFAULTS["RATE_LIMIT_FEDERATION_ADDRESS"],
)
for _name in RATE_LIMIT_DEFAULTS:
    if not re.fullmatch(r"[1-9]\d*/\d*[smhd]", globals()[_name]):
        raise ImproperlyConfigured(
            f"{_name} must be a count per window like 20/10m (s, m, h or d), "
            f"not {globals()[_name]!r}"
        )
# Who may say who the client is: X-Forwarded-For is read only when the connection comes from
# one of these addresses or networks (nginx on the same host, as the Ansible roles set it
# up). Anyone else's X-Forwarded-For is ignored.
TRUSTED_PROXIES = envlist("TRUSTED_PROXIES", "127.0.0.1,::1")
for _proxy in TRUSTED_PROXIES:
    try:
        ipaddress.ip_network(_proxy, strict=False)
    except ValueError as exc:
        raise ImproperlyConfigured(
            "TRUSTED_PROXIES must list addresses or networks, like 127.0.0.1,10.0.0.0/24, "
            f"not {_proxy!r}"
        ) from exc
# The lockout records the same client address the limits count.
AXES_CLIENT_IP_CALLABLE = "accounts.ratelimits.lockout_address"
RATELIMIT_CACHE_PREFIX = "rl:"
# Redis down or hung: the limits are skipped (and logged) within half a second (the cache's
# socket timeouts below), not enforced on everyone; the lockout, in PostgreSQL, still holds.
_ratelimit_cache: dict[str, object] = (
    {
        "BACKEND": "django_redis.cache.RedisCache",
        "LOCATION": REDIS_URL,
        "KEY_PREFIX": envstr("CACHE_KEY_PREFIX", "patchwork"),
        "OPTIONS": {
            "SOCKET_CONNECT_TIMEOUT": 0.5,
            "SOCKET_TIMEOUT": 0.5,
            "CONNECTION_POOL_KWARGS": REDIS_TLS_OPTIONS,
        },
    }
    if REDIS_URL
    # Without Redis (the demo), one process's memory: each process counts on its own.
    else {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "ratelimit"}
)
CACHES["ratelimit"] = _ratelimit_cache  # type: ignore[assignment]

# --- Celery beat: every periodic job, in one place ---
CELERY_BEAT_SCHEDULE = {
    "clear-expired-sessions": {
        "task": "tenants.tasks.for_each_council",
        "schedule": 3600.0,
        "args": ["accounts.tasks.sessions_clear_expired"],
    },
    "team-notifications-email": {
        "task": "tenants.tasks.for_each_council",
        "schedule": 60.0,
        "args": ["core.tasks.notifications_email_immediate"],
    },
    "team-notifications-digest": {
        "task": "tenants.tasks.for_each_council",
        "schedule": crontab(hour=7, minute=0),
        "args": ["core.tasks.notifications_digest_send"],
    },
    "involvement-reminders": {
        "task": "tenants.tasks.for_each_council",
        "schedule": crontab(hour=6, minute=0),
        "args": ["core.tasks.reminders_run"],
    },
    "retention": {
        "task": "tenants.tasks.for_each_council",
        "schedule": crontab(hour=2, minute=30),
        "args": ["core.tasks.retention_run"],
    },
    "email-sweep": {
        "task": "tenants.tasks.for_each_council",
        "schedule": float(SWEEP_SECONDS),
        "args": ["core.tasks.email_sweep"],
    },
    "feed-import-sweep": {
        "task": "tenants.tasks.for_each_council",
        "schedule": float(SWEEP_SECONDS),
        "args": ["core.tasks.feed_import_sweep"],
    },
    "federation-outbox-sweep": {
        "task": "tenants.tasks.for_each_council",
        "schedule": 60.0,
        "args": ["federation.tasks.outbox_sweep"],
    },
    "audit-checkpoints": {
        "task": "tenants.tasks.for_each_council",
        "schedule": AUDIT_CHECKPOINT_MINUTES * 60.0,
        "args": ["federation.tasks.audit_checkpoint_task"],
    },
    "audit-witness": {
        "task": "tenants.tasks.for_each_council",
        "schedule": AUDIT_WITNESS_MINUTES * 60.0,
        "args": ["federation.tasks.audit_witness_task"],
    },
    "federation-directory-fetch": {
        "task": "federation.tasks.directory_fetch_task",
        "schedule": FEDERATION_DIRECTORY_FETCH_MINUTES * 60.0,
    },
    "celery-heartbeat": {
        "task": "tenants.tasks.celery_heartbeat",
        "schedule": float(CELERY_HEARTBEAT_SECONDS),
        # A heartbeat that waited in the queue past readyz's limit is dropped, so a backlog
        # does not build while no worker runs.
        "options": {"expires": float(READYZ_HEARTBEAT_MAX_AGE)},
    },
}

# --- Single sign-on with a council's own OpenID Connect provider (decision 0020) ---
# How long Patchwork waits for a council's provider (discovery, keys, token endpoint), and
# how long it keeps the provider's discovery document and keys before fetching them again.
SSO_HTTP_TIMEOUT_SECONDS = envint("SSO_HTTP_TIMEOUT_SECONDS", 10)
SSO_METADATA_CACHE_SECONDS = envint("SSO_METADATA_CACHE_SECONDS", 600)
# A provider's issuer must be https; outside production a loopback http issuer is allowed
# too (the test suite's own provider).
SSO_ALLOW_LOOPBACK_HTTP = not PRODUCTION

# --- Migrations across councils (migrate_platform, decision 0023) ---
# Worker processes, each migrating one council at a time with its own connection.
MIGRATION_WORKERS = envint("MIGRATION_WORKERS", 2)
# A migration in a transaction waits at most this many seconds for a lock (a long read of
# its table), so the table's readers never queue behind it for longer; it rolls back and is
# tried again, at most MIGRATION_LOCK_TRIES times, after MIGRATION_RETRY_SECONDS (doubled
# at each try). Any statement of a migration stops after MIGRATION_STATEMENT_TIMEOUT seconds.
MIGRATION_LOCK_TIMEOUT = envint("MIGRATION_LOCK_TIMEOUT", 5)
MIGRATION_STATEMENT_TIMEOUT = envint("MIGRATION_STATEMENT_TIMEOUT", 300)
MIGRATION_LOCK_TRIES = envint("MIGRATION_LOCK_TRIES", 5)
MIGRATION_RETRY_SECONDS = envint("MIGRATION_RETRY_SECONDS", 1)
