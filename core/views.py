"""Pages inside a council's host. Thin: they call services and selectors, which hold the
rules (who may see what) and the audit."""

from __future__ import annotations

from typing import Any, cast

from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404, HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.safestring import mark_safe
from django.views.decorators.http import require_POST
from django_otp.decorators import otp_required

from accounts.access import (
    admin_required,
    governance_required,
    practitioner_required,
)
from accounts.forms import InviteUserForm, errors_onto_form
from accounts.models import User
from accounts.redirects import next_url_or
from accounts.selectors import user_for_admin, users_for_admin
from accounts.spreadsheets import csv_writer
from core import invitations, merges, selectors, services
from core.delivery import email as delivery_email
from core.delivery import notifications as delivery_notifications
from core.extensions import person_page_fragments
from core.forms import (
    ContactRequestDecisionForm,
    ContactRequestForm,
    InvolvementEndForm,
    InvolvementForm,
    InvolvementUpdateForm,
    OrganisationForm,
    ProfileForm,
    RecordOpeningForm,
    RoleForm,
    SearchForm,
)
from core.models import NotificationPreference
from core.network_svg import network_svg
from core.people_views import add_person_query
from core.selectors import Access, Network, SearchRefused, TeamMember
from core.setup import set_up_checklist
from core.templating import jinja_page, request_user


def _user(request: HttpRequest) -> User:
    # The user itself, not the lazy stand-in: the page's selectors read it many times.
    return request_user(request)


@otp_required
def home(request: HttpRequest) -> HttpResponse:
    user = _user(request)
    context: dict[str, Any] = {"search_form": SearchForm(prefix="quick")}
    if user.role in selectors.READER_ROLES:
        practitioner = selectors.practitioner_of(user)
        context.update(
            practitioner=practitioner,
            involvements=[i for i in selectors.my_involvements(user) if i.is_current],
            unread=selectors.notifications_unread_count(user),
        )
    if user.role == User.Role.COUNCIL_ADMIN:
        context["set_up"] = set_up_checklist()
    return render(request, "core/home.html", context)


# --- Search -----------------------------------------------------------------------------


def _search(request: HttpRequest, *, break_glass: bool) -> HttpResponse:
    user = _user(request)
    practitioner = selectors.practitioner_of(user)
    if practitioner is None:
        if user.role in selectors.READER_ROLES:
            messages.info(request, "Tell us where you work before you search for anyone.")
            return redirect("core:profile")
        raise PermissionDenied("Administrators manage Patchwork but do not search records")
    if break_glass and not practitioner.child_protection:
        raise PermissionDenied("Only child-protection practitioners can search with break-glass")
    form = SearchForm(request.POST or None)
    results = None
    if request.method == "POST" and form.is_valid():
        try:
            results = selectors.person_search(
                user=user, query=form.query(), break_glass=break_glass
            )
        except SearchRefused as exc:
            form.add_error(None, str(exc))
    context = {
        "form": form,
        "results": results,
        "break_glass": break_glass,
        "may_break_glass": practitioner.child_protection,
        # "Add this person", with what was searched for filled in.
        "add_query": add_person_query(form.cleaned_data) if results is not None else "",
    }
    return render(request, "core/search.html", context)


@otp_required
def search(request: HttpRequest) -> HttpResponse:
    return _search(request, break_glass=False)


@otp_required
def search_break_glass(request: HttpRequest) -> HttpResponse:
    return _search(request, break_glass=True)


# --- A person, their family and their network --------------------------------------------


def _grouped(network: Network) -> list[tuple[str, list[tuple[TeamMember, str]]]]:
    # A masked service is named in its "Request contact" link only by its contact
    # reference, which means nothing outside the brokered flow (selectors.contact_reference).
    return [
        (agency, [(m, m.contact_reference) for m in members])
        for agency, members in network.current_by_agency()
    ]


def _picture(network: Network, svg_id: str = "network") -> Any:
    members = [m for _, group in network.current_by_agency() for m in group]
    caption = _born(network.person)
    pictures = (
        network_svg(
            svg_id=svg_id if not narrow else f"{svg_id}-narrow",
            centre_name=network.person.full_name,
            centre_caption=caption,
            members=members,
            narrow=narrow,
        )
        for narrow in (False, True)
    )
    # Both layouts: the stylesheet shows the one that suits the screen's width.
    return mark_safe("".join(pictures))  # noqa: S308 (network_svg escapes every text)


