"""Where the apps above core add to core's pages, so that core names none of them.

- The person page includes each registered fragment: an *action* (a line in the list of
  things to do beside the lead professional) or a *panel* (a section below it, shown to the
  person's team only or to everyone who may see the page). Fragments are Jinja2 templates,
  in the app's `jinja2/` folder, as the page's content is (decision 0027).
- The council pages' navigation shows each registered link, in order, to the roles named.
- The administrator's set-up checklist shows each registered step, in order, with whether
  it is done (worked out from the council's data each time the list is shown).
- Merging two records of one person (`core.merges`) carries over the rows of every
  registered table that points at a person (by model label and field name).

Apps register in their `AppConfig.ready()`; core's own links are registered here."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from accounts.models import User


@dataclass(frozen=True)
class PersonPageFragment:
    template: str
    place: Literal["action", "panel"]
    team_only: bool = False


@dataclass(frozen=True)
class NavigationLink:
    url_name: str
    label: str
    roles: tuple[str, ...]
    order: int
    # Other pages (URL names) under which this link shows as the current one.
    also_active: tuple[str, ...] = ()
    # Shows the number of unread notifications beside the label.
    unread_count: bool = False

    @property
    def key(self) -> str:
        return self.url_name.split(":")[1]


@dataclass(frozen=True)
class SetUpStep:
    """One task of the council administrator's first-run checklist."""

    url_name: str
    label: str
    hint: str
    order: int
    # Asked inside the council's schema each time the checklist is drawn.
    done: Callable[[], bool]


PERSON_PAGE_FRAGMENTS: list[PersonPageFragment] = []
# (model label, field): rows a merge moves from the absorbed record to the kept one. Core's
# own tables with rules of their own (involvements, names, family links) are moved by
# `core.merges` itself.
PERSON_MERGE_CARRIED: list[tuple[str, str]] = [
    ("core.RecordOpening", "person"),
    ("core.ContactRequest", "person"),
    ("core.Notification", "person"),
]


def person_merge_carry_add(model_label: str, field: str) -> None:
    """A merge of two records moves this table's rows whose `field` is the absorbed one."""
    if (model_label, field) not in PERSON_MERGE_CARRIED:
        PERSON_MERGE_CARRIED.append((model_label, field))


NAVIGATION: list[NavigationLink] = []
SET_UP_STEPS: list[SetUpStep] = []


def set_up_step_add(step: SetUpStep) -> None:
    if all(each.url_name != step.url_name for each in SET_UP_STEPS):
        SET_UP_STEPS.append(step)
        SET_UP_STEPS.sort(key=lambda each: each.order)


def person_page_fragment_add(fragment: PersonPageFragment) -> None:
    if fragment not in PERSON_PAGE_FRAGMENTS:
        PERSON_PAGE_FRAGMENTS.append(fragment)


def person_page_fragments(*, place: str, team: bool) -> list[str]:
    """The templates to include at `place` for a viewer who is (or is not) on the team."""
    return [
        f.template for f in PERSON_PAGE_FRAGMENTS if f.place == place and (team or not f.team_only)
    ]


def navigation_link_add(link: NavigationLink) -> None:
    if link not in NAVIGATION:
        NAVIGATION.append(link)
        NAVIGATION.sort(key=lambda each: each.order)
        for forget in _NAVIGATION_CACHES:
            forget()


# The template tag that draws the navigation caches it per role; a link added later (in a
# test, say) must not be missed.
_NAVIGATION_CACHES: list[Callable[[], None]] = []


def navigation_cache_add(forget: Callable[[], None]) -> None:
    """Call `forget` whenever a navigation link is added."""
    _NAVIGATION_CACHES.append(forget)


PRACTITIONERS: tuple[str, ...] = (User.Role.PRACTITIONER, User.Role.MANAGER)
ADMINISTRATORS: tuple[str, ...] = (User.Role.COUNCIL_ADMIN,)
GOVERNANCE: tuple[str, ...] = (User.Role.COUNCIL_ADMIN, User.Role.IG_OFFICER)
IG_OFFICERS: tuple[str, ...] = (User.Role.IG_OFFICER,)

for _link in (
    NavigationLink("core:search", "Search", PRACTITIONERS, 10, also_active=("search_break_glass",)),
    NavigationLink("core:my_involvements", "My involvements", PRACTITIONERS, 20),
    NavigationLink("core:notifications", "Notifications", PRACTITIONERS, 40, unread_count=True),
    NavigationLink("core:contact_requests", "Contact requests", PRACTITIONERS, 50),
    NavigationLink("core:profile", "Profile", PRACTITIONERS, 60),
    NavigationLink(
        "core:set_up",
        "Set up",
        ADMINISTRATORS,
        105,
        also_active=("register_import", "set_up_policy"),
    ),
    NavigationLink("core:users", "Users", ADMINISTRATORS, 110),
    NavigationLink(
        "core:organisations",
        "Organisations",
        ADMINISTRATORS,
        120,
        also_active=("organisation_detail",),
    ),
    NavigationLink("core:roles", "Roles", ADMINISTRATORS, 130),
    NavigationLink(
        "core:imports",
        "Imports",
        ADMINISTRATORS,
        135,
        also_active=("import_run", "source_system_new"),
    ),
    NavigationLink("core:email_problems", "Email problems", ADMINISTRATORS, 140),
    NavigationLink("core:audit", "Audit log", GOVERNANCE, 150),
    NavigationLink(
        "core:merges",
        "Merged records",
        ADMINISTRATORS,
        145,
        also_active=("merge_find", "merge_find_other", "merge_check", "merge_detail"),
    ),
    NavigationLink(
        "core:subject_access_find",
        "Subject access",
        IG_OFFICERS,
        160,
        also_active=("subject_access",),
    ),
):
    navigation_link_add(_link)
