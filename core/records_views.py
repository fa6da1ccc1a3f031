"""Pages for the council's record keepers: an administrator merges two records of one person
(and reverses a merge); an information-governance officer produces a subject access
document. Thin: the rules and the audit are in core.merges and core.subject_access."""

from __future__ import annotations

import io

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render

from accounts.access import admin_required, role_required
from accounts.models import User
from accounts.spreadsheets import csv_writer
from core import merges, subject_access
from core.forms import SearchForm
from core.models import Person
from core.selectors import SearchRefused

ig_officer_required = role_required(User.Role.IG_OFFICER)


def _user(request: HttpRequest) -> User:
    return request.user  # type: ignore[return-value]


def _found(request: HttpRequest, form: SearchForm, *, find: str) -> list[Person] | None:
    """The records an identifying search finds, or None before one is made."""
    if not (request.GET and form.is_valid()):
        return None
    try:
        if find == "merge":
            return merges.merge_search(user=_user(request), query=form.query())
        return subject_access.subject_access_search(user=_user(request), query=form.query())
    except SearchRefused as refused:
        form.add_error(None, str(refused))
        return None


@admin_required
def merges_list(request: HttpRequest) -> HttpResponse:
    return render(request, "core/merges.html", {"merges": merges.merges_list()[:200]})


@admin_required
def merge_find(request: HttpRequest, keep_id: int | None = None) -> HttpResponse:
    """Find the record to keep, then the record to merge into it, by the search's rules."""
    keep = merges.person_for_admin(keep_id) if keep_id is not None else None
    form = SearchForm(request.GET or None)
    results = _found(request, form, find="merge")
    if results is not None and keep is not None:
        results = [p for p in results if p.pk != keep.pk]
    context = {"form": form, "results": results, "keep": keep}
    return render(request, "core/merge_find.html", context)


@admin_required
def merge_check(request: HttpRequest, keep_id: int, absorb_id: int) -> HttpResponse:
    """Check your answers: both records side by side, what the merge will do; confirm."""
    keep = merges.person_for_admin(keep_id)
    absorb = merges.person_for_admin(absorb_id)
    preview = merges.merge_preview(actor=_user(request), keep=keep, absorb=absorb)
    if request.method == "POST" and not preview["problems"]:
        try:
            merge = merges.person_merge(actor=_user(request), keep=keep, absorb=absorb)
        except ValidationError as refused:
            preview["problems"] = refused.messages
        else:
            messages.success(request, f"Record {absorb.pk} is merged into record {keep.pk}")
            return redirect("core:merge_detail", merge_id=merge.pk)
    context = {"keep": keep, "absorb": absorb, "preview": preview}
    return render(request, "core/merge_check.html", context)


@admin_required
def merge_detail(request: HttpRequest, merge_id: int) -> HttpResponse:
    """What a merge moved, with "Reverse this merge" (confirmed on the same page)."""
    merge = merges.merge_for_admin(merge_id)
    problem = ""
    if request.method == "POST":
        try:
            merges.person_merge_reverse(actor=_user(request), merge=merge)
        except ValidationError as refused:
            problem = " ".join(refused.messages)
        else:
            messages.success(request, f"The merge is reversed: record {merge.absorbed_id} is back")
            return redirect("core:merge_detail", merge_id=merge.pk)
    moved = sorted((key.rsplit(".", 1)[0], len(ids)) for key, ids in merge.moved.items())
    context = {"merge": merge, "moved": moved, "problem": problem}
    return render(request, "core/merge_detail.html", context)


@ig_officer_required
def subject_access_find(request: HttpRequest) -> HttpResponse:
    form = SearchForm(request.GET or None)
    results = _found(request, form, find="subject_access")
    return render(request, "core/subject_access_find.html", {"form": form, "results": results})


@ig_officer_required
def subject_access_document(request: HttpRequest, person_id: int) -> HttpResponse:
    """The printable document (print it to PDF from the browser)."""
    document = subject_access.subject_access_document(
        user=_user(request), person_id=person_id, fmt="html"
    )
    response = render(request, "core/subject_access.html", {"document": document})
    response["Cache-Control"] = "no-store"
    return response


@ig_officer_required
def subject_access_csv(request: HttpRequest, person_id: int) -> HttpResponse:
    document = subject_access.subject_access_document(
        user=_user(request), person_id=person_id, fmt="csv"
    )
    out = io.StringIO()
    csv_writer(out).writerows(subject_access.subject_access_rows(document))
    response = HttpResponse(out.getvalue(), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = (
        f'attachment; filename="subject-access-record-{document.person.pk}.csv"'
    )
    response["Cache-Control"] = "no-store"
    return response
