"""Teamwork takes over its six models from `core` without touching their tables: the
operations are 0004_teamwork's, in Django's state only, each naming the table it already
has. The content types follow, so permissions and any reference by type stay attached."""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models

MOVED = (
    "contactlog",
    "task",
    "teammessage",
    "meeting",
    "meetinginvitation",
    "involvementreminder",
)


def content_types_move(apps, schema_editor):  # type: ignore[no-untyped-def]
    content_type = apps.get_model("contenttypes", "ContentType")
    content_type.objects.using(schema_editor.connection.alias).filter(
        app_label="core", model__in=MOVED
    ).update(app_label="teamwork")


def content_types_back(apps, schema_editor):  # type: ignore[no-untyped-def]
    content_type = apps.get_model("contenttypes", "ContentType")
    content_type.objects.using(schema_editor.connection.alias).filter(
        app_label="teamwork", model__in=MOVED
    ).update(app_label="core")


class Migration(migrations.Migration):
    initial = True

    # After core has let go of these models, so no plan ever holds two models on one table.
    dependencies = [
        ("core", "0007_teamwork_moved_out"),
        ("contenttypes", "0002_remove_content_type_name"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name="Meeting",
                    fields=[
                        (
                            "id",
                            models.BigAutoField(
                                auto_created=True,
                                primary_key=True,
                                serialize=False,
                                verbose_name="ID",
                            ),
                        ),
                        ("title", models.CharField(max_length=120)),
                        ("starts_at", models.DateTimeField()),
                        ("ends_at", models.DateTimeField()),
                        ("place", models.CharField(blank=True, max_length=200)),
                        ("link", models.URLField(blank=True)),
                        ("uid", models.CharField(max_length=120, unique=True)),
                        ("sequence", models.PositiveIntegerField(default=0)),
                        (
                            "status",
                            models.CharField(
                                choices=[("scheduled", "Scheduled"), ("cancelled", "Cancelled")],
                                default="scheduled",
                                max_length=10,
                            ),
                        ),
                        ("created_at", models.DateTimeField(auto_now_add=True)),
                        ("updated_at", models.DateTimeField(auto_now=True)),
                        (
                            "organiser",
                            models.ForeignKey(
                                on_delete=django.db.models.deletion.PROTECT,
                                related_name="+",
                                to=settings.AUTH_USER_MODEL,
                            ),
                        ),
                        (
                            "person",
                            models.ForeignKey(
                                on_delete=django.db.models.deletion.CASCADE,
                                related_name="meetings",
                                to="core.person",
                            ),
                        ),
                    ],
                    options={
                        "db_table": "core_meeting",
                        "ordering": ["starts_at"],
                    },
                ),
                migrations.CreateModel(
                    name="MeetingInvitation",
                    fields=[
                        (
                            "id",
                            models.BigAutoField(
                                auto_created=True,
                                primary_key=True,
                                serialize=False,
                                verbose_name="ID",
                            ),
                        ),
                        (
                            "response",
                            models.CharField(
                                choices=[
                                    ("needs_action", "Not replied"),
                                    ("accepted", "Accepted"),
                                    ("declined", "Declined"),
                                ],
                                default="needs_action",
                                max_length=12,
                            ),
                        ),
                        ("responded_at", models.DateTimeField(blank=True, null=True)),
                        ("removed_at", models.DateTimeField(blank=True, null=True)),
                        (
                            "invitee",
                            models.ForeignKey(
                                on_delete=django.db.models.deletion.CASCADE,
                                related_name="meeting_invitations",
                                to=settings.AUTH_USER_MODEL,
                            ),
                        ),
                        (
                            "meeting",
                            models.ForeignKey(
                                on_delete=django.db.models.deletion.CASCADE,
                                related_name="invitations",
                                to="teamwork.meeting",
                            ),
                        ),
                    ],
                    options={"db_table": "core_meetinginvitation"},
                ),
                migrations.CreateModel(
                    name="Task",
                    fields=[
                        (
                            "id",
                            models.BigAutoField(
                                auto_created=True,
                                primary_key=True,
                                serialize=False,
                                verbose_name="ID",
                            ),
                        ),
                        ("text", models.CharField(max_length=280)),
                        ("due_date", models.DateField()),
                        (
                            "status",
                            models.CharField(
                                choices=[
                                    ("open", "Open"),
                                    ("done", "Done"),
                                    ("cancelled", "Cancelled"),
                                ],
                                default="open",
                                max_length=10,
                            ),
                        ),
                        ("created_at", models.DateTimeField(auto_now_add=True)),
                        ("closed_at", models.DateTimeField(blank=True, null=True)),
                        (
                            "assignee",
                            models.ForeignKey(
                                on_delete=django.db.models.deletion.PROTECT,
                                related_name="tasks",
                                to="core.practitioner",
                            ),
                        ),
                        (
                            "closed_by",
                            models.ForeignKey(
                                blank=True,
                                null=True,
                                on_delete=django.db.models.deletion.PROTECT,
                                related_name="+",
                                to=settings.AUTH_USER_MODEL,
                            ),
                        ),
                        (
                            "created_by",
                            models.ForeignKey(
                                on_delete=django.db.models.deletion.PROTECT,
                                related_name="+",
                                to=settings.AUTH_USER_MODEL,
                            ),
                        ),
                        (
                            "person",
                            models.ForeignKey(
                                on_delete=django.db.models.deletion.CASCADE,
                                related_name="tasks",
                                to="core.person",
                            ),
                        ),
                    ],
                    options={
                        "db_table": "core_task",
                        "ordering": ["due_date", "pk"],
                    },
                ),
                migrations.CreateModel(
                    name="TeamMessage",
                    fields=[
                        (
                            "id",
                            models.BigAutoField(
                                auto_created=True,
                                primary_key=True,
                                serialize=False,
                                verbose_name="ID",
                            ),
                        ),
                        ("text", models.CharField(max_length=280)),
                        ("whole_team", models.BooleanField(default=False)),
                        ("sent_at", models.DateTimeField(auto_now_add=True)),
                        (
                            "person",
                            models.ForeignKey(
                                on_delete=django.db.models.deletion.CASCADE,
                                related_name="team_messages",
                                to="core.person",
                            ),
                        ),
                        (
                            "recipients",
                            models.ManyToManyField(
                                related_name="team_messages", to=settings.AUTH_USER_MODEL
                            ),
                        ),
                        (
                            "sender",
                            models.ForeignKey(
                                on_delete=django.db.models.deletion.PROTECT,
                                related_name="+",
                                to=settings.AUTH_USER_MODEL,
                            ),
                        ),
                    ],
                    options={
                        "db_table": "core_teammessage",
                        "ordering": ["-sent_at"],
                    },
                ),
                migrations.CreateModel(
                    name="ContactLog",
                    fields=[
                        (
                            "id",
                            models.BigAutoField(
                                auto_created=True,
                                primary_key=True,
                                serialize=False,
                                verbose_name="ID",
                            ),
                        ),
                        (
                            "kind",
                            models.CharField(
                                choices=[("saw", "Saw"), ("spoke", "Spoke to")], max_length=10
                            ),
                        ),
                        ("contact_date", models.DateField()),
                        ("recorded_at", models.DateTimeField(auto_now_add=True)),
                        (
                            "involvement",
                            models.ForeignKey(
                                on_delete=django.db.models.deletion.CASCADE,
                                related_name="contacts",
                                to="core.involvement",
                            ),
                        ),
                        (
                            "person",
                            models.ForeignKey(
                                on_delete=django.db.models.deletion.CASCADE,
                                related_name="contacts",
                                to="core.person",
                            ),
                        ),
                        (
                            "recorded_by",
                            models.ForeignKey(
                                on_delete=django.db.models.deletion.PROTECT,
                                related_name="+",
                                to=settings.AUTH_USER_MODEL,
                            ),
                        ),
                    ],
                    options={
                        "db_table": "core_contactlog",
                        "indexes": [
                            models.Index(
                                fields=["person", "contact_date"],
                                name="core_contac_person__6ade53_idx",
                            )
                        ],
                    },
                ),
                migrations.CreateModel(
                    name="InvolvementReminder",
                    fields=[
                        (
                            "id",
                            models.BigAutoField(
                                auto_created=True,
                                primary_key=True,
                                serialize=False,
                                verbose_name="ID",
                            ),
                        ),
                        ("sent_at", models.DateTimeField()),
                        ("expires_at", models.DateTimeField()),
                        ("answered_at", models.DateTimeField(blank=True, null=True)),
                        (
                            "answer",
                            models.CharField(
                                blank=True,
                                choices=[
                                    ("still", "Still involved"),
                                    ("ended", "No longer involved"),
                                ],
                                max_length=10,
                            ),
                        ),
                        ("flagged_at", models.DateTimeField(blank=True, null=True)),
                        (
                            "involvement",
                            models.ForeignKey(
                                on_delete=django.db.models.deletion.CASCADE,
                                related_name="reminders",
                                to="core.involvement",
                            ),
                        ),
                    ],
                    options={
                        "db_table": "core_involvementreminder",
                        "indexes": [
                            models.Index(
                                fields=["involvement", "sent_at"],
                                name="core_involv_involve_36c93b_idx",
                            )
                        ],
                    },
                ),
                migrations.AddIndex(
                    model_name="meeting",
                    index=models.Index(
                        fields=["person", "starts_at"], name="core_meetin_person__ae29a5_idx"
                    ),
                ),
                migrations.AddConstraint(
                    model_name="meeting",
                    constraint=models.CheckConstraint(
                        condition=models.Q(("ends_at__gt", models.F("starts_at"))),
                        name="meeting_ends_after_start",
                    ),
                ),
                migrations.AddConstraint(
                    model_name="meetinginvitation",
                    constraint=models.UniqueConstraint(
                        fields=("meeting", "invitee"), name="one_invitation_each"
                    ),
                ),
                migrations.AddIndex(
                    model_name="task",
                    index=models.Index(
                        fields=["assignee", "status", "due_date"],
                        name="core_task_assigne_9efbb7_idx",
                    ),
                ),
                migrations.AddIndex(
                    model_name="task",
                    index=models.Index(
                        fields=["person", "created_at"], name="core_task_person__e52bc8_idx"
                    ),
                ),
                migrations.AddIndex(
                    model_name="teammessage",
                    index=models.Index(
                        fields=["person", "sent_at"], name="core_teamme_person__2a87a2_idx"
                    ),
                ),
            ],
            database_operations=[],
        ),
        migrations.RunPython(content_types_move, content_types_back),
    ]
