"""Pages that add a person or change their record: add a child or adult (after looking for
the record they may duplicate), edit their details, record a death, record a relative. Thin:
the rules and the audit are in core.selectors and core.services."""

from __future__ import annotations

import contextlib
from datetime import date
from typing import Any

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.http import urlencode

from accounts.access import practitioner_required
from accounts.forms import errors_onto_form
from accounts.models import User
from core import selectors, services
from core.forms import DeathForm, PersonForm, RelativeForm, SearchForm
from core.models import FamilyRelationship
from core.selectors import Access, PersonAccess, SearchRefused

NHS_NUMBER_HIDDEN = (
    "A record with this NHS number may already exist. Contact your council's Patchwork "
    "administrator: they can check it and add you to the person's team."
)
PREFILLED = ("given_name", "family_name", "nhs_number", "postcode")


def _user(request: HttpRequest) -> User:
    return request.user  # type: ignore[return-value]


def add_person_query(data: dict[str, Any]) -> str:
    """The search's terms, to carry over to "Add this person"."""
    terms = {k: data[k] for k in PREFILLED if data.get(k)}
    if data.get("date_of_birth"):
        terms["date_of_birth"] = data["date_of_birth"].isoformat()
    return urlencode(terms)


def _initial_from_search(request: HttpRequest) -> dict[str, Any]:
    initial: dict[str, Any] = {k: request.GET[k] for k in PREFILLED if request.GET.get(k)}
    with contextlib.suppress(ValueError):  # a hand-edited address: leave the date blank
        initial["date_of_birth"] = date.fromisoformat(request.GET.get("date_of_birth", ""))
    return initial


@practitioner_required
def person_new(request: HttpRequest) -> HttpResponse:
    """Add a child or adult: first "is it one of these?" (the search's rules), then add."""
    user = _user(request)
    if selectors.practitioner_of(user) is None:
        messages.info(request, "Tell us where you work before you add anyone.")
        return redirect("core:profile")
    form = PersonForm(request.POST or None, initial=_initial_from_search(request))
    existing = None
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        details = {
            "given_name": data["given_name"],
            "family_name": data["family_name"],
            "date_of_birth": data["date_of_birth"],
            "nhs_number": data["nhs_number"],
            "postcode": data["postcode"],
        }
        matches = selectors.person_likely_matches(user=user, **details)
        if matches.nhs_number_taken:
            existing = matches.same_nhs_number
            form.add_error(
                "nhs_number",
                "A record with this NHS number already exists" if existing else NHS_NUMBER_HIDDEN,
            )
        elif matches.candidates and not request.POST.get("confirm_new"):
            carried = [
                (name, value)
                for name, value in request.POST.items()
                if name not in {"csrfmiddlewaretoken", "confirm_new"}
            ]
            context = {"details": details, "candidates": matches.candidates, "carried": carried}
            return render(request, "core/person_matches.html", context)
        else:
            try:
                person = services.person_create(
                    actor=user, sex=data["sex"], address=data["address"], **details
                )
            except ValidationError as exc:
                errors_onto_form(form, exc)
            else:
                return redirect("core:person_added", person_id=person.pk)
    return render(request, "core/person_new.html", {"form": form, "existing": existing})


@practitioner_required
def person_added(request: HttpRequest, person_id: int) -> HttpResponse:
    """The record is added: next, the practitioner's own involvement."""
    access = selectors.person_viewable(_user(request), person_id)
    return render(request, "core/person_added.html", {"person": access.person})


def _editable(request: HttpRequest, person_id: int) -> PersonAccess | HttpResponse:
    """The person for someone who may change their record; an outsider who has not stated a
    reason goes to the record's page (which asks for one); a shielded record outside its
    team is a 403."""
    user = _user(request)
    access = selectors.person_access(user, person_id)
    if not access.can_see_network:
        return redirect("core:person", person_id=person_id)
    return selectors.person_editable(user, person_id)


@practitioner_required
def person_edit(request: HttpRequest, person_id: int) -> HttpResponse:
    access = _editable(request, person_id)
    if isinstance(access, HttpResponse):
        return access
    person = access.person
    fields = ["given_name", "family_name", "date_of_birth", "sex", "nhs_number", "address"]
    initial = {name: getattr(person, name) or "" for name in fields}
    initial.update(postcode=person.postcode, shielded=person.shielded)
    initial["date_of_birth"] = person.date_of_birth
    may_shield = access.access == Access.TEAM
    form = PersonForm(request.POST or None, initial=initial, may_shield=may_shield)
    if request.method == "POST" and form.is_valid():
        try:
            services.person_update(actor=_user(request), person=person, changes=form.cleaned_data)
        except ValidationError as exc:
            errors_onto_form(form, exc)
        else:
            messages.success(request, f"{person.full_name}'s details are saved.")
            return redirect("core:person", person_id=person_id)
    return render(request, "core/person_edit.html", {"person": person, "form": form})


@practitioner_required
def person_death(request: HttpRequest, person_id: int) -> HttpResponse:
    access = _editable(request, person_id)
    if isinstance(access, HttpResponse):
        return access
    person = access.person
    form = DeathForm(request.POST or None, initial={"date_of_death": person.date_of_death})
    if request.method == "POST" and form.is_valid():
        try:
            services.person_death_record(
                actor=_user(request),
                person=person,
                date_of_death=form.cleaned_data["date_of_death"],
            )
        except ValidationError as exc:
            errors_onto_form(form, exc)
        else:
            messages.success(request, f"{person.full_name}'s date of death is recorded.")
            return redirect("core:person", person_id=person_id)
    return render(request, "core/person_death.html", {"person": person, "form": form})


@practitioner_required
def relative_find(request: HttpRequest, person_id: int) -> HttpResponse:
    """Find the relative by the ordinary search (audited), then choose them."""
    access = _editable(request, person_id)
    if isinstance(access, HttpResponse):
        return access
    form = SearchForm(request.POST or None)
    results = None
    if request.method == "POST" and form.is_valid():
        try:
            results = selectors.person_search(user=_user(request), query=form.query())
        except SearchRefused as exc:
            form.add_error(None, str(exc))
        else:
            results = [r for r in results if r.person_id != person_id]
    context = {
        "person": access.person,
        "form": form,
        "results": results,
        "add_query": add_person_query(form.cleaned_data) if results is not None else "",
    }
    return render(request, "core/relative_find.html", context)


@practitioner_required
def relative_add(request: HttpRequest, person_id: int, relative_id: int) -> HttpResponse:
    """How the chosen relative stands to the person; the relative must have been found."""
    access = _editable(request, person_id)
    if isinstance(access, HttpResponse):
        return access
    user = _user(request)
    relative = selectors.person_access(user, relative_id).person
    form = RelativeForm(request.POST or None)
    form.fields["kind"].label = f"{relative.full_name} is {access.person.full_name}'s"
    if request.method == "POST" and form.is_valid():
        kind = form.cleaned_data["kind"]
        person, other = access.person, relative
        if kind == RelativeForm.CHILD:
            person, other, kind = relative, access.person, FamilyRelationship.Kind.PARENT
        try:
            services.relationship_add(actor=user, person=person, relative=other, kind=kind)
        except ValidationError as exc:
            errors_onto_form(form, exc)
        else:
            messages.success(
                request, f"{relative.full_name} is recorded in {access.person.full_name}'s family."
            )
            return redirect("core:person", person_id=person_id)
    context = {"person": access.person, "relative": relative, "form": form}
    return render(request, "core/relative_add.html", context)
