"""Factories for a council's records (synthetic people only: Faker en_GB)."""

from __future__ import annotations

import random
from datetime import date, timedelta

import factory
from faker import Faker

from accounts.models import User
from core.identifiers import nhs_number_check_digit
from core.models import Involvement, InvolvementRole, Organisation, Person, PersonName, Practitioner
from tests.personas import PASSWORD

fake = Faker("en_GB")


def valid_nhs_number(rng: random.Random | None = None) -> str:
    """A random NHS number with a correct modulus-11 check digit (9xx: test range)."""
    rng = rng or random.Random()
    while True:
        nine = "9" + "".join(str(rng.randint(0, 9)) for _ in range(8))
        check = nhs_number_check_digit(nine)
        if check is not None:
            return nine + str(check)


class OrganisationFactory(factory.django.DjangoModelFactory):
    """An agency; a school by default."""

    class Meta:
        model = Organisation

    name = factory.Sequence(lambda n: f"{fake.city()} Academy {n}")
    agency_type = Organisation.AgencyType.SCHOOL
    sensitive_service = False


class RoleFactory(factory.django.DjangoModelFactory):
    """An involvement role from the council's list."""

    class Meta:
        model = InvolvementRole
        django_get_or_create = ("name",)

    name = "School nurse"
    child_protection = False


class UserFactory(factory.django.DjangoModelFactory):
    """A practitioner account with the shared test password."""

    class Meta:
        model = User

    email = factory.Sequence(lambda n: f"user{n}@council.test")
    full_name = factory.LazyFunction(fake.name)
    role = User.Role.PRACTITIONER
    password = factory.django.Password(PASSWORD)


class PractitionerFactory(factory.django.DjangoModelFactory):
    """A practitioner's profile at an organisation."""

    class Meta:
        model = Practitioner

    user = factory.SubFactory(UserFactory)
    organisation = factory.SubFactory(OrganisationFactory)
    job_title = "School nurse"
    work_phone = factory.LazyFunction(lambda: fake.phone_number())


class PersonFactory(factory.django.DjangoModelFactory):
    """A child, with their current name indexed for search."""

    class Meta:
        model = Person
        skip_postgeneration_save = True

    given_name = factory.LazyFunction(fake.first_name)
    family_name = factory.LazyFunction(fake.last_name)
    date_of_birth = factory.LazyFunction(
        lambda: date.today() - timedelta(days=random.randint(365, 17 * 365))
    )
    sex = Person.Sex.UNKNOWN
    nhs_number = factory.LazyFunction(valid_nhs_number)
    postcode = factory.LazyFunction(lambda: fake.postcode())

    @factory.post_generation
    def names(self, create: bool, extracted: object, **kwargs: object) -> None:
        if create:
            PersonName.objects.create(
                person=self,
                kind=PersonName.Kind.CURRENT,
                given_name=self.given_name,
                family_name=self.family_name,
            )


class InvolvementFactory(factory.django.DjangoModelFactory):
    """A current involvement; the organisation follows the practitioner's."""

    class Meta:
        model = Involvement

    person = factory.SubFactory(PersonFactory)
    practitioner = factory.SubFactory(PractitionerFactory)
    organisation = factory.LazyAttribute(lambda o: o.practitioner.organisation)
    role = factory.SubFactory(RoleFactory)
    start_date = factory.LazyFunction(lambda: date.today() - timedelta(days=30))
    sensitive = factory.LazyAttribute(lambda o: o.organisation.sensitive_service)
