"""Contacts, tasks, messages, meetings and reminders now belong to the `teamwork` app: they
leave core's state only. Their tables stay exactly as they are."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("core", "0006_audit_person_latest"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.DeleteModel(name="MeetingInvitation"),
                migrations.DeleteModel(name="Meeting"),
                migrations.DeleteModel(name="ContactLog"),
                migrations.DeleteModel(name="Task"),
                migrations.DeleteModel(name="TeamMessage"),
                migrations.DeleteModel(name="InvolvementReminder"),
            ],
            database_operations=[],
        )
    ]
