"""Takes over the peer directory and council signing keys from `tenants` without touching
their tables (state only), and moves their content types with them."""

import django.db.models.deletion
from django.db import migrations, models

MOVED = ("councilsigningkey", "federationpeer")


def content_types_move(apps, schema_editor):  # type: ignore[no-untyped-def]
    content_type = apps.get_model("contenttypes", "ContentType")
    content_type.objects.using(schema_editor.connection.alias).filter(
        app_label="tenants", model__in=MOVED
    ).update(app_label="federation_directory")


def content_types_back(apps, schema_editor):  # type: ignore[no-untyped-def]
    content_type = apps.get_model("contenttypes", "ContentType")
    content_type.objects.using(schema_editor.connection.alias).filter(
        app_label="federation_directory", model__in=MOVED
    ).update(app_label="tenants")


class Migration(migrations.Migration):
    initial = True

    # After tenants has let go of these models, so no plan ever holds two models on one table.
    dependencies = [
        ("tenants", "0003_federation_moved_out"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name="CouncilSigningKey",
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
                        ("key_id", models.CharField(max_length=80, unique=True)),
                        ("public_key", models.BinaryField()),
                        ("sealed_private_key", models.BinaryField()),
                        ("created_at", models.DateTimeField(auto_now_add=True)),
                        ("retired_at", models.DateTimeField(blank=True, null=True)),
                        (
                            "council",
                            models.ForeignKey(
                                on_delete=django.db.models.deletion.CASCADE,
                                related_name="signing_keys",
                                to="tenants.council",
                            ),
                        ),
                    ],
                    options={"db_table": "tenants_councilsigningkey", "ordering": ["-created_at"]},
                ),
                migrations.CreateModel(
                    name="FederationPeer",
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
                            "federation_id",
                            models.CharField(
                                help_text="council:<ONS code>", max_length=40, unique=True
                            ),
                        ),
                        ("name", models.CharField(max_length=120)),
                        ("base_url", models.URLField(blank=True)),
                        ("trusted_keys", models.JSONField(blank=True, default=list)),
                        ("card", models.JSONField(blank=True, default=dict)),
                        ("keys_document", models.JSONField(blank=True, null=True)),
                        ("keys_fetched_at", models.DateTimeField(blank=True, null=True)),
                        ("keys_valid_until", models.DateTimeField(blank=True, null=True)),
                        ("added_at", models.DateTimeField(auto_now_add=True)),
                        ("removed_at", models.DateTimeField(blank=True, null=True)),
                        (
                            "council",
                            models.OneToOneField(
                                blank=True,
                                null=True,
                                on_delete=django.db.models.deletion.CASCADE,
                                related_name="peer",
                                to="tenants.council",
                            ),
                        ),
                    ],
                    options={"db_table": "tenants_federationpeer", "ordering": ["name"]},
                ),
            ],
            database_operations=[],
        ),
        migrations.RunPython(content_types_move, content_types_back),
    ]
