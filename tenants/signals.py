"""What the platform tells the apps above it, which it never imports (decision 0006)."""

from __future__ import annotations

from django.dispatch import Signal

# Sent by `council_onboard` inside the new council's schema, in the onboarding transaction,
# with `council=`: an app fills the council's own tables with what every council starts
# with (core: the national default role list). A receiver's failure undoes the onboarding.
council_schema_created = Signal()
