"""Federation pages. Council side: data-sharing agreements for IG officers and
administrators, and the "other councils" panel for a person's page. Operator side: the peer
directory, council cards and the outbox queue. Thin: rules live in services and selectors."""

from __future__ import annotations

import json

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST
from django_otp.decorators import otp_required

from accounts.access import governance_required, operator_required, practitioner_required
from accounts.forms import errors_onto_form
from accounts.models import User
from core.selectors import person_viewable
from federation import checkpoints, client, selectors, services
from federation.directory.models import council_federation_id
from federation.directory.selectors import directory_recent, directory_state
from federation.forms import AgreementForm, CheckForm, CouncilCardForm, RevokeForm
from federation.protocol import PURPOSES
from tenants.selectors import council_by_code


def _user(request: HttpRequest) -> User:
    return request.user  # type: ignore[return-value]


# --- Council side: agreements ---------------------------------------------------------------


@governance_required
def agreements(request: HttpRequest) -> HttpResponse:
    return render(
        request,
        "federation/agreements.html",
        {"agreements": selectors.agreements_shown(_user(request)), "peers": selectors.peers_list()},
    )


@governance_required
def agreement_new(request: HttpRequest) -> HttpResponse:
    own = council_federation_id(selectors.own_council())
    partners = [
        (p.federation_id, f"{p.name} (ONS code {p.federation_id.removeprefix('council:')})")
        for p in selectors.peers_list().filter(removed_at__isnull=True)
        if p.federation_id != own
    ]
    form = AgreementForm(request.POST or None, partners=partners)
    if request.method == "POST" and form.is_valid():
        try:
            agreement = services.agreement_propose(actor=_user(request), **form.cleaned_data)
        except ValidationError as exc:
            errors_onto_form(form, exc)
        else:
            messages.success(request, "Agreement proposed. Sign it to send it to the partner.")
            return redirect("federation:agreement", agreement_id=agreement.agreement_id)
    return render(request, "federation/agreement_new.html", {"form": form})


@governance_required
def agreement_detail(request: HttpRequest, agreement_id: str) -> HttpResponse:
    agreement = selectors.agreement_for(_user(request), agreement_id)
    return render(
        request,
        "federation/agreement_detail.html",
        {
            "agreement": agreement,
            "shown": selectors.agreement_shown(agreement),
            "document": json.dumps(services.agreement_signed_document(agreement), indent=2),
            "history": selectors.agreement_history(agreement),
            "traffic": selectors.agreement_traffic(agreement)[:200],
            "revoke_form": RevokeForm(),
        },
    )


@require_POST
@governance_required
def agreement_sign(request: HttpRequest, agreement_id: str) -> HttpResponse:
    agreement = selectors.agreement_for(_user(request), agreement_id)
    try:
        client.agreement_sign(actor=_user(request), agreement=agreement)
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    except client.PartnerUnreachable as exc:
        messages.warning(request, f"Signed here, but not yet sent: {exc}. Try sending it again.")
    else:
        messages.success(request, "Signed and sent to the partner council.")
    return redirect("federation:agreement", agreement_id=agreement_id)


@require_POST
@governance_required
def agreement_send(request: HttpRequest, agreement_id: str) -> HttpResponse:
    agreement = selectors.agreement_for(_user(request), agreement_id)
    try:
        client.agreement_deliver(agreement=agreement)
    except client.PartnerUnreachable as exc:
        messages.warning(request, f"Not sent: {exc}.")
    else:
        messages.success(request, "Sent to the partner council.")
    return redirect("federation:agreement", agreement_id=agreement_id)


@require_POST
@governance_required
def agreement_revoke(request: HttpRequest, agreement_id: str) -> HttpResponse:
    agreement = selectors.agreement_for(_user(request), agreement_id)
    form = RevokeForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Say why the agreement is being revoked")
        return redirect("federation:agreement", agreement_id=agreement_id)
    agreement = services.agreement_revoke(
        actor=_user(request), agreement=agreement, reason=form.cleaned_data["reason"]
    )
    told = client.agreement_revoke_notify(agreement=agreement)
    messages.success(
        request,
        "Agreement revoked: nothing crosses under it from now on."
        + ("" if told else " The partner council could not be told; it will be refused anyway."),
    )
    return redirect("federation:agreement", agreement_id=agreement_id)


