"""Where to go after a form: the page the request names in `next`, if it is on this site."""

from __future__ import annotations

from django.http import HttpRequest
from django.utils.http import url_has_allowed_host_and_scheme


def next_url_or(request: HttpRequest, fallback: str) -> str:
    """The request's `next` (a form field, else the query string) when it leads to this
    same host; otherwise `fallback`. Django's check also refuses the spellings browsers
    read as another site (`//evil.example/`, `/\\evil.example/`), and an `http:` page
    when this request came over HTTPS."""
    url = request.POST.get("next") or request.GET.get("next")
    if url and url_has_allowed_host_and_scheme(
        url, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return url
    return fallback
