"""The administrator's pages for feeds from source systems (decision 0009): the systems and
their import tokens, uploading a file (always checked first in a dry run), a run's progress
and summary, importing the checked file for real, and the per-row report as CSV. Thin: the
rules are in `core.feeds`."""

from __future__ import annotations

from typing import cast

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from accounts.access import admin_required
from accounts.forms import errors_onto_form
from accounts.models import User
from core import feeds, selectors
from core.forms import FeedUploadForm, SourceSystemForm
from core.models import ImportRun, SourceSystem
from core.tasks import feed_import_queue


def _user(request: HttpRequest) -> User:
    return request.user  # type: ignore[return-value]


@admin_required
def imports(request: HttpRequest) -> HttpResponse:
    form = FeedUploadForm(request.POST or None, request.FILES or None)
    if request.method == "POST" and form.is_valid():
        try:
            run = feeds.import_run_start(
                source=form.cleaned_data["source"],
                file_format=form.cleaned_data["file_format"],
                binary=form.cleaned_data["file"],
                full_snapshot=form.cleaned_data["full_snapshot"],
                dry_run=True,
                actor=_user(request),
            )
        except ValidationError as exc:
            errors_onto_form(form, exc)
        else:
            feed_import_queue(run)
            return redirect("core:import_run", run_id=run.pk)
    context = {
        "form": form,
        "runs": selectors.import_runs_recent(),
        "sources": SourceSystem.objects.all(),
    }
    return render(request, "core/imports.html", context)


@admin_required
def source_system_new(request: HttpRequest) -> HttpResponse:
    form = SourceSystemForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            source, token = feeds.source_system_create(
                actor=_user(request), name=form.cleaned_data["name"]
            )
        except ValidationError as exc:
            errors_onto_form(form, exc)
        else:
            # Shown once, on this response only: only its hash is kept.
            return render(
                request, "core/source_system_token.html", {"source": source, "token": token}
            )
    return render(request, "core/source_system_new.html", {"form": form})


@admin_required
@require_POST
def source_system_token_new(request: HttpRequest, source_id: int) -> HttpResponse:
    """A new import token for a system (its old one stops working), shown once: after a
    lost token, or in a council brought back from an archive, which keeps none."""
    source = selectors.source_system_get(source_id)
    token = feeds.source_system_token_reset(actor=_user(request), source=source)
    context = {"source": source, "token": token, "renewed": True}
    return render(request, "core/source_system_token.html", context)


@admin_required
def import_run(request: HttpRequest, run_id: int) -> HttpResponse:
    run = selectors.import_run_get(run_id)
    working = run.status in (ImportRun.Status.QUEUED, ImportRun.Status.RUNNING)
    return render(request, "core/import_run.html", {"run": run, "working": working})


@admin_required
@require_POST
def import_run_apply(request: HttpRequest, run_id: int) -> HttpResponse:
    run = selectors.import_run_get(run_id)
    try:
        applied = feeds.import_run_apply(run=run, actor=_user(request))
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
        return redirect("core:import_run", run_id=run.pk)
    feed_import_queue(applied)
    return redirect("core:import_run", run_id=applied.pk)


@admin_required
def import_run_report(request: HttpRequest, run_id: int) -> HttpResponse:
    response = feeds.import_report_response(selectors.import_run_get(run_id))
    # The access decorators are typed for HttpResponse; a streamed response serves the same.
    return cast(HttpResponse, response)