# --- Council side: the "other councils" pages ---------------------------------------------


@practitioner_required
def councils(request: HttpRequest) -> HttpResponse:
    """The councils a practitioner here may ask about a child, and for what: the agreements
    in force, by council name and purpose in words. A child is checked from their page."""
    return render(request, "federation/councils.html", {"covered": selectors.purposes_covered()})


@otp_required
def other_councils(request: HttpRequest, person_id: int) -> HttpResponse:
    """A fragment for the person's page: each council's last answer, and a button to ask
    every council we hold an agreement with."""
    user = _user(request)
    covered = selectors.purposes_covered()
    # The purpose offered first is one an agreement in force covers.
    default = covered[0].purpose if covered else "safeguarding"
    form = CheckForm(request.POST or None, initial={"purpose": default})
    checked_for = ""
    if request.method == "POST" and form.is_valid():
        purpose = form.cleaned_data["purpose"]
        answers = client.other_councils_check(user=user, person_id=person_id, purpose=purpose)
        checked, checked_for = True, PURPOSES.get(purpose, purpose)
    else:
        answers = selectors.other_councils_last_answers(user=user, person_id=person_id)
        checked = False
    fragment = bool(request.headers.get("HX-Request") or request.GET.get("fragment"))
    template = (
        "federation/other_councils_fragment.html" if fragment else "federation/other_councils.html"
    )
    return render(
        request,
        template,
        {
            "answers": answers,
            "form": form,
            "person_id": person_id,
            "checked": checked,
            "checked_for": checked_for,
            "covered": covered,
            # The whole page names the person in its heading (the fragment sits on theirs).
            "person": None if fragment else person_viewable(user, person_id).person,
        },
    )


# --- Operator side ----------------------------------------------------------------------------


@operator_required
def peers(request: HttpRequest) -> HttpResponse:
    return render(
        request,
        "federation/peers.html",
        {"peers": selectors.peers_list(), **directory_context()},
    )


def directory_context() -> dict[str, object]:
    """The directory of councils' state for the operator's peers page (decision 0014)."""
    return {"directory": directory_state(), "directory_recent": directory_recent(5)}


@operator_required
def peer_add(request: HttpRequest) -> HttpResponse:
    form = CouncilCardForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            card = json.loads(form.cleaned_data["card"])
            peer = services.peer_add(card=card, actor=_user(request))
        except ValueError:
            form.add_error("card", "That is not a council card: paste the whole JSON document")
        except ValidationError as exc:
            errors_onto_form(form, exc)
        else:
            messages.success(request, f"{peer.name} added to the directory of peers.")
            return redirect("federation_operator:peers")
    return render(request, "federation/peer_add.html", {"form": form})


@require_POST
@operator_required
def peer_remove(request: HttpRequest, peer_id: int) -> HttpResponse:
    peer = services.peer_remove(peer=selectors.peer_for_operator(peer_id))
    messages.success(request, f"{peer.name} removed: every request from it is refused from now on.")
    return redirect("federation_operator:peers")


@require_POST
@operator_required
def peer_restore(request: HttpRequest, peer_id: int) -> HttpResponse:
    peer = services.peer_restore(peer=selectors.peer_for_operator(peer_id))
    messages.success(request, f"{peer.name} is a peer again.")
    return redirect("federation_operator:peers")


@operator_required
def council_card(request: HttpRequest, code: str) -> HttpResponse:
    council = council_by_code(code)
    if council is None:
        raise Http404("No council with that code")
    response = JsonResponse(services.council_card(council), json_dumps_params={"indent": 2})
    response["Content-Disposition"] = f'attachment; filename="council-card-{council.code}.json"'
    return response


@operator_required
def audit_checkpoint_latest(request: HttpRequest, code: str) -> HttpResponse:
    """A council's latest signed audit checkpoint, for the operator (decision 0012)."""
    council = council_by_code(code)
    checkpoint = checkpoints.audit_checkpoint_latest(council) if council else None
    if checkpoint is None:
        raise Http404("No council with that code, or no checkpoint signed yet")
    return JsonResponse(
        checkpoints.checkpoint_published(checkpoint), json_dumps_params={"indent": 2}
    )


@operator_required
def outbox(request: HttpRequest) -> HttpResponse:
    return render(request, "federation/outbox.html", {"rows": selectors.outbox_queue()})
