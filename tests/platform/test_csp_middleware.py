"""deploy.headers.CSPMiddleware: django-csp's policy, built once for ordinary answers, and
django-csp's own path for everything else (a nonce, a view's own policy)."""

from __future__ import annotations

from csp.constants import HEADER
from csp.utils import build_policy
from django.http import HttpRequest, HttpResponse
from django.test import RequestFactory, override_settings

from deploy.headers import CSPMiddleware, fixed_policy


def _answer(view_sets: dict[str, object] | None = None, nonce: bool = False) -> HttpResponse:
    def view(request: HttpRequest) -> HttpResponse:
        if nonce:
            str(request.csp_nonce)  # type: ignore[attr-defined]
        response = HttpResponse("ok")
        for name, value in (view_sets or {}).items():
            setattr(response, name, value)
        return response

    middleware = CSPMiddleware(view)
    return middleware(RequestFactory().get("/"))  # type: ignore[return-value]


def test_an_ordinary_answer_has_the_policy_django_csp_builds() -> None:
    answer = _answer()
    assert answer[HEADER] == build_policy() == fixed_policy()
    assert "script-src 'self'" in answer[HEADER] and "nonce-" not in answer[HEADER]


def test_a_page_that_asks_for_a_nonce_gets_it_in_its_header() -> None:
    answer = _answer(nonce=True)
    assert "'nonce-" in answer[HEADER]


def test_a_views_own_policy_is_kept() -> None:
    answer = _answer({"_csp_update": {"img-src": ["data:"]}})
    assert "img-src 'self' data:" in answer[HEADER]
    assert HEADER not in _answer({"_csp_exempt": True})


def test_a_changed_setting_changes_the_policy() -> None:
    with override_settings(CONTENT_SECURITY_POLICY={"DIRECTIVES": {"default-src": ["'self'"]}}):
        assert _answer()[HEADER] == "default-src 'self'"
    assert _answer()[HEADER] == build_policy()