def _born(person: Any) -> str:
    return f"Born {person.date_of_birth:%-d %b %Y}" if person.date_of_birth else "Born: not known"


@otp_required
def person(request: HttpRequest, person_id: int) -> HttpResponse:
    user = _user(request)
    try:
        access = selectors.person_access(user, person_id)
    except Http404:
        # A record merged into another: its page is the kept record's, for whoever may know
        # the kept record exists; to anyone else it is as missing as any record they cannot
        # see (the redirect would tell them which records were merged).
        kept = merges.person_merged_into(person_id)
        if kept is None:
            raise
        selectors.person_access(user, kept)
        return redirect("core:person", person_id=kept)
    if not access.can_see_network:
        return _state_reason(request, access)
    if request.method == "POST":
        return redirect("core:person", person_id=person_id)
    network = selectors.person_network(user=user, person_id=person_id, access=access)
    context = {
        "person": network.person,
        "access": access,
        "network": network,
        "picture": _picture(network),
        "groups": _grouped(network),
        "family": [
            (selectors.relationship_label(rel, network.person), relative, members)
            for rel, relative, members in network.family
        ],
        # What the apps above core add to the page (core.extensions).
        "actions": person_page_fragments(place="action", team=access.access == Access.TEAM),
        "panels": person_page_fragments(place="panel", team=access.access == Access.TEAM),
        "viewings": None,
    }
    if access.access == Access.TEAM:
        # The latest few, with a link to the rest: the list grows with every view.
        viewings = selectors.person_viewings(
            user=user, person_id=person_id, limit=VIEWINGS_ON_PAGE + 1, access=access
        )
        context["viewings"] = viewings[:VIEWINGS_ON_PAGE]
        context["more_viewings"] = len(viewings) > VIEWINGS_ON_PAGE
    context["my_contact_requests"] = selectors.contact_requests_sent(user, person_id=person_id)
    # The whole page is Jinja2, layout included (decision 0027).
    return jinja_page(request, "core/person.html", context)


VIEWINGS_ON_PAGE = 10
VIEWINGS_LISTED = 200


@otp_required
def person_views(request: HttpRequest, person_id: int) -> HttpResponse:
    """Who has viewed this record: the team's own check on who looks, the latest 200. The
    whole log is the council's audit, which its administrators and IG officers read."""
    user = _user(request)
    access = selectors.person_access(user, person_id)
    viewings = selectors.person_viewings(
        user=user, person_id=person_id, limit=VIEWINGS_LISTED, access=access, audit=True
    )
    context = {"person": access.person, "viewings": viewings, "listed": VIEWINGS_LISTED}
    return render(request, "core/person_views.html", context)


def _state_reason(request: HttpRequest, access: selectors.PersonAccess) -> HttpResponse:
    form = RecordOpeningForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            services.record_open(
                user=_user(request),
                person=access.person,
                reason=form.cleaned_data["reason"],
                note=form.cleaned_data["note"],
                break_glass=access.break_glass,
            )
        except ValidationError as exc:
            errors_onto_form(form, exc)
        else:
            return redirect("core:person", person_id=access.person.pk)
    context = {"person": access.person, "access": access, "form": form}
    return render(request, "core/person_reason.html", context, status=200)


@otp_required
def family(request: HttpRequest, person_id: int) -> HttpResponse:
    user = _user(request)
    access = selectors.person_access(user, person_id)
    if not access.can_see_network:
        return redirect("core:person", person_id=person_id)
    network = selectors.person_network(user=user, person_id=person_id, access=access)
    relatives = []
    for index, (relationship, relative, members) in enumerate(network.family, start=1):
        relative_network = Network(person=relative, current=members, history=[])
        relatives.append(
            {
                "label": selectors.relationship_label(relationship, network.person),
                "person": relative,
                "picture": _picture(relative_network, svg_id=f"family-{index}"),
                "groups": _grouped(relative_network),
            }
        )
    context = {
        "person": network.person,
        "network": network,
        "picture": _picture(network),
        "groups": _grouped(network),
        "relatives": relatives,
    }
    return render(request, "core/family.html", context)


