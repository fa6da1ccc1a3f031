"""Synthetic records for the demo and the benchmarks, at any size up to a large county.

Everything is invented (Faker en_GB pools; NHS numbers from a national space never issued
to patients, one block per council, so no two councils' people share one). To reach county
scale (250,000 children, about 1,000,000 involvements, 20,000 practitioners) in minutes,
rows go in through PostgreSQL COPY into the current council's tables, with ids reserved
from each table's sequence, and the search keys are computed by the same functions the
models' save() uses. No audit event is written per row:
one event records the whole load.

Call it inside a council's schema (`schema_context`)."""

from __future__ import annotations

import base64
import hashlib
import random
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from django.contrib.auth.hashers import make_password
from django.core.exceptions import ImproperlyConfigured
from django.db import connection, models, transaction
from django.utils import timezone
from django_otp.oath import TOTP
from django_otp.plugins.otp_totp.models import TOTPDevice
from faker import Faker
from psycopg.types.json import Jsonb

from accounts.models import User
from core.audit import audit_record
from core.identifiers import name_key, nhs_number_check_digit, nhs_number_is_valid, postcode_key
from core.models import (
    FamilyRelationship,
    Involvement,
    InvolvementRole,
    Organisation,
    Person,
    PersonName,
    Practitioner,
)
from core.retention import years_before

AgencyType = Organisation.AgencyType


@dataclass(frozen=True)
class RoleSpec:
    name: str
    agency: str
    child_protection: bool = False


# The council-managed list of involvement roles, with the agency that holds each. The
# statutory safeguarding roles (children's social work and the police officer in the
# multi-agency safeguarding hub) are child-protection roles: always visible, never sensitive.
ROLES: tuple[RoleSpec, ...] = (
    RoleSpec("Child protection social worker", AgencyType.SOCIAL_CARE, True),
    RoleSpec("Child in need social worker", AgencyType.SOCIAL_CARE, True),
    RoleSpec("Lead professional (early help)", AgencyType.EARLY_HELP),
    RoleSpec("Family support worker", AgencyType.EARLY_HELP),
    RoleSpec("Class teacher", AgencyType.SCHOOL),
    RoleSpec("Designated safeguarding lead", AgencyType.SCHOOL),
    RoleSpec("Special educational needs coordinator", AgencyType.SCHOOL),
    RoleSpec("Early years key worker", AgencyType.EARLY_YEARS),
    RoleSpec("GP", AgencyType.GP),
    RoleSpec("Health visitor", AgencyType.HEALTH_VISITING),
    RoleSpec("School nurse", AgencyType.SCHOOL_NURSING),
    RoleSpec("Paediatrician", AgencyType.HOSPITAL),
    RoleSpec("Midwife", AgencyType.HOSPITAL),
    RoleSpec("CAMHS practitioner", AgencyType.MENTAL_HEALTH),
    RoleSpec("Adult mental health nurse", AgencyType.MENTAL_HEALTH),
    RoleSpec("Substance misuse worker", AgencyType.SUBSTANCE_MISUSE),
    RoleSpec("Sexual health nurse", AgencyType.SEXUAL_HEALTH),
    RoleSpec("Police officer (MASH)", AgencyType.POLICE, True),
    RoleSpec("Housing officer", AgencyType.HOUSING),
    RoleSpec("Probation officer", AgencyType.PROBATION),
    RoleSpec("Youth justice worker", AgencyType.YOUTH_JUSTICE),
    RoleSpec("Youth worker", AgencyType.YOUTH),
    RoleSpec("Young carers worker", AgencyType.VOLUNTARY),
    RoleSpec("Family support volunteer", AgencyType.VOLUNTARY),
)
ROLE_AGENCY = {spec.name: spec.agency for spec in ROLES}

# Share of the practitioners working in each kind of agency (teachers are the most numerous).
STAFF_SHARE: dict[str, float] = {
    AgencyType.SCHOOL: 0.36,
    AgencyType.SOCIAL_CARE: 0.12,
    AgencyType.EARLY_HELP: 0.06,
    AgencyType.EARLY_YEARS: 0.05,
    AgencyType.GP: 0.06,
    AgencyType.HEALTH_VISITING: 0.05,
    AgencyType.SCHOOL_NURSING: 0.04,
    AgencyType.HOSPITAL: 0.03,
    AgencyType.MENTAL_HEALTH: 0.05,
    AgencyType.SUBSTANCE_MISUSE: 0.02,
    AgencyType.SEXUAL_HEALTH: 0.01,
    AgencyType.POLICE: 0.03,
    AgencyType.HOUSING: 0.03,
    AgencyType.PROBATION: 0.02,
    AgencyType.YOUTH_JUSTICE: 0.02,
    AgencyType.YOUTH: 0.02,
    AgencyType.VOLUNTARY: 0.03,
}

# Towns and postcode districts for the demo councils; any other council gets Faker's.
PLACES: dict[str, tuple[list[str], list[str]]] = {
    "E06000043": (
        [
            "Brighton",
            "Hove",
            "Portslade",
            "Rottingdean",
            "Woodingdean",
            "Patcham",
            "Moulsecoomb",
            "Whitehawk",
            "Saltdean",
            "Hangleton",
            "Kemptown",
            "Preston Park",
        ],
        ["BN1", "BN2", "BN3", "BN41", "BN42", "BN51"],
    ),
    "E10000028": (
        [
            "Stafford",
            "Lichfield",
            "Tamworth",
            "Burton upon Trent",
            "Cannock",
            "Leek",
            "Stone",
            "Uttoxeter",
            "Newcastle-under-Lyme",
            "Rugeley",
            "Biddulph",
            "Cheadle",
            "Kidsgrove",
        ],
        [
            "ST16",
            "ST17",
            "ST18",
            "ST15",
            "ST14",
            "ST13",
            "ST5",
            "ST7",
            "ST8",
            "ST10",
            "WS11",
            "WS12",
            "WS13",
            "WS14",
            "WS15",
            "B77",
            "B78",
            "B79",
            "DE13",
            "DE14",
        ],
    ),
}
POSTCODE_LETTERS = "ABDEFGHJLNPQRSTUWXYZ"  # the inward code never uses C, I, K, M, O or V
SAINTS = ["Mary", "Peter", "Paul", "John", "Andrew", "Nicholas", "Luke", "Margaret", "Joseph"]


