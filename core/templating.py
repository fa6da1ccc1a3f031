"""Jinja2 for the pages read most (decision 0027): the person page's content and the parts
it shares with other pages. Django's template language walks a tree of nodes and resolves
every variable by trying dict, attribute and index lookups in turn; Jinja2 compiles a
template to Python once, which renders the same markup several times faster.

The environment offers what those templates use of Django's: `url()` (as `{% url %}`, in
the request's council URLs), the `date` filter (as Django's, in the current time zone) and
core's own filters. Autoescaping is always on."""

from __future__ import annotations

import datetime
import html
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import cache, lru_cache
from typing import Any

from django.contrib.messages import get_messages
from django.core.signals import setting_changed
from django.dispatch import receiver
from django.http import HttpRequest, HttpResponse
from django.middleware.csrf import get_token
from django.template import defaultfilters, engines
from django.templatetags.static import static
from django.urls import NoReverseMatch, get_script_prefix, get_urlconf, reverse
from django.utils import timezone
from django.utils.dates import MONTHS, MONTHS_3
from django.utils.functional import LazyObject, empty
from django.utils.safestring import SafeString, mark_safe
from django.utils.timezone import template_localtime  # type: ignore[attr-defined]
from jinja2 import Environment, pass_context
from jinja2.runtime import Context

from core.extensions import NAVIGATION, navigation_cache_add
from core.identifiers import nhs_number_display
from core.selectors import notifications_unread_count
from tenants.context_processors import council as council_context


def days_ago(
    day: datetime.date | None,
    *,
    zone: datetime.tzinfo | None = None,
    today: datetime.date | None = None,
) -> str:
    """'today', 'yesterday', '12 days ago' – or 'Not recorded'. `zone` and `today`: the
    current time zone and its date, when the caller has them already."""
    if day is None:
        return "Not recorded"
    if isinstance(day, datetime.datetime):
        day = timezone.localtime(day, zone).date()
    days = ((today or timezone.localdate(timezone=zone)) - day).days
    if days <= 0:
        return "today"
    if days == 1:
        return "yesterday"
    return f"{days} days ago"


def nhs_number(value: str | None) -> str:
    return nhs_number_display(value) if value else "Not known"


def url(name: str, *args: Any) -> str:
    """`{% url %}`: the same address for the same page, worked out once per process. An
    address whose arguments are record ids is worked out once per page, not per record: the
    person page links to a dozen pages of the record shown, and there are a million."""
    return _address(get_urlconf(), get_script_prefix(), name, args)


def _url_for_page(urlconf: str | None, prefix: str) -> Callable[..., str]:
    """`url()` for one page: its URL configuration and prefix read once, not per link."""

    def url(name: str, *args: Any) -> str:
        return _address(urlconf, prefix, name, args)

    return url


def _address(urlconf: str | None, prefix: str, name: str, args: tuple[Any, ...]) -> str:
    if args and all(type(arg) is int and arg >= 0 for arg in args):
        parts = _address_parts(urlconf, prefix, name, len(args))
        if parts is not None:
            pieces = [parts[0]]
            for arg, after in zip(args, parts[1:], strict=True):
                pieces += (str(arg), after)
            return "".join(pieces)
    return _reversed(urlconf, prefix, name, args)


@lru_cache(maxsize=8192)
def _reversed(urlconf: str | None, prefix: str, name: str, args: tuple[Any, ...]) -> str:
    # Keyed by everything `reverse` reads: the URL configuration (the council's or the
    # platform's) and the script prefix.
    return reverse(name, args=args, urlconf=urlconf)


# Ids that no real record has, one per argument: reversed once, they mark where each id goes.
_MARKS = tuple(str(9_176_543_210_000 + n) for n in range(1, 6))