@otp_required
def contact_request_new(request: HttpRequest, person_id: int) -> HttpResponse:
    user = _user(request)
    reference = request.POST.get("service") or request.GET.get("service", "")
    try:
        access = selectors.person_viewable(user, person_id)
        organisation = selectors.sensitive_service_for_contact(user, person_id, reference)
    except PermissionDenied:
        return redirect("core:person", person_id=person_id)
    form = ContactRequestForm(request.POST or None, initial={"service": reference})
    if request.method == "POST" and form.is_valid():
        try:
            services.contact_request_send(
                user=user,
                person=access.person,
                organisation=organisation,
                message=form.cleaned_data["message"],
            )
        except ValidationError as exc:
            errors_onto_form(form, exc)
        else:
            messages.success(
                request,
                "Your request is sent. The service will decide whether to get in touch; "
                "you will get a notification either way.",
            )
            return redirect("core:person", person_id=person_id)
    return render(request, "core/contact_request_new.html", {"person": access.person, "form": form})


# --- Involvements -------------------------------------------------------------------------


@otp_required
def involvement_new(request: HttpRequest, person_id: int) -> HttpResponse:
    user = _user(request)
    access = selectors.person_access(user, person_id)
    if not access.can_see_network:
        return redirect("core:person", person_id=person_id)
    practitioners = selectors.practitioners_actor_may_act_for(user)
    own = practitioners[0]
    form = InvolvementForm(
        request.POST or None,
        practitioners=practitioners,
        roles=selectors.roles_active(),
        may_mark_sensitive=not own.organisation.sensitive_service,
    )
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            involvement = services.involvement_add(
                actor=user,
                person=access.person,
                practitioner=data.get("practitioner") or own,
                role=data["role"],
                start_date=data["start_date"],
                legal_basis=data["legal_basis"],
                sensitive=data.get("sensitive"),  # None: the service decides
                lead_professional=data["lead_professional"],
            )
        except ValidationError as exc:
            errors_onto_form(form, exc)
        except PermissionDenied:
            form.add_error(None, "You can only record your own involvement, or your staff's")
        else:
            who = (
                "You are"
                if involvement.practitioner == own
                else (f"{involvement.practitioner.user.full_name} is")
            )
            messages.success(request, f"{who} now on the team around {access.person.full_name}.")
            return redirect("core:person", person_id=person_id)
    context = {
        "person": access.person,
        "form": form,
        "own": own,
        "sensitive_service": own.organisation.sensitive_service,
    }
    return render(request, "core/involvement_new.html", context)


@otp_required
def involvement_detail(request: HttpRequest, involvement_id: int) -> HttpResponse:
    involvement = selectors.involvement_for_actor(_user(request), involvement_id)
    return render(request, "core/involvement_detail.html", {"involvement": involvement})


@require_POST
@otp_required
def involvement_confirm(request: HttpRequest, involvement_id: int) -> HttpResponse:
    user = _user(request)
    involvement = selectors.involvement_for_actor(user, involvement_id)
    try:
        services.involvement_confirm(actor=user, involvement=involvement)
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    else:
        messages.success(
            request, f"You confirmed the involvement with {involvement.person.full_name}."
        )
    return redirect(next_url_or(request, reverse("core:my_involvements")))


@otp_required
def involvement_update(request: HttpRequest, involvement_id: int) -> HttpResponse:
    user = _user(request)
    involvement = selectors.involvement_for_actor(user, involvement_id)
    if not involvement.is_current:
        return redirect("core:involvement", involvement_id=involvement.pk)
    form = InvolvementUpdateForm(
        request.POST or None,
        initial={
            "last_contact_date": involvement.last_contact_date,
            "lead_professional": involvement.lead_professional,
        },
    )
    if request.method == "POST" and form.is_valid():
        try:
            services.involvement_update(
                actor=user,
                involvement=involvement,
                last_contact_date=form.cleaned_data["last_contact_date"],
                lead_professional=form.cleaned_data["lead_professional"],
            )
        except ValidationError as exc:
            errors_onto_form(form, exc)
        else:
            messages.success(request, f"The involvement with {involvement.person} is updated.")
            return redirect("core:involvement", involvement_id=involvement.pk)
    context = {"involvement": involvement, "form": form}
    return render(request, "core/involvement_update.html", context)