@dataclass
class SeedReport:
    """What a seeding run added, and how long each step took (seconds)."""

    organisations: int = 0
    practitioners: int = 0
    families: int = 0
    children: int = 0
    adults: int = 0
    names: int = 0
    relationships: int = 0
    involvements: int = 0
    timings: dict[str, float] = field(default_factory=dict)


@dataclass
class _Pools:
    """Names, streets and places drawn once from Faker, then sampled per row."""

    female: list[str]
    male: list[str]
    surnames: list[str]
    streets: list[str]
    towns: list[str]
    districts: list[str]

    @classmethod
    def build(cls, rng: random.Random, council_code: str) -> _Pools:
        fake = Faker("en_GB")
        fake.seed_instance(rng.randrange(2**32))
        towns, districts = PLACES.get(council_code, ([], []))
        if not towns:
            towns = sorted({fake.city() for _ in range(40)})
            districts = sorted({postcode_key(fake.postcode())[:-3] for _ in range(30)})
        surnames = sorted({fake.last_name() for _ in range(4000)})
        # A few double-barrelled surnames, as in any county.
        surnames += [
            f"{a}-{b}" for a, b in zip(surnames[:60], reversed(surnames[-60:]), strict=True)
        ]
        return cls(
            female=sorted({fake.first_name_female() for _ in range(3000)}),
            male=sorted({fake.first_name_male() for _ in range(3000)}),
            surnames=surnames,
            streets=sorted({fake.street_name() for _ in range(3000)}),
            towns=towns,
            districts=districts,
        )

    def postcode(self, rng: random.Random) -> str:
        district = rng.choice(self.districts)
        letters = rng.choice(POSTCODE_LETTERS) + rng.choice(POSTCODE_LETTERS)
        return f"{district} {rng.randint(1, 9)}{letters}"


class _CopyTable:
    """COPY rows into one model's table in the current schema. Columns not given take the
    field's default (or now() for created-at stamps), so a column added later with a default
    does not break seeding; a new required column without one stops it with a clear error."""

    def __init__(self, model: type[models.Model], columns: Sequence[str]) -> None:
        self.model = model
        now = timezone.now()
        given = set(columns)
        names: list[str] = list(columns)
        extra: list[Any] = []
        for f in model._meta.concrete_fields:
            if f.attname in given or f.primary_key:
                continue
            if f.has_default():
                value = f.get_db_prep_save(f.get_default(), connection)
            elif getattr(f, "auto_now_add", False) or getattr(f, "auto_now", False):
                value = now
            elif f.null:
                value = None
            else:
                raise ImproperlyConfigured(
                    f"Seeding does not know what to put in {model._meta.db_table}.{f.column}"
                )
            names.append(str(f.column))
            extra.append(value)
        self.extra = tuple(extra)
        table = f'"{_schema()}"."{model._meta.db_table}"'
        self.sql = f"COPY {table} ({', '.join(names)}) FROM STDIN"  # noqa: S608 (our own names)

    def write(self, rows: Iterable[tuple[Any, ...]]) -> int:
        count = 0
        with connection.cursor() as cursor, cursor.copy(self.sql) as copy:
            for row in rows:
                copy.write_row(row + self.extra)
                count += 1
        return count


def _schema() -> str:
    """The schema of the council being seeded (django-tenants' connection knows it)."""
    return str(connection.schema_name)  # type: ignore[attr-defined]


def _reserve_ids(model: type[models.Model], count: int) -> int:
    """Reserve `count` consecutive ids from the table's own sequence; return the first."""
    if count == 0:
        return 0
    table = f'"{_schema()}"."{model._meta.db_table}"'
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_get_serial_sequence(%s, 'id')", [table])
        sequence = cursor.fetchone()[0]
        cursor.execute("SELECT setval(%s, nextval(%s) + %s - 1)", [sequence, sequence, count])
        last = cursor.fetchone()[0]
    return int(last) - count + 1


# The demo's national space of NHS numbers: nine-digit stems (before the check digit) that
# are never issued to a patient (England and Wales issue from 400 and 600 million up to
# 708.8 million; Scotland's CHI and Northern Ireland's numbers begin 0 to 3; 999 is the NHS
# test range), cut into one block per council, so no two councils' people ever share a
# number, on one deployment or several. A block is a pure function of the council's ONS
# code: no registry is needed.
NHS_SPACE = ((500_000_000, 600_000_000), (800_000_000, 980_000_000))
# Stems per block: about 727,000 valid numbers, room for a county of ~300,000 children.
NHS_BLOCK = 800_000
# ONS code prefixes of councils with children's services, and how many serials each may
# use (E10 serials reach 99 in the benchmarks): 350 blocks, the whole of NHS_SPACE.
NHS_BLOCK_SLOTS = (("E06", 100), ("E10", 100), ("E08", 50), ("E09", 50), ("W06", 50))
# Brighton and Hove, the demo council whose numbers the demo prints and people quote (its
# /people/3/ is 9906404566), keeps the block it always drew from: 990 000 000 upward.
NHS_LEGACY_BLOCKS = {"E06000043": (990_000_000, 10_000_000)}


