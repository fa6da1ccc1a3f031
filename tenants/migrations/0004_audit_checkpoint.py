"""Signed heads of each council's audit log, kept in the public schema (decision 0012)."""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("tenants", "0003_federation_moved_out"),
    ]

    operations = [
        migrations.CreateModel(
            name="AuditCheckpoint",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("sequence", models.PositiveIntegerField()),
                ("document", models.JSONField()),
                ("created_at", models.DateTimeField(auto_now_add=True)),
                (
                    "council",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="checkpoints",
                        to="tenants.council",
                    ),
                ),
            ],
            options={
                "ordering": ["council", "sequence"],
                "constraints": [
                    models.UniqueConstraint(
                        fields=("council", "sequence"), name="audit_checkpoint_sequence_unique"
                    )
                ],
            },
        ),
    ]