@otp_required
def involvement_end(request: HttpRequest, involvement_id: int) -> HttpResponse:
    user = _user(request)
    involvement = selectors.involvement_for_actor(user, involvement_id)
    if not involvement.is_current:
        return redirect("core:involvement", involvement_id=involvement.pk)
    form = InvolvementEndForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            services.involvement_end(
                actor=user,
                involvement=involvement,
                reason=form.cleaned_data["end_reason"],
                end_date=form.cleaned_data["end_date"],
            )
        except ValidationError as exc:
            errors_onto_form(form, exc)
        else:
            messages.success(
                request,
                f"The involvement with {involvement.person} has ended. It stays on the "
                "record as history.",
            )
            return redirect("core:my_involvements")
    context = {"involvement": involvement, "form": form}
    return render(request, "core/involvement_end.html", context)


# --- Me -------------------------------------------------------------------------------------


@practitioner_required
def my_involvements(request: HttpRequest) -> HttpResponse:
    user = _user(request)
    involvements = list(selectors.my_involvements(user))
    context = {
        "current": [i for i in involvements if i.is_current],
        "ended": [i for i in involvements if not i.is_current],
        "staff": list(selectors.staff_involvements(user)),
        "is_manager": user.role == User.Role.MANAGER,
    }
    return render(request, "core/my_involvements.html", context)


@practitioner_required
def profile(request: HttpRequest) -> HttpResponse:
    user = _user(request)
    existing = selectors.practitioner_of(user)
    initial = (
        {
            "organisation": existing.organisation_id,
            "job_title": existing.job_title,
            "team": existing.team,
            "work_phone": existing.work_phone,
            "secure_email": existing.secure_email,
        }
        if existing
        else {}
    )
    form = ProfileForm(request.POST or None, initial=initial)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            services.practitioner_profile_set(
                user=user,
                organisation=data["organisation"],
                job_title=data["job_title"],
                team=data["team"],
                work_phone=data["work_phone"],
                secure_email=data["secure_email"],
                # Set by the council, not by the practitioner: keep whatever it was.
                child_protection=existing.child_protection if existing else False,
            )
        except ValidationError as exc:
            errors_onto_form(form, exc)
        else:
            messages.success(request, "Your profile is saved.")
            return redirect("core:profile")
    context = {"form": form, "practitioner": existing}
    return render(request, "core/profile.html", context)


@otp_required
def notifications(request: HttpRequest) -> HttpResponse:
    user = _user(request)
    items = list(selectors.notifications_for(user)[:200])
    services.notifications_read(user=user)
    return render(request, "core/notifications.html", {"notifications": items})


@practitioner_required
def contact_requests(request: HttpRequest) -> HttpResponse:
    user = _user(request)
    context = {
        "received": list(selectors.contact_requests_for_service(user)[:200]),
        "sent": selectors.contact_requests_sent(user),
        "practitioner": selectors.practitioner_of(user),
    }
    return render(request, "core/contact_requests.html", context)


@practitioner_required
def contact_request_decide(request: HttpRequest, request_id: int) -> HttpResponse:
    user = _user(request)
    contact_request = selectors.contact_request_for_decider(user, request_id)
    form = ContactRequestDecisionForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        accept = form.cleaned_data["decision"] == "accept"
        try:
            services.contact_request_decide(
                user=user,
                request=contact_request,
                accept=accept,
                response=form.cleaned_data["response"],
            )
        except ValidationError as exc:
            errors_onto_form(form, exc)
        except PermissionDenied as exc:
            raise Http404("No such request") from exc
        else:
            messages.success(
                request,
                "You accepted the request: your contact details are sent."
                if accept
                else "You declined the request. The requester is told, without your name.",
            )
            return redirect("core:contact_requests")
    context = {"contact_request": contact_request, "form": form}
    return render(request, "core/contact_request_decide.html", context)


# --- Council administration ----------------------------------------------------------------


@admin_required
def users(request: HttpRequest) -> HttpResponse:
    form = InviteUserForm(request.POST or None)
    invitation_url = None
    if request.method == "POST" and form.is_valid():
        try:
            invited = invitations.staff_invite(actor=_user(request), **form.cleaned_data)
        except ValidationError as exc:
            errors_onto_form(form, exc)
        else:
            # Emailed (core.invitations); shown once too, for a mail server not set up yet.
            invitation_url = request.build_absolute_uri(f"/invitation/{invited.token}/")
            back = " back" if invited.reactivated else ""
            messages.success(
                request, f"{invited.user.full_name} is invited{back}. The link is emailed to them."
            )
            form = InviteUserForm()
    context = {"form": form, "users": users_for_admin(), "invitation_url": invitation_url}
    return render(request, "core/users.html", context)