def nhs_number_block(council_code: str) -> tuple[int, int]:
    """The council's block of the national space: (first nine-digit stem, how many)."""
    code = council_code.strip().upper()
    if code in NHS_LEGACY_BLOCKS:
        return NHS_LEGACY_BLOCKS[code]
    slot = 0
    for prefix, serials in NHS_BLOCK_SLOTS:
        serial = code[len(prefix) :]
        if code.startswith(prefix) and serial.isdigit() and 1 <= int(serial) <= serials:
            slot += int(serial) - 1
            break
        slot += serials
    else:
        raise ImproperlyConfigured(
            f"No block of demo NHS numbers for {council_code}: synthetic people are seeded "
            "only for councils with children's services (ONS codes E06, E08, E09, E10 and "
            "W06, serials up to " + ", ".join(f"{p} {n}" for p, n in NHS_BLOCK_SLOTS) + ")"
        )
    offset = slot * NHS_BLOCK
    for first, last in NHS_SPACE:
        if offset < last - first:
            return first + offset, NHS_BLOCK
        offset -= last - first
    raise AssertionError("NHS_BLOCK_SLOTS do not fit in NHS_SPACE")


def _nhs_numbers(
    rng: random.Random, count: int, taken: set[str], block: tuple[int, int]
) -> list[str]:
    """Distinct valid NHS numbers from the council's block of the national space."""
    first, size = block
    numbers: list[str] = []
    seen = set(taken)
    while len(numbers) < count:
        drawn = min(size, (count - len(numbers)) * 2)
        for body in rng.sample(range(size), drawn):
            nine = f"{first + body:09d}"
            check = nhs_number_check_digit(nine)
            if check is None:
                continue
            number = nine + str(check)
            if number in seen:
                continue
            seen.add(number)
            numbers.append(number)
            if len(numbers) == count:
                break
        if drawn == size and len(numbers) < count:
            raise ImproperlyConfigured(
                f"The council's block of demo NHS numbers has room for {len(numbers):,} "
                f"more people, not {count:,}: seed fewer children"
            )
    assert all(nhs_number_is_valid(n) for n in numbers[:5])
    return numbers


# --- Organisations, roles and practitioners ----------------------------------------------


def _organisation_names(
    rng: random.Random, pools: _Pools, council_name: str, children: int
) -> list[tuple[str, str]]:
    """(name, agency type) for every organisation a council of this size would have."""
    scale = max(children, 1)

    def many(per_children: int, minimum: int = 1) -> int:
        return max(minimum, round(scale / per_children))

    names: list[tuple[str, str]] = [
        (f"{council_name} Children's Social Care", AgencyType.SOCIAL_CARE),
        (f"{council_name} Early Help Service", AgencyType.EARLY_HELP),
        (f"{council_name} Health Visiting Service", AgencyType.HEALTH_VISITING),
        (f"{council_name} School Nursing Service", AgencyType.SCHOOL_NURSING),
        (f"{council_name} CAMHS", AgencyType.MENTAL_HEALTH),
        (f"{council_name} Adult Mental Health Team", AgencyType.MENTAL_HEALTH),
        (f"{council_name} Young People's Substance Misuse Service", AgencyType.SUBSTANCE_MISUSE),
        (f"{council_name} Recovery Service", AgencyType.SUBSTANCE_MISUSE),
        (f"{council_name} Police Safeguarding Hub", AgencyType.POLICE),
        (f"{council_name} Housing Options", AgencyType.HOUSING),
        (f"Probation Service ({council_name})", AgencyType.PROBATION),
        (f"{council_name} Youth Justice Service", AgencyType.YOUTH_JUSTICE),
    ]
    for town in pools.towns[: many(40_000, 1) + 1]:
        names.append((f"{town} Sexual Health Clinic", AgencyType.SEXUAL_HEALTH))
        names.append((f"{town} Youth Centre", AgencyType.YOUTH))
        names.append((f"{town} Young Carers", AgencyType.VOLUNTARY))
        names.append((f"{town} Family Hub", AgencyType.VOLUNTARY))
        names.append((f"{town} Homes", AgencyType.HOUSING))
    for town in pools.towns[: many(60_000, 1)]:
        names.append((f"{town} General Hospital", AgencyType.HOSPITAL))
    kinds = {
        AgencyType.SCHOOL: (
            many(350, 2),
            [
                "{t} Primary School",
                "{s} Academy",
                "St {saint}'s C of E Primary School",
                "{t} High School",
                "{s} Junior School",
            ],
        ),
        AgencyType.GP: (many(1_200), ["{s} Surgery", "{t} Medical Centre", "{s} Health Centre"]),
        AgencyType.EARLY_YEARS: (
            many(1_500),
            ["{s} Nursery", "{t} Pre-school", "Little {s} Day Nursery"],
        ),
    }
    for agency, (count, patterns) in kinds.items():
        made: set[str] = set()
        while len(made) < count:
            pattern = rng.choice(patterns)
            name = pattern.format(
                t=rng.choice(pools.towns),
                s=rng.choice(pools.streets).split(" ")[0],
                saint=rng.choice(SAINTS),
            )
            if name in made:
                name = f"{name} ({rng.choice(pools.towns)})"
            if name in made:
                continue
            made.add(name)
            names.append((name, agency))
    return names


