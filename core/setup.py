"""The council administrator's set-up checklist: each step, and whether the council's data
shows it done. Apps above core add their steps through `core.extensions.set_up_step_add`
(federation: data-sharing agreements)."""

from __future__ import annotations

from dataclasses import dataclass

from django.core.exceptions import ValidationError
from django.db import transaction
from django.urls import reverse
from django.utils import timezone

from accounts.models import User
from core.audit import audit_record
from core.extensions import SET_UP_STEPS, SetUpStep, set_up_step_add
from core.models import CouncilPolicy, InvolvementRole, Organisation

Register = Organisation.Register


@dataclass(frozen=True)
class SetUpTask:
    label: str
    hint: str
    href: str
    done: bool


@dataclass(frozen=True)
class SetUpChecklist:
    tasks: list[SetUpTask]

    @property
    def done_count(self) -> int:
        return sum(1 for task in self.tasks if task.done)

    @property
    def complete(self) -> bool:
        return self.done_count == len(self.tasks)


def set_up_checklist() -> SetUpChecklist:
    """Every step, in order, with its status worked out from the council's data now."""
    return SetUpChecklist(
        [
            SetUpTask(step.label, step.hint, reverse(step.url_name), step.done())
            for step in SET_UP_STEPS
        ]
    )


# Steps that are someone's judgement rather than data: an administrator says they did them.
REVIEWS = {
    "sensitive-services": ("sensitive_services_reviewed_at", "sensitive_services_reviewed"),
    "policy": ("policy_reviewed_at", "policy_reviewed"),
}


@transaction.atomic
def set_up_reviewed(*, step: str, actor: User) -> CouncilPolicy:
    """Record that an administrator reviewed `step` (audited)."""
    if step not in REVIEWS:
        raise ValidationError("There is no such step to review")
    field, action = REVIEWS[step]
    policy = CouncilPolicy.current()
    setattr(policy, field, timezone.now())
    policy.save(update_fields=[field])
    audit_record(actor=actor, action=action, detail={})
    return policy


def _registered(*registers: str) -> bool:
    return Organisation.objects.filter(register__in=registers).exists()


for _step in (
    SetUpStep(
        "core:register_import",
        "Import your schools",
        "From the Department for Education's Get Information About Schools extract.",
        10,
        lambda: _registered(Register.GIAS),
    ),
    SetUpStep(
        "core:register_import_nhs",
        "Import GP practices and NHS trusts",
        "From the NHS Organisation Data Service files.",
        20,
        lambda: _registered(Register.ODS_GP, Register.ODS_TRUST),
    ),
    SetUpStep(
        "core:organisations",
        "Add your other organisations",
        "Children's social care, early help, police, housing, voluntary groups.",
        30,
        lambda: Organisation.objects.filter(register="").exists(),
    ),
    SetUpStep(
        "core:roles",
        "Check the list of roles",
        "Practitioners choose their role from it. Rename, retire or add roles.",
        40,
        lambda: InvolvementRole.objects.filter(active=True).exists(),
    ),
    SetUpStep(
        "core:sensitive_services",
        "Review which services are sensitive",
        "Involvement with a sensitive service is shown only as a sensitive service.",
        50,
        lambda: CouncilPolicy.current().sensitive_services_reviewed_at is not None,
    ),
    SetUpStep(
        "core:set_up_policy",
        "Check how long records are kept",
        "Retention and how often practitioners confirm their involvements.",
        60,
        lambda: CouncilPolicy.current().policy_reviewed_at is not None,
    ),
    SetUpStep(
        "core:users",
        "Invite your staff",
        "Practitioners and managers get an invitation link.",
        80,
        lambda: User.objects.filter(
            role__in=[User.Role.PRACTITIONER, User.Role.MANAGER], is_active=True
        ).exists(),
    ),
):
    set_up_step_add(_step)