@lru_cache(maxsize=1024)
def _address_parts(
    urlconf: str | None, prefix: str, name: str, count: int
) -> tuple[str, ...] | None:
    """The address of page `name` cut where its `count` id arguments go, or None when it
    cannot be (more arguments than marks, an argument that is not a plain number, or a
    mark found twice): such an address is then reversed as it is."""
    if count > len(_MARKS):
        return None
    try:
        address = reverse(name, args=[int(mark) for mark in _MARKS[:count]], urlconf=urlconf)
    except NoReverseMatch:
        return None
    parts = [address]
    for mark in _MARKS[:count]:
        before, found, after = parts[-1].partition(mark)
        if not found or mark in after:
            return None
        parts[-1:] = [before, after]
    return tuple(parts)


@receiver(setting_changed)
def _urls_changed(*, setting: str, **kwargs: Any) -> None:
    if setting in {"ROOT_URLCONF", "PUBLIC_SCHEMA_URLCONF"}:
        _reversed.cache_clear()
        _address_parts.cache_clear()
        _navigation.cache_clear()
    if setting in {"STATIC_URL", "STORAGES"}:
        static_address.cache_clear()


@lru_cache(maxsize=256)
def static_address(path: str) -> str:
    """`{% static %}`: a file's address (with its content hash, from the manifest), worked
    out once per process; the files do not change while it runs."""
    return static(path)


MONTHS_SHORT = [""] + [str(MONTHS_3[m]).title() for m in range(1, 13)]
MONTHS_LONG = [""] + [str(MONTHS[m]) for m in range(1, 13)]
# The formats the pages use, written directly: Django's general formatter (a regular
# expression and a method call per letter) was a tenth of the person page's CPU.
DATE_FORMATS: dict[str, Callable[[Any], str]] = {
    "j M Y": lambda d: f"{d.day} {MONTHS_SHORT[d.month]} {d.year}",
    "j F Y": lambda d: f"{d.day} {MONTHS_LONG[d.month]} {d.year}",
    "j M Y H:i": lambda d: f"{d.day} {MONTHS_SHORT[d.month]} {d.year} {d.hour:02d}:{d.minute:02d}",
    "H:i": lambda d: f"{d.hour:02d}:{d.minute:02d}",
}


def date(value: Any, format_string: str, zone: datetime.tzinfo | None = None) -> str:
    """Django's `date` filter, on the value in the current time zone as Django's templates
    give it (an empty string for no date). `zone`: the current time zone, when the caller
    has it already."""
    if zone is not None and isinstance(value, datetime.datetime) and timezone.is_aware(value):
        if getattr(value, "convert_to_local_time", True):
            value = value.astimezone(zone)
    else:
        value = template_localtime(value)
    fast = DATE_FORMATS.get(format_string)
    if fast is not None and isinstance(value, datetime.date):
        if format_string.endswith("H:i") and not isinstance(value, datetime.datetime):
            return defaultfilters.date(value, format_string)
        return fast(value)
    return defaultfilters.date(value, format_string)


# --- The page around the content: the layout's parts (core/jinja2/layout/) ----------------


@dataclass(frozen=True)
class ShownLink:
    key: str
    label: str
    href: str
    also_active: tuple[str, ...]
    unread_count: bool


@cache
def _navigation(urlconf: str | None, role: str) -> tuple[ShownLink, ...]:
    return tuple(
        ShownLink(
            link.key,
            link.label,
            reverse(link.url_name, urlconf=urlconf),
            link.also_active,
            link.unread_count,
        )
        for link in NAVIGATION
        if role in link.roles
    )


navigation_cache_add(_navigation.cache_clear)


def navigation_for(user: Any) -> tuple[ShownLink, ...]:
    """The navigation's links for the user's role, worked out once per process and role
    rather than on every page (`reverse` resolves each one afresh)."""
    return _navigation(get_urlconf(), getattr(user, "role", ""))


def url_name(request: HttpRequest | None) -> str:
    """The name of the page's URL, for the navigation's current link ("" if none)."""
    match = getattr(request, "resolver_match", None)
    return (match.url_name or "") if match is not None else ""