def _organisations(
    rng: random.Random, pools: _Pools, council_name: str, children: int
) -> dict[str, list[Organisation]]:
    wanted = _organisation_names(rng, pools, council_name, children)
    existing = {o.name: o for o in Organisation.objects.all()}
    new = [
        Organisation(
            name=name,
            agency_type=agency,
            sensitive_service=agency in Organisation.SENSITIVE_BY_DEFAULT,
            phone=f"01{rng.randint(200, 999)} {rng.randint(100000, 999999)}",
            secure_email=f"{name_key(name)[:40]}@{name_key(council_name)[:30]}.example",
        )
        for name, agency in wanted
        if name not in existing
    ]
    Organisation.objects.bulk_create(new, batch_size=2000)
    by_agency: dict[str, list[Organisation]] = {a: [] for a in AgencyType.values}
    for organisation in Organisation.objects.all():
        by_agency[organisation.agency_type].append(organisation)
    return by_agency


def _roles() -> dict[str, InvolvementRole]:
    roles = {r.name: r for r in InvolvementRole.objects.all()}
    missing = [
        InvolvementRole(name=spec.name, child_protection=spec.child_protection)
        for spec in ROLES
        if spec.name not in roles
    ]
    InvolvementRole.objects.bulk_create(missing)
    return {r.name: r for r in InvolvementRole.objects.all()}


@dataclass(frozen=True)
class _Staff:
    id: int
    organisation_id: int
    sensitive: bool


def _practitioners(
    rng: random.Random,
    pools: _Pools,
    orgs: dict[str, list[Organisation]],
    count: int,
    council_slug: str,
) -> dict[str, list[_Staff]]:
    """Users (who cannot sign in: no usable password) with a practitioner profile each, spread
    over the agencies; returned by the role they hold."""
    roles_by_agency: dict[str, list[str]] = {}
    for spec in ROLES:
        roles_by_agency.setdefault(spec.agency, []).append(spec.name)
    total_share = sum(STAFF_SHARE.values())
    plan: list[tuple[str, Organisation]] = []  # (role, organisation)
    for agency, share in STAFF_SHARE.items():
        n = max(len(roles_by_agency[agency]), round(count * share / total_share))
        organisations = orgs[agency]
        agency_roles = roles_by_agency[agency]
        for i in range(n):
            plan.append(
                (agency_roles[i % len(agency_roles)], organisations[i % len(organisations)])
            )
    first_id = _reserve_ids(User, len(plan))
    users: list[User] = []
    unusable = make_password(None)  # sign-in refuses any password beginning with "!"
    for offset, (_role, _organisation) in enumerate(plan):
        user_id = first_id + offset
        given = rng.choice(pools.female if rng.random() < 0.7 else pools.male)
        family = rng.choice(pools.surnames)
        users.append(
            User(
                id=user_id,
                email=f"{name_key(given)}.{name_key(family)}.{user_id}@{council_slug}.example",
                full_name=f"{given} {family}",
                role=User.Role.MANAGER if offset % 9 == 0 else User.Role.PRACTITIONER,
                password=unusable,
            )
        )
    User.objects.bulk_create(users, batch_size=5000)
    teams: dict[str, list[str]] = {
        AgencyType.SOCIAL_CARE: [
            "Assessment team",
            "Child protection team",
            "MASH",
            "Children in need team",
            "Looked after children team",
        ],
        AgencyType.EARLY_HELP: ["North locality", "South locality", "Central locality"],
    }
    practitioners = [
        Practitioner(
            user_id=user.pk,
            organisation=organisation,
            job_title=role,
            team=rng.choice(teams.get(organisation.agency_type, [""])),
            work_phone=f"07{rng.randint(100, 999)} {rng.randint(100000, 999999)}",
            secure_email=user.email,
            child_protection=ROLE_AGENCY[role] in {AgencyType.SOCIAL_CARE, AgencyType.POLICE},
        )
        for user, (role, organisation) in zip(users, plan, strict=True)
    ]
    Practitioner.objects.bulk_create(practitioners, batch_size=5000)
    staff: dict[str, list[_Staff]] = {spec.name: [] for spec in ROLES}
    for practitioner in practitioners:
        staff[practitioner.job_title].append(
            _Staff(
                practitioner.pk,
                practitioner.organisation.pk,
                practitioner.organisation.sensitive_service,
            )
        )
    return staff


# --- Families, people and involvements ----------------------------------------------------


def _between(rng: random.Random, start: date, end: date) -> date:
    if end <= start:
        return start
    return start + timedelta(days=rng.randint(0, (end - start).days))