@admin_required
@require_POST
def user_invitation_new(request: HttpRequest, user_id: int) -> HttpResponse:
    """A new invitation link for someone who cannot sign in yet (shown once, like the first)."""
    invited = user_for_admin(user_id)
    invitation_url = None
    try:
        token = invitations.invitation_resend(actor=_user(request), user=invited)
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    else:
        invitation_url = request.build_absolute_uri(f"/invitation/{token}/")
        messages.success(request, f"{invited.full_name} has a new invitation, emailed to them.")
    context = {
        "form": InviteUserForm(),
        "users": users_for_admin(),
        "invitation_url": invitation_url,
    }
    return render(request, "core/users.html", context)


@admin_required
def organisations(request: HttpRequest) -> HttpResponse:
    form = OrganisationForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            # The service makes mental health, substance misuse and sexual health sensitive.
            organisation = services.organisation_create(
                name=data["name"],
                agency_type=data["agency_type"],
                sensitive_service=data["sensitive_service"],
                phone=data["phone"],
                secure_email=data["secure_email"],
            )
        except ValidationError as exc:
            errors_onto_form(form, exc)
        else:
            messages.success(request, f"{organisation.name} is added.")
            return redirect("core:organisations")
    context = {"form": form, "organisations": selectors.organisations_list()}
    return render(request, "core/organisations.html", context)


@admin_required
def organisation_detail(request: HttpRequest, organisation_id: int) -> HttpResponse:
    organisation = selectors.organisation_for_admin(organisation_id)
    return render(request, "core/organisation_detail.html", {"organisation": organisation})


@admin_required
def roles(request: HttpRequest) -> HttpResponse:
    form = RoleForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            role = services.role_create(
                name=form.cleaned_data["name"],
                child_protection=form.cleaned_data["child_protection"],
                actor=_user(request),
            )
        except ValidationError as exc:
            errors_onto_form(form, exc)
        else:
            messages.success(request, f"{role.name} is added to the list of roles.")
            return redirect("core:roles")
    return render(request, "core/roles.html", {"form": form, "roles": selectors.roles_list()})


@governance_required
def audit(request: HttpRequest) -> HttpResponse:
    return render(request, "core/audit.html", {"events": selectors.audit_events_count()})


class _Echo:
    """csv.writer writes into this and gets the line back, so rows stream one at a time."""

    def write(self, value: str) -> str:
        return value


@governance_required
def audit_export_csv(request: HttpRequest) -> HttpResponse:
    writer = csv_writer(_Echo())
    rows = services.audit_export(actor=_user(request))
    response = StreamingHttpResponse(
        (writer.writerow(row) for row in rows), content_type="text/csv; charset=utf-8"
    )
    council = getattr(request, "tenant", None)
    name = getattr(council, "slug", "") or "council"
    response["Content-Disposition"] = f'attachment; filename="patchwork-audit-{name}.csv"'
    response["Cache-Control"] = "no-store"
    # The access decorators are typed for HttpResponse; a streamed response serves the same.
    return cast(HttpResponse, response)


# --- Delivery: notification preferences and the email outbox ----------------------------


@otp_required
def notifications_short(request: HttpRequest) -> HttpResponse:
    """One notifications page: the one in the header (`core:notifications`)."""
    return redirect("core:notifications")


@otp_required
def notification_preferences(request: HttpRequest) -> HttpResponse:
    user: User = request.user  # type: ignore[assignment]
    if request.method == "POST":
        choices = {
            kind: request.POST.get(kind, "")
            for kind, _, _ in delivery_notifications.preferences_for(user)
        }
        try:
            delivery_notifications.notification_preferences_set(user=user, choices=choices)
        except ValidationError as exc:
            messages.error(request, " ".join(exc.messages))
        else:
            messages.success(request, "Your choices are saved.")
            return redirect("core:notification_preferences")
    context = {
        "preferences": delivery_notifications.preferences_for(user),
        "deliveries": NotificationPreference.Delivery.choices,
    }
    return render(request, "core/notification_preferences.html", context)


@admin_required
def email_problems(request: HttpRequest) -> HttpResponse:
    return render(
        request, "core/email_problems.html", {"problems": delivery_email.email_problems()[:200]}
    )


@admin_required
def email_outbox(request: HttpRequest) -> HttpResponse:
    return render(request, "core/email_outbox.html", {"emails": delivery_email.email_recent()})