def user_verified(user: Any) -> bool:
    """Signed in with both steps (django-otp's `is_verified`, set on the request's user)."""
    if user is None or not user.is_authenticated:
        return False
    verified = getattr(user, "is_verified", None)
    return bool(verified()) if callable(verified) else False


def csrf_field(token: Any) -> SafeString:
    """The form's hidden CSRF field, exactly as Django's `{% csrf_token %}` writes it."""
    if not token or str(token) == "NOTPROVIDED":
        return SafeString("")
    return SafeString(
        f'<input type="hidden" name="csrfmiddlewaretoken" value="{html.escape(str(token))}">'
    )


def error_prefix(messages: Iterable[Any] | None) -> str:
    """ "Error: " before the title when a message of level error is shown (GOV.UK's error
    summary pattern; a Jinja2 page has no Django form to look at)."""
    for message in messages or ():
        if getattr(message, "level_tag", "") == "error":
            return "Error: "
    return ""


# A Jinja2 page reads the current time zone and today's date once (`jinja_page` puts them
# in its context as `page_clock`), not for each date it writes.


@pass_context
def _date_on_page(context: Context, value: Any, format_string: str) -> str:
    clock = context.get("page_clock")
    return date(value, format_string, clock[0] if clock else None)


@pass_context
def _days_ago_on_page(context: Context, day: datetime.date | None) -> str:
    clock = context.get("page_clock")
    if clock is None:
        return days_ago(day)
    return days_ago(day, zone=clock[0], today=clock[1])


def environment(**options: Any) -> Environment:
    options.pop("autoescape", None)
    # Autoescaped by markupsafe, once per value: an apostrophe is written &#39; (Django
    # writes &#x27;; a browser reads both as '). Django's marked-safe text (`__html__`)
    # is placed as it is.
    env = Environment(autoescape=True, **options)
    env.globals.update(
        url=url,
        static=static_address,
        url_name=url_name,
        user_verified=user_verified,
        navigation_for=navigation_for,
        unread_count=notifications_unread_count,
        csrf_field=csrf_field,
        error_prefix=error_prefix,
        now=lambda format_string: date(timezone.now(), format_string),
    )
    env.filters.update(date=_date_on_page, days_ago=_days_ago_on_page, nhs_number=nhs_number)
    return env


def jinja_render(
    name: str, context: dict[str, Any], request: HttpRequest | None = None
) -> SafeString:
    """A Jinja2 template rendered to markup for a Django template to place as it is."""
    markup = engines["jinja2"].get_template(name).render(context, request)
    return mark_safe(markup)  # noqa: S308 (autoescaped by Jinja2)


def request_user(request: HttpRequest) -> Any:
    """The request's user itself, not the middleware's lazy stand-in: each read of the
    stand-in (a page makes dozens) goes through a proxy. Loaded here if not yet."""
    user = getattr(request, "user", None)
    # django-otp's stand-in wraps Django's, which wraps the user.
    while isinstance(user, LazyObject):
        if user._wrapped is empty:
            user._setup()
        user = user._wrapped
    return user


def jinja_page(request: HttpRequest, name: str, context: dict[str, Any]) -> HttpResponse:
    """A whole page in Jinja2 (its template extends layout/page.html), with what Django's
    context processors give the Django layout: the council, the user, the messages."""
    # The CSRF token once for the page: Django's Jinja2 backend gives a lazy one that
    # masks the secret afresh (with `secrets`) wherever a form writes it.
    token = get_token(request)
    zone = timezone.get_current_timezone()
    page = {
        **council_context(request),
        "request": request,
        "user": request_user(request),
        "messages": list(get_messages(request)),
        "csrf_token": token,
        "csrf_input": csrf_field(token),
        "url": _url_for_page(get_urlconf(), get_script_prefix()),
        "page_clock": (zone, timezone.localdate(timezone=zone)),
        **context,
    }
    markup = engines["jinja2"].get_template(name).render(page)
    return HttpResponse(markup)