class _Generator:
    """Builds the rows of one chunk of families, ids already assigned."""

    END_REASONS = [
        Involvement.EndReason.CASE_CLOSED,
        Involvement.EndReason.CASE_CLOSED,
        Involvement.EndReason.TRANSFERRED,
        Involvement.EndReason.MOVED_AWAY,
        Involvement.EndReason.LEFT_ROLE,
    ]

    def __init__(
        self,
        rng: random.Random,
        pools: _Pools,
        staff: dict[str, list[_Staff]],
        roles: dict[str, InvolvementRole],
        today: date,
        now: datetime,
    ) -> None:
        self.rng = rng
        self.pools = pools
        self.staff = staff
        self.role_ids = {name: role.pk for name, role in roles.items()}
        self.cp_roles = {name for name, role in roles.items() if role.child_protection}
        self.today = today
        self.now = now
        self.people: list[tuple[Any, ...]] = []
        self.names: list[tuple[Any, ...]] = []
        self.relationships: list[tuple[Any, ...]] = []
        self.involvements: list[tuple[Any, ...]] = []
        self.children = 0
        self.adults = 0
        self.families = 0

    def person(
        self,
        pid: int,
        given: str,
        family: str,
        born: date,
        sex: str,
        nhs: str | None,
        address: str,
        postcode: str,
        identifiers: dict[str, str],
        shielded: bool = False,
    ) -> None:
        self.people.append(
            (
                pid,
                given,
                family,
                born,
                sex,
                nhs,
                Jsonb(identifiers),
                address,
                postcode,
                postcode_key(postcode),
                shielded,
            )
        )
        self.names.append(
            (pid, PersonName.Kind.CURRENT, given, family, name_key(given), name_key(family))
        )

    def involve(
        self,
        pid: int,
        role: str,
        *,
        born: date,
        current: bool,
        lead: bool = False,
        since: date | None = None,
    ) -> bool:
        staff = self.rng.choice(self.staff[role])
        rng = self.rng
        start = since or _between(rng, max(born, self.today - timedelta(days=365 * 8)), self.today)
        start = min(start, self.today)
        if current:
            end = None
            reason = ""
            last_contact = _between(rng, max(start, self.today - timedelta(days=150)), self.today)
            confirmed: datetime | None = self.now - timedelta(days=rng.randint(0, 120))
        else:
            end = _between(rng, start + timedelta(days=30), self.today)
            if end > self.today:
                end = self.today
            reason = rng.choice(self.END_REASONS)
            last_contact = _between(rng, start, end)
            confirmed = None
        if role in self.cp_roles:
            basis = Involvement.LegalBasis.LEGAL_OBLIGATION
        elif ROLE_AGENCY[role] == AgencyType.VOLUNTARY:
            basis = Involvement.LegalBasis.CONSENT
        else:
            basis = Involvement.LegalBasis.PUBLIC_TASK
        self.involvements.append(
            (
                pid,
                staff.id,
                staff.organisation_id,
                self.role_ids[role],
                start,
                end,
                reason,
                last_contact,
                confirmed,
                basis,
                staff.sensitive and role not in self.cp_roles,
                lead,
            )
        )
        return True

    def family(self, next_id: Callable[[], int], nhs: Callable[[], str], most: int = 4) -> None:
        rng, pools, today = self.rng, self.pools, self.today
        self.families += 1
        surname = rng.choice(pools.surnames)
        postcode = pools.postcode(rng)
        town = rng.choice(pools.towns)
        address = f"{rng.randint(1, 240)} {rng.choice(pools.streets)}\n{town}"
        n_children = min(most, rng.choices([1, 2, 3, 4], weights=[40, 35, 17, 8])[0])
        youngest_age = rng.randint(0, 17)
        ages_days: list[int] = []
        age_days = youngest_age * 365 + rng.randint(0, 364)
        for _ in range(n_children):
            if age_days < 18 * 365:
                ages_days.append(age_days)
            age_days += rng.randint(300, 1800)
        oldest_birth = today - timedelta(days=max(ages_days))
        # Parents and carers.
        parents: list[int] = []
        two_parents = rng.random() < 0.7
        for index in range(2 if two_parents else 1):
            pid = next_id()
            female = index == 0
            family_name = (
                surname if index == 0 or rng.random() < 0.8 else rng.choice(pools.surnames)
            )
            born = oldest_birth - timedelta(days=rng.randint(18 * 365, 40 * 365))
            self.person(
                pid,
                rng.choice(pools.female if female else pools.male),
                family_name,
                born,
                Person.Sex.FEMALE if female else Person.Sex.MALE,
                nhs() if rng.random() < 0.85 else None,
                address,
                postcode,
                {},
            )
            parents.append(pid)
            self.adults += 1
            self._adult_involvements(pid, born)
        extra: tuple[int, str] | None = None
        roll = rng.random()
        if roll < 0.1:
            extra = (next_id(), FamilyRelationship.Kind.HOUSEHOLD)
        elif roll < 0.13:
            extra = (next_id(), FamilyRelationship.Kind.CARER)
        if extra:
            born = oldest_birth - timedelta(days=rng.randint(40 * 365, 60 * 365))
            self.person(
                extra[0],
                rng.choice(pools.female),
                rng.choice(pools.surnames),
                born,
                Person.Sex.FEMALE,
                nhs() if rng.random() < 0.85 else None,
                address,
                postcode,
                {},
            )
            self.adults += 1
        # Children.
        kids: list[int] = []
        for days in ages_days:
            pid = next_id()
            born = today - timedelta(days=days)
            female = rng.random() < 0.49
            sex = Person.Sex.FEMALE if female else Person.Sex.MALE
            if rng.random() < 0.005:
                sex = Person.Sex.UNKNOWN
            given = rng.choice(pools.female if female else pools.male)
            identifiers: dict[str, str] = {}
            if days >= 4 * 365:
                identifiers["UPN"] = f"{rng.choice('ABHKMNPRTW')}{rng.randint(10**11, 10**12 - 1)}"
            shielded, social_care = self._child_involvements(pid, born, days // 365)
            if social_care:
                identifiers["LCS"] = str(rng.randint(1_000_000, 9_999_999))
            self.person(
                pid,
                given,
                surname,
                born,
                sex,
                nhs() if rng.random() < 0.97 else None,
                address,
                postcode,
                identifiers,
                shielded,
            )
            roll = rng.random()
            if roll < 0.04:
                previous = rng.choice(pools.surnames)
                self.names.append(
                    (
                        pid,
                        PersonName.Kind.PREVIOUS,
                        given,
                        previous,
                        name_key(given),
                        name_key(previous),
                    )
                )
            elif roll < 0.05:
                alias = rng.choice(pools.female if female else pools.male)
                self.names.append(
                    (pid, PersonName.Kind.ALIAS, alias, surname, name_key(alias), name_key(surname))
                )
            for parent in parents:
                self.relationships.append((pid, parent, FamilyRelationship.Kind.PARENT, born, None))
            if extra:
                self.relationships.append((pid, extra[0], extra[1], born, None))
            kids.append(pid)
            self.children += 1
        for i, older in enumerate(kids):
            for younger in kids[i + 1 :]:
                self.relationships.append(
                    (older, younger, FamilyRelationship.Kind.SIBLING, None, None)
                )

    def _adult_involvements(self, pid: int, born: date) -> None:
        rng = self.rng
        for role, chance in (
            ("GP", 0.25),
            ("Housing officer", 0.08),
            ("Probation officer", 0.03),
            ("Substance misuse worker", 0.05),
            ("Adult mental health nurse", 0.06),
        ):
            if rng.random() < chance:
                self.involve(pid, role, born=born, current=rng.random() < 0.6)

    def _child_involvements(self, pid: int, born: date, age: int) -> tuple[bool, bool]:
        """Returns (shielded, known to social care)."""
        rng, today = self.rng, self.today
        lead_taken = False

        def add(
            role: str,
            chance: float,
            current_chance: float = 0.75,
            lead: bool = False,
            since: date | None = None,
        ) -> bool:
            nonlocal lead_taken
            if rng.random() >= chance:
                return False
            current = rng.random() < current_chance
            is_lead = lead and current and not lead_taken
            lead_taken = lead_taken or is_lead
            return self.involve(pid, role, born=born, current=current, lead=is_lead, since=since)

        add("GP", 0.6, 0.95)
        if age < 5:
            add("Health visitor", 0.9, 0.95, since=_between(rng, born, born + timedelta(days=30)))
            if age >= 2:
                add("Early years key worker", 0.5, 0.9)
        else:
            # Health visiting ended when they started school: history on every older child.
            if rng.random() < 0.85:
                start = born + timedelta(days=rng.randint(10, 30))
                end = min(born + timedelta(days=365 * 5), today)
                self.involvements.append(self._ended("Health visitor", pid, start, end))
            add("Class teacher", 0.9, 0.92, since=date(today.year - (today.month < 9), 9, 1))
            # Last school year's teacher, now history.
            if rng.random() < 0.7:
                start = date(today.year - 1 - (today.month < 9), 9, 1)
                end = start + timedelta(days=320)
                if end < today and start >= born:
                    self.involvements.append(self._ended("Class teacher", pid, start, end))
            add("School nurse", 0.3, 0.7)
            add("Designated safeguarding lead", 0.12, 0.8)
            add("Special educational needs coordinator", 0.08, 0.9)
        social_care = False
        shielded = False
        roll = rng.random()
        if roll < 0.025:
            social_care = add("Child protection social worker", 1, 0.8, lead=True)
            add("Police officer (MASH)", 0.4, 0.6)
            shielded = rng.random() < 0.08
        elif roll < 0.09:
            social_care = add("Child in need social worker", 1, 0.7, lead=True)
        elif roll < 0.17:
            add("Lead professional (early help)", 1, 0.6, lead=True)
            add("Family support worker", 0.5, 0.6)
        if rng.random() < 0.06:
            social_care = True
            # Social work that closed years ago: history (and, once old enough, retention).
            start = _between(rng, born, max(born, today - timedelta(days=365 * 3)))
            end = min(start + timedelta(days=rng.randint(60, 700)), today)
            self.involvements.append(self._ended("Child in need social worker", pid, start, end))
        if age >= 5:
            add("CAMHS practitioner", 0.06, 0.6)
            add("Paediatrician", 0.04, 0.5)
        if age >= 10:
            add("Youth worker", 0.1, 0.6)
            add("Young carers worker", 0.03, 0.8)
            add("Youth justice worker", 0.025, 0.5)
        if age >= 13:
            add("Sexual health nurse", 0.02, 0.5)
            add("Substance misuse worker", 0.02, 0.6)
        return shielded, social_care

    def _ended(self, role: str, pid: int, start: date, end: date) -> tuple[Any, ...]:
        staff = self.rng.choice(self.staff[role])
        end = max(start, end)
        return (
            pid,
            staff.id,
            staff.organisation_id,
            self.role_ids[role],
            start,
            end,
            Involvement.EndReason.CASE_CLOSED,
            _between(self.rng, start, end),
            None,
            Involvement.LegalBasis.PUBLIC_TASK,
            staff.sensitive,
            False,
        )


PERSON_COLUMNS = (
    "id",
    "given_name",
    "family_name",
    "date_of_birth",
    "sex",
    "nhs_number",
    "local_identifiers",
    "address",
    "postcode",
    "postcode_key",
    "shielded",
)
NAME_COLUMNS = ("person_id", "kind", "given_name", "family_name", "given_key", "family_key")
RELATIONSHIP_COLUMNS = ("person_id", "relative_id", "kind", "start_date", "end_date")
INVOLVEMENT_COLUMNS = (
    "person_id",
    "practitioner_id",
    "organisation_id",
    "role_id",
    "start_date",
    "end_date",
    "end_reason",
    "last_contact_date",
    "last_confirmed_at",
    "legal_basis",
    "sensitive",
    "lead_professional",
)
# Families generated and written per COPY round: bounds memory at any size.
CHILDREN_PER_CHUNK = 25_000


def demo_data_seed(
    *,
    council_name: str,
    council_code: str,
    council_slug: str,
    children: int,
    seed: int = 0,
    today: date | None = None,
    progress: Callable[[str], None] | None = None,
) -> SeedReport:
    """Add synthetic organisations, practitioners (about one per 12 children), families and
    involvements (about four per child) to the current council's schema, in one transaction.
    The same seed on an empty council gives the same people."""
    if _schema() == "public":
        raise ImproperlyConfigured("Seed a council's schema, not the public one")
    say = progress or (lambda message: None)
    today = today or timezone.localdate()
    now = timezone.now()
    rng = random.Random(seed)  # noqa: S311 (synthetic records, not secrets)
    report = SeedReport()
    started = time.perf_counter()

    def lap(step: str, since: float) -> float:
        report.timings[step] = round(time.perf_counter() - since, 2)
        say(f"  {step}: {report.timings[step]:.1f}s")
        return time.perf_counter()

    with transaction.atomic():
        with connection.cursor() as cursor:
            # Deferred foreign-key checks are queued per row; checking each row as it lands
            # keeps the queue (and memory) small at county scale.
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
        t = time.perf_counter()
        pools = _Pools.build(rng, council_code)
        organisations_before = Organisation.objects.count()
        orgs = _organisations(rng, pools, council_name, children)
        report.organisations = Organisation.objects.count() - organisations_before
        roles = _roles()
        t = lap("organisations and roles", t)
        staff = _practitioners(
            rng, pools, orgs, max(len(ROLES), round(children / 12)), council_slug
        )
        report.practitioners = sum(len(s) for s in staff.values())
        t = lap("practitioners", t)

        taken = {n for n in Person.objects.values_list("nhs_number", flat=True) if n is not None}
        # Up to ~2.2 people per child: children, parents, carers and household members.
        nhs_pool = iter(
            _nhs_numbers(rng, int(children * 2.3) + 50, taken, nhs_number_block(council_code))
        )
        people_table = _CopyTable(Person, PERSON_COLUMNS)
        names_table = _CopyTable(PersonName, NAME_COLUMNS)
        relationships_table = _CopyTable(FamilyRelationship, RELATIONSHIP_COLUMNS)
        involvements_table = _CopyTable(Involvement, INVOLVEMENT_COLUMNS)
        generate_time = copy_time = 0.0
        remaining = children
        while remaining > 0:
            g0 = time.perf_counter()
            generator = _Generator(rng, pools, staff, roles, today, now)
            # Ids are handed out locally, then the block is reserved from the sequence.
            next_local_id = iter(range(10**12)).__next__
            wanted = min(remaining, CHILDREN_PER_CHUNK)
            while generator.children < wanted:
                generator.family(next_local_id, nhs_pool.__next__, wanted - generator.children)
            first = _reserve_ids(Person, len(generator.people))
            people = [(row[0] + first, *row[1:]) for row in generator.people]
            names = [(row[0] + first, *row[1:]) for row in generator.names]
            relationships = [
                (row[0] + first, row[1] + first, *row[2:]) for row in generator.relationships
            ]
            involvements = [(row[0] + first, *row[1:]) for row in generator.involvements]
            g1 = time.perf_counter()
            people_table.write(people)
            names_table.write(names)
            relationships_table.write(relationships)
            involvements_table.write(involvements)
            g2 = time.perf_counter()
            generate_time += g1 - g0
            copy_time += g2 - g1
            remaining -= generator.children
            report.children += generator.children
            report.adults += generator.adults
            report.names += len(names)
            report.relationships += len(relationships)
            report.involvements += len(involvements)
            report.families += generator.families
            say(
                f"  {report.children:,} children, {report.involvements:,} involvements "
                f"({time.perf_counter() - started:.0f}s)"
            )
        report.timings["generate"] = round(generate_time, 2)
        report.timings["copy"] = round(copy_time, 2)
        audit_record(
            actor=None,
            action="synthetic_data_seeded",
            detail={
                "seed": seed,
                "children": report.children,
                "adults": report.adults,
                "practitioners": report.practitioners,
                "involvements": report.involvements,
            },
        )
    t = time.perf_counter()
    with connection.cursor() as cursor:
        for model in (Person, PersonName, FamilyRelationship, Involvement, Practitioner, User):
            cursor.execute(f'ANALYZE "{_schema()}"."{model._meta.db_table}"')
    lap("analyze", t)
    report.timings["total"] = round(time.perf_counter() - started, 2)
    return report


# --- The demo: known logins on seeded councils ---------------------------------------------

# Demo only: `demo_setup` refuses to run in production, and these accounts exist nowhere else.
DEMO_PASSWORD = "patchwork-demo-only"
DEMO_COUNCILS = (("Brighton and Hove", "E06000043"), ("Staffordshire", "E10000028"))


@dataclass(frozen=True)
class DemoLogin:
    """A demo account with a fixed password and a fixed authenticator secret."""

    label: str
    email: str
    password: str
    totp_base32: str
    schema_name: str


@dataclass(frozen=True)
class DemoSearch:
    description: str
    terms: str


def demo_totp_key(email: str) -> str:
    """A fixed TOTP secret (hex, as django-otp stores it) for a demo account, so the printed
    key stays the same however often the demo is set up."""
    return hashlib.sha1(f"patchwork-demo-totp:{email}".encode(), usedforsecurity=False).hexdigest()


def demo_login_set(*, email: str, full_name: str, role: str, label: str) -> DemoLogin:
    """Create or reset a demo account in the current schema: known password, confirmed
    authenticator with a fixed secret."""
    user = User.objects.filter(email=email).first()
    if user is None:
        user = User.objects.create_user(email, full_name=full_name, role=role)
    user.full_name = full_name
    user.role = role
    user.is_active = True
    user.set_password(DEMO_PASSWORD)
    user.save()
    key = demo_totp_key(email)
    TOTPDevice.objects.filter(user=user).exclude(key=key).delete()
    TOTPDevice.objects.update_or_create(
        user=user, key=key, defaults={"name": "Demo authenticator", "confirmed": True}
    )
    return DemoLogin(
        label=label,
        email=email,
        password=DEMO_PASSWORD,
        totp_base32=base64.b32encode(bytes.fromhex(key)).decode(),
        schema_name=_schema(),
    )


def demo_code(*, email: str) -> str:
    """The current six-digit code of a demo account's authenticator, in the current schema."""
    device = TOTPDevice.objects.filter(user__email=email.strip().lower(), confirmed=True).first()
    if device is None:
        raise LookupError(f"{email} has no authenticator here")
    totp = TOTP(device.bin_key, device.step, device.t0, device.digits, device.drift)
    return f"{totp.token():06d}"


def _demo_practitioner(
    user: User, organisation_name: str, job_title: str, child_protection: bool = False
) -> Practitioner:
    organisation = Organisation.objects.get(name=organisation_name)
    practitioner, _ = Practitioner.objects.update_or_create(
        user=user,
        defaults={
            "organisation": organisation,
            "job_title": job_title,
            "team": "Child protection team" if child_protection else "",
            "work_phone": "01273 000000",
            "secure_email": user.email,
            "child_protection": child_protection,
        },
    )
    return practitioner


def demo_team_set(
    *, council_name: str, council_slug: str, today: date | None = None
) -> tuple[list[DemoLogin], list[DemoSearch]]:
    """The demo council's logins (administrator, social worker, school nurse, CAMHS worker)
    and, the first time, the social worker's caseload: lead professional for a few seeded
    children, with the nurse and CAMHS worker on some of the same teams."""
    today = today or timezone.localdate()
    domain = f"{council_slug}.example"
    logins = [
        demo_login_set(
            email=f"admin@{domain}",
            full_name="Alex Administrator",
            role=User.Role.COUNCIL_ADMIN,
            label="Council administrator",
        ),
        demo_login_set(
            email=f"social.worker@{domain}",
            full_name="Sam Social-Worker",
            role=User.Role.PRACTITIONER,
            label="Social worker (child protection)",
        ),
        demo_login_set(
            email=f"school.nurse@{domain}",
            full_name="Nia Nurse",
            role=User.Role.PRACTITIONER,
            label="School nurse",
        ),
        demo_login_set(
            email=f"camhs.worker@{domain}",
            full_name="Cam Hughes",
            role=User.Role.PRACTITIONER,
            label="CAMHS worker (sensitive service)",
        ),
    ]
    users = {login.email: User.objects.get(email=login.email) for login in logins}
    social = _demo_practitioner(
        users[f"social.worker@{domain}"],
        f"{council_name} Children's Social Care",
        "Child protection social worker",
        child_protection=True,
    )
    nurse = _demo_practitioner(
        users[f"school.nurse@{domain}"], f"{council_name} School Nursing Service", "School nurse"
    )
    camhs = _demo_practitioner(
        users[f"camhs.worker@{domain}"], f"{council_name} CAMHS", "CAMHS practitioner"
    )
    if not Involvement.objects.filter(practitioner=social).exists():
        roles = _roles()
        leaderless = (
            Person.objects.filter(
                archived_at__isnull=True,
                shielded=False,
                date_of_birth__gt=years_before(today, 16),
                nhs_number__isnull=False,
            )
            .exclude(involvements__lead_professional=True, involvements__end_date__isnull=True)
            .order_by("pk")[:6]
        )
        for index, child in enumerate(leaderless):
            start = today - timedelta(days=30 + 20 * index)
            rows = [
                Involvement(
                    person=child,
                    practitioner=social,
                    organisation=social.organisation,
                    role=roles["Child protection social worker"],
                    start_date=start,
                    last_contact_date=today - timedelta(days=index + 1),
                    last_confirmed_at=timezone.now(),
                    legal_basis=Involvement.LegalBasis.LEGAL_OBLIGATION,
                    lead_professional=True,
                ),
            ]
            if index % 2 == 0:
                rows.append(
                    Involvement(
                        person=child,
                        practitioner=nurse,
                        organisation=nurse.organisation,
                        role=roles["School nurse"],
                        start_date=start,
                        last_contact_date=today - timedelta(days=10),
                        last_confirmed_at=timezone.now(),
                    )
                )
            if index in (0, 3):
                rows.append(
                    Involvement(
                        person=child,
                        practitioner=camhs,
                        organisation=camhs.organisation,
                        role=roles["CAMHS practitioner"],
                        start_date=start,
                        sensitive=True,
                        last_contact_date=today - timedelta(days=5),
                        last_confirmed_at=timezone.now(),
                    )
                )
            Involvement.objects.bulk_create(rows)
    return logins, demo_searches(social)


def demo_searches(social: Practitioner) -> list[DemoSearch]:
    """Searches the demo social worker can try: children on their team, and one who is not."""
    mine = list(
        Person.objects.filter(
            involvements__practitioner=social, involvements__end_date__isnull=True
        )
        .distinct()
        .order_by("pk")[:2]
    )
    searches: list[DemoSearch] = []
    if mine:
        child = mine[0]
        searches.append(
            DemoSearch(
                f"{child.full_name}, on your team, by NHS number", f"NHS number {child.nhs_number}"
            )
        )
    if len(mine) > 1:
        child = mine[1]
        searches.append(
            DemoSearch(
                f"{child.full_name}, on your team, by surname and date of birth",
                f"surname {child.family_name}, date of birth {child.date_of_birth:%d %m %Y}",
            )
        )
    other = (
        Person.objects.filter(
            archived_at__isnull=True,
            shielded=False,
            date_of_birth__gt=years_before(timezone.localdate(), 18),
        )
        .exclude(involvements__practitioner=social)
        .filter(involvements__end_date__isnull=True)
        .distinct()
        .order_by("pk")
        .first()
    )
    if other:
        searches.append(
            DemoSearch(
                f"{other.full_name}, not on your team (you will be asked for a reason)",
                f"surname {other.family_name}, date of birth {other.date_of_birth:%d %m %Y}",
            )
        )
    return searches
